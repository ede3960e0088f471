"""Rebuild the bundled CLIP tokenizer files from OpenAI's BPE merges file.

The CLIP tokenizer is fully determined by ``bpe_simple_vocab_16e6.txt.gz`` (MIT licence,
md5 933b7abbbbde62c36f02f0e6ccde464f). The hub is out of reach here, so we derive the
Hugging Face ``vocab.json`` / ``merges.txt`` pair ourselves and ship them gzipped inside the
package (``vsearch/models/assets/clip_bpe/``).

Where to get the .gz without installing open-clip-torch (which would pull a CUDA torch)::

    pip download --no-deps open-clip-torch==3.3.0 -d /tmp/oc
    unzip -j /tmp/oc/open_clip_torch-3.3.0-py3-none-any.whl open_clip/bpe_simple_vocab_16e6.txt.gz -d /tmp/oc
    python tools/build_clip_bpe.py /tmp/oc/bpe_simple_vocab_16e6.txt.gz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

EXPECTED_MD5 = "933b7abbbbde62c36f02f0e6ccde464f"
VOCAB_SIZE = 49408
OUT_DIR = Path(__file__).resolve().parents[1] / "vsearch" / "models" / "assets" / "clip_bpe"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-to-symbol map: printable bytes map to themselves, the rest above 255."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def build(bpe_gz: Path, out_dir: Path = OUT_DIR) -> None:
    digest = hashlib.md5(bpe_gz.read_bytes()).hexdigest()
    if digest != EXPECTED_MD5:
        raise SystemExit(f"{bpe_gz}: md5 {digest}, expected {EXPECTED_MD5}")
    # Line 0 is a version header; CLIP keeps the first 49152-256-2 merges.
    merges = gzip.open(bpe_gz).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_json = json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False)
    # mtime=0 keeps the gzip bytes reproducible.
    with gzip.GzipFile(out_dir / "vocab.json.gz", "wb", compresslevel=9, mtime=0) as f:
        f.write(vocab_json.encode("utf-8"))
    with gzip.GzipFile(out_dir / "merges.txt.gz", "wb", compresslevel=9, mtime=0) as f:
        f.write(("#version: 0.2\n" + "\n".join(merges) + "\n").encode("utf-8"))
    print(f"wrote {out_dir} ({len(vocab)} tokens, {len(merges)} merges)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bpe_gz", type=Path)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    build(args.bpe_gz, args.out)
