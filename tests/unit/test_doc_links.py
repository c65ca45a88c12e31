"""Every link in README.md and docs/ leads somewhere: a file of the repository (and, with an
anchor, a heading of it), or an address on the web (not fetched: no network in tests)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), ROOT / "deploy" / "README.md"])
# [text](target) and ![alt](target), not inside code spans; <http://…> autolinks are web addresses.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`]*`")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def links_in(text: str) -> list[str]:
    text = FENCE.sub("", text)
    return [m.group(1) for line in text.splitlines() for m in LINK.finditer(CODE_SPAN.sub("", line))]


def anchors_of(path: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    anchors = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        if match := re.match(r"^#{1,6}\s+(.*)$", line):
            heading = re.sub(r"[`*_]", "", match.group(1)).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_leads_somewhere(document: Path) -> None:
    dead = []
    for target in links_in(document.read_text()):
        if re.match(r"^[a-z]+:", target):  # http(s), mailto: outside the repository
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists() or not resolved.is_relative_to(ROOT):
            dead.append(f"{target} (no such file in the repository)")
        elif anchor and resolved.suffix == ".md" and anchor.lower() not in anchors_of(resolved):
            dead.append(f"{target} (no such heading)")
    assert dead == [], f"dead links in {document.relative_to(ROOT)}: {dead}"


def test_the_checker_finds_a_dead_link(tmp_path: Path) -> None:
    assert links_in("see [a](docs/x.md#y) and `[not](a-link)`\n```\n[nor](this)\n```") == ["docs/x.md#y"]
    page = tmp_path / "page.md"
    page.write_text("# Hello, world\n## The `code` part\n")
    assert anchors_of(page) == {"hello-world", "the-code-part"}
