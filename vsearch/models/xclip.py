"""X-CLIP (Ni et al., ECCV 2022) through transformers' ``XCLIPModel``.

Cross-frame message tokens in every vision layer and a one-layer multi-frame integration
transformer (MIT) give one vector per video: ``get_video_features`` is what the index stores,
``get_text_features`` what a query becomes. Two facts from the X-CLIP paper and code shape it:

- the frame count is fixed by the checkpoint (the MIT position table and the message-token
  reshape use ``num_frames``): the spec says "exactly N" and the pipeline samples N;
- the model was trained with a *video-conditioned* text side (a prompt generator reads the
  clip's patch tokens), which an index of unconditioned vectors cannot use. It is offered as
  optional re-ranking of the top results (``rerank_scores``), recomputed from the frames at
  query time; nothing extra is stored per segment.

Normalisation is ImageNet's, as its processor (VideoMAE defaults): short side to 224, centre crop.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import CLIPModel, XCLIPConfig, XCLIPModel

from ..errors import EncoderLoadError
from ..video.transforms import PixelSpec
from .checkpoints import from_pretrained_hf, read_preprocessor_config, save_model_dir
from .constants import IMAGENET_MEAN, IMAGENET_STD
from .encoder import EncoderSpec, VideoTextEncoder, read_spec_file, source_of
from .mean_pool import pooled
from .tokenizer import load_tokenizer

#: What X-CLIP adds to a CLIP, as name fragments that match both state-dict keys and the
#: encoder's parameter names: top-level modules, and the message modules in every vision layer.
XCLIP_NEW = (
    "mit.", "prompts_generator.", "prompts_visual_layernorm.", "prompts_visual_projection",
    ".message_fc.", ".message_ln.", ".message_attn.",
)  # fmt: skip


class XClipEncoder(VideoTextEncoder):
    family = "xclip"
    added_to_clip = XCLIP_NEW

    def __init__(self, model: XCLIPModel, tokenizer, spec: EncoderSpec):
        super().__init__(spec, tokenizer)
        self.model = model

    @classmethod
    def default_spec(cls, config: XCLIPConfig, preprocessor: dict | None = None) -> EncoderSpec:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if preprocessor:
            mean = tuple(float(m) for m in preprocessor.get("image_mean", mean))
            std = tuple(float(s) for s in preprocessor.get("image_std", std))
        return EncoderSpec(
            family=cls.family,
            dim=config.projection_dim,
            frames=config.vision_config.num_frames,
            frame_rule="fixed",
            pixels=PixelSpec(config.vision_config.image_size, "crop", mean, std),
            max_text_len=config.text_config.max_position_embeddings,
            prompt="{}",  # X-CLIP's text side saw bare class names
        )

    @classmethod
    def from_config(cls, config: XCLIPConfig, tokenizer=None) -> XClipEncoder:
        spec = cls.default_spec(config)
        return cls(XCLIPModel(config).eval(), tokenizer or load_tokenizer(None, spec.max_text_len), spec)

    @classmethod
    def from_clip(cls, ref: str | os.PathLike[str], frames: int = 8, seed: int = 0) -> XClipEncoder:
        """X-CLIP on any CLIP (hub id or folder), as the X-CLIP paper builds it from OpenAI CLIP:
        every CLIP weight loads (the vision tower's layers keep their names; only
        ``pre_layrnorm`` is spelled ``pre_layernorm``); the cross-frame message modules, the
        multi-frame integration transformer and the prompt generator are new
        (``new_parameters`` names them). The frame count is fixed from here on."""
        ref = os.fspath(ref)
        clip = from_pretrained_hf(CLIPModel, ref)
        config = xclip_config_from_clip(clip.config, frames)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = XCLIPModel(config)
        state = {k.replace(".pre_layrnorm.", ".pre_layernorm."): v for k, v in clip.state_dict().items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        unexpected = [k for k in unexpected if not k.endswith("position_ids")]
        added = [k for k in missing if not k.endswith("position_ids")]
        stray = [k for k in added if not any(m in k for m in XCLIP_NEW)]
        if unexpected or stray:
            raise EncoderLoadError(
                f"{ref}: CLIP weights do not fit X-CLIP ({len(unexpected)} unused, e.g. {unexpected[:2]}; "
                f"{len(stray)} CLIP weights left unset, e.g. {stray[:2]})"
            )
        spec = cls.default_spec(config)
        enc = cls(model.eval(), load_tokenizer(ref if os.path.isdir(ref) else None, spec.max_text_len), spec)
        enc.source = source_of(ref)
        enc.new_parameters = list(XCLIP_NEW)
        return enc

    @classmethod
    def from_pretrained(cls, ref: str | os.PathLike[str]) -> XClipEncoder:
        """``microsoft/xclip-base-patch32`` (and the other hub checkpoints) or a folder. A plain
        CLIP becomes an X-CLIP through ``from_clip`` (``load_encoder`` routes it there, with the
        frame count)."""
        ref = os.fspath(ref)
        saved = read_spec_file(ref) if os.path.isdir(ref) else None
        model = from_pretrained_hf(XCLIPModel, ref).eval()
        spec = EncoderSpec.from_dict(saved["spec"]) if saved else cls.default_spec(model.config, read_preprocessor_config(ref))
        enc = cls(model, load_tokenizer(ref if os.path.isdir(ref) else None, spec.max_text_len), spec)
        enc.source = source_of(ref)
        return enc

    def video_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return pooled(self.model.get_video_features(pixel_values=pixels))  # (B, E), MIT-pooled

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return pooled(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))

    @torch.inference_mode()
    def rerank_scores(self, query: str, pixels: torch.Tensor) -> torch.Tensor:
        """X-CLIP's trained score of ``query`` against each clip: the text embedding is
        conditioned on the clip by the prompt generator. (B, T, 3, S, S) → (B,) logits."""
        self._check_frames(pixels.shape[1])
        tok = self.tokenize([query])
        with self.autocast():
            out = self.model(
                input_ids=tok["input_ids"].to(self.device),
                attention_mask=tok["attention_mask"].to(self.device),
                pixel_values=pixels.to(self.device),
            )
        return out.logits_per_video[:, 0].float().cpu()

    @property
    def logit_scale(self) -> torch.nn.Parameter:
        return self.model.logit_scale

    def save_pretrained(self, directory: str | os.PathLike[str], dtype: torch.dtype | None = None) -> Path:
        return save_model_dir(directory, self, self.model.config, self.model.state_dict(), dtype)


def xclip_config_from_clip(clip_config, frames: int) -> XCLIPConfig:
    """An X-CLIP around a CLIP's towers. The new modules are sized as the official X-CLIP
    sizes them on OpenAI CLIP: a one-layer MIT at the projection width (4x MLP), heads of 64
    dimensions (8 at B/32's 512), at least 4 heads for tiny models."""
    dim = clip_config.projection_dim
    heads = max(4, dim // 64)
    return XCLIPConfig(
        text_config=clip_config.text_config.to_dict(),
        vision_config={
            **clip_config.vision_config.to_dict(),
            "num_frames": frames,
            "mit_hidden_size": dim,
            "mit_intermediate_size": 4 * dim,
            "mit_num_hidden_layers": 1,
            "mit_num_attention_heads": heads,
        },
        projection_dim=dim,
        prompt_num_attention_heads=heads,
        logit_scale_init_value=clip_config.logit_scale_init_value,
    )
