"""The repository stands alone: no file cites notes kept outside it, and every
`docs/<page>.md#<anchor>` cited anywhere names a heading that exists on that page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCANNED_DIRS = ("statek", "benchmarks", "tests", "docs")
SCANNED_SUFFIXES = (".py", ".pyx", ".pyi", ".md", ".txt", ".toml", ".sh", ".json")
# Built from parts so that this file does not cite them itself.
OUTSIDE_NOTES = ("notes/" + "dbzero.md", "DESIGN" + ".md", "../" + "shared")
CITATION = re.compile(r"docs/([\w.-]+\.md)#([\w-]+)")
RELATIVE_LINK = re.compile(r"\]\(([\w.-]+\.md)#([\w-]+)\)")
SAME_PAGE_LINK = re.compile(r"\]\(#([\w-]+)\)")
PAGE_MENTION = re.compile(r"docs/([\w.-]+\.md)\b")


def scanned_files() -> list[Path]:
    """Source, tests, benchmarks and every Markdown file of the checkout (not the venv)."""
    files = sorted(ROOT.glob("*.md"))
    for name in SCANNED_DIRS:
        files += sorted(p for p in (ROOT / name).rglob("*")
                        if p.is_file() and p.suffix in SCANNED_SUFFIXES
                        and "__pycache__" not in p.parts)
    return files


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped (word
    characters, spaces and hyphens kept), spaces turned into hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> list[str]:
    """Anchors of the headings of `page`, outside fenced code blocks."""
    found, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            found.append(slug(match.group(1)))
    return found


def citations() -> list[tuple[Path, str, str]]:
    """(citing file, page, anchor) for every anchored docs citation in the repository."""
    cited = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        cited += [(path, page, anchor) for page, anchor in CITATION.findall(text)]
        if path.parent == DOCS:
            cited += [(path, page, anchor) for page, anchor in RELATIVE_LINK.findall(text)]
            cited += [(path, path.name, anchor) for anchor in SAME_PAGE_LINK.findall(text)]
    return cited


def test_slug_follows_github() -> None:
    assert slug("S7 List pop leaks") == "s7-list-pop-leaks"
    assert slug("R1 Add a job function") == "r1-add-a-job-function"
    assert slug("W1 `run_jobs_loop`, N=10k") == "w1-run_jobs_loop-n10k"


def test_no_file_cites_notes_outside_the_repository() -> None:
    offenders = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            hits = [note for note in OUTSIDE_NOTES if note in line]
            if hits:
                offenders.append(f"{path.relative_to(ROOT)}:{number} cites {hits[0]!r}")
    assert not offenders, "cite docs/ instead:\n" + "\n".join(offenders)


def test_every_docs_page_exists_and_has_unique_anchors() -> None:
    pages = sorted(DOCS.glob("*.md"))
    assert {p.name for p in pages} >= {"storage.md", "workloads.md", "runner-api.md",
                                       "costs.md", "recipes.md"}
    for page in pages:
        found = anchors(page)
        duplicates = sorted({a for a in found if found.count(a) > 1})
        assert not duplicates, f"{page.name}: headings with the same anchor {duplicates}"


def test_every_mentioned_docs_page_exists() -> None:
    missing = sorted({f"{path.relative_to(ROOT)}: docs/{page}"
                      for path in scanned_files()
                      for page in PAGE_MENTION.findall(path.read_text(encoding="utf-8",
                                                                      errors="replace"))
                      if not (DOCS / page).is_file()})
    assert not missing, "mentions of docs pages that do not exist:\n" + "\n".join(missing)


def test_docs_are_cited() -> None:
    """The check below is not vacuous: code cites storage facts by anchor."""
    cited_pages = {page for _path, page, _anchor in citations()}
    assert "storage.md" in cited_pages


@pytest.mark.parametrize("citation", citations(),
                         ids=lambda c: f"{c[0].relative_to(ROOT)}->{c[1]}#{c[2]}")
def test_cited_anchor_exists(citation: tuple[Path, str, str]) -> None:
    path, page, anchor = citation
    target = DOCS / page
    assert target.is_file(), f"{path.relative_to(ROOT)} cites docs/{page}, which does not exist"
    assert anchor in anchors(target), (
        f"{path.relative_to(ROOT)} cites docs/{page}#{anchor}; its headings give "
        f"{anchors(target)}")
