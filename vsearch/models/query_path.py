"""A fast path for turning a query into a vector, without importing transformers' model code.

A command-line search pays for imports on every run. Importing transformers' CLIP modelling
code (which pulls in torch.distributed and scans transformers' whole import structure) costs
about as much again as importing torch itself. A query needs only the text tower, which is
small and standard: token + position embeddings, pre-LN causal transformer layers, final LN,
the end-of-text token, the projection. ``TextTower`` computes exactly that in plain torch from
the same weights; ``tests/test_query_path.py`` holds it equal to ``CLIPTextModel`` +
``text_projection``.

It is used only when it is certainly the same model: loading a full encoder from a file with
``load_encoder(..., remember=True)`` writes a cache entry (weights file path, size and mtime →
fingerprint, text config, the tokenizer as serialised by transformers' own fast tokenizer; and
for ``video_path``, the same entry's vision config, the family's video settings and a digest of
config.json and vsearch.json). A search uses the fast path when the store's encoder source has
such an entry whose fingerprint is the store's; otherwise it loads the full model as usual.
Every family here shares CLIP's text tower: mean-pool, CLIP-ViP and STAN use it unchanged, and
X-CLIP's ``XCLIPTextModel`` is the same architecture under the same names.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_write_text
from ..config import cache_dir
from .encoder import EncoderSpec
from .plain_clip import activation, layer_names, layers_for, load_renamed, tensors_with_prefix
from .tokenizer import clean_text

CACHE_NAME = "query-path.json"
TEXT_PREFIXES = ("text_model.", "text_projection.")


class TextTower(nn.Module):
    """CLIP's text transformer and projection (``plain_clip`` layers, loaded from ``CLIPModel``'s names)."""

    def __init__(self, text_config: dict, projection_dim: int):
        super().__init__()
        d = text_config["hidden_size"]
        self.heads = text_config["num_attention_heads"]
        self.act = activation(text_config.get("hidden_act", "quick_gelu"))
        self.eos_token_id = text_config.get("eos_token_id", 49407)
        self.token = nn.Embedding(text_config["vocab_size"], d)
        self.position = nn.Embedding(text_config["max_position_embeddings"], d)
        self.layers = layers_for(text_config)
        self.final = nn.LayerNorm(d, eps=text_config.get("layer_norm_eps", 1e-5))
        self.proj = nn.Linear(d, projection_dim, bias=False)

    def load_clip_weights(self, sd: dict[str, torch.Tensor]) -> None:
        names = {"token.weight": "text_model.embeddings.token_embedding.weight",
                 "position.weight": "text_model.embeddings.position_embedding.weight",
                 "final.weight": "text_model.final_layer_norm.weight", "final.bias": "text_model.final_layer_norm.bias",
                 "proj.weight": "text_projection.weight"}  # fmt: skip
        names.update(layer_names(len(self.layers), "text_model.encoder.layers."))
        load_renamed(self, sd, names)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(N, L) ids of unpadded texts (or padded after their end token) → (N, E) projections."""
        n, length = input_ids.shape
        x = self.token(input_ids) + self.position(torch.arange(length, device=input_ids.device))[None]
        for layer in self.layers:
            x = layer(x, self.heads, self.act, causal=True)
        x = self.final(x)
        if self.eos_token_id == 2:
            # Configs written before transformers PR #24773 say 2; transformers then pools at the
            # highest id, which is the end-of-text token for CLIP's vocabulary.
            eos = input_ids.int().argmax(dim=-1)
        else:
            eos = (input_ids == self.eos_token_id).int().argmax(dim=-1)  # the first end-of-text token
        return self.proj(x[torch.arange(n), eos])


class QueryEncoder:
    """What ``search`` needs of an encoder: its identity, its spec, and query vectors."""

    def __init__(self, entry: dict, tower: TextTower, tokenizer):
        self.name = entry["name"]
        self.source = entry["source"]
        self.family = entry["family"]
        self.fingerprint = entry["fingerprint"]
        self.spec = EncoderSpec.from_dict(entry["spec"])
        self.tower = tower.eval()
        self.tokenizer = tokenizer
        self.tokenizer.enable_truncation(self.spec.max_text_len)
        self._cache: dict[str, torch.Tensor] = {}

    def token_count(self, text: str) -> int:
        self.tokenizer.no_truncation()
        try:
            return len(self.tokenizer.encode(clean_text(text)).ids)
        finally:
            self.tokenizer.enable_truncation(self.spec.max_text_len)

    @torch.inference_mode()
    def encode_query(self, text: str) -> torch.Tensor:
        hit = self._cache.get(text)
        if hit is None:
            ids = torch.tensor([self.tokenizer.encode(clean_text(text)).ids])
            hit = F.normalize(self.tower(ids).float(), dim=-1)[0]
            self._cache[text] = hit
        return hit


def _cache_path() -> Path:
    return cache_dir() / CACHE_NAME


def _weights_key(weights: Path) -> str:
    st = weights.stat()
    return f"{weights.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def remember(encoder) -> None:
    """After loading ``encoder`` in full from a ``model.safetensors``: record what the fast path
    needs. Called on every remembering load, so an entry that already vouches for this file and
    fingerprint is left as it is (no tokenizer serialisation, no rewrite of the cache file)."""
    tok = getattr(encoder, "tokenizer", None)
    backend = getattr(tok, "backend_tokenizer", None) or getattr(tok, "_tokenizer", None)
    config = getattr(getattr(encoder, "clip", None), "config", None) or getattr(getattr(encoder, "model", None), "config", None)
    if backend is None or config is None or encoder.source is None:
        return
    weights = _weights_file(encoder.source)
    if weights is None:
        return
    try:
        path = _cache_path()
        data = json.loads(path.read_text()) if path.exists() else {}
        key = _weights_key(weights)
        known = data.get(key, {})
        digest = folder_digest(weights)
        if (
            known.get("fingerprint") == encoder.fingerprint
            and known.get("folder") == digest
            and "video_settings" in known
            and _tokenizer_path(known.get("tokenizer", "")).is_file()
        ):
            return
        data[key] = {
            "fingerprint": encoder.fingerprint,
            "name": encoder.name,
            "source": encoder.source,
            "family": encoder.family,
            "spec": encoder.spec.as_dict(),
            "text_config": config.text_config.to_dict(),
            "vision_config": config.vision_config.to_dict(),  # (``video_path``)
            "video_settings": asdict(encoder.vip) if is_dataclass(getattr(encoder, "vip", None)) else None,
            "projection_dim": config.projection_dim,
            "folder": digest,
            "weights": str(weights.resolve()),
            "tokenizer": _save_tokenizer(backend.to_str()),
        }
        atomic_write_text(path, json.dumps(data))
    except (OSError, ValueError, AttributeError):  # a cache: failing to write it only costs speed
        pass


def cached_entry(source: str) -> tuple[Path, dict] | None:
    """``source``'s weights file and the cache entry that vouches for it as it is now (path,
    size, mtime), or None."""
    weights = _weights_file(source)
    if weights is None:
        return None
    try:
        data = json.loads(_cache_path().read_text())
        entry = data.get(_weights_key(weights))
    except (OSError, ValueError):
        return None
    return (weights, entry) if isinstance(entry, dict) else None


def folder_digest(weights: Path) -> str:
    """A digest of the files beside ``weights`` that decide the model with it (config.json,
    vsearch.json): an entry vouches for a folder only as it was when the model was loaded."""
    import hashlib

    h = hashlib.blake2b(digest_size=12)
    for name in ("config.json", "vsearch.json"):
        try:
            h.update((weights.parent / name).read_bytes())
        except OSError:
            h.update(b"-")
    return h.hexdigest()


def load(source: str, fingerprint: str) -> QueryEncoder | None:
    """The fast query encoder for ``source`` if a cache entry vouches for ``fingerprint``."""
    found = cached_entry(source)
    if found is None:
        return None
    weights, entry = found
    if entry.get("fingerprint") != fingerprint:
        return None
    from tokenizers import Tokenizer

    tower = TextTower(entry["text_config"], entry["projection_dim"])
    tower.load_clip_weights(tensors_with_prefix(weights, TEXT_PREFIXES))
    try:
        tokenizer = Tokenizer.from_file(str(_tokenizer_path(entry["tokenizer"])))
    except Exception:  # noqa: BLE001 - a missing or damaged cached tokenizer: take the slow path
        return None
    return QueryEncoder(entry, tower, tokenizer)


def _save_tokenizer(serialised: str) -> str:
    """Store a serialised fast tokenizer once (models share it); returns its digest."""
    import hashlib

    digest = hashlib.blake2b(serialised.encode(), digest_size=12).hexdigest()
    path = _tokenizer_path(digest)
    if not path.exists():
        atomic_write_text(path, serialised)
    return digest


def _tokenizer_path(digest: str) -> Path:
    return cache_dir() / "tokenizers" / f"{digest}.json"


def _weights_file(source: str) -> Path | None:
    p = Path(source) / "model.safetensors"
    if p.is_file():
        return p
    if os.path.isdir(source) or source.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "model.safetensors")
    except ValueError:
        return None
    return Path(cached) if isinstance(cached, str) else None
