"""Parquet shards of embeddings (no Ray needed): resumable export, checked import."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="pyarrow is not installed (the README's install includes it)")

from vsearch.errors import DatasetError, EncoderMismatch  # noqa: E402
from vsearch.models import load_encoder  # noqa: E402
from vsearch.scale.shards import export_shards, import_shards  # noqa: E402
from vsearch.store import Store  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    enc = load_encoder(SAMPLE / "model")
    out = tmp_path_factory.mktemp("shards") / "s"
    videos = sorted(str(p) for p in (SAMPLE / "videos").glob("*.mp4"))[:12]
    res = export_shards(enc, videos, out, workers=0, files_per_shard=4)
    assert res["shards"] == 3
    return enc, videos, out


def test_export_resumes_shard_by_shard(shards):
    enc, videos, out = shards
    parts = sorted(out.glob("part-*.parquet"))
    stamps = {p.name: p.stat().st_mtime_ns for p in parts}
    os.remove(parts[1])
    export_shards(enc, videos, out, workers=0, files_per_shard=4)
    after = {p.name: p.stat().st_mtime_ns for p in sorted(out.glob("part-*.parquet"))}
    assert after.keys() == stamps.keys()
    assert after[parts[0].name] == stamps[parts[0].name] and after[parts[2].name] == stamps[parts[2].name]


def test_import_checks_the_model_and_the_vectors(shards, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    enc, _videos, out = shards
    with Store.open(tmp_path / "ok") as st, st.lock("import"):
        assert import_shards(st, out, enc)["videos"] == 12
        assert st.check().ok
    other = load_encoder("tiny-clip")
    with Store.open(tmp_path / "other") as st, st.lock("import"), pytest.raises(EncoderMismatch, match="another model"):
        import_shards(st, out, other)
    bad = tmp_path / "bad"
    bad.mkdir()
    table = pq.read_table(next(out.glob("part-*.parquet")))
    vec = table.column("vector").combine_chunks()
    flat = vec.flatten().to_numpy(zero_copy_only=False) * 2.0  # no longer unit vectors
    table = table.set_column(
        table.schema.get_field_index("vector"), "vector", pa.FixedSizeListArray.from_arrays(pa.array(flat), vec.type.list_size)
    )
    pq.write_table(table, bad / "part-00000.parquet")
    with Store.open(tmp_path / "b") as st, st.lock("import"), pytest.raises(DatasetError, match="not a unit vector"):
        import_shards(st, bad, enc)
