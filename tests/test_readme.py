"""The README is the user's manual: its Python API examples run as written (with their small sizes), and its
records-column table is the records schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nodebench.schema import markdown

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def code_blocks(text: str, language: str = "python") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(code_blocks(section("Python API")))))
def test_python_api_examples_run(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code_blocks(section("Python API"))[index], f"README Python API block {index}", "exec"), {})


def test_the_records_table_is_the_schema():
    table = README.split("<!-- schema:start -->\n")[1].split("\n<!-- schema:end -->")[0]
    assert table == markdown()
