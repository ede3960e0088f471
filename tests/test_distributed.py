"""Data-parallel training with real torch.distributed processes (torchrun, gloo on CPU).

2 processes x batch 8 must train the same weights as 1 process x batch 16; a variant that
all-gathers features *without* gradients must not (so the test can fail).
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from safetensors.torch import load_file

from tests.procs import run

pytestmark = pytest.mark.slow

COMMON = [
    "--data", "synth:motion,size=32", "--model", "tiny-clip:32", "--frames", "2", "--steps", "3", "--lr", "1e-4",
    "--workers", "0", "--seed", "0", "--save-dtype", "float32", "--json",
]  # fmt: skip


def torchrun(*args, timeout=600):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *map(str, args)]
    res = run(cmd, timeout=timeout, env=_env())  # a timeout kills the launcher and its ranks
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _env():
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def max_diff(a, b) -> float:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "m"
    res = run([sys.executable, "-m", "vsearch", "train", "retrieval", *COMMON, "--batch-size", "16", "--out", str(out)], timeout=600, env=_env())
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_two_processes_train_like_one_with_the_global_batch(single, tmp_path):
    out = tmp_path / "ddp"
    res = torchrun("-m", "vsearch", "train", "retrieval", *COMMON, "--batch-size", "8", "--out", out)
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["finished"]
    diff = max_diff(single, out)
    print(f"max |w(2x8) - w(1x16)| = {diff:.2e}")
    assert diff <= 1e-5
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["global_batch"] == 16 and log[0]["world_size"] == 2
    assert not (out / "checkpoints" / ".tmp").exists()


def test_gathering_without_gradients_trains_something_else(single, tmp_path):
    out = tmp_path / "wrong"
    script = tmp_path / "wrong.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import torch, torch.distributed as dist
            import vsearch.train.distributed as d
            from vsearch.train.loop import TrainConfig, train

            def no_grad_gather(x):
                parts = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
                dist.all_gather(parts, x.detach().contiguous())
                return torch.cat(parts), dist.get_rank() * x.shape[0]

            d.all_gather_with_grad = no_grad_gather
            train(TrainConfig(data="synth:motion,size=32", model="tiny-clip:32", frames=2, steps=3, lr=1e-4, workers=0,
                              seed=0, batch_size=8, out={str(out)!r}))
            """
        )
    )
    torchrun(script)
    diff = max_diff(single, out)
    print(f"max |w(no-grad gather) - w(1x16)| = {diff:.2e}")
    assert diff > 1e-5


def test_gradcache_accumulation_stays_exact_across_processes(single, tmp_path):
    out = tmp_path / "acc"
    torchrun("-m", "vsearch", "train", "retrieval", *COMMON, "--batch-size", "4", "--accumulate", "2", "--out", out)
    diff = max_diff(single, out)
    print(f"max |w(2x4x2 accumulated) - w(1x16)| = {diff:.2e}")
    assert diff <= 1e-5


def _script(tmp_path, name: str, body: str):
    path = tmp_path / name
    path.write_text(
        "import os, sys\nfrom vsearch.train.loop import TrainConfig, train\n"
        "cfg = dict(data='synth:motion,size=32', model='tiny-clip:32', frames=2, steps=3, lr=1e-4, workers=0, seed=0,"
        " batch_size=8, checkpoint_every=1, save_dtype='float32')\n" + textwrap.dedent(body)
    )
    return path


def test_a_run_stopped_midway_resumes_at_the_exact_step_under_two_processes(single, tmp_path):
    out = tmp_path / "resumed"
    first = _script(
        tmp_path, "first.py", f"r = train(TrainConfig(**cfg, out={str(out)!r}, max_steps_this_run=2))\nassert not r.finished\n"
    )
    torchrun(first)
    assert (out / "checkpoints" / "step-00000002").is_dir() and not (out / "vsearch.json").exists()
    second = _script(
        tmp_path, "second.py", f"r = train(TrainConfig(**cfg, out={str(out)!r}))\nassert r.finished and r.steps == 3\n"
    )
    torchrun(second)
    assert max_diff(single, out) <= 1e-5  # = one uninterrupted 1 x 16 run


def test_a_failing_rank_ends_the_job_instead_of_hanging(tmp_path):

    script = _script(
        tmp_path, "fail.py",
        f"""
        import vsearch.train.loop as loop
        real = loop.Trainer._step
        def step(self, micro):
            if int(os.environ["RANK"]) == 1 and self.step == 1:
                raise RuntimeError("rank 1 fails on purpose")
            return real(self, micro)
        loop.Trainer._step = step
        train(TrainConfig(**cfg, out={str(tmp_path / "f")!r}))
        """,
    )  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    # torchrun must tear the other rank down: a hung job ends in TimeoutExpired (and its whole
    # process group is killed), a torn-down one returns the failure.
    res = run(cmd, timeout=240, env=_env())
    assert res.returncode != 0 and "rank 1 fails on purpose" in res.stderr
