"""Helpers of the documentation tests: fenced code blocks of docs/*.md, snippet includes.

The site includes example files with pymdownx.snippets: a fence whose only line is
``--8<-- "examples/gateway.toml"`` shows that file. :func:`code_blocks` resolves such
lines, so a test sees what a reader sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*$")
_SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"$')


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, text, file and first line number."""

    lang: str
    text: str
    path: Path
    line: int
    #: The file it includes, when the block is a snippet include.
    included: Path | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of the Markdown file ``path``, snippets resolved."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, lang, start = m["indent"], m["lang"], i + 1
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :])
            i += 1
        i += 1
        blocks.append(_resolve(lang, body, path, start))
    return blocks


def _resolve(lang: str, body: list[str], path: Path, line: int) -> Block:
    if len(body) == 1 and (s := _SNIPPET.match(body[0].strip())) is not None:
        included = ROOT / s["path"]
        return Block(lang, included.read_text(encoding="utf-8"), path, line, included)
    return Block(lang, "\n".join(body) + "\n", path, line)


def doc_pages() -> list[Path]:
    """Every Markdown page of the site."""
    return sorted(DOCS.rglob("*.md"))


def heredoc(text: str, start: str, end: str) -> str:
    """The lines of ``text`` between the line ``start`` and the line ``end``."""
    lines = text.splitlines()
    first = lines.index(start) + 1
    last = lines.index(end, first)
    return "\n".join(lines[first:last]) + "\n"
