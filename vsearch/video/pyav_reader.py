"""Forward-only PyAV decoding, the fallback when decord cannot read a file."""

from __future__ import annotations

import numpy as np

from ..errors import DecodeError
from .probe import av_reason


def keyframes_from_index(path: str, stream_index: int) -> list[int] | None:
    """Keyframes as presentation-order frame numbers, from the container's index (MP4/MOV sample
    tables list every frame; formats without one, such as MPEG-TS, give None)."""
    import av

    try:
        with av.open(path) as container:
            entries = container.streams[stream_index].index_entries
            stamps = [(e.timestamp, bool(e.is_keyframe)) for e in entries]
    except (av.FFmpegError, OSError, IndexError, AttributeError):
        return None
    if not stamps:
        return None
    order = sorted(range(len(stamps)), key=lambda i: stamps[i][0])
    return [rank for rank, i in enumerate(order) if stamps[i][1]]


class PyAVSequential:
    """Forward-only PyAV decoding that survives broken packets.

    Requests must come in increasing frame order (segments are decoded in order); going back
    reopens the file. Frames lost to broken packets shift later indices, which is acceptable
    for a fallback path whose alternative is losing the whole video.
    """

    def __init__(self, path: str, size: tuple[int, int] | None, stream_index: int | None = None, threads: int = 0):
        self.path, self.size = path, size
        self.threads = threads  # 0: FFmpeg picks
        self.stream_index = stream_index
        self._container = None
        self._frames = None
        self._pos = -1
        self._frame = None  # the av.VideoFrame at self._pos

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

        for packet in self._container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            yield from frames

    def _to_array(self, frame) -> np.ndarray:
        if self.size:
            return frame.to_ndarray(format="rgb24", width=self.size[0], height=self.size[1])
        return frame.to_ndarray(format="rgb24")

    def get(self, idx: list[int]) -> np.ndarray:
        wanted = sorted(set(idx))
        if self._frames is None or wanted[0] < self._pos:
            self._reopen()
        got: dict[int, np.ndarray] = {}
        for target in wanted:
            while self._pos < target:
                frame = next(self._frames, None)
                if frame is None:
                    break
                self._pos, self._frame = self._pos + 1, frame
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
