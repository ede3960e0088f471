"""The Hugging Face hub, asked as little as possible: is a model cached, can the hub be reached.

transformers' own retries take about 30 s on a machine without network; these checks answer in
seconds and say what to do. No torch here: model resolution asks before anything is loaded.
"""

from __future__ import annotations

import os

from ..errors import EncoderLoadError


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub's host (``HF_ENDPOINT`` respected): answers in at most
    ``timeout`` seconds, where transformers' own retries take about 30."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_hub(ref: str) -> None:
    """Fail in seconds, with what to do, when ``ref`` must come from a hub that cannot be reached."""
    from huggingface_hub import constants

    if hub_offline():
        raise EncoderLoadError(
            f"cannot load {ref!r}: HF_HUB_OFFLINE is set and it is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); unset HF_HUB_OFFLINE with network, or load a local model folder instead"
        )
    if not hub_reachable():
        raise EncoderLoadError(
            f"cannot load {ref!r}: the Hugging Face hub ({constants.ENDPOINT}) cannot be reached and the model is not in "
            f"the cache ({constants.HF_HUB_CACHE}); connect once to download it, or load a local model folder instead "
            f"(with a warm cache, HF_HUB_OFFLINE=1 skips the network entirely)"
        )


def in_hub_cache(ref: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(ref, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False
