"""The front-door documents: every relative link and #anchor points at something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "experiments/README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the headings of `markdown` (code blocks skipped)."""
    found, fenced = set(), False
    for line in markdown.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_anchors_follow_githubs_rule():
    doc = ROOT / "experiments" / "README.md"
    assert "mnist_sum_bis-the-last-to-reach-098" in anchors(doc)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_resolves(document):
    source = ROOT / document
    broken = []
    for target in LINK.findall(source.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        linked = (source.parent / path).resolve() if path else source
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {linked.name}")
    assert not broken, f"{document}: " + "; ".join(broken)


def test_the_readmes_flagship_table_is_the_one_its_records_give():
    """The README's results table is `experiments/mnist_bar.py`'s, from the committed records:
    after new runs, `make study-mnist-bar` rewrites both."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bar", ROOT / "experiments" / "mnist_bar.py")
    bar = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bar)
    readme = (ROOT / "README.md").read_text()
    rows = bar.flagship_rows(bar.RESULTS)
    assert bar.with_readme_table(readme, rows) == readme
    with pytest.raises(ValueError, match="lacks the marks"):
        bar.with_readme_table("# a README without them", rows)
