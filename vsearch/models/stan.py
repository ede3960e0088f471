"""STAN (Liu et al., CVPR 2023): a spatial-temporal side branch on CLIP's last layers.

CLIP's own forward is untouched; a branch of K levels (4 by default) reads the outputs of its
last K vision layers (Liu et al., CVPR 2023; farewellthree/STAN):

- **level 1** starts from the output of layer L-K+1: the video CLS is the mean of the frame
  CLS tokens averaged with ``class_embedding + pos_0``; patches get CLIP's spatial position
  embedding again plus a new temporal embedding (up to 64 frames);
- **level k > 1** adds the previous level's output to the re-organised CLIP layer output
  (CLS = mean over frames, patches as they are). The paper first projects the CLIP features
  with a per-level ``W_proj``; the public code adds them as they are. ``StanConfig.project``
  keeps the paper's form and is on by default: the paper's numbers were produced by the code the
  paper describes, and users of the public port report shortfalls (STAN issues #10, #21).
  ``W_proj`` starts as the identity, so at initialisation both forms are the same function;
- each level is a **temporal** module (attention over the T tokens at each spatial position,
  output projection zero-initialised: it starts as the identity) then a **spatial** CLIP layer
  initialised from the matching CLIP layer (the video CLS joins every frame, then is averaged);
- **fusion**: the branch's video CLS is added to every frame's final CLS *before*
  ``post_layernorm`` and ``visual_projection``; the video vector is the mean over frames.

``branch_scale`` multiplies the branch output (1 by default); 0 turns STAN into frame mean
pooling exactly, which the tests use as a reference.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPConfig, CLIPModel
from transformers.models.clip.modeling_clip import CLIPAttention

from .checkpoints import WEIGHTS_NAME, base_clip_config, from_pretrained_hf, load_state_dict, save_model_dir, strict_load
from .constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from .encoder import EncoderSpec, source_of
from .mean_pool import ClipBackedEncoder, ClipSettingsConfig
from .stan_official import from_official, load_into
from .tokenizer import load_tokenizer

BRANCH_PREFIX = "stan."


@dataclass(frozen=True)
class StanConfig:
    depth: int = 4
    project: bool = True  # the paper's per-level W_proj (identity at init); False = the public code
    max_frames: int = 64
    drop_path: float = 0.1
    time_embed_std: float = 0.02
    branch_scale: float = 1.0


class StanModelConfig(ClipSettingsConfig):
    """A ``CLIPConfig`` with the STAN branch's settings (``model_type`` ``stan``), in ``stan_config``."""

    model_type = "stan"
    settings_key = "stan_config"
    settings_type = StanConfig


class DropPath(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) >= self.p
        return x * keep / (1.0 - self.p)


class TemporalLayer(nn.Module):
    """Attention over the T tokens of each spatial position; the CLS passes through."""

    def __init__(self, vision_config):
        super().__init__()
        d = vision_config.hidden_size
        self.layer_norm = nn.LayerNorm(d, eps=vision_config.layer_norm_eps)
        self.attn = CLIPAttention(vision_config)
        self.temporal_fc = nn.Linear(d, d)
        nn.init.zeros_(self.temporal_fc.weight)  # starts as the identity
        nn.init.zeros_(self.temporal_fc.bias)

    def forward(self, x: torch.Tensor, t: int, drop: nn.Module) -> torch.Tensor:
        cls, patches = x[:, :1], x[:, 1:]  # (B, 1, D), (B, L*T, D) ordered (l t)
        b, lt, d = patches.shape
        h = patches.reshape(b * (lt // t), t, d)  # (B*L, T, D)
        h = self.temporal_fc(self.attn(self.layer_norm(h))[0])
        return torch.cat([cls, patches + drop(h.reshape(b, lt, d))], 1)


def spatial_step(layer: nn.Module, x: torch.Tensor, t: int, drop: nn.Module) -> torch.Tensor:
    """A CLIP encoder layer applied per frame, the video CLS joining each frame and averaged back."""
    cls, patches = x[:, :1], x[:, 1:]
    b, lt, d = patches.shape
    n = lt // t
    frames = patches.reshape(b, n, t, d).transpose(1, 2).reshape(b * t, n, d)  # (l t) -> (b t) l
    h = torch.cat([cls.repeat_interleave(t, 0), frames], 1)  # (B*T, 1+L, D)
    a = layer.self_attn(layer.layer_norm1(h))[0]
    cls_out = a[:, :1].reshape(b, t, 1, d).mean(1)
    pat_out = a[:, 1:].reshape(b, t, n, d).transpose(1, 2).reshape(b, lt, d)
    x = x + drop(torch.cat([cls_out, pat_out], 1))
    return x + drop(layer.mlp(layer.layer_norm2(x)))


class StanBranch(nn.Module):
    def __init__(self, clip: CLIPModel, cfg: StanConfig):
        super().__init__()
        vc = clip.config.vision_config
        total = vc.num_hidden_layers
        if not 1 <= cfg.depth <= total:
            raise ValueError(f"STAN depth must be between 1 and {total}, got {cfg.depth}")
        d = vc.hidden_size
        self.cfg = cfg
        self.temporal = nn.ModuleList(TemporalLayer(vc) for _ in range(cfg.depth))
        # Spatial levels start as copies of CLIP's last `depth` layers.
        self.spatial = nn.ModuleList(copy.deepcopy(clip.vision_model.encoder.layers[i]) for i in range(total - cfg.depth, total))
        self.time_embed = nn.Parameter(torch.randn(cfg.max_frames, d) * cfg.time_embed_std)
        self.proj = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(cfg.depth - 1)) if cfg.project else None
        if self.proj is not None:
            for p in self.proj:
                nn.init.eye_(p.weight)
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # linspace(0, p, K)
        self.drops = nn.ModuleList(DropPath(r) for r in rates)

    def level_input(self, level: int, clip_out: torch.Tensor, prev: torch.Tensor | None, emb, b: int, t: int) -> torch.Tensor:
        """The branch input at ``level`` from a CLIP layer output (B*T, 1+L, D)."""
        d = clip_out.shape[-1]
        frame_cls = clip_out[:, 0].reshape(b, t, d).mean(1, keepdim=True)  # (B, 1, D)
        patches = clip_out[:, 1:].reshape(b, t, -1, d)  # (B, T, L, D)
        if level == 0:
            pos = emb.position_embedding.weight
            if t > self.cfg.max_frames:
                raise ValueError(f"STAN handles at most {self.cfg.max_frames} frames, got {t}")
            patches = patches + pos[1:] + self.time_embed[:t, None, :]
            cls = (frame_cls + (emb.class_embedding + pos[0])) / 2
        else:
            cls = frame_cls
        seq = torch.cat([cls, patches.transpose(1, 2).reshape(b, -1, d)], 1)  # patches ordered (l t)
        if level == 0:
            return seq
        if self.proj is not None:
            seq = self.proj[level - 1](seq)
        return prev + seq

    def step(self, level: int, x: torch.Tensor, t: int) -> torch.Tensor:
        drop = self.drops[level]
        x = self.temporal[level](x, t, drop)
        return spatial_step(self.spatial[level], x, t, drop)


class StanEncoder(ClipBackedEncoder):
    family = "stan"
    added_to_clip = ("stan.",)

    def __init__(self, clip: CLIPModel, tokenizer, spec: EncoderSpec, cfg: StanConfig):
        super().__init__(clip, tokenizer, spec)
        self.cfg = cfg
        self.stan = StanBranch(clip, cfg)

    @classmethod
    def default_spec(cls, config: CLIPConfig, cfg: StanConfig, frames: int = 12) -> EncoderSpec:
        options = {k: v for k, v in asdict(cfg).items() if k != "drop_path"}
        return EncoderSpec.for_clip(
            cls.family, config, frames=frames, resize="crop", mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, options=options
        )

    @classmethod
    def from_config(cls, config: CLIPConfig, cfg: StanConfig | None = None, tokenizer=None, frames: int = 12) -> StanEncoder:
        cfg = cfg or StanConfig()
        spec = cls.default_spec(config, cfg, frames)
        return cls(CLIPModel(config).eval(), tokenizer or load_tokenizer(None, spec.max_text_len), spec, cfg).eval()

    @classmethod
    def from_clip(
        cls, ref: str | os.PathLike[str], cfg: StanConfig | None = None, frames: int = 12, seed: int = 0
    ) -> StanEncoder:
        """STAN on any CLIP (hub id or folder): CLIP's weights load; the branch is new (spatial
        levels copied from CLIP's last layers, temporal ones starting as the identity)."""
        ref = os.fspath(ref)
        cfg = cfg or StanConfig()
        clip = from_pretrained_hf(CLIPModel, ref).eval()
        spec = cls.default_spec(clip.config, cfg, frames)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            enc = cls(clip, load_tokenizer(ref if os.path.isdir(ref) else None, spec.max_text_len), spec, cfg)
        enc.source = source_of(ref)
        return enc.eval()

    @classmethod
    def from_pretrained(cls, ref: str | os.PathLike[str]) -> StanEncoder:
        """A STAN folder written by vsearch (strictly checked), or a plain CLIP folder / hub id."""
        ref = os.fspath(ref)
        saved = cls.read_saved_folder(ref, StanModelConfig)  # a legacy spec lacks drop_path: the default
        if saved is None:
            return cls.from_clip(ref)
        spec, clip, cfg = saved
        with torch.device("meta"):
            enc = cls(clip, None, spec, cfg)
        enc = enc.to_empty(device="cpu")
        enc.tokenizer = load_tokenizer(ref, spec.max_text_len)
        sd = load_state_dict(Path(ref) / WEIGHTS_NAME)
        enc.load_clip_state({k: v for k, v in sd.items() if not k.startswith(BRANCH_PREFIX)}, ref)
        strict_load(enc.stan, {k[len(BRANCH_PREFIX) :]: v for k, v in sd.items() if k.startswith(BRANCH_PREFIX)}, ref)
        enc.source = source_of(ref)
        return enc.eval()

    @classmethod
    def from_official_checkpoint(
        cls, path: str | os.PathLike[str], base: str, frames: int = 12, *, state: dict[str, torch.Tensor] | None = None
    ) -> StanEncoder:
        """A released STAN checkpoint (farewellthree/STAN; ``stan_official`` has the key map),
        strictly: every tensor of the file must land, every tensor of the model must come from it.
        ``base`` supplies only the CLIP config and tokenizer. The official branch has no W_proj,
        so the model is built with ``StanConfig(project=False)``, as the public code runs."""
        sd = load_state_dict(path) if state is None else state
        _clip, _branch, depth = from_official(sd, os.fspath(path))
        cfg = StanConfig(depth=depth, project=False)
        config = base_clip_config(base)
        spec = cls.default_spec(config, cfg, frames)
        with torch.device("meta"):
            enc = cls(CLIPModel(config), None, spec, cfg)
        enc = enc.to_empty(device="cpu")
        enc.tokenizer = load_tokenizer(base if os.path.isdir(base) else None, spec.max_text_len)
        load_into(enc, sd, os.fspath(path))
        enc.source = None
        return enc.eval()

    def video_features(self, pixels: torch.Tensor) -> torch.Tensor:
        vm = self.clip.vision_model
        b, t, c, h, w = pixels.shape  # (B, T, 3, S, S)
        x = vm.pre_layrnorm(vm.embeddings(pixels.reshape(b * t, c, h, w)))  # (B*T, 1+L, D)
        layers = vm.encoder.layers
        first = len(layers) - self.cfg.depth
        branch = None
        for i, layer in enumerate(layers):
            x = layer(x, None)
            if i >= first:
                level = i - first
                branch = self.stan.step(level, self.stan.level_input(level, x, branch, vm.embeddings, b, t), t)
        cls = x[:, 0] + self.cfg.branch_scale * branch[:, 0].repeat_interleave(t, 0)  # (B*T, D)
        frames = self.clip.visual_projection(vm.post_layernorm(cls)).view(b, t, -1)
        if self.spec.options.get("frame_norm", False):
            frames = F.normalize(frames, dim=-1)
        return frames.mean(1)  # (B, E)

    def save_pretrained(self, directory: str | os.PathLike[str], dtype: torch.dtype | None = None) -> Path:
        state = dict(self.clip.state_dict())
        state.update({BRANCH_PREFIX + k: v for k, v in self.stan.state_dict().items()})
        return save_model_dir(directory, self, StanModelConfig.from_clip_config(self.clip.config, asdict(self.cfg)), state, dtype)
