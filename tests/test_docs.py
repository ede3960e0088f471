"""The README stays a front door and the documentation holds together.

The README is kept short (the rest lives in docs/), every relative link in README.md and
docs/*.md reaches an existing file and heading, no page sends a reader to a folder outside the
repository, every docs page is reachable from the README, and every command the README's
commands table names is a real command of the installed CLI.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 350

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks: links and headings in code are not links."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a page offers, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    out = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for m in _LINK.finditer(_CODE_SPAN.sub("", line)):
            out.append((number, m.group(1)))
    return out


def broken_links(path: Path, root: Path) -> list[str]:
    """Relative links of ``path`` whose file or heading anchor does not exist (web links are not checked)."""
    problems = []
    for number, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if root.resolve() not in (dest, *dest.parents):
            problems.append(f"{where} points outside the repository")
        elif not dest.exists():
            problems.append(f"{where} points to a missing file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where} names a heading that {dest.name} does not have")
    return problems


def readme_commands(text: str) -> list[list[str]]:
    """The command words (``["train", "retrieval"]``) of each `vsearch ...` in the Commands table."""
    lines = [line for _, line in prose_lines(text)]
    start = next(i for i, line in enumerate(lines) if _HEADING.match(line) and slug(_HEADING.match(line).group(2)) == "commands")
    commands = []
    for line in lines[start + 1 :]:
        if _HEADING.match(line):
            break
        if not line.startswith("| `vsearch "):
            continue
        first_cell = line.split(" | ")[0]
        for span in re.findall(r"`vsearch ([^`]*)`", first_cell):
            words = []
            for word in span.split():
                if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                    break
                words.append(word)
            commands.append(words)
    return commands


def cli_commands() -> dict[str, list[str]]:
    """The installed CLI's commands and subcommands, read from the Typer app in a fresh interpreter."""
    code = (
        "import json, typer.main\n"
        "from vsearch_cli.main import app\n"
        "group = typer.main.get_command(app)\n"
        "print(json.dumps({n: sorted(getattr(c, 'commands', {}) or {}) for n, c in group.commands.items()}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; keep it to {README_MAX_LINES} and move the rest into docs/"


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_heading(page):
    assert broken_links(page, REPO) == []


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_no_page_sends_the_reader_outside_the_repository(page):
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{page.name} mentions ../shared, which readers of the repository do not have"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(REPO / unquote(t.partition("#")[0])).resolve() for _, t in links(README) if t.partition("#")[0]}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert missing == []


def test_each_docs_page_says_who_it_is_for():
    for page in sorted(DOCS.glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("# "), f"{page.name} does not start with a title"
        first_paragraph = next(line for line in lines[1:] if line.strip())
        assert first_paragraph.startswith("For "), f"{page.name}: the first paragraph should say who the page is for"


def test_readme_commands_are_real_commands():
    known = cli_commands()
    named = readme_commands(README.read_text(encoding="utf-8"))
    assert len(named) >= len(known), "the Commands table lists fewer commands than the CLI has"
    for words in named:
        assert words, "a row of the Commands table names no command"
        assert words[0] in known, f"`vsearch {words[0]}` is not a command"
        if known[words[0]]:  # a group: the README must name one of its subcommands
            assert len(words) > 1 and words[1] in known[words[0]], f"`vsearch {' '.join(words)}` is not a command"


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The link checker reports a missing file, a missing heading and a link out of the repository;
    the command reader stops at placeholders and options."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## Two words\n\n## Two words\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md#two-words-1) [self](#here) [web](https://example.org/x.md)\n"
        "## Here\n"
        "[gone](docs/b.md) [no heading](docs/a.md#three) [out](../elsewhere.md)\n"
        "```\n[in code](docs/c.md)\n```\n"
    )
    problems = broken_links(page, tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == ["docs/b.md points to a missing file", "docs/a.md#three names a heading that a.md does not have", "../elsewhere.md points outside the repository"]
    table = "## Commands\n\n| `vsearch train retrieval --data X` | x |\n| `vsearch index DIR` / `vsearch nosuch` | y |\n## Next\n| `vsearch later` | z |\n"
    assert readme_commands(table) == [["train", "retrieval"], ["index"], ["nosuch"]]
    assert slug("Temporal order, before time reversal") == "temporal-order-before-time-reversal"
    assert slug("The demo model's recipe") == "the-demo-models-recipe"
