"""Figures the documentation quotes next to a committed `results/…` folder come from that folder: the paths it
names exist, and the smoke timings quoted in the READMEs are the last run in `smoke_timings-cpu/timings.log`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "results" / "baselines" / "README.md", ROOT / "results" / "README.md",
        ROOT / "datasets" / "README.md", ROOT / "reproduce" / "README.md",
        *sorted((ROOT / "nodebench" / "papers").glob("*/README.md"))]
#: Paths the README gives as examples of what a command writes, not committed folders.
EXAMPLES = re.compile(r"results/history/box/|/index\.html$")
TIMINGS = ROOT / "results" / "baselines" / "smoke_timings-cpu" / "timings.log"


def committed_paths(text: str) -> list[str]:
    """Every `results/baselines/…`, `results/history/…` and `results/gate_study…` path in ``text`` (a path
    elided with … stops there)."""
    paths = re.findall(r"results/(?:baselines|history|gate_study\w*)[\w./-]*", text)
    return [path.rstrip(".") for path in paths if not EXAMPLES.search(path.rstrip("."))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_committed_folder_a_document_cites_exists(doc):
    missing = [path for path in committed_paths(doc.read_text()) if not (ROOT / path).exists()]
    assert missing == []


def last_smoke_run() -> tuple[str, dict[str, str]]:
    """The commit of the last run in timings.log and each paper's wall time as "M min S s"."""
    run = TIMINGS.read_text().strip().split("\n\n")[-1]
    commit = re.match(r"commit ([0-9a-f]{7,40});", run).group(1)
    walls = {paper: round(float(seconds)) for paper, seconds in re.findall(r"^(\w+) wall ([0-9.]+) s", run, re.M)}
    return commit, {paper: f"{s // 60} min {s % 60} s" for paper, s in walls.items()}


def test_smoke_timings_quoted_are_the_committed_run():
    """The README's table and each paper README's smoke line quote the last committed run (the paper READMEs
    quoted 2 min 51 s, 2 min 33 s, 1 min 58 s and 1 min 59 s from uncommitted runs on another machine)."""
    commit, walls = last_smoke_run()
    assert set(walls) == {"do_vs_od", "gq_adjoint", "taynode", "snode"}
    readme = (ROOT / "README.md").read_text()
    assert f"one after the other at commit {commit}" in readme
    for paper, wall in walls.items():
        assert re.search(rf"^\| `{paper}` \|.*\| {wall} \|$", readme, re.M), (paper, wall)
        smoke = [line for line in (ROOT / "nodebench" / "papers" / paper / "README.md").read_text().splitlines()
                 if "--preset smoke" in line and " min " in line]
        assert smoke and all(wall in line for line in smoke), (paper, wall, smoke)
