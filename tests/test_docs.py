"""The README is a user's document: its links resolve, its picture exists, the generated benchmark table
lives in docs/benchmarks.md (where `benchmarks.run --update-readme` writes it), and it says what each
default costs."""

import re
from pathlib import Path

from benchmarks import run as bench

REPO = Path(__file__).resolve().parent.parent


def test_readme_links_and_picture_resolve():
    text = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert "docs/report.png" in targets and "docs/design.md" in targets and "docs/benchmarks.md" in targets
    for target in targets:
        assert (REPO / target).is_file(), target
    assert len(text.splitlines()) < 140  # the long material is in docs/


def test_readme_states_the_cost_of_each_default_command():
    rows = [ln for ln in (REPO / "README.md").read_text().splitlines() if ln.startswith("| `")]
    commands = {"search --space mlp", "search --space cnn", "search --space transfer", "retrain-best", "predict",
                "review", "scripts/test.sh"}
    for command in commands:
        row = next((r for r in rows if command in r.split("|")[1]), None)
        assert row is not None, command
        assert re.search(r"\d+\s*(min|s\b|m\d)|seconds?|second", row.split("|")[3]), row


def test_benchmark_table_is_spliced_into_docs_not_the_readme():
    assert bench.README == REPO / "docs" / "benchmarks.md"
    docs = bench.README.read_text()
    assert docs.count(bench.MARK_START) == 1 and docs.count(bench.MARK_END) == 1
    assert bench.MARK_START not in (REPO / "README.md").read_text()
