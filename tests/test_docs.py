"""Every relative link in README.md, docs/, deploy/ and examples/ resolves to a file of this repository.

A link that works only on the author's machine (``../shared/…`` beside the checkout, or a file
that git ignores) is broken in every clone. This reads the Markdown only; it imports nothing
from ``app`` and needs no server.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: ``[text](target)`` and ``![alt](target)``; the target may be ``<…>`` and carry a "title".
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
#: ``[label]: target`` reference definitions.
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
#: Anything with a URI scheme (http:, https:, mailto:, …) is not a path in this repository.
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files() -> list[Path]:
    found = (path for top in ("docs", "deploy", "examples") for path in (ROOT / top).glob("**/*.md"))
    return [ROOT / "README.md", *sorted(found)]


def _without_code(text: str) -> str:
    """The text with fenced code blocks and code spans blanked (line numbers kept)."""
    lines, fence = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            lines.append("")
        elif fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            lines.append("")
        else:
            lines.append(CODE_SPAN.sub("", line))
    return "\n".join(lines)


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition."""
    prose = _without_code(text)
    found = []
    for pattern in (INLINE_LINK, REFERENCE_DEFINITION):
        for match in pattern.finditer(prose):
            target = match.group(1)
            if target.startswith("<") and target.endswith(">"):
                target = target[1:-1]
            found.append((match.start(), target.strip()))
    return [(prose.count("\n", 0, start) + 1, target) for start, target in sorted(found)]


def _shipped_files() -> set[str] | None:
    """Files a clone has (tracked, or new and not ignored), or None outside a git checkout."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        listed = subprocess.run(
            [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    return {name for name in listed.decode("utf-8", "surrogateescape").split("\0") if name}


def broken_links(source: Path, shipped: set[str] | None, text: str | None = None) -> list[str]:
    """Relative links of ``source`` (or of ``text``, read as if it were ``source``) that a clone
    cannot follow, each as ``"file:line: target (why)"``."""
    if text is None:
        text = source.read_text(encoding="utf-8")
    problems = []
    for line, target in links(text):
        if not target or target.startswith(("#", "//")) or SCHEME.match(target):
            continue
        path = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not path:
            continue
        base = ROOT if path.startswith("/") else source.parent  # "/x" is the repository's root on GitHub
        resolved = (base / path.lstrip("/")).resolve()
        where = f"{source.relative_to(ROOT).as_posix()}:{line}: {target}"
        try:
            relative = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            problems.append(f"{where} (points outside the repository)")
            continue
        if not resolved.exists():
            problems.append(f"{where} (no such file)")
        elif shipped is None or relative == ".":
            continue
        elif resolved.is_file() and relative not in shipped:
            problems.append(f"{where} (ignored by git: not in a clone)")
        elif resolved.is_dir() and not any(name.startswith(relative + "/") for name in shipped):
            problems.append(f"{where} (a directory with no files in a clone)")
    return problems


@pytest.mark.parametrize("source", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_relative_links_resolve_inside_the_repository(source: Path) -> None:
    assert source.exists(), f"{source.relative_to(ROOT)} is missing"
    assert broken_links(source, _shipped_files()) == []


def test_the_checker_finds_broken_links() -> None:
    """The parser itself: what counts as a link, and what is skipped."""
    text = """\
[ok](README.md) ![img](<docs/api.md> "title") [web](https://example.com) [mail](mailto:a@b.c)
[anchor](#conventions) [with anchor](docs/api.md#access) `[code](nope.md)`
```
[fenced](also-nope.md)
```
[ref]: ../outside.md
[gone](docs/no-such-file.md) [[nested] text](missing%20file.md)
"""
    assert [target for _, target in links(text)] == [
        "README.md",
        "docs/api.md",
        "https://example.com",
        "mailto:a@b.c",
        "#conventions",
        "docs/api.md#access",
        "../outside.md",
        "docs/no-such-file.md",
        "missing%20file.md",
    ]
    source = ROOT / "docs" / "_probe.md"  # never written: the text is read as if it were this file
    problems = broken_links(source, None, text.replace("](README.md)", "](../README.md)").replace("docs/", ""))
    assert [problem.split(": ", 1)[1] for problem in problems] == [
        "../outside.md (no such file)",
        "no-such-file.md (no such file)",
        "missing%20file.md (no such file)",
    ]
    outside = broken_links(source, None, "[up](../../shared/CONTRACT.md) [root](/README.md)")
    assert outside == ["docs/_probe.md:1: ../../shared/CONTRACT.md (points outside the repository)"]


README = ROOT / "README.md"
#: A file an example reads, as the examples write it: ``-F file=@path``, ``--FIELD @path`` (curl, the CLI),
#: ``submit_text_file("path")`` and ``open("path")`` (Python). ``@-`` is stdin.
EXAMPLE_FILE = re.compile(r"""(?:=@|--[\w-]+ @|submit_text_file\(["']|open\(["'])([^\s"'`)]+)""")


def test_the_readme_opens_with_what_offload_is_the_two_commands_a_first_job_and_where_to_go_next() -> None:
    """Issue 25: the quick start was lost among benchmark, HA and soak detail (~700 lines)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    headings = [line for line in _without_code("\n".join(lines)).splitlines() if line.startswith("## ")]
    assert headings[:4] == ["## The two commands", "## A first job", "## Where to go next", "## Write your own task"]
    first_screen = "\n".join(lines[: lines.index("## Where to go next") + 1])
    assert len(first_screen.splitlines()) <= 40, "what offload is, the two commands and a first job fit one screen"
    for needed in ("make run", "make test", "curl -s -X POST localhost:8000/jobs", ".venv/bin/offload"):
        assert needed in first_screen, needed
    assert len(lines) < 250, "the reference belongs in docs/"


def test_the_readme_leads_to_every_document() -> None:
    targets = {target.split("#", 1)[0] for _, target in links(README.read_text(encoding="utf-8"))}
    documents = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    assert documents - targets == set()


@pytest.mark.parametrize("source", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_the_files_examples_read_ship_with_the_checkout(source: Path) -> None:
    """Examples run from the checkout (offload's, or the example's own for its README): a file one
    reads is there (issue 25: ``notes.txt`` was not, and ``curl -s`` printed nothing)."""
    base = ROOT if source.parent in (ROOT, ROOT / "docs") else source.parent
    text = source.read_text(encoding="utf-8")
    # "@-" is stdin; "--FIELD @path" names the syntax, not a file (no file name has no extension here).
    read = [match.group(1) for match in EXAMPLE_FILE.finditer(text) if "." in match.group(1).rsplit("/", 1)[-1]]
    missing = [path for path in read if not (ROOT / path).is_file() and not (base / path).is_file()]
    assert missing == [], f"{source.relative_to(ROOT)} reads files a checkout does not have"
