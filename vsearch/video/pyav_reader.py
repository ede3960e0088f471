"""Forward-only PyAV decoding: rotated files, HEVC (decord seeks it to the wrong frames), and
whatever decord cannot read. Also what the container says about keyframes, read without
decoding: the keyframe table of an MP4, and whether its GOPs are open."""

from __future__ import annotations

import numpy as np

from ..errors import DecodeError
from .probe import av_reason
from .orientation import scaled_as_upright
from .readplan import KeyframeTable, plan_reads


def _index_rows(path: str, stream_index: int) -> list[tuple[int, int, bool]] | None:
    """The container index's entries as ``(timestamp, size, is_keyframe)`` in presentation order
    (no decoding); None when the file cannot be opened."""
    import av

    try:
        with av.open(path) as container:
            entries = container.streams[stream_index].index_entries
            rows = [(e.timestamp, int(e.size), bool(e.is_keyframe)) for e in entries]
    except (av.FFmpegError, OSError, IndexError, AttributeError):
        return None
    return sorted(rows, key=lambda r: r[0])


def keyframes_from_index(path: str, stream_index: int, frames: int | None = None) -> list[int] | None:
    """Keyframes as presentation-order frame numbers, from the container's index (MP4/MOV sample
    tables list every frame; formats without one, such as MPEG-TS, give None). With ``frames``,
    an index that does not list that many frames gives None."""
    rows = _index_rows(path, stream_index)
    if not rows or (frames is not None and len(rows) != frames):
        return None  # (Matroska lists only the cues read so far: not a table of every frame)
    return [rank for rank, r in enumerate(rows) if r[2]]


def sizes_from_index(path: str, stream_index: int, frames: int, keys=None) -> np.ndarray | None:
    """Every frame's packet size in bytes, presentation order, from the container's index (no
    decoding: 17 ms for a 60 MB file); None without a full index, or when ``keys`` (keyframes
    as the caller numbers them) are not the index's keyframes."""
    rows = _index_rows(path, stream_index)
    if rows is None or len(rows) != frames:
        return None
    if keys is not None:
        mine = [i for i, r in enumerate(rows) if r[2]]
        if not np.array_equal(np.asarray(mine, np.int64), np.asarray(keys, np.int64)):
            return None
    return np.asarray([r[1] for r in rows], np.int64)


def has_open_gops(path: str, stream_index: int, keyframes: int = 3) -> bool:
    """Whether a frame after a keyframe in decode order is shown before it (an open GOP: its
    leading frames refer to the GOP before). Reads packets, without decoding, up to the
    ``keyframes``-th keyframe after the first. Keyframe tables count keyframes in decode order,
    which then differs from the order frames are shown in."""
    import av

    try:
        with av.open(path) as container:
            seen, key_pts = 0, None
            for packet in container.demux(container.streams[stream_index]):
                if packet.pts is None:
                    continue
                if packet.is_keyframe:
                    seen += 1
                    if seen > keyframes + 1:
                        return False
                    key_pts = packet.pts if seen > 1 else None
                elif key_pts is not None and packet.pts < key_pts:
                    return True
    except (av.FFmpegError, OSError, IndexError):
        return False
    return False


class PyAVSequential:
    """Forward-only PyAV decoding that survives broken packets.

    Requests must come in increasing frame order (segments are decoded in order); going back
    reopens the file. Frames lost to broken packets shift later indices, which is acceptable
    for a fallback path whose alternative is losing the whole video.

    With a keyframe table (``use_keyframes``, fast sampling) each request is planned by GOP
    (``readplan.plan_reads``): a GOP from which only the keyframe, or nothing, is wanted is
    passed with ``skip_frame = "NONKEY"``, so its other frames are never decoded (keyframes alone
    decode 33x faster on a high-bitrate file). The mode is chosen per keyframe packet, before
    the GOP's packets reach the decoder, so decoder threads cannot lose a wanted frame; a
    decoded keyframe then moves the position to its index in the table.
    """

    def __init__(
        self, path: str, size: tuple[int, int] | None, stream_index: int | None = None, threads: int = 0, orientation: str = ""
    ):
        self.path, self.size = path, size
        #: A rotated file's frames are scaled as if upright (``orientation.scaled_as_upright``).
        self.orientation = orientation
        self.threads = threads  # 0: FFmpeg picks
        self.stream_index = stream_index
        self._container = None
        self._frames = None
        self._pos = -1
        self._frame = None  # the av.VideoFrame at self._pos
        self._keys: np.ndarray | None = None  # keyframe indices (presentation order), when planning
        self._full: set[int] = set()  # GOPs (by keyframe) of the current request to decode whole
        self._planned_to = -1  # keyframe of the last GOP the current request reaches
        #: Frames the decoder produced (what a plan saves shows here).
        self.decoded = 0

    def use_keyframes(self, keys) -> None:
        """Plan reads with this keyframe table from now on (frame indices, presentation order)."""
        self._keys = np.asarray(keys, dtype=np.int64) if keys is not None and len(keys) else None

    def _reopen(self) -> None:
        import av

        self.close()
        try:
            self._container = av.open(self.path)
        except (av.FFmpegError, OSError) as exc:
            raise DecodeError(self.path, av_reason(exc)) from None
        stream = self._container.streams[self.stream_index] if self.stream_index is not None else self._container.streams.video[0]
        stream.thread_type = "AUTO"
        if self.threads:
            stream.codec_context.thread_count = self.threads
        self._frames = self._iter_frames(stream)
        self._pos, self._frame = -1, None

    def _iter_frames(self, stream):
        import av

        ctx = stream.codec_context
        key_packets = 0
        for packet in self._container.demux(stream):
            if self._keys is None and ctx.skip_frame != "DEFAULT":
                ctx.skip_frame = "DEFAULT"  # the table was dropped: decode everything again
            if self._keys is not None and packet.is_keyframe:
                # Keyframes keep their order in decode order: the n-th keyframe packet is keys[n].
                key = int(self._keys[key_packets]) if key_packets < len(self._keys) else None
                key_packets += 1
                # The request's last GOP is decoded whole: the next request may want its later frames.
                skip = key is not None and key < self._planned_to and key not in self._full
                ctx.skip_frame = "NONKEY" if skip else "DEFAULT"
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            self.decoded += len(frames)
            yield from frames

    def _advance(self, frame) -> None:
        """Move the position to ``frame``: the next index, or, for a keyframe after skipped
        frames, that keyframe's index. A table that disagrees with the stream is dropped."""
        nxt = self._pos + 1
        if self._keys is not None and frame.key_frame:
            at = int(np.searchsorted(self._keys, self._pos, side="right"))
            key = int(self._keys[at]) if at < len(self._keys) else None
            if key is None or (key != nxt and not self._skipped_before(key)):
                self._keys = None  # the table does not describe this stream: count frames only
            else:
                nxt = key
        self._pos, self._frame = nxt, frame

    def _skipped_before(self, key: int) -> bool:
        """Whether the GOP ending just before ``key`` was passed with non-key frames skipped."""
        at = int(np.searchsorted(self._keys, key)) - 1
        return at >= 0 and int(self._keys[at]) < self._planned_to and int(self._keys[at]) not in self._full

    def _to_array(self, frame) -> np.ndarray:
        if self.size and self.orientation:
            return scaled_as_upright(frame, self.orientation, self.size)
        if self.size:
            return frame.to_ndarray(format="rgb24", width=self.size[0], height=self.size[1])
        return frame.to_ndarray(format="rgb24")

    def get(self, idx: list[int]) -> np.ndarray:
        wanted = sorted(set(idx))
        if self._frames is None or wanted[0] < self._pos:
            self._reopen()
        if self._keys is not None:
            reads = plan_reads(wanted, KeyframeTable(self._keys, int(self._keys[-1]) + 1 + max(wanted)))
            self._full = {r.key for r in reads if r.frames[-1] > r.key}
            self._planned_to = reads[-1].key
        got: dict[int, np.ndarray] = {}
        for target in wanted:
            while self._pos < target:
                frame = next(self._frames, None)
                if frame is None:
                    break
                self._advance(frame)
            if self._frame is None:
                break
            # At the target, or the last frame there is when the stream ended early.
            got[target] = self._to_array(self._frame)
        if not got:
            raise DecodeError(self.path, "no frame could be decoded")
        return np.stack([got.get(i, got[max(got)]) for i in idx])

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None
