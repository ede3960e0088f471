"""Turning stored frames upright as a player shows them: FFmpeg's autorotate rules from a
display matrix, applied to ``(n, h, w, 3)`` arrays."""

from __future__ import annotations

import math

import numpy as np


def orientation_from_matrix(m) -> str:
    """FFmpeg's autorotate rules (fftools), from a display matrix of 9 int32 (16.16 fixed point)."""
    if m is None or len(m) < 9:
        return ""
    a, b = m[0] / 65536.0, m[1] / 65536.0
    c, d = m[3] / 65536.0, m[4] / 65536.0
    s0, s1 = math.hypot(a, c), math.hypot(b, d)
    if not s0 or not s1:
        return ""
    theta = math.degrees(math.atan2(b / s1, a / s0)) % 360.0  # clockwise display rotation
    if abs(theta - 90) < 1.0:
        return "cclock_flip" if m[3] > 0 else "clock"
    if abs(theta - 270) < 1.0:
        return "clock_flip" if m[3] < 0 else "cclock"
    if abs(theta - 180) < 1.0:
        return "+".join(x for x, on in (("", True), ("hflip", m[0] < 0), ("vflip", m[4] < 0)) if on)
    if theta < 1.0 or theta > 359.0:
        return "+vflip" if m[4] < 0 else ""
    return ""  # a non-right angle: shown unrotated (players differ too)


def orient(frames: np.ndarray, orientation: str) -> np.ndarray:
    """Apply ``orientation`` to ``(n, h, w, 3)`` frames (the stored pixels) → what a player shows."""
    if not orientation:
        return frames
    base, *flips = orientation.split("+")
    if base == "clock":
        frames = np.rot90(frames, -1, axes=(1, 2))
    elif base == "cclock":
        frames = np.rot90(frames, 1, axes=(1, 2))
    elif base == "cclock_flip":
        frames = frames.transpose(0, 2, 1, 3)
    elif base == "clock_flip":
        frames = frames[:, ::-1, ::-1].transpose(0, 2, 1, 3)
    if "hflip" in flips:
        frames = frames[:, :, ::-1]
    if "vflip" in flips:
        frames = frames[:, ::-1]
    return np.ascontiguousarray(frames)
