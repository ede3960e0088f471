"""CLIP's transformer layers in plain torch, for the paths that must not import transformers' model code.

A command-line search or an index run pays for its imports on every run. Importing
transformers' CLIP modelling code costs about twice what importing torch does: it pulls in
torch.distributed's tensor code, torch._dynamo and sympy (measured on this project's 2-core
machine: torch 1.5 CPU s, then ``transformers.models.clip.modeling_clip`` 3.0 more). Both of
CLIP's towers are standard pre-LN transformers, so the fast paths compute them here from the
same weights: ``query_path.TextTower`` (causal, text) and ``video_path.VisionTower`` (not
causal, image patches). Tests hold each equal to transformers' own tower.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

#: Our name of each part of a layer → transformers' (``CLIPEncoderLayer``).
HF_LAYER_PARTS = {
    "ln1": "layer_norm1", "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
    "out": "self_attn.out_proj", "ln2": "layer_norm2", "fc1": "mlp.fc1", "fc2": "mlp.fc2",
}  # fmt: skip


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The MLP activation a CLIP config names (``hidden_act``), as transformers computes it."""
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
        return (lambda x: F.gelu(x, approximate="tanh")) if name != "gelu" else F.gelu
    raise ValueError(f"unsupported activation {name!r}")


class Layer(nn.Module):
    """One pre-LN transformer layer: attention, then the MLP, each with its residual."""

    def __init__(self, width: int, inner: int, eps: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, eps=eps)
        self.q, self.k, self.v, self.out = (nn.Linear(width, width) for _ in range(4))
        self.ln2 = nn.LayerNorm(width, eps=eps)
        self.fc1 = nn.Linear(width, inner)
        self.fc2 = nn.Linear(inner, width)

    def forward(self, x: torch.Tensor, heads: int, act: Callable, causal: bool) -> torch.Tensor:
        n, length, width = x.shape
        h = self.ln1(x)
        q, k, v = (m(h).view(n, length, heads, width // heads).transpose(1, 2) for m in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.out(a.transpose(1, 2).reshape(n, length, width))
        return x + self.mlp(self.ln2(x), act)

    def mlp(self, x: torch.Tensor, act: Callable) -> torch.Tensor:
        return self.fc2(act(self.fc1(x)))


def layers_for(config: Mapping) -> nn.ModuleList:
    """The layers a tower's config (``text_config`` / ``vision_config`` as a dict) describes."""
    eps = config.get("layer_norm_eps", 1e-5)
    return nn.ModuleList(
        Layer(config["hidden_size"], config["intermediate_size"], eps) for _ in range(config["num_hidden_layers"])
    )


def layer_names(count: int, theirs_prefix: str) -> dict[str, str]:
    """``layers.{i}.{part}.{weight,bias}`` → transformers' name under ``theirs_prefix``
    (e.g. ``text_model.encoder.layers.``)."""
    names = {}
    for i in range(count):
        for ours, theirs in HF_LAYER_PARTS.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{p}"] = f"{theirs_prefix}{i}.{theirs}.{p}"
    return names


def load_renamed(module: nn.Module, sd: Mapping[str, torch.Tensor], names: Mapping[str, str]) -> None:
    """Load ``sd`` (transformers' names) into ``module`` through ``names`` (ours → theirs),
    strictly: a missing or left-over parameter is an error, never a silent default."""
    module.load_state_dict({ours: sd[theirs].float() for ours, theirs in names.items()}, strict=True)


def tensors_with_prefix(weights, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file whose names start with one of ``prefixes`` (one tower of
    a ``CLIPModel``), read without loading the rest."""
    from safetensors import safe_open

    sd = {}
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open has no items()
            if key.startswith(prefixes):
                sd[key] = f.get_tensor(key)
    return sd
