#!/usr/bin/env python3
"""Check the documentation's links: every relative link in README.md, CONTRIBUTING.md and
docs/ must name a file or folder that exists, and an ``#anchor`` must name a heading of the
markdown file it points into (GitHub's heading ids). Paths under ``docs/`` quoted in the
code (comments and docstrings pointing a reader at a page) must exist too.

    python scripts/check_links.py        # exit code 1 and one line per broken link

Run by ``make lint``. Links to other sites (``https:``, ``mailto:``) are not fetched.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("README.md", "CONTRIBUTING.md", "docs")
CODE = ("service", "graph", "vectors", "loft_memory", "bench", "tests", "scripts", "frontend", "Makefile")

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
CODE_DOC_PATH = re.compile(r"(?<![\w/.-])(docs/[\w./-]+\.md)(#[\w-]+)?")


def pages() -> Iterator[Path]:
    for name in PAGES:
        path = ROOT / name
        if path.is_dir():
            yield from sorted(path.rglob("*.md"))
        elif path.exists():
            yield path


def prose_lines(text: str, *, blank_code: bool = True) -> Iterator[tuple[int, str]]:
    """The lines outside fenced code blocks (with inline code blanked out, unless not
    ``blank_code``): a link inside code is an example, not a link."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, INLINE_CODE.sub(lambda m: " " * len(m.group()), line) if blank_code else line


def slug(heading: str) -> str:
    """GitHub's id for a heading: the text without markup, lower-cased, punctuation other
    than hyphens and underscores dropped, spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8"), blank_code=False):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def check_target(source: Path, target: str) -> str | None:
    """Why ``target`` (as written in ``source``) is broken, or None."""
    if EXTERNAL.match(target):
        return None
    path_part, _, anchor = target.partition("#")
    resolved = (source.parent / path_part).resolve() if path_part else source
    if not resolved.exists():
        return f"no such file: {path_part}"
    if anchor:
        if resolved.is_dir() or resolved.suffix != ".md":
            return f"an anchor into something that is not a markdown file: {target}"
        if anchor not in anchors(resolved):
            return f"no heading '#{anchor}' in {resolved.relative_to(ROOT)}"
    return None


def check_pages() -> Iterator[str]:
    for page in pages():
        for number, line in prose_lines(page.read_text(encoding="utf-8")):
            targets = [m.group(1) for m in LINK.finditer(line)]
            reference = REFERENCE.match(line)
            if reference:
                targets.append(reference.group(1))
            for target in targets:
                problem = check_target(page, target)
                if problem:
                    yield f"{page.relative_to(ROOT)}:{number}: {problem}"


def code_files() -> Iterator[Path]:
    for name in CODE:
        path = ROOT / name
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in {".py", ".html", ".sh"})
        elif path.exists():
            yield path


def check_code() -> Iterator[str]:
    for file in code_files():
        for number, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for match in CODE_DOC_PATH.finditer(line):
                target = match.group(1) + (match.group(2) or "")
                problem = check_target(ROOT / "README.md", target)
                if problem:
                    yield f"{file.relative_to(ROOT)}:{number}: {problem}"


def main() -> int:
    problems = [*check_pages(), *check_code()]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
