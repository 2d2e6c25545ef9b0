"""Guards of a sweep's output directory: one sweep at a time, one commit per directory, signals that stop
the workers, and data files that take part in a case's identity.

* :class:`SweepLock` — an advisory ``fcntl.flock`` on ``RUN_DIR/.lock`` held for the whole sweep; the file
  holds the holder's PID so that a second sweep can name it. The kernel drops the lock when its holder
  dies, so the lock of a dead sweep is simply taken over. On a file system without file locks (NFS without
  its lock daemon, Lustre mounted without ``flock``) the sweep goes on unlocked, with a one-line warning.
* :func:`check_commit` — a directory's finished cases all come from one git commit, with uncommitted changes
  or without alike, unless mixing is asked for (``--allow-mixed-commits``): results of two code versions in one
  records file cannot be told apart. Cases of the same commit with uncommitted changes resume with a warning.
* :func:`stop_on_signals` — SIGTERM (sent by SLURM and ``kill``) and SIGHUP (a closed terminal) stop a
  sweep like Ctrl-C: the sweep kills its workers at once and keeps its finished cases.
* :func:`deferred_signals` — Ctrl-C, SIGTERM and SIGHUP held over the few lines that start a worker and
  register it, then delivered: an interrupt never lands between the two, leaving a worker its sweep cannot stop.
* :func:`data_fingerprint` — the SHA-256 of the data file behind ``trajectories:PATH`` and
  ``density:PATH``, part of the case id, so replacing the file reruns its cases instead of keeping the
  old results.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

from nodebench.errors import UserError

LOCK = ".lock"
#: the environment variable through which a sweep tells its workers its PID.
PARENT_PID = "NODEBENCH_PARENT_PID"
#: What ``flock`` raises on a file system that has no file locks.
NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)
DATA_PREFIXES = ("trajectories:", "density:")


class Interrupted(KeyboardInterrupt):
    """A sweep stopped by a signal; ``signal_name`` says which (the exit code is 128 + its number)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.signal_name = signum, signal.Signals(signum).name


@contextlib.contextmanager
def _handled_by(signals, handler):
    """Within the block, ``handler`` takes ``signals`` in the main thread; the previous handlers come back
    afterwards. Outside the main thread (where Python cannot install handlers) the block runs unguarded."""
    try:
        previous = {s: signal.signal(s, handler) for s in signals}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGHUP)):
    """Within the block, ``signals`` raise :class:`Interrupted` (a KeyboardInterrupt) in the main thread, so
    the sweep's clean-up runs; the previous handlers come back afterwards. Outside the main thread (where
    Python cannot install handlers) the block runs unguarded."""
    def handler(signum, frame):
        raise Interrupted(signum)

    with _handled_by(signals, handler):
        yield


@contextlib.contextmanager
def deferred_signals(signals=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)):
    """Within the block, ``signals`` are held; afterwards the previous handlers come back and the first signal
    held is delivered to its handler (a Ctrl-C raises KeyboardInterrupt there, :func:`stop_on_signals`'s
    handler :class:`Interrupted`). For a block that must not be cut in two, e.g. ``subprocess.Popen`` (whose
    child exists once it has forked, before it returns) and the registration of the child. A signal whose
    handler Python did not install, one the process ignores (a shell's background job ignores SIGINT), or
    outside the main thread, is not held."""
    held: list[int] = []
    try:
        with _handled_by([s for s in signals if signal.getsignal(s) not in (None, signal.SIG_IGN)],
                         lambda signum, frame: held.append(signum)):
            yield
    finally:
        if held:
            signal.raise_signal(held[0])


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie not yet reaped counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SweepLock:
    """Exclusive use of ``run_dir`` by this process (see the module docstring); a context manager."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK
        self.handle = None
        self.locked = False  # stays False on a file system without file locks

    def acquire(self) -> "SweepLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.locked = True
        except OSError as err:
            if err.errno in NO_LOCKS:
                print(f"nodebench: warning: {str(self.path.parent)!r} is on a file system without file locks "
                      f"({err.strerror}): a second sweep started there is not refused", file=sys.stderr)
            else:
                handle.close()
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise UserError(f"{str(self.path.parent)!r} is in use by another sweep ({holder_text(self.path)}); "
                                "wait for it to end or give another out (--out)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle
        return self

    def release(self) -> None:
        if self.handle is not None:
            self.handle.seek(0)
            self.handle.truncate()
            if self.locked:
                fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle, self.locked = None, False

    def __enter__(self) -> "SweepLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder_text(lock_path: Path) -> str:
    try:
        pid = int(lock_path.read_text().strip())
    except (OSError, ValueError):
        return "PID unknown"
    return f"PID {pid}" if pid_alive(pid) else f"PID {pid}, no longer running"


def check_not_locked(run_dir: str | Path) -> None:
    """Refuse ``run_dir`` if a live sweep holds its lock (a probe: nothing is kept or written)."""
    path = Path(run_dir) / LOCK
    if not path.is_file():
        return
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in NO_LOCKS:  # nothing to probe; the sweep says so when it takes the folder
                return
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise UserError(f"{str(Path(run_dir))!r} is in use by another sweep ({holder_text(path)}); "
                            "wait for it to end or give another out (--out)") from None
        fcntl.flock(handle, fcntl.LOCK_UN)


def check_commit(rows: list[dict], current_sha: str, run_dir: Path, *, allow_mixed: bool,
                 warn: bool = True) -> None:
    """Refuse to add cases of ``current_sha`` (:func:`~nodebench.harness.environment.git_sha`) to a directory
    whose cases come from another commit, or from the same commit with uncommitted changes where this checkout
    has none or the reverse (``SHA-dirty`` against ``SHA``): results of two code versions in one records file
    cannot be told apart. Cases of the same ``SHA-dirty`` are added, with a warning (``warn``) that whether the
    changes are the same is not checked, as :mod:`nodebench.benchmarking.checkpoint` resumes a measurement."""
    from nodebench.records import short_commit  # here, not at the top: records imports pandas, the CLI stays light

    current = str(current_sha or "")
    if allow_mixed or not current:
        return
    others = sorted({str(row.get("git_sha") or "") for row in rows} - {current, ""})
    if others:
        dirty = " (-dirty: with uncommitted changes)" if "-dirty" in others[0] + current else ""
        raise UserError(f"{str(run_dir)!r} holds cases of commit {short_commit(others[0])}, this checkout is "
                        f"{short_commit(current)}{dirty}; give another out (--out), or allow_mixed_commits=True "
                        "(--allow-mixed-commits) to mix them")
    if warn and rows and current.endswith("-dirty"):
        print(f"nodebench: warning: {str(run_dir)!r} holds cases run with uncommitted changes to commit "
              f"{short_commit(current).removesuffix('-dirty')}, as this checkout has; whether they are the same "
              "changes is not checked", file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_fingerprint(task: str) -> dict[str, str]:
    """``{"data_sha256": ...}`` for a task read from a file (empty for built-in tasks and missing files)."""
    prefix = next((p for p in DATA_PREFIXES if task.startswith(p)), None)
    if prefix is None:
        return {}
    path = Path(task[len(prefix):]).expanduser()
    try:
        stat = path.stat()
    except OSError:
        return {}
    if not path.is_file():
        return {}
    return {"data_sha256": _file_sha256(str(path.resolve()), stat.st_mtime_ns, stat.st_size)}


def read_json_object(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing, empty, truncated or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
