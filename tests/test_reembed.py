"""Re-embedding a store with a new encoder: atomic swap, searches keep working, resume after a stop."""

import shutil
import threading

import pytest
import torch

from vsearch.errors import EncoderMismatch
from vsearch.ingest import index
from vsearch.models import load_encoder
from vsearch.reembed import reembed
from vsearch.search import search
from vsearch.store import Store

from .test_ingest import consistent


@pytest.fixture
def indexed(tmp_path, synth_dir, micro_model_dir):
    """A store built by one model, and a second model saved in its own folder."""
    videos = tmp_path / "videos"
    shutil.copytree(synth_dir / "videos", videos)
    st = Store.open(tmp_path / "store")
    old = load_encoder(micro_model_dir, cache=False)
    index(st, [videos], old, workers=0)
    tuned = load_encoder(micro_model_dir, cache=False)
    with torch.no_grad():
        tuned.clip.visual_projection.weight.mul_(-1.0)  # a "fine-tuned" model: different vectors
    new = load_encoder(tuned.save_pretrained(tmp_path / "tuned"), cache=False)
    yield st, videos, old, new
    st.close()


def test_reembed_swaps_to_the_new_encoder(indexed):
    st, videos, old, new = indexed
    before = st.status()
    report = reembed(st, new, workers=0)
    assert report.swapped and report.videos == 12 and report.segments == 12 and not report.failed
    after = st.status()
    assert after["encoder"]["fingerprint"] == new.fingerprint and after["videos"] == before["videos"]
    consistent(st)
    with st.Session() as s:
        encoders = {r[0] for r in s.execute(__import__("sqlalchemy").text("SELECT DISTINCT encoder_id FROM embeddings"))}
    assert encoders == {st.encoder().id}  # the old vectors are gone
    assert search(st, "a red circle", encoder=new).hits
    with pytest.raises(EncoderMismatch):
        search(st, "a red circle", encoder=old)
    assert reembed(st, new, workers=0).videos == 0  # already on it: nothing to do


def test_searches_keep_working_during_reembed(indexed):
    st, videos, old, new = indexed
    reader = Store.open(st.root)
    errors, results = [], []
    done = threading.Event()

    def keep_searching():
        while not done.is_set():
            try:
                resp = search(reader, "a blue square", k=3)
                results.append((reader.encoder().fingerprint, len(resp.hits)))
            except Exception as exc:  # noqa: BLE001 - the test records anything that escapes
                errors.append(exc)

    t = threading.Thread(target=keep_searching)
    t.start()
    try:
        reembed(st, new, workers=1)
    finally:
        done.set()
        t.join()
    assert not errors, errors
    assert results and all(n == 3 for _f, n in results)
    seen = {f for f, _n in results}
    assert old.fingerprint in seen  # searched with the old encoder while re-embedding
    assert load_store_encoder_fp(reader) == new.fingerprint
    reader.close()


def load_store_encoder_fp(st):
    from vsearch.search import load_store_encoder

    return load_store_encoder(st).fingerprint


def test_interrupted_reembed_resumes(indexed):
    st, videos, old, new = indexed
    stop = threading.Event()

    class StopAfterThree:
        n = 0

        def start(self, total):
            pass

        def update(self, *, files=0, segments=0, new_segments=0, current=None):
            self.n += files
            if self.n >= 3:
                stop.set()

    first = reembed(st, new, workers=0, stop=stop, progress=StopAfterThree())
    assert first.interrupted and not first.swapped and 3 <= first.videos < 12
    assert st.encoder().fingerprint == old.fingerprint  # still the old one
    assert search(st, "x", encoder=old).hits
    consistent(st)
    second = reembed(st, new, workers=0)
    assert second.swapped and second.skipped == first.videos and first.videos + second.videos == 12
    consistent(st)


def test_changed_and_deleted_files_are_dropped_at_the_swap(indexed):
    st, videos, old, new = indexed
    files = sorted(videos.iterdir())
    files[0].unlink()
    files[1].write_bytes(files[2].read_bytes())  # changed content
    report = reembed(st, new, workers=0)
    assert report.swapped and len(report.failed) == 2
    assert sorted(report.dropped) == sorted(str(f) for f in files[:2])
    assert st.count_videos() == 10
    consistent(st)
    again = index(st, [videos], new, workers=0)
    assert again.counts()["indexed"] == 1  # the changed file comes back, embedded by the new model
