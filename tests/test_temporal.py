"""Time reversal in training, the on-the-fly synthetic stream, and the direction measures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vsearch.datasets.captions import swap_direction
from vsearch.errors import ConfigError, DatasetError, TrainingError
from vsearch.eval.direction import direction_report, render_direction_clips
from vsearch.models import load_encoder
from vsearch.synth.scenes import ALL_SCENES, REVERSAL_HELDOUT_PAIRS, Scene, reversal_split
from vsearch.train.loop import TrainConfig, Trainer, train
from vsearch.train.loss import contrastive_loss, multi_positive_loss, pair_loss
from vsearch.train.stream import StreamSpec, SyntheticStream


def test_swap_direction_swaps_whole_words_only():
    assert swap_direction("a red circle moving left") == "a red circle moving right"
    assert swap_direction("Up then down") == "Down then up"
    assert swap_direction("a man opens a door before he sits") == "a man opens a door after he sits"
    assert swap_direction("a bright light upstairs") is None  # "bright", "upstairs": no whole direction word
    assert swap_direction("a dog catches a frisbee") is None


def test_reversal_split_is_closed_under_reversal_and_covers_every_word():
    train_scenes, held = reversal_split()
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}
    for s in held:  # a held-out direction never leaks through its reversed twin in training
        assert Scene(s.shape, s.colour, opposite[s.motion]) in held
    assert set(train_scenes) | set(held) == set(ALL_SCENES) and not set(train_scenes) & set(held)
    for attr in ("colour", "shape", "motion"):
        assert {getattr(s, attr) for s in train_scenes} == {getattr(s, attr) for s in ALL_SCENES}


def test_stream_is_fresh_per_index_repeatable_per_seed_and_never_shows_held_out_scenes():
    spec = StreamSpec.parse("synth:motion,size=32,length=500")
    a = SyntheticStream(spec, frames=6, seed=3)
    b = SyntheticStream(spec, frames=6, seed=3)
    assert a[7]["frames"].shape == (6, 32, 32, 3) and a[7]["frames"].dtype == np.uint8
    assert np.array_equal(a[7]["frames"], b[7]["frames"]) and a[7]["text"] == b[7]["text"]
    assert not np.array_equal(a[7]["frames"], a[8]["frames"])
    a.set_epoch(1)
    assert not np.array_equal(a[7]["frames"], b[7]["frames"])  # a new epoch is new clips
    held = {s.caption for s in reversal_split()[1]}
    assert not {a[i]["text"] for i in range(300)} & held
    still = SyntheticStream(StreamSpec.parse("synth:static"), frames=8, seed=0)[0]
    assert still["frames"].shape[0] == 1 and "moving" not in still["text"]
    for bad in ("synth:nope", "synth:motion,size=abc", "synth:motion,colour=red", "synth:motion,split=test"):
        with pytest.raises(Exception, match="synth"):
            StreamSpec.parse(bad)


def test_multi_positive_loss_without_reversals_is_the_plain_loss():
    g = torch.Generator().manual_seed(0)
    v = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    t = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    scale = torch.tensor(math.log(20.0))
    labels = torch.arange(5)
    assert multi_positive_loss(v, t, labels, labels, scale).item() == pytest.approx(
        contrastive_loss(v, t, scale).item(), rel=1e-6
    )


def test_reversed_negative_is_a_column_never_a_positive():
    g = torch.Generator().manual_seed(1)
    v = F.normalize(torch.randn(6, 8, generator=g), dim=1)  # rows 0-2 originals, 3-5 their reversals
    t = F.normalize(torch.randn(3, 8, generator=g), dim=1)
    scale = torch.tensor(math.log(10.0))
    v_lab = torch.tensor([0, 1, 2, -1, -1, -1])
    t_lab = torch.tensor([0, 1, 2])
    logits = 10.0 * t @ v.T  # (3, 6)
    t2v = -torch.log_softmax(logits, 1)[torch.arange(3), torch.arange(3)].mean()  # reversed clips in the denominator
    v2t = -torch.log_softmax(logits.T[:3], 1)[torch.arange(3), torch.arange(3)].mean()  # and no row of their own
    assert multi_positive_loss(v, t, v_lab, t_lab, scale).item() == pytest.approx((t2v + v2t).item(), rel=1e-5)
    # Dropping the reversed columns changes the loss: they are really there as negatives.
    assert multi_positive_loss(v[:3], t, v_lab[:3], t_lab, scale).item() != pytest.approx((t2v + v2t).item(), rel=1e-3)


def test_pair_loss_is_low_only_when_direction_is_right():
    e = torch.eye(4)
    v, vr, t, tr = e[0:1], e[1:2], e[0:1], e[1:2]  # v matches its caption, the reversal the swapped one
    s = torch.tensor(math.log(50.0))
    right = pair_loss(v, vr, t, tr, s).item()
    wrong = pair_loss(vr, v, t, tr, s).item()
    assert right < 1e-6 < 10 < wrong


def test_twins_are_the_reversed_frames_with_the_swapped_caption(tmp_path):
    enc = load_encoder("tiny-clip-vip:32", cache=False)
    enc.spec = enc.spec.with_frames(4)
    cfg = TrainConfig(data="synth:motion,size=32", model="tiny-clip-vip:32", out=str(tmp_path), time_reversal="twins")
    from vsearch.train.tasks import RetrievalTask

    task = RetrievalTask(cfg, enc, torch.device("cpu"))
    ds = task.dataset()
    batch = {"frames": torch.from_numpy(np.stack([ds[i]["frames"] for i in range(3)])), "text": [ds[i]["text"] for i in range(3)]}
    with torch.no_grad():
        video, text, video_rev, text_rev = task.embed(batch)
        direct_rev = task._videos(batch["frames"].flip(1))
        direct_swapped = task._texts([swap_direction(t) for t in batch["text"]])
    assert torch.allclose(video_rev, direct_rev, atol=1e-6)
    assert torch.allclose(text_rev, direct_swapped, atol=1e-6)
    assert not torch.allclose(text_rev, text, atol=1e-3)


def test_direction_measures_put_mean_pooling_at_exactly_fifty_with_ties():
    _train, held = reversal_split()
    frames, caps, groups = render_direction_clips(held, 2, frames=6, size=32, seed=5)
    enc = load_encoder("tiny-clip:32", cache=False)
    enc.spec = enc.spec.with_frames(6)
    r = direction_report(enc, frames, caps, groups)
    assert r["text_side"] == 50.0  # v and its reversal embed alike: one of each pair is right
    assert r["video_side"] == 50.0 and r["video_side_ties"] == 100.0
    assert r["reversal_sensitivity"] < 1e-5
    vip = load_encoder("tiny-clip-vip:32", cache=False)
    vip.spec = vip.spec.with_frames(6)
    with torch.no_grad():  # an order-aware model need not tie
        vip.clip.vision_model.embeddings.temporal_embedding.normal_(0, 1.0)
    r2 = direction_report(vip, frames, caps, groups)
    assert r2["video_side_ties"] < 100.0 and r2["reversal_sensitivity"] > 0


@pytest.mark.parametrize("steps", [0, -1])
def test_step_counts_are_validated_before_any_work(tmp_path, steps):
    with pytest.raises(ConfigError, match="steps must be at least 1"):
        train(TrainConfig(data="synth:static", model="tiny-clip:32", out=str(tmp_path / "m"), steps=steps))
    assert not (tmp_path / "m").exists()


def test_bad_reversal_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="time_reversal"):
        train(TrainConfig(data="synth:motion", model="tiny-clip:32", out=str(tmp_path), time_reversal="both"))
    with pytest.raises(ConfigError, match="pair_weight"):
        train(TrainConfig(data="synth:motion", model="tiny-clip:32", out=str(tmp_path), pair_weight=1.0))


def test_a_nan_loss_stops_training_and_writes_no_model(tmp_path, monkeypatch):
    from vsearch.train import tasks

    def nan_loss(self, embs, batches):
        return embs[0].sum() * float("nan")

    monkeypatch.setattr(tasks.RetrievalTask, "loss", nan_loss)
    out = tmp_path / "m"
    with pytest.raises(TrainingError, match="nan"):
        train(
            TrainConfig(
                data="synth:static,size=32", model="tiny-clip:32", out=str(out), steps=3, batch_size=4, frames=1, workers=0
            )
        )
    assert not (out / "vsearch.json").exists()


def test_image_clip_then_clip_vip_on_top_with_twins_logs_sensitivity_and_refuses_a_finished_folder(tmp_path):
    image = tmp_path / "image"
    common = dict(batch_size=8, lr=1e-3, workers=0, seed=0)
    train(TrainConfig(data="synth:static,size=32", model="tiny-clip:32", out=str(image), frames=1, steps=3, **common))
    vip = tmp_path / "vip"
    cfg = TrainConfig(
        data="synth:motion,size=32", model=str(image), family="clip-vip", out=str(vip), frames=4, steps=3,
        time_reversal="twins", pair_weight=1.0, temporal_init_std=0.5, task="pretrain", **common,
    )  # fmt: skip
    result = train(cfg)
    assert result.finished and math.isfinite(result.final_loss)
    log = [json.loads(x) for x in (vip / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["new"] == "added_cls, temporal_embedding" and "N(0, 0.5^2)" in log[0]["temporal_init"]
    assert all("reversal_sensitivity" in r for r in log[1:] if "loss" in r)
    enc = load_encoder(vip, cache=False)
    image_enc = load_encoder(image, cache=False)
    assert enc.family == "clip-vip"
    # CLIP's text tower came from the image CLIP (trained 3 more steps: close, not random).
    a = image_enc.clip.text_model.embeddings.token_embedding.weight
    b = enc.clip.text_model.embeddings.token_embedding.weight
    assert (a - b).abs().max() < 0.05
    with pytest.raises(ConfigError, match="already holds a finished model"):
        Trainer(cfg).run()


def test_xclip_on_an_image_clip_keeps_every_clip_weight_and_fixes_the_frame_count(tmp_path):
    # X-CLIP is built from CLIP in its paper too: the towers load, message/MIT/prompt modules are new.
    from transformers import CLIPModel

    from vsearch.models.mean_pool import pooled
    from vsearch.models.tiny import tiny_clip_config

    torch.manual_seed(0)
    folder = tmp_path / "clip"
    CLIPModel(tiny_clip_config(image_size=32)).save_pretrained(folder)
    clip = CLIPModel.from_pretrained(folder)
    enc = load_encoder(folder, family="xclip", frames=4, cache=False)
    assert enc.family == "xclip" and enc.spec.frames == 4 and enc.spec.frame_rule == "fixed"
    theirs = {k.replace(".pre_layrnorm.", ".pre_layernorm."): v for k, v in clip.state_dict().items()}
    mine = enc.model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in theirs.items() if not k.endswith("position_ids"))
    new = [k for k in mine if k not in theirs]
    assert new and all(any(a in "model." + k for a in type(enc).added_to_clip) for k in new)
    tok = enc.tokenize(["a red circle moving left"])
    with torch.no_grad():
        want = pooled(clip.get_text_features(**tok))
        got = enc.text_features(tok["input_ids"], tok["attention_mask"])
        assert torch.allclose(F.normalize(want, dim=-1), F.normalize(got, dim=-1), atol=1e-6)
        assert enc.video_features(torch.randn(2, 4, 3, 32, 32)).shape == (2, 64)
    out = tmp_path / "xclip"
    result = train(
        TrainConfig(data="synth:motion,size=32", model=str(folder), family="xclip", out=str(out), frames=4, steps=2,
                    batch_size=8, lr=1e-3, workers=0, seed=0, time_reversal="twins", pair_weight=1.0)
    )  # fmt: skip
    assert result.finished
    log = json.loads((out / "train_log.jsonl").read_text().splitlines()[0])
    assert "message_attn" in log["new"] and "mit" in log["new"]
    assert load_encoder(out, cache=False).family == "xclip"


def test_new_lr_mul_speeds_up_only_what_the_family_adds(tmp_path):
    from vsearch.train.loop import param_groups

    enc = load_encoder("tiny-clip:32", family="clip-vip", cache=False)
    groups = param_groups(enc, 0.05, 1e-4, type(enc).added_to_clip, 10.0)
    fast = {id(p) for g in groups if g["lr"] == pytest.approx(1e-3) for p in g["params"]}
    names = {n for n, p in enc.named_parameters() if id(p) in fast}
    assert names == {"clip.vision_model.embeddings.added_cls", "clip.vision_model.embeddings.temporal_embedding"}
    assert all(g["weight_decay"] == 0.0 for g in groups if any(id(p) in fast for p in g["params"]))
    # Trained and resumed with the split groups; a family that adds nothing refuses the option.
    cfg = TrainConfig(
        data="synth:motion,size=32", model="tiny-clip:32", family="clip-vip", out=str(tmp_path / "m"), frames=4,
        steps=2, batch_size=8, lr=1e-4, new_lr_mul=10.0, workers=0, seed=0, checkpoint_every=1, max_steps_this_run=1,
    )  # fmt: skip
    assert not train(cfg).finished
    assert train(cfg).finished
    with pytest.raises(ConfigError, match="adds nothing to CLIP"):
        Trainer(TrainConfig(data="synth:motion,size=32", model="tiny-clip:32", out=str(tmp_path / "p"), frames=4,
                            steps=1, batch_size=8, new_lr_mul=2.0, workers=0)).run()  # fmt: skip


def test_freeze_layers_keeps_lower_layers_and_embeddings_and_trains_the_rest(tmp_path):
    from transformers import CLIPModel

    from vsearch.models.tiny import tiny_clip_config

    torch.manual_seed(0)
    folder = tmp_path / "clip"
    CLIPModel(tiny_clip_config(image_size=32)).save_pretrained(folder)
    before = CLIPModel.from_pretrained(folder).state_dict()
    out = tmp_path / "vip"
    train(
        TrainConfig(data="synth:motion,size=32", model=str(folder), family="clip-vip", out=str(out), frames=4, steps=3,
                    batch_size=8, lr=1e-2, workers=0, seed=0, freeze_layers=3, temporal_init_std=0.5)
    )  # fmt: skip
    log = json.loads((out / "train_log.jsonl").read_text().splitlines()[0])
    assert log["frozen"] == "text embeddings + layers 0-0 of 2, vision embeddings + layers 0-2 of 4"
    after = load_encoder(out, cache=False).clip.state_dict()
    same = {k for k in before if torch.equal(before[k], after[k].float())}
    frozen = [k for k in before if k.startswith(("vision_model.embeddings.", "text_model.embeddings."))
              or ".encoder.layers.0." in k or k.startswith(("vision_model.encoder.layers.1.", "vision_model.encoder.layers.2."))]  # fmt: skip
    assert frozen and all(k in same for k in frozen if not k.endswith("position_ids"))
    assert "vision_model.encoder.layers.3.mlp.fc1.weight" not in same
    assert "text_model.encoder.layers.1.mlp.fc1.weight" not in same
    with pytest.raises(ConfigError, match="freeze_layers"):
        train(TrainConfig(data="synth:motion,size=32", model="tiny-clip:32", out=str(tmp_path / "x"), frames=4, steps=1,
                          batch_size=8, workers=0, freeze_layers=-1))  # fmt: skip


def _labels_in_one_reversal_step(tmp_path, monkeypatch, data: str, batch: dict) -> dict:
    """One twins loss step of a tiny CLIP-ViP on ``batch``: the label of every video column of the
    InfoNCE (``vl``: originals, then reversals; -1 = negative only) and the pair loss's ``ordered``."""
    import vsearch.train.tasks as tasks
    from vsearch.train.tasks import RetrievalTask

    enc = load_encoder("tiny-clip-vip:32", cache=False)
    enc.spec = enc.spec.with_frames(4)
    cfg = TrainConfig(data=data, model="x", out=str(tmp_path), time_reversal="twins", pair_weight=1.0)
    task = RetrievalTask(cfg, enc, torch.device("cpu"))
    task.dataset()
    seen = {}
    real_main, real_pair = tasks.multi_positive_loss, tasks.pair_loss
    monkeypatch.setattr(
        tasks, "multi_positive_loss", lambda v, t, vl, tl, s: seen.update(vl=vl.tolist()) or real_main(v, t, vl, tl, s)
    )
    monkeypatch.setattr(tasks, "pair_loss", lambda *a: seen.update(ordered=a[-1].tolist()) or real_pair(*a))
    with torch.no_grad():
        task.loss(task.embed(batch), [batch])
    return seen


def test_stills_in_a_motion_stream_and_their_reversal_is_a_positive_not_a_negative(tmp_path, monkeypatch):
    # synth:motion,stills=P mixes still objects of every colour and shape (static caption) into
    # the motion clips. A still reads the same backwards: its "reversal" must not be a negative.
    spec = StreamSpec.parse("synth:motion,size=32,stills=0.5")
    ds = SyntheticStream(spec, 4, seed=0)
    items = [ds[i] for i in range(60)]
    stills = [x for x in items if "moving" not in x["text"]]
    assert 15 < len(stills) < 45 and all((x["frames"] == x["frames"][:1]).all() for x in stills)
    moving = [Scene.parse(x["text"]) for x in items if "moving" in x["text"]]
    assert not any((m.colour, m.shape) in REVERSAL_HELDOUT_PAIRS for m in moving)  # the motion split is unchanged
    for bad in ("synth:motion,stills=1", "synth:static,stills=0.2", "synth:motion,stills=x"):
        with pytest.raises(DatasetError):
            StreamSpec.parse(bad)
    pick = [
        next(i for i, x in enumerate(items) if "moving" not in x["text"]),
        next(i for i, x in enumerate(items) if "moving" in x["text"]),
    ]
    # Frames and captions only: a still is told by its frames reading the same backwards.
    batch = {"frames": torch.from_numpy(np.stack([items[i]["frames"] for i in pick])), "text": [items[i]["text"] for i in pick]}
    seen = _labels_in_one_reversal_step(tmp_path, monkeypatch, "synth:motion,size=32,stills=0.5", batch)
    originals, reversed_ = seen["vl"][:2], seen["vl"][2:]
    assert reversed_[0] == originals[0]  # the still's reversal: a positive of its own caption
    assert reversed_[1] not in (-1, originals[1])  # the moving clip's twin: the swapped caption
    assert seen["ordered"] == [False, True]  # and the still has no direction to decide in the pair loss


def test_frame_captions_are_timeless_their_reversal_left_out_and_out_of_the_pair_loss(tmp_path, monkeypatch):
    # synth:motion,framecaps=P captions a share of the *moving* clips by appearance alone ("a red
    # circle", CLIP-ViP's auxiliary frame captions). The clip played backwards is still a red
    # circle, so its reversal is no negative; nor a positive, which would reward scoring a moving
    # clip and its reversal alike: it is left out, and the pair loss has no direction to decide.
    from vsearch.datasets.clips import collate

    spec = StreamSpec.parse("synth:motion,size=32,framecaps=0.5")
    ds = SyntheticStream(spec, 4, seed=0)
    items = [ds[i] for i in range(60)]
    framecaps = [x for x in items if x["timeless"]]
    assert 15 < len(framecaps) < 45
    for x in framecaps:
        assert "moving" not in x["text"] and not (x["frames"] == x["frames"][:1]).all()  # moving, static caption
    assert all("moving" in x["text"] for x in items if not x["timeless"])
    for bad in ("synth:motion,framecaps=1", "synth:static,framecaps=0.2", "synth:motion,framecaps=-0.1"):
        with pytest.raises(DatasetError, match="framecaps"):
            StreamSpec.parse(bad)
    pick = [next(i for i, x in enumerate(items) if x["timeless"]), next(i for i, x in enumerate(items) if not x["timeless"])]
    batch = collate([items[i] for i in pick])  # as training batches it: the timeless flag rides along
    seen = _labels_in_one_reversal_step(tmp_path, monkeypatch, "synth:motion,size=32,framecaps=0.5", batch)
    # The frame-captioned clip's reversal is left out (a positive would reward order-blindness, a
    # negative would be false): two originals, then only the motion-captioned clip's twin.
    originals, reversed_ = seen["vl"][:2], seen["vl"][2:]
    assert len(reversed_) == 1 and reversed_[0] not in (-1, originals[1])  # the twin: the swapped caption
    assert seen["ordered"] == [False, True]


def test_wandering_objects_move_without_a_direction_timeless_and_out_of_the_pair_loss(tmp_path, monkeypatch):
    # synth:motion,wander=P: a share of items is an object of any colour and shape on a random
    # walk, captioned by appearance alone. It moves (no two frames need agree), stays inside the
    # frame, covers the held-out pairs as stills do, and its reversal is left out of the batch.
    from vsearch.datasets.clips import collate
    from vsearch.synth.scenes import COLOURS, render_wander

    walk = render_wander(Scene("square", "green", "up"), 8, 32, 32, np.random.default_rng(3))
    assert walk.shape == (8, 32, 32, 3) and len({f.tobytes() for f in walk}) > 1
    green = (walk == np.array(COLOURS["green"], np.uint8)).all(-1)
    assert all(g.any() for g in green)  # the object in every frame
    spec = StreamSpec.parse("synth:motion,size=32,stills=0.25,wander=0.25")
    ds = SyntheticStream(spec, 4, seed=0)
    items = [ds[i] for i in range(200)]
    wander = [x for x in items if x["timeless"]]
    stills = [x for x in items if not x["timeless"] and "moving" not in x["text"]]
    assert 30 < len(wander) < 75 and 30 < len(stills) < 75  # a quarter each of all items
    assert all("moving" not in x["text"] and not (x["frames"] == x["frames"][:1]).all() for x in wander)
    assert {tuple(x["text"].split()[1:]) for x in wander} >= {(c, s) for c, s in REVERSAL_HELDOUT_PAIRS}
    moving = [Scene.parse(x["text"]) for x in items if "moving" in x["text"]]
    assert not any((m.colour, m.shape) in REVERSAL_HELDOUT_PAIRS for m in moving)  # the motion split is unchanged
    plain = SyntheticStream(StreamSpec.parse("synth:motion,size=32,stills=0.25"), 4, seed=0)
    assert [plain[i]["text"] for i in range(20)] == [
        SyntheticStream(StreamSpec.parse("synth:motion,size=32,stills=0.25,wander=0"), 4, seed=0)[i]["text"] for i in range(20)
    ]  # wander=0 draws nothing: existing streams are unchanged
    for bad in ("synth:motion,wander=1", "synth:static,wander=0.2", "synth:motion,stills=0.5,wander=0.5"):
        with pytest.raises(DatasetError, match="wander"):
            StreamSpec.parse(bad)
    pick = [next(i for i, x in enumerate(items) if x["timeless"]), next(i for i, x in enumerate(items) if "moving" in x["text"])]
    batch = collate([items[i] for i in pick])
    seen = _labels_in_one_reversal_step(tmp_path, monkeypatch, "synth:motion,size=32,wander=0.5", batch)
    originals, reversed_ = seen["vl"][:2], seen["vl"][2:]
    assert len(reversed_) == 1 and reversed_[0] not in (-1, originals[1])  # the walk's reversal is left out
    assert seen["ordered"] == [False, True]


def test_pair_loss_leaves_out_samples_without_a_direction():
    e = torch.eye(4)
    s = torch.tensor(math.log(50.0))
    v, vr, t, tr = e[[0, 2]], e[[1, 2]], e[[0, 3]], e[[1, 3]]  # sample 1: a still (v = ṽ)
    only_first = pair_loss(v[:1], vr[:1], t[:1], tr[:1], s)
    assert pair_loss(v, vr, t, tr, s, ordered=torch.tensor([True, False])).item() == pytest.approx(only_first.item())
    assert pair_loss(v, vr, t, tr, s).item() > only_first.item() + 0.1  # counted, the still adds log 2 terms
    none = pair_loss(v, vr, t, tr, s, ordered=torch.tensor([False, False]))
    assert none.item() == 0.0
