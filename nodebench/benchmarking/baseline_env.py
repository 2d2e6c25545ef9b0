"""A baseline revision of nodebench, installed once into its own cached environment, to run side by side.

``prepare_baseline("main")`` resolves the revision to a commit, and on first use:

1. checks the commit out into a temporary git worktree (``git worktree add --detach``);
2. creates a virtual environment keyed by the commit, ``CACHE/<sha>/venv`` (``CACHE`` is
   ``$NODEBENCH_CACHE`` or ``~/.cache/nodebench``, under ``baselines/``), without pip, whose
   ``_nodebench_base.pth`` puts the current environment's site-packages on its path, so torch and every
   other dependency is shared, never reinstalled;
3. installs the baseline package into it with ``pip install --no-deps --no-build-isolation --no-index``
   (a copy, so the worktree is removed afterwards);
4. writes ``baseline.json`` last, the marker that the environment is complete, and renames the folder
   it was built in to ``CACHE/<sha>`` (so concurrent runs never see half an environment).

Later runs with the same commit reuse the environment. Workers of the baseline run as
``CACHE/<sha>/venv/bin/python -I -m nodebench.runner.worker ...``: isolated mode, so neither the
candidate's ``PYTHONPATH`` nor the current directory can shadow the installed baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nodebench.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER = "baseline.json"


@dataclass(frozen=True)
class BaselineEnv:
    """An installed baseline: its commit, subject line and the interpreter that runs its workers."""

    sha: str
    subject: str
    python: Path

    def command(self) -> list[str]:
        """The interpreter command of a baseline worker (isolated mode, see the module docstring)."""
        return [str(self.python), "-I"]

    def has_module(self, dotted: str) -> bool:
        """Whether the installed baseline has module ``dotted`` (``nodebench.runner.lockstep``): what an
        older commit cannot do is left out of the A/B run rather than failing it."""
        relative = Path(*dotted.split(".")).with_suffix(".py")
        return any(self.python.parents[1].glob(f"lib/python*/site-packages/{relative}"))


def cache_root() -> Path:
    """Where baseline environments are kept: ``$NODEBENCH_CACHE/baselines`` or ``~/.cache/nodebench/baselines``."""
    env = os.environ.get("NODEBENCH_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "nodebench") / "baselines"


def _git(*args: str, cwd: Path = REPO_ROOT) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise UserError("git is not installed; --baseline needs git to check the baseline revision out") from None
    except subprocess.CalledProcessError as err:
        last = (err.stderr or err.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"git {' '.join(args)} failed: {last[0]}") from None
    return done.stdout.strip()


def resolve(rev: str) -> tuple[str, str]:
    """``(sha, subject)`` of a revision of the nodebench checkout; an unknown revision is a :class:`UserError`."""
    if not (REPO_ROOT / ".git").exists():
        raise UserError(f"{REPO_ROOT} is not a git checkout; --baseline needs nodebench's git history")
    try:
        sha = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
    except subprocess.CalledProcessError:
        raise UserError(f"unknown git revision {rev!r}; give a commit, branch or tag of {REPO_ROOT} "
                        "(e.g. HEAD, main, HEAD~1)") from None
    return sha, _git("log", "-1", "--format=%s", sha)


def _site_packages() -> list[str]:
    """The current environment's library folders (shared by every baseline environment)."""
    paths = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    return list(dict.fromkeys(p for p in paths if p and Path(p).is_dir()))


def prepare_baseline(rev: str, *, log=print) -> BaselineEnv:
    """The cached environment of revision ``rev``, built on first use (see the module docstring).

    It is built in a private folder beside its final place and renamed into place when complete, so two
    runs that install the same commit at once cannot break each other's environment."""
    sha, subject = resolve(rev)
    home = cache_root() / sha
    python = home / "venv" / "bin" / "python"
    if (home / MARKER).is_file() and python.exists():
        return BaselineEnv(sha, subject, python)
    log(f"installing baseline {sha[:12]} ({subject}) into {home} (once per commit)")
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{sha}.", dir=home.parent))
    try:
        _install(sha, subject, staging)
        shutil.rmtree(home, ignore_errors=True)  # an incomplete one, without its marker
        try:
            staging.rename(home)
        except OSError:  # another run put a complete environment in place meanwhile
            if not (home / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BaselineEnv(sha, subject, python)


def _install(sha: str, subject: str, home: Path) -> None:
    """Create the environment of commit ``sha`` in ``home`` (its shebangs and ``pyvenv.cfg`` do not name
    ``home``'s path in a way ``python -I -m`` depends on, so the folder can be renamed afterwards)."""
    venv = home / "venv"
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_nodebench_base.pth").write_text("\n".join(_site_packages()) + "\n")
    with tempfile.TemporaryDirectory(prefix="nodebench-baseline-") as tmp:
        checkout = Path(tmp) / "src"
        _git("worktree", "add", "--detach", str(checkout), sha)
        try:
            install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                                      "--no-build-isolation", "--no-index", "--ignore-installed", str(checkout)],
                                     capture_output=True, text=True, check=False)
        finally:
            _git("worktree", "remove", "--force", str(checkout))
    if install.returncode != 0:
        last = (install.stderr or install.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"cannot install baseline {sha[:12]}: pip failed: {last[0]}")
    (home / MARKER).write_text(json.dumps({"sha": sha, "subject": subject, "shared_site_packages": _site_packages()},
                                          indent=1))
