"""The CLIP BPE tokenizer, offline.

Every CLIP model uses the same 49,408-token BPE vocabulary. A copy derived from OpenAI's
``bpe_simple_vocab_16e6.txt.gz`` ships with the package (``tools/build_clip_bpe.py`` rebuilds
it), so models built from a config in code get the real tokenizer without the hub. Model
directories carry their own ``vocab.json`` / ``merges.txt`` like any Hugging Face CLIP checkpoint.
"""

from __future__ import annotations

import functools
import gzip
import html
import json
import os
import re
from importlib import resources
from pathlib import Path

from ..atomic import atomic_write_text

TOKENIZER_FILES = ("vocab.json", "merges.txt")
_ASSETS = "models/assets/clip_bpe"


def clean_text(text: str) -> str:
    """OpenAI's ``basic_clean`` + ``whitespace_clean``: fix mojibake, unescape HTML, squash spaces.

    The fast tokenizer lower-cases and splits but does not repair text; with this step its ids
    match OpenAI's reference tokenizer on HTML entities and full-width characters too.
    """
    import ftfy

    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


@functools.cache
def _bundled_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    base = resources.files("vsearch").joinpath(_ASSETS)
    with base.joinpath("vocab.json.gz").open("rb") as f:
        vocab = json.loads(gzip.decompress(f.read()).decode("utf-8"))
    with base.joinpath("merges.txt.gz").open("rb") as f:
        lines = gzip.decompress(f.read()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:] if line.strip()]
    return vocab, merges


def bundled_clip_tokenizer(max_length: int = 77):
    """A ``CLIPTokenizer`` (fast) built from the bundled vocabulary: identical to OpenAI's."""
    from transformers import CLIPTokenizer

    vocab, merges = _bundled_vocab_and_merges()
    tok = CLIPTokenizer(vocab=dict(vocab), merges=list(merges))
    tok.model_max_length = max_length
    return tok


def load_tokenizer(directory: str | os.PathLike[str] | None, max_length: int = 77):
    """The tokenizer of a model directory, or the bundled one when the directory has none.

    transformers 5 silently ignores the old ``vocab_file=`` keywords and returns a 3-token
    vocabulary, so the directory is loaded with ``from_pretrained`` and the size is checked.
    """
    from transformers import CLIPTokenizer

    if directory is not None and has_tokenizer_files(directory):
        tok = CLIPTokenizer.from_pretrained(os.fspath(directory))
        if len(tok) < 1000:
            raise ValueError(f"tokenizer in {directory} has only {len(tok)} tokens; its files are broken")
        tok.model_max_length = max_length
        return tok
    return bundled_clip_tokenizer(max_length)


def has_tokenizer_files(directory: str | os.PathLike[str]) -> bool:
    d = Path(directory)
    return all((d / name).is_file() for name in TOKENIZER_FILES) or (d / "tokenizer.json").is_file()


def write_tokenizer_files(directory: str | os.PathLike[str], tokenizer=None, max_length: int = 77) -> None:
    """Write ``vocab.json`` + ``merges.txt`` + ``tokenizer_config.json`` (HF CLIP layout).

    Skips the 3.6 MB ``tokenizer.json`` that ``save_pretrained`` would add: it is rebuilt from
    these two files on load.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if tokenizer is None:
        vocab, merges = _bundled_vocab_and_merges()
    else:
        model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
        vocab = model["vocab"]
        merges = [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    atomic_write_text(d / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    atomic_write_text(d / "merges.txt", "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    atomic_write_text(d / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
