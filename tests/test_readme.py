"""The README is the user's manual: its Python API examples run as written (with their small sizes), and its
records-column table is the records schema."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import types
from pathlib import Path

import pytest

from nodebench import cli
from nodebench.datasets import cli as data_cli
from nodebench.schema import markdown

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def code_blocks(text: str, language: str = "python") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


ROOT = Path(__file__).resolve().parents[1]
#: Every ```python block of the READMEs, in order: (file, index, code). The Python API section trains (slow);
#: the other blocks are library examples with small sizes and run in seconds.
BLOCKS = [(path.relative_to(ROOT).as_posix(), i, code)
          for path in [ROOT / "README.md", ROOT / "reproduce" / "README.md",
                       *sorted((ROOT / "nodebench" / "papers").glob("*/README.md"))]
          for i, code in enumerate(code_blocks(path.read_text()))]
API_BLOCKS = code_blocks(section("Python API"))


def _run_block(code: str, name: str) -> None:
    """Run ``code`` as the body of a module ``__readme__``, registered in ``sys.modules`` as a script's
    ``__main__`` is (``torch.compile`` looks up the module of the functions it traces)."""
    module = types.ModuleType("__readme__")
    sys.modules["__readme__"] = module
    try:
        exec(compile(code, name, "exec"), module.__dict__)
    finally:
        del sys.modules["__readme__"]


@pytest.fixture
def registries():
    """What a block registers (reproduce/README.md's check and analysis examples) is removed after it: each block
    runs as in a session of its own, and later tests see the installed papers' registries only."""
    from nodebench.analyses import ANALYSES
    from nodebench.claims import CHECKS
    from nodebench.methods import METHODS
    from nodebench.metrics import METRICS
    from nodebench.plots import RUN_FIGURES
    from nodebench.tasks import FILE_TASKS, TASKS

    saved = [(registry, dict(registry), dict(registry.origins), set(registry.by_plugins))
             for registry in (ANALYSES, CHECKS, METHODS, METRICS, RUN_FIGURES, FILE_TASKS, TASKS)]
    yield
    for registry, entries, origins, by_plugins in saved:
        registry.clear(), registry.origins.clear(), registry.by_plugins.clear()
        registry.update(entries), registry.origins.update(origins), registry.by_plugins.update(by_plugins)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One temporary working directory for all blocks: the records example reads what the API example wrote."""
    return tmp_path_factory.mktemp("readme")


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(API_BLOCKS)))
def test_python_api_examples_run(index, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    _run_block(API_BLOCKS[index], f"README Python API block {index}")


@pytest.mark.parametrize("path, index, code", [b for b in BLOCKS if b[2] not in API_BLOCKS],
                         ids=[f"{p}#{i}" for p, i, c in BLOCKS if c not in API_BLOCKS])
def test_every_other_readme_python_block_runs(path, index, code, workdir, monkeypatch, registries):
    """Library examples define what they use; an example that reads a run's records needs the API example's
    run first (slow), and is skipped with that reason when it has not run."""
    monkeypatch.chdir(workdir)
    if "results/api-spiral" in code and not (workdir / "results" / "api-spiral" / "records.parquet").exists():
        pytest.skip("reads the Python API example's run (a slow test); run with the slow tests")
    _run_block(code, f"{path} python block {index}")


def test_every_python_block_is_collected():
    assert len(BLOCKS) >= 8 and len(API_BLOCKS) == 2
    assert sum(path == "reproduce/README.md" for path, _, _ in BLOCKS) == 2  # the plug-in guide's, run too


def test_the_readme_says_what_a_dry_run_returns(tmp_path):
    """README, "Python API": the fields a dry run's ``RunResult`` leaves ``None`` are those ``run`` leaves
    ``None`` (it said ``out`` was, where a dry run returns the folder it would use, for ``describe_cases`` and a
    resume check)."""
    import nodebench

    sentence = re.search(r"A dry run .*?\. ", " ".join(section("Python API").split()))[0]
    said_none = re.findall(r"`(\w+)`(?: and `(\w+)`)? (?:is|are) `None`", sentence)
    result = nodebench.run("g1d", "rk4", iters=1, out=tmp_path / "run", dry_run=True)
    assert {name for pair in said_none for name in pair if name} == {
        name for name in ("out", "report", "records", "curves") if getattr(result, name) is None}
    assert result.out == tmp_path / "run" and not result.out.exists()


def test_the_records_table_is_the_schema():
    table = README.split("<!-- schema:start -->\n")[1].split("\n<!-- schema:end -->")[0]
    assert table == markdown()


def nodebench_command_lines(text: str) -> list[list[str]]:
    """The arguments of every ``nodebench ...`` command in shell ``text``: continued lines joined, comments,
    leading ``VAR=value`` assignments and the other commands of a ``&&`` chain left out."""
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token not in ("&&", "||", ";", "|", "&"):
                words.append(token)
                continue
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                words.pop(0)
            if words and words[0].rsplit("/", 1)[-1] == "nodebench":
                commands.append(words[1:])
            words = []
    return commands


#: The user's manuals: the README, the plug-in and data guides, the papers' READMEs.
DOCS = [ROOT / "README.md", ROOT / "reproduce" / "README.md", ROOT / "datasets" / "README.md",
        *sorted((ROOT / "nodebench" / "papers").glob("*/README.md"))]
#: Every ``nodebench`` command of the READMEs' bash blocks and of the ``--help`` examples: (where, arguments).
COMMANDS = [(path.relative_to(ROOT).as_posix(), argv)
            for path in DOCS
            for block in code_blocks(path.read_text(), "bash") for argv in nodebench_command_lines(block)] + [
    ("--help", argv) for examples in (cli.EXAMPLES, data_cli.EXAMPLES) for argv in nodebench_command_lines(examples)]


SUBCOMMANDS = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
#: Every ``nodebench ...`` command written inline in the READMEs' prose (`` `nodebench report DIR` ``), with its
#: place-holders; a bare command name (`` `nodebench run` ``) and a synopsis (``[NAME]``, ``a | b``) left out.
INLINE = [(path.relative_to(ROOT).as_posix(), argv)
          for path in DOCS
          for span in re.findall(r"`([^`\n]*)`", re.sub(r"```.*?```", "", path.read_text(), flags=re.S))
          if re.search(r"(^|[ /])nodebench [a-z]", span) and not re.search(r"[\[|…]", span)
          for argv in nodebench_command_lines(span)
          if argv and argv[0] in SUBCOMMANDS and len(argv) > (2 if argv[0] == "data" else 1)]


@pytest.mark.parametrize("where, argv", INLINE, ids=[f"{w}: {' '.join(a)}" for w, a in INLINE])
def test_every_inline_command_line_parses(where, argv):
    """A command quoted in the text is copied as often as one in a block: its required options are there too."""
    cli.build_parser().parse_args(argv)


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[f"{w}: {' '.join(a)}" for w, a in COMMANDS])
def test_every_documented_command_line_parses(where, argv):
    """Each option spelled as the parser spells it, each value of the option's type (names are checked by the
    commands themselves)."""
    cli.build_parser().parse_args(argv)


#: Every ``benchmarks/NAME.py`` command of the READMEs' bash blocks: (where, script, its ``--options``).
SCRIPT_COMMANDS = [(path.relative_to(ROOT).as_posix(), match[1], re.findall(r"(?<![\w-])--[a-z][\w-]*", match[2]))
                   for path in DOCS for block in code_blocks(path.read_text(), "bash")
                   for line in block.replace("\\\n", " ").splitlines()
                   for match in [re.search(r"(benchmarks/\w+\.py)([^#]*)", line)] if match]


@pytest.mark.parametrize("where, script, flags", SCRIPT_COMMANDS,
                         ids=[f"{w}: {s} {' '.join(f)}" for w, s, f in SCRIPT_COMMANDS])
def test_every_documented_benchmark_command_names_the_scripts_own_options(where, script, flags):
    """A benchmark script exists and declares each option its documented command gives (read from its source:
    the scripts import torch, and their parsers live in ``main``)."""
    source = (ROOT / script).read_text()
    assert [flag for flag in flags if f'"{flag}"' not in source] == []


def test_the_readme_documents_every_option_of_every_command():
    """Every option a ``--help`` lists appears in the README: in a table, the text or an example."""
    def options(parser: argparse.ArgumentParser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from options(sub)
            yield from (flag for flag in action.option_strings if flag not in ("-h", "--help"))

    assert len(COMMANDS) >= 40
    undocumented = {flag for flag in options(cli.build_parser()) if not re.search(rf"{flag}(?![\w-])", README)}
    assert sorted(undocumented) == []


def test_a_method_registered_by_a_script_is_refused_before_anything_runs(tmp_path):
    """README, "Your own method or task": the worker process of each case never imports the user's script, so a
    method registered there is one line up front, not a sweep whose every case fails as an unknown method."""
    import nodebench
    from nodebench.errors import UserError
    from nodebench.methods import METHODS

    script = ("from nodebench.methods import METHODS, Backprop\n"
              "METHODS.register(obj=Backprop('heun3_script', 'heun3', adaptive=False, description='Heun 3'))\n")
    exec(compile(script, "my_script.py", "exec"), {"__name__": "__main__"})
    try:
        with pytest.raises(UserError, match=r"method 'heun3_script' is registered by your script .*paper plug-in"):
            nodebench.run("cubic_spiral", ["heun3_script"], iters=1, out=tmp_path / "run", dry_run=True)
        assert not (tmp_path / "run").exists()
    finally:
        METHODS.pop("heun3_script", None)
        METHODS.origins.pop("heun3_script", None)


def test_a_method_registered_by_a_module_no_plugin_imports_is_refused_naming_the_module(tmp_path, monkeypatch):
    """The same for a module of the user's that no paper plug-in imports: the workers never import it either, so it
    is refused up front naming the module (it used to reach the run, every case an ``unknown method`` error row);
    what a plug-in's import registers, from any module, the workers register too and is accepted."""
    import nodebench
    from nodebench.errors import UserError
    from nodebench.methods import METHODS
    from nodebench.registry import importing_plugins

    (tmp_path / "my_methods.py").write_text(
        "from nodebench.methods import METHODS, Backprop\n"
        "METHODS.register(obj=Backprop('heun3_module', 'heun3', adaptive=False, description='Heun 3'))\n")
    (tmp_path / "plugin_helper.py").write_text(
        "from nodebench.methods import METHODS, Backprop\n"
        "METHODS.register(obj=Backprop('heun3_helper', 'heun3', adaptive=False, description='Heun 3'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import my_methods  # noqa: F401
        with importing_plugins():
            import plugin_helper  # noqa: F401
        with pytest.raises(UserError, match=r"^method 'heun3_module' is registered by module 'my_methods', which no "
                                            r"paper plug-in imports; .*register it in a paper plug-in"):
            nodebench.run("cubic_spiral", ["heun3_module"], iters=1, out=tmp_path / "run", dry_run=True)
        assert not (tmp_path / "run").exists()
        nodebench.run("cubic_spiral", ["heun3_helper"], iters=1, out=tmp_path / "ok", dry_run=True)
    finally:
        for name in ("heun3_module", "heun3_helper"):
            METHODS.pop(name, None)
            METHODS.origins.pop(name, None)
            METHODS.by_plugins.discard(name)
        for module in ("my_methods", "plugin_helper"):
            sys.modules.pop(module, None)
