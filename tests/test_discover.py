"""Listing folders: recursion, extensions, symlinks (loops, duplicates), odd names; content hashes."""

import os

import pytest

from vsearch.video.discover import FULL_HASH_LIMIT, content_hash, display_path, list_videos


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_recursive_listing_by_extension(tmp_path):
    for name in ["a.mp4", "b.MKV", "sub/c.webm", "sub/deeper/d.avi", "e.mov", "f.m4v", "notes.txt", "g.mp4.part"]:
        touch(tmp_path / name)
    listing = list_videos([tmp_path])
    names = sorted(os.path.relpath(f.path, tmp_path) for f in listing.files)
    assert names == ["a.mp4", "b.MKV", "e.mov", "f.m4v", "sub/c.webm", "sub/deeper/d.avi"]
    assert listing.problems == []
    assert all(os.path.isabs(f.path) for f in listing.files)


def test_symlink_loop_and_duplicate_links_are_visited_once(tmp_path):
    touch(tmp_path / "v/a.mp4")
    os.symlink(tmp_path / "v", tmp_path / "v/loop")
    os.symlink(tmp_path / "v/a.mp4", tmp_path / "v/alias.mp4")
    os.symlink(tmp_path / "missing.mp4", tmp_path / "v/broken.mp4")
    listing = list_videos([tmp_path / "v", tmp_path / "v"])
    assert len(listing.files) == 1
    reasons = dict((os.path.basename(p), r) for p, r in listing.problems)
    assert reasons["loop"].startswith("symlink loop")
    assert reasons["broken.mp4"] == "broken symlink"


def test_non_utf8_and_unicode_names(tmp_path):
    touch(tmp_path / "café vidéo 日本.mp4")
    raw = os.path.join(os.fsencode(tmp_path), b"bad\xff name.mp4")
    with open(raw, "wb") as f:
        f.write(b"x")
    listing = list_videos([tmp_path])
    paths = sorted(f.path for f in listing.files)
    assert len(paths) == 2
    assert any("\udcff" in p for p in paths)  # surrogate-escaped, exact round trip to the bytes
    assert any(os.fsencode(p) == raw for p in paths)
    assert "\\xff" in display_path([p for p in paths if "\udcff" in p][0])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_folder_is_a_problem_not_a_crash(tmp_path):
    touch(tmp_path / "locked/a.mp4")
    os.chmod(tmp_path / "locked", 0)
    try:
        listing = list_videos([tmp_path])
        assert any(r == "permission denied" for _p, r in listing.problems)
    finally:
        os.chmod(tmp_path / "locked", 0o755)


def test_missing_root_and_single_file_root(tmp_path):
    f = touch(tmp_path / "one.mp4")
    listing = list_videos([f, tmp_path / "nope"])
    assert [x.path for x in listing.files] == [str(f)]
    assert listing.problems == [(str(tmp_path / "nope"), "no such file or folder")]


def test_content_hash_small_and_large(tmp_path):
    small = touch(tmp_path / "s.mp4", b"abc")
    # The hash is of the content: another name, folder and mtime with the same bytes hash alike.
    (tmp_path / "elsewhere").mkdir()
    twin = touch(tmp_path / "elsewhere" / "renamed.mkv", b"abc")
    os.utime(twin, ns=(1, 1))
    assert content_hash(str(small)) == content_hash(str(twin))
    assert content_hash(str(small)) != content_hash(str(touch(tmp_path / "t.mp4", b"abd")))
    big = bytearray(os.urandom(FULL_HASH_LIMIT + 5000))
    p = tmp_path / "big.mp4"
    p.write_bytes(big)
    h1 = content_hash(str(p))
    big[-1] ^= 0xFF  # the last block is always sampled
    p.write_bytes(big)
    assert content_hash(str(p)) != h1
    p.write_bytes(bytes(big) + b"more")  # appending changes the size
    assert content_hash(str(p)) != h1


def test_files_that_are_not_videos_are_counted_not_silently_skipped(tmp_path):
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "song.m4a")
    touch(tmp_path / "more" / "b.m4a")
    touch(tmp_path / "more" / "notes")
    touch(tmp_path / ".hidden.m4a")  # dot-files are the system's, not the user's footage
    listing = list_videos([tmp_path])
    assert [os.path.basename(f.path) for f in listing.files] == ["a.mp4"]
    assert listing.not_video == {".m4a": 2, "": 1}
