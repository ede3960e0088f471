"""Reading and writing weights: the one place that touches checkpoint files.

- Model directories (ours and Hugging Face's): ``config.json`` + ``model.safetensors`` +
  tokenizer files, plus ``vsearch.json`` (the encoder spec) in the ones vsearch writes.
- Hub ids go through ``transformers``' ``from_pretrained``, always as float32 (transformers 5
  defaults to the checkpoint's dtype, so an fp16 file would otherwise give an fp16 model).
- Third-party ``.pt`` files load with ``torch.load(weights_only=True)``: a pickle that would run
  code is refused before anything executes.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from ..atomic import atomic_write, atomic_write_text
from ..errors import CheckpointError, EncoderLoadError
from .hub import in_hub_cache, require_hub
from .tokenizer import write_tokenizer_files

WEIGHTS_NAME = "model.safetensors"


def quiet_transformers() -> None:
    """No per-tensor progress bars or info logs from transformers inside our own progress output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` from a safetensors or PyTorch file, refusing unsafe pickles.

    Wrapped layouts (``{"model": ...}``, ``{"state_dict": ...}``) are unwrapped and a DDP
    ``module.`` prefix is stripped; method-specific prefixes are the caller's business.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(os.fspath(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        detail = _unpickler_detail(text)
        if "allowed global" in text or "Unsupported global" in text:
            raise CheckpointError(
                f"{path}: refused: the file holds pickled objects beyond plain tensors, which could run code "
                f"when loaded. Nothing was executed. Re-save it as a state dict (or safetensors). Detail: {detail}"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({detail})") from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first[:200]})") from None
    return flatten_state_dict(obj, path)


def _unpickler_detail(text: str) -> str:
    """The informative line of torch's long weights_only error message."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    marker = "WeightsUnpickler error:"
    for i, ln in enumerate(lines):
        if marker in ln:
            rest = ln.split(marker, 1)[1].strip()
            return (rest or (lines[i + 1] if i + 1 < len(lines) else ""))[:200]
    return lines[0][:200] if lines else "unreadable"


def flatten_state_dict(obj: object, path: os.PathLike[str] | str = "checkpoint") -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model", "module", "model_state_dict"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state dict (name -> tensor), found {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def save_weights(directory: Path, state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {}
    for k, v in state_dict.items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata={"format": "pt"}))


def save_model_dir(directory: str | os.PathLike[str], encoder, hf_config, state_dict, dtype: torch.dtype | None = None) -> Path:
    """Write a loadable model directory: HF config + safetensors + tokenizer files + vsearch.json.

    Each file goes through ``atomic_write`` (temporary name, fsync, rename, fsync the folder), so
    an interrupted save or a power cut leaves either the old file or the new one, never half of one.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "config.json", hf_config.to_json_string(use_diff=False))
    save_weights(d, state_dict, dtype)
    write_tokenizer_files(d, encoder.tokenizer, encoder.spec.max_text_len)
    encoder.write_spec(d)
    return d


def base_clip_config(base: str):
    """The CLIP config of ``base`` (a folder with config.json, or a hub id, cached or reachable): what
    an official checkpoint file is read over (CLIP-ViP, STAN)."""
    from transformers import CLIPConfig

    if not os.path.isdir(base) and not in_hub_cache(base):
        require_hub(base)
    try:
        return CLIPConfig.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"base {base}: no CLIP config.json there ({str(exc).splitlines()[0][:160]})") from None


def read_clip_config(folder: str | os.PathLike[str], family_config: type):
    """A model folder's config: ``family_config`` (a ``CLIPConfig`` subclass with a ``model_type``
    of its own) when config.json names that type, else a plain ``CLIPConfig`` (folders a family
    saved before it had a config class say ``clip``; read as such, transformers has nothing to
    warn about)."""
    import json

    from transformers import CLIPConfig

    try:
        mtype = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder}: config.json cannot be read ({exc})") from None
    return (family_config if mtype == family_config.model_type else CLIPConfig).from_pretrained(folder)


def from_pretrained_hf(model_cls, ref: str, **kwargs):
    """``model_cls.from_pretrained(ref)`` in float32, with a clear error when it cannot load."""
    quiet_transformers()
    if not Path(ref).exists() and in_hub_cache(ref):
        # Cached: load offline. Saves the hub's freshness checks on every start (latency), and
        # the 30 s of connection retries on a machine without network.
        kwargs.setdefault("local_files_only", True)
    elif not Path(ref).exists():
        require_hub(ref)
    try:
        model, info = model_cls.from_pretrained(ref, dtype=torch.float32, output_loading_info=True, **kwargs)
    except OSError as exc:
        local = Path(ref).exists()
        hint = (
            "the folder has no loadable weights"
            if local
            else "it is neither a local folder nor a model in the Hugging Face cache, and the hub could not be reached"
        )
        raise EncoderLoadError(f"cannot load {ref!r}: {hint}. ({str(exc).splitlines()[0][:200]})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise EncoderLoadError(f"cannot load {ref!r} as {model_cls.__name__}: {str(exc).splitlines()[0][:300]}") from None
    refuse_partial_load(ref, info)
    return model


def refuse_partial_load(ref: str, info: dict) -> None:
    """transformers fills missing tensors with random values and drops unknown ones with a log
    line; a model that silently embeds with random weights is worse than no model."""
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = [k if isinstance(k, str) else k[0] for k in info.get(kind) or ()]
        keys = [k for k in keys if not k.endswith("position_ids")]
        if keys:
            problems.append(f"{len(keys)} {kind.replace('_keys', '')} (e.g. {', '.join(sorted(keys)[:3])})")
    if problems:
        raise CheckpointError(f"{ref}: the weights do not match the model: {'; '.join(problems)}")


def read_preprocessor_config(ref: str) -> dict | None:
    """``preprocessor_config.json`` of a local folder or cached hub model, if there is one."""
    import json

    path = Path(ref) / "preprocessor_config.json"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(ref, "preprocessor_config.json")
        except Exception:  # noqa: BLE001 - a malformed repo id simply has no cached config
            cached = None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def strict_load(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], source: str, hint: str = "") -> None:
    """Load ``sd`` into ``module``, refusing any missing, unknown or mis-shaped key, by name.

    Reference loaders often use ``strict=False`` and skip mismatches silently; a wrong file then
    trains from scratch without a word (XPretrain issue #43). Floating tensors are cast to fp32.
    """
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    missing = sorted(set(expected) - set(got))
    unknown = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unknown or wrong:
        parts = []
        if wrong:
            parts.append(
                "shape mismatch: " + "; ".join(f"{k} is {got[k]} in the file, {expected[k]} in the model" for k in wrong[:6])
            )
        if missing:
            parts.append(f"missing {len(missing)} keys: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
        if unknown:
            parts.append(f"unknown {len(unknown)} keys: {', '.join(unknown[:6])}{' ...' if len(unknown) > 6 else ''}")
        raise CheckpointError(f"{source}: does not fit this model{hint if wrong else ''}: " + " | ".join(parts))
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True)


def restore_position_ids(model: torch.nn.Module) -> None:
    """Non-persistent ``position_ids`` buffers are not in state dicts; rebuild them after a meta init."""
    for sub in model.modules():
        if isinstance(getattr(sub, "position_ids", None), torch.Tensor):
            sub.position_ids = torch.arange(sub.position_ids.shape[-1]).expand((1, -1))


def openai_clip_to_hf(sd: Mapping[str, torch.Tensor], visual: str, text: str) -> dict[str, torch.Tensor]:
    """OpenAI CLIP parameter names (``visual.transformer.resblocks.0.attn.in_proj_weight``, ...)
    to transformers' ``CLIPModel`` names, splitting fused q/k/v and transposing projections.

    ``visual`` / ``text`` are the prefixes of the image and text towers in ``sd`` (OpenAI's own
    files: "visual." and ""; ViFi-CLIP's: "image_encoder." and "text_encoder.").
    """
    out: dict[str, torch.Tensor] = {}

    def blocks(src: str, dst: str) -> None:
        layer_keys = {k[len(src) :].split(".", 1)[0] for k in sd if k.startswith(src)}
        for i in sorted(layer_keys, key=int):
            a, b = f"{src}{i}.", f"{dst}{i}."
            w = sd[a + "attn.in_proj_weight"]
            bias = sd[a + "attn.in_proj_bias"]
            for name, ws, bs in zip(("q_proj", "k_proj", "v_proj"), w.chunk(3), bias.chunk(3)):
                out[b + f"self_attn.{name}.weight"], out[b + f"self_attn.{name}.bias"] = ws, bs
            pairs = {
                "attn.out_proj": "self_attn.out_proj",
                "ln_1": "layer_norm1",
                "ln_2": "layer_norm2",
                "mlp.c_fc": "mlp.fc1",
                "mlp.c_proj": "mlp.fc2",
            }
            for o, h in pairs.items():
                out[b + h + ".weight"], out[b + h + ".bias"] = sd[a + o + ".weight"], sd[a + o + ".bias"]

    v = visual
    out["vision_model.embeddings.patch_embedding.weight"] = sd[v + "conv1.weight"]
    out["vision_model.embeddings.class_embedding"] = sd[v + "class_embedding"]
    out["vision_model.embeddings.position_embedding.weight"] = sd[v + "positional_embedding"]
    for o, h in (("ln_pre", "vision_model.pre_layrnorm"), ("ln_post", "vision_model.post_layernorm")):
        out[h + ".weight"], out[h + ".bias"] = sd[v + o + ".weight"], sd[v + o + ".bias"]
    out["visual_projection.weight"] = sd[v + "proj"].T.contiguous()
    blocks(v + "transformer.resblocks.", "vision_model.encoder.layers.")
    t = text
    if t + "token_embedding.weight" in sd:
        out["text_model.embeddings.token_embedding.weight"] = sd[t + "token_embedding.weight"]
    out["text_model.embeddings.position_embedding.weight"] = sd[t + "positional_embedding"]
    out["text_model.final_layer_norm.weight"], out["text_model.final_layer_norm.bias"] = (
        sd[t + "ln_final.weight"],
        sd[t + "ln_final.bias"],
    )
    out["text_projection.weight"] = sd[t + "text_projection"].T.contiguous()
    blocks(t + "transformer.resblocks.", "text_model.encoder.layers.")
    if "logit_scale" in sd:
        out["logit_scale"] = sd["logit_scale"]
    return out


def checkpoint_layout(sd: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> str:
    """Which third-party layout a loaded checkpoint (``load_state_dict(path)``) is in: ``clip-vip``
    (official CLIP-ViP) or ``openai-clip`` (ViFi-CLIP releases, OpenAI CLIP state dicts).

    It takes the loaded dict, not the path, so that the caller reads a large file once and hands
    the same dict to the loader of that layout."""
    keys = list(sd)
    if any(k.startswith("clipmodel.") for k in keys):
        return "clip-vip"
    if any(k.startswith("backbone.STAN_") for k in keys):
        return "stan"
    if any(k.startswith(("image_encoder.", "visual.")) for k in keys):
        return "openai-clip"
    sample = ", ".join(sorted(keys)[:3])
    raise CheckpointError(
        f"{path}: unrecognised checkpoint layout (keys like {sample}); expected an official CLIP-ViP or STAN checkpoint, or a ViFi-CLIP/OpenAI CLIP file"
    )
