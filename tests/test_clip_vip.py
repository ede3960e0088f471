"""CLIP-ViP: parity with CLIP, the attention rule, locality, temporal embedding, checkpoints."""

import numpy as np
import pytest
import torch
from transformers import CLIPModel

from vsearch.errors import CheckpointError
from vsearch.models import load_encoder
from vsearch.models.clip_vip import ClipVipEncoder
from vsearch.models.proxies import ClipVipConfig, proxy_guided_attention, proxy_mask, resample_temporal
from vsearch.models.registry import convert_checkpoint
from vsearch.models.tiny import tiny_clip_config


def vip(add_cls_num=3, temporal_size=12, image_size=32, seed=0, **kw):
    torch.manual_seed(seed)
    return ClipVipEncoder.from_config(tiny_clip_config(image_size=image_size), ClipVipConfig(add_cls_num, temporal_size, **kw))


def pixels(b=2, t=4, s=32, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(b, t, 3, s, s)).astype(np.float32))


def test_without_proxies_and_one_frame_it_is_clip():
    enc = vip(add_cls_num=0).eval()  # M = 1, temporal embedding all zeros
    px = pixels(b=3, t=1)
    with torch.no_grad():
        ours = enc.video_features(px)
        ref = enc.clip.get_image_features(pixel_values=px[:, 0]).pooler_output
    assert (ours - ref).abs().max().item() <= 1e-5


def test_mask_is_exactly_the_rule_on_a_hand_sized_case():
    # M = 2 proxies, T = 2 frames of L = 2 patches: tokens [p0 p1 | a0 a1 | b0 b1].
    got = proxy_mask(2, 2, 2).int().tolist()
    expected = [
        [1, 1, 1, 1, 1, 1],  # proxies see everything
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 0],  # frame a: proxies + frame a
        [1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 1],  # frame b: proxies + frame b
        [1, 1, 0, 0, 1, 1],
    ]
    assert got == expected


def test_two_attention_forms_agree():
    enc = vip().eval()
    layer = enc.clip.vision_model.encoder.layers[0]
    h = torch.randn(2, 4 + 3 * 16, 64)
    with torch.no_grad():
        a = proxy_guided_attention(layer.self_attn, h, 4, 3, 16, "two-pass")
        b = proxy_guided_attention(layer.self_attn, h, 4, 3, 16, "masked")
    assert (a - b).abs().max().item() < 1e-5
    # And the masked form equals plain attention with -inf outside the rule (a third, naive check).
    attn = layer.self_attn
    q, k, v = (f(h).view(2, -1, 4, 16).transpose(1, 2) for f in (attn.q_proj, attn.k_proj, attn.v_proj))
    scores = (q @ k.transpose(-1, -2)) / 4.0
    scores = scores.masked_fill(~proxy_mask(4, 3, 16), float("-inf"))
    naive = attn.out_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, -1, 64))
    assert (a - naive).abs().max().item() < 1e-5


def test_a_patch_in_frame_3_reaches_only_the_proxies_in_layer_1():
    enc = vip().eval()
    px = pixels(b=1, t=5)
    px2 = px.clone()
    px2[0, 3, :, :8, :8] += 1.0  # one patch of frame 3
    with torch.no_grad():
        h1 = enc.vision_hidden(px, layers=1)[0]
        h2 = enc.vision_hidden(px2, layers=1)[0]
    m, per_frame = 4, 16
    diff = (h1 - h2).abs().amax(-1)
    assert diff[:m].min() > 1e-4  # every proxy changed
    frames = diff[m:].view(5, per_frame)
    assert frames[3].max() > 1e-4  # frame 3 changed
    assert frames[[0, 1, 2, 4]].max() == 0.0  # no other frame's patches changed, exactly


def test_temporal_embedding_resampling():
    table = torch.randn(1, 12, 8)
    one = resample_temporal(table, 1)
    assert torch.allclose(one[0, 0], (table[0, 5] + table[0, 6]) / 2, atol=1e-6)
    assert resample_temporal(table, 12) is table
    assert resample_temporal(table, 32).shape == (1, 32, 8)
    enc = vip()
    assert torch.count_nonzero(enc.clip.vision_model.embeddings.temporal_embedding) == 0  # zero-initialised


def test_added_cls_is_standard_normal_and_frame_order_matters():
    torch.manual_seed(0)
    big = ClipVipEncoder.from_config(tiny_clip_config(image_size=32), ClipVipConfig(add_cls_num=200))
    a = big.clip.vision_model.embeddings.added_cls
    assert a.shape == (200, 64) and abs(a.std().item() - 1.0) < 0.05 and abs(a.mean().item()) < 0.05
    enc = vip().eval()
    enc.clip.vision_model.embeddings.temporal_embedding.data.normal_()
    px = pixels(b=1, t=4)
    with torch.no_grad():
        assert not torch.allclose(enc.video_features(px), enc.video_features(px.flip(1)), atol=1e-4)


def test_video_shapes_for_any_frame_count():
    enc = vip().eval()
    for t in (1, 3, 12, 16):
        assert enc.encode_videos(pixels(b=2, t=t)).shape == (2, 64)


def test_save_and_load_round_trip(tmp_path):
    enc = vip().eval()
    enc.clip.vision_model.embeddings.temporal_embedding.data.normal_()
    out = enc.save_pretrained(tmp_path / "m")
    loaded = load_encoder(out, cache=False)
    assert loaded.family == "clip-vip" and loaded.vip == enc.vip and loaded.fingerprint == enc.fingerprint
    px = pixels()
    assert torch.equal(loaded.encode_videos(px), enc.encode_videos(px))
    # The folder is a Hugging Face CLIP folder too (with the two extra tensors).
    import json

    assert json.loads((out / "config.json").read_text())["vision_additional_config"]["add_cls_num"] == 3


def test_from_a_clip_folder_all_clip_weights_load_and_new_ones_are_reported(tmp_path):
    torch.manual_seed(1)
    clip = CLIPModel(tiny_clip_config(image_size=32))
    clip.save_pretrained(tmp_path / "clip")
    enc = ClipVipEncoder.from_clip(tmp_path / "clip")
    assert enc.new_parameters == ["vision_model.embeddings.added_cls", "vision_model.embeddings.temporal_embedding"]
    for k, v in clip.state_dict().items():
        assert torch.equal(enc.clip.state_dict()[k], v), k


def write_official(path, enc, dtype=torch.float16, drop=None, extra=None, prefix="clipmodel."):
    """A checkpoint in the official layout: VidCLIP.state_dict() saved with torch.save."""
    sd = {prefix + k: v.to(dtype) if v.is_floating_point() else v for k, v in enc.clip.state_dict().items()}
    sd[prefix + "text_model.embeddings.position_ids"] = torch.arange(77)[None]  # old HF kept these
    sd[prefix + "vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    for k in drop or ():
        del sd[prefix + k]
    sd.update(extra or {})
    torch.save(sd, path)
    return path


def test_official_checkpoint_loads_strictly(tmp_path):
    torch.manual_seed(2)
    CLIPModel(tiny_clip_config(image_size=32)).save_pretrained(tmp_path / "base")
    trained = vip(seed=5).eval()
    trained.clip.vision_model.embeddings.temporal_embedding.data.normal_()
    ckpt = write_official(tmp_path / "pretrain_clipvip_tiny.pt", trained)
    enc = ClipVipEncoder.from_official_checkpoint(ckpt, str(tmp_path / "base")).eval()
    px = pixels()
    cos = (enc.encode_videos(px) * trained.encode_videos(px)).sum(1)
    assert cos.min() > 0.999  # fp16 storage
    for k, v in trained.clip.state_dict().items():
        assert torch.allclose(enc.clip.state_dict()[k], v.half().float()), k
    out = convert_checkpoint(ckpt, tmp_path / "converted", str(tmp_path / "base"))
    assert load_encoder(out, cache=False).family == "clip-vip"


def test_official_checkpoint_refusals(tmp_path):
    torch.manual_seed(2)
    CLIPModel(tiny_clip_config(image_size=32)).save_pretrained(tmp_path / "base32")
    CLIPModel(tiny_clip_config(image_size=32, patch_size=16)).save_pretrained(tmp_path / "base16")
    trained = vip()
    good = write_official(tmp_path / "ok.pt", trained)
    with pytest.raises(CheckpointError, match="matching base.*shape mismatch: vision_model.embeddings.patch_embedding"):
        ClipVipEncoder.from_official_checkpoint(good, str(tmp_path / "base16"))
    missing = write_official(tmp_path / "missing.pt", trained, drop=["visual_projection.weight"])
    with pytest.raises(CheckpointError, match="missing 1 keys: visual_projection.weight"):
        ClipVipEncoder.from_official_checkpoint(missing, str(tmp_path / "base32"))
    unknown = write_official(tmp_path / "unknown.pt", trained, extra={"clipmodel.vision_model.extra_head.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="unknown 1 keys: vision_model.extra_head.weight"):
        ClipVipEncoder.from_official_checkpoint(unknown, str(tmp_path / "base32"))
    noprefix = write_official(tmp_path / "noprefix.pt", trained, prefix="")
    with pytest.raises(CheckpointError, match="no key starts with 'clipmodel.'"):
        ClipVipEncoder.from_official_checkpoint(noprefix, str(tmp_path / "base32"))


def test_pickles_that_would_run_code_are_refused_without_running(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"clipmodel.x": Evil()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refused.*Nothing was executed"):
        ClipVipEncoder.from_official_checkpoint(path, "unused")
    assert not marker.exists()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        ClipVipEncoder.from_official_checkpoint(junk, "unused")


def test_an_official_checkpoint_needs_only_the_base_config_and_tokenizer(tmp_path):
    import shutil

    torch.manual_seed(2)
    CLIPModel(tiny_clip_config(image_size=32)).save_pretrained(tmp_path / "full")
    cfg_only = tmp_path / "cfg-only"
    cfg_only.mkdir()
    shutil.copy(tmp_path / "full" / "config.json", cfg_only / "config.json")  # no weights at all
    trained = vip(seed=5).eval()
    ckpt = write_official(tmp_path / "ok.pt", trained)
    out = convert_checkpoint(ckpt, tmp_path / "converted", str(cfg_only))
    enc = load_encoder(out, cache=False)
    px = pixels()
    assert (enc.encode_videos(px) * trained.encode_videos(px)).sum(1).min() > 0.999
    # A checkpoint that lacks a weight the base would have to supply: refused by name...
    missing = write_official(tmp_path / "missing.pt", trained, drop=["visual_projection.weight"])
    with pytest.raises(CheckpointError, match="missing 1 keys: visual_projection.weight"):
        convert_checkpoint(missing, tmp_path / "m1", str(cfg_only))
    # ...or filled from a base that has weights, when asked.
    filled = convert_checkpoint(missing, tmp_path / "m2", str(tmp_path / "full"), fill_from_base=True)
    base_w = CLIPModel.from_pretrained(tmp_path / "full").visual_projection.weight
    assert torch.equal(load_encoder(filled, cache=False).clip.visual_projection.weight, base_w)
    from vsearch.errors import EncoderLoadError

    with pytest.raises(EncoderLoadError, match="no loadable weights"):
        convert_checkpoint(missing, tmp_path / "m3", str(cfg_only), fill_from_base=True)  # nothing to fill from
