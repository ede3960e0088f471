"""X-CLIP, STAN and ViFi-CLIP behind the one encoder interface."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPModel, XCLIPModel
from typer.testing import CliRunner

from vsearch.errors import CheckpointError
from vsearch.models import load_encoder
from vsearch.models.constants import IMAGENET_MEAN, IMAGENET_STD
from vsearch.models.mean_pool import MeanPoolEncoder
from vsearch.models.registry import convert_checkpoint
from vsearch.models.stan import StanConfig, StanEncoder
from vsearch.models.tiny import tiny_clip_config, tiny_xclip_config
from vsearch.models.xclip import XClipEncoder
from vsearch_cli.main import app


def pixels(b=2, t=8, s=64, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(b, t, 3, s, s)).astype(np.float32))


# -- X-CLIP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xclip():
    torch.manual_seed(0)
    return XClipEncoder.from_config(tiny_xclip_config())


@pytest.fixture(scope="module")
def xclip_reference(xclip, tmp_path_factory):
    """The saved X-CLIP read back by transformers alone: ``XCLIPModel.from_pretrained`` and the
    folder's ``CLIPTokenizer``. vsearch's save, its loader, tokenizer, normalisation and pooling
    are all outside this path, so comparing against it can fail."""
    from transformers import CLIPTokenizer

    folder = xclip.save_pretrained(tmp_path_factory.mktemp("xclip") / "model")
    model = XCLIPModel.from_pretrained(folder).eval()
    return folder, model, CLIPTokenizer.from_pretrained(folder)


TEXTS = ["a red circle moving left", "a blue square"]


def test_xclip_outputs_equal_transformers_on_the_same_weights(xclip_reference):
    folder, model, tokenizer = xclip_reference
    ours = load_encoder(folder, cache=False)
    px = pixels()
    tok = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        video = model.get_video_features(pixel_values=px).pooler_output
        text = model.get_text_features(**tok).pooler_output
    ref_v, ref_t = video / video.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    assert (ours.encode_videos(px) - ref_v).abs().max() < 1e-5
    assert (ours.encode_texts(TEXTS) - ref_t).abs().max() < 1e-5
    assert ours.spec.frame_rule == "fixed" and ours.spec.frames == 8
    assert ours.spec.pixels.mean == IMAGENET_MEAN and ours.spec.pixels.std == IMAGENET_STD
    with pytest.raises(ValueError, match="exactly 8 frames"):
        ours.encode_videos(pixels(t=12))


def test_xclip_reranker_scores_are_transformers_prompted_logits(xclip_reference):
    """Re-ranking scores are X-CLIP's video-conditioned logits (prompt generator), as transformers
    computes them from the saved weights; not the cosine of the unconditioned vectors."""
    folder, model, tokenizer = xclip_reference
    ours = load_encoder(folder, cache=False)
    px = pixels(b=5, seed=3)
    scores = ours.rerank_scores("a red circle", px)
    with torch.no_grad():
        ref = model(**tokenizer(["a red circle"], return_tensors="pt"), pixel_values=px).logits_per_video[:, 0]
    assert torch.allclose(scores, ref, atol=1e-4)
    plain = model.logit_scale.exp() * (ours.encode_videos(px) @ ours.encode_texts(["a red circle"])[0])
    assert not torch.allclose(scores, plain, atol=1e-3)  # the prompts changed the text side


def test_xclip_save_load(tmp_path, xclip):
    out = xclip.save_pretrained(tmp_path / "x")
    loaded = load_encoder(out, cache=False)
    assert loaded.family == "xclip" and loaded.fingerprint == xclip.fingerprint
    assert torch.equal(loaded.encode_videos(pixels()), xclip.encode_videos(pixels()))


# -- STAN ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stan():
    torch.manual_seed(0)
    return StanEncoder.from_config(tiny_clip_config(image_size=32), StanConfig(depth=2), frames=8)


def test_stan_without_its_branch_is_mean_pooling(stan):
    off = StanEncoder(stan.clip, stan.tokenizer, stan.spec, dataclasses.replace(stan.cfg, branch_scale=0.0))
    off.stan = stan.stan
    mean = MeanPoolEncoder(stan.clip, stan.tokenizer, MeanPoolEncoder.default_spec(stan.clip.config, frames=8, frame_norm=False))
    px = pixels(s=32)
    assert (off.encode_videos(px) - mean.encode_videos(px)).abs().max() < 1e-6
    # With the branch on, the output differs and depends on frame order.
    assert (stan.encode_videos(px) - mean.encode_videos(px)).abs().max() > 1e-4
    assert not torch.allclose(stan.encode_videos(px), stan.encode_videos(px.flip(1)), atol=1e-5)


def test_stan_projection_flag_starts_as_the_public_code(stan):
    torch.manual_seed(0)
    plain = StanEncoder.from_config(tiny_clip_config(image_size=32), StanConfig(depth=2, project=False), frames=8)
    plain.clip.load_state_dict(stan.clip.state_dict())
    shared = {k: v for k, v in stan.stan.state_dict().items() if not k.startswith("proj.")}
    plain.stan.load_state_dict(shared)
    assert stan.cfg.project and all(torch.equal(p.weight, torch.eye(64)) for p in stan.stan.proj)
    px = pixels(s=32)
    assert (plain.encode_videos(px) - stan.encode_videos(px)).abs().max() < 1e-5  # identity W_proj at init


def test_stan_shapes_frames_and_round_trip(tmp_path, stan):
    for t in (1, 8, 12):
        assert stan.encode_videos(pixels(b=2, t=t, s=32)).shape == (2, 64)
    with pytest.raises(ValueError, match="at most 64 frames"):
        stan.encode_videos(pixels(b=1, t=65, s=32))
    out = stan.save_pretrained(tmp_path / "s")
    loaded = load_encoder(out, cache=False)
    assert loaded.family == "stan" and loaded.cfg == stan.cfg and loaded.fingerprint == stan.fingerprint
    assert torch.equal(loaded.encode_videos(pixels(s=32)), stan.encode_videos(pixels(s=32)))


# -- ViFi-CLIP checkpoints ---------------------------------------------------------------------


def hf_to_openai(sd, visual, text):
    """The inverse mapping, to write a checkpoint the way ViFi-CLIP's trainer stores it."""
    out = {}

    def blocks(src, dst, n):
        for i in range(n):
            a, b = f"{src}{i}.", f"{dst}{i}."
            out[b + "attn.in_proj_weight"] = torch.cat([sd[a + f"self_attn.{p}_proj.weight"] for p in "qkv"])
            out[b + "attn.in_proj_bias"] = torch.cat([sd[a + f"self_attn.{p}_proj.bias"] for p in "qkv"])
            for h, o in {
                "self_attn.out_proj": "attn.out_proj",
                "layer_norm1": "ln_1",
                "layer_norm2": "ln_2",
                "mlp.fc1": "mlp.c_fc",
                "mlp.fc2": "mlp.c_proj",
            }.items():
                out[b + o + ".weight"], out[b + o + ".bias"] = sd[a + h + ".weight"], sd[a + h + ".bias"]

    out[visual + "conv1.weight"] = sd["vision_model.embeddings.patch_embedding.weight"]
    out[visual + "class_embedding"] = sd["vision_model.embeddings.class_embedding"]
    out[visual + "positional_embedding"] = sd["vision_model.embeddings.position_embedding.weight"]
    for h, o in (("vision_model.pre_layrnorm", "ln_pre"), ("vision_model.post_layernorm", "ln_post")):
        out[visual + o + ".weight"], out[visual + o + ".bias"] = sd[h + ".weight"], sd[h + ".bias"]
    out[visual + "proj"] = sd["visual_projection.weight"].T
    blocks("vision_model.encoder.layers.", visual + "transformer.resblocks.", 4)
    out[text + "positional_embedding"] = sd["text_model.embeddings.position_embedding.weight"]
    out[text + "ln_final.weight"], out[text + "ln_final.bias"] = (
        sd["text_model.final_layer_norm.weight"],
        sd["text_model.final_layer_norm.bias"],
    )
    out[text + "text_projection"] = sd["text_projection.weight"].T
    blocks("text_model.encoder.layers.", text + "transformer.resblocks.", 2)
    out["logit_scale"] = sd["logit_scale"]
    return out


def test_vifi_clip_checkpoint_loads_with_its_preprocessing(tmp_path):
    torch.manual_seed(1)
    base = CLIPModel(tiny_clip_config(image_size=32))
    base.save_pretrained(tmp_path / "base")
    torch.manual_seed(2)
    tuned = CLIPModel(tiny_clip_config(image_size=32))  # "fine-tuned" weights
    tuned.text_model.embeddings.token_embedding.weight.data = base.text_model.embeddings.token_embedding.weight.data.clone()
    sd = hf_to_openai(tuned.state_dict(), "image_encoder.", "text_encoder.")
    sd["prompt_learner.complete_text_embeddings"] = torch.zeros(3, 77, 32)  # the prompt learner's buffer, ignored
    torch.save(
        {"model": {"module." + k: v.half() for k, v in sd.items()}, "epoch": 30, "max_accuracy": 83.9}, tmp_path / "vifi_k400.pth"
    )
    enc = load_encoder(tmp_path / "vifi_k400.pth", base=str(tmp_path / "base"), cache=False)
    assert enc.family == "mean-pool" and not enc.spec.options["frame_norm"]
    assert enc.spec.pixels.mean == IMAGENET_MEAN and enc.spec.prompt == "a photo of a {}."
    reference = MeanPoolEncoder(tuned, enc.tokenizer, MeanPoolEncoder.default_spec(tuned.config, frames=4, frame_norm=False))
    px = pixels(b=2, t=4, s=32)
    assert (enc.encode_videos(px) - reference.encode_videos(px)).abs().max() < 2e-3  # fp16 file
    assert (enc.encode_texts(["a red circle"]) - reference.encode_texts(["a red circle"])).abs().max() < 2e-3
    out = convert_checkpoint(tmp_path / "vifi_k400.pth", tmp_path / "vifi", str(tmp_path / "base"))
    assert load_encoder(out, cache=False).spec == enc.spec
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout"):
        torch.save({"foo.bar": torch.zeros(1)}, tmp_path / "other.pt")
        load_encoder(tmp_path / "other.pt", base=str(tmp_path / "base"), cache=False)


# -- every family through the pipeline ---------------------------------------------------------


def test_models_lists_all_four_families():
    res = CliRunner().invoke(app, ["models", "--json"])
    data = json.loads(res.stdout)
    assert set(data["families"]) == {"clip-vip", "mean-pool", "stan", "xclip"}
    for summary in data["families"].values():
        assert "frames:" in summary and "mean/std" in summary


@pytest.mark.parametrize("model", ["tiny-xclip", "tiny-stan", "tiny-clip-vip"])
def test_each_family_indexes_and_searches(tmp_path, synth_dir, model):
    videos = tmp_path / "v"
    shutil.copytree(synth_dir / "videos", videos)
    r = CliRunner().invoke(
        app, ["index", str(videos), "--store", str(tmp_path / "s"), "--model", model, "--workers", "0", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"]["indexed"] == 12
    args = ["search", "a red circle", "--store", str(tmp_path / "s"), "-k", "3", "--json"]
    if model == "tiny-xclip":
        args += ["--rerank", "6"]
    hits = json.loads(CliRunner().invoke(app, args).stdout)
    assert len(hits) == 3
    status = json.loads(CliRunner().invoke(app, ["status", "--store", str(tmp_path / "s"), "--json"]).stdout)
    expected_frames = 8 if model == "tiny-xclip" else 12
    assert status["encoder"]["frames"] == expected_frames


def test_official_stan_checkpoints_load_strictly_and_map_both_ways(tmp_path):
    """A checkpoint in farewellthree/STAN's layout (mmengine state_dict, backbone./text_backbone.),
    written from a tiny STAN, loads back through --model FILE --base and convert-checkpoint."""
    import json

    from transformers import CLIPModel

    from vsearch.errors import CheckpointError
    from vsearch.models.stan import StanConfig, StanEncoder
    from vsearch.models.stan_official import to_official

    torch.manual_seed(3)
    cfg = tiny_clip_config(image_size=32)
    enc = StanEncoder.from_config(cfg, StanConfig(project=False, depth=2), frames=4).eval()
    with torch.no_grad():
        for p in enc.stan.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # the temporal_fc must not be zero: the branch must matter
    official = to_official(enc)
    for key in ("backbone.class_embedding", "backbone.layers.3.self_attn.q_proj.weight", "backbone.STAN_T_layers.1.temporal_fc.weight",
                "backbone.STAN_T_layers.0.layer_norm1.weight", "backbone.STAN_S_layers.0.mlp.fc1.weight",
                "backbone.STAN_time_embed.weight", "text_backbone.text_model.embeddings.token_embedding.weight",
                "text_backbone.text_projection.weight", "backbone.visual_projection.weight"):  # fmt: skip
        assert key in official, key
    ckpt = tmp_path / "stan_msrvtt_tiny.pth"
    torch.save({"meta": {"mmengine_version": "0.7"}, "state_dict": official}, ckpt)
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps(CLIPModel(cfg).config.to_dict()))  # config only, no weights
    loaded = load_encoder(ckpt, base=str(base), cache=False)
    assert loaded.family == "stan" and loaded.cfg.project is False and loaded.cfg.depth == 2
    px = torch.rand(2, 4, 3, 32, 32)
    assert torch.allclose(loaded.encode_videos(px), enc.encode_videos(px), atol=1e-5)
    assert torch.allclose(loaded.encode_texts(["a red circle"]), enc.encode_texts(["a red circle"]), atol=1e-6)
    back = to_official(loaded)
    assert back.keys() == official.keys() and all(torch.equal(back[k], official[k]) for k in official)
    out = convert_checkpoint(ckpt, tmp_path / "converted", str(base))
    assert torch.allclose(load_encoder(out, cache=False).encode_videos(px), enc.encode_videos(px), atol=1e-5)
    # Refusals, by name.
    broken = dict(official)
    del broken["backbone.STAN_T_layers.1.temporal_fc.weight"]
    torch.save({"state_dict": broken}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="temporal.1.temporal_fc.weight"):
        load_encoder(tmp_path / "missing.pth", base=str(base), cache=False)
    torch.save({"state_dict": {**official, "backbone.extra_head.weight": torch.zeros(2)}}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="backbone.extra_head.weight"):
        load_encoder(tmp_path / "extra.pth", base=str(base), cache=False)
    with pytest.raises(CheckpointError, match="W_proj"):
        to_official(StanEncoder.from_config(cfg, StanConfig(project=True, depth=2), frames=4))


def test_xclip_encode_frames_equals_hand_written_preprocessing(xclip):
    """uint8 frames → ImageNet mean/std, channels first, frames kept in order → XCLIPModel: written
    out here with numpy, independently of vsearch's transforms."""
    size = xclip.spec.pixels.image_size
    frames = np.random.default_rng(4).integers(0, 256, (2, 8, size, size, 3), dtype=np.uint8)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    px = ((frames.astype(np.float32) / 255.0 - mean) / std).transpose(0, 1, 4, 2, 3)  # (B, T, 3, S, S)
    with torch.no_grad():
        ref = F.normalize(
            xclip.model.get_video_features(pixel_values=torch.from_numpy(np.ascontiguousarray(px))).pooler_output, dim=-1
        )
    assert (xclip.encode_frames(frames) - ref).abs().max() < 1e-5


def test_search_rerank_scores_are_xclipmodel_logits_on_independently_decoded_frames(tmp_path, synth_dir):
    """`search --rerank` against XCLIPModel.logits_per_video on frames decoded by PyAV and
    preprocessed here (PIL resize, centre crop, ImageNet mean/std): not the code's own call."""
    import av
    from PIL import Image

    from vsearch.store import Store

    videos = tmp_path / "v"
    shutil.copytree(synth_dir / "videos", videos)
    assert (
        CliRunner()
        .invoke(app, ["index", str(videos), "--store", str(tmp_path / "s"), "--model", "tiny-xclip", "--workers", "0"])
        .exit_code
        == 0
    )
    res = CliRunner().invoke(
        app, ["search", "a red circle", "--store", str(tmp_path / "s"), "-k", "6", "--segments", "--rerank", "6", "--json"]
    )
    hits = json.loads(res.stdout)
    enc = load_encoder("tiny-xclip", cache=False)
    size = enc.spec.pixels.image_size
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    with Store.open(tmp_path / "s") as st:
        frames_of = st.frame_indices([h["segment_id"] for h in hits])
    clips = []
    for h in hits:
        with av.open(h["path"]) as c:
            decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        picked = []
        for i in frames_of[h["segment_id"]]:
            img = Image.fromarray(decoded[min(i, len(decoded) - 1)])
            w, hgt = img.size
            scale = size / min(w, hgt)
            img = img.resize((max(size, round(w * scale)), max(size, round(hgt * scale))), Image.Resampling.BICUBIC)
            left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
            picked.append(np.asarray(img.crop((left, top, left + size, top + size)), np.float32) / 255.0)
        clips.append(((np.stack(picked) - mean) / std).transpose(0, 3, 1, 2))
    tok = enc.tokenize(["a red circle"])
    with torch.no_grad():
        ref = enc.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                        pixel_values=torch.tensor(np.stack(clips), dtype=torch.float32)).logits_per_video[:, 0]  # fmt: skip
    got = torch.tensor([h["score"] for h in hits])
    spread = float(ref.max() - ref.min()) or 1.0
    assert float((got - ref).abs().max()) <= 0.05 * spread + 1e-3, (got, ref)
