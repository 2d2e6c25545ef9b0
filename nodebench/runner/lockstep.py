"""Lockstep between the two workers of an A/B pair: step *i* of one side runs while step *i* of the other does.

On the CPU, ``nodebench bench --baseline`` runs both sides of a case at once on one core
(:mod:`nodebench.benchmarking.ab`). Started together, they still reach their training loops seconds apart:
importing torch and building the problem take far longer than a short case's training, so one side's
steps ran beside the other's start-up (page faults, file reads) or beside nothing at all. The per-process
log ratio of CPU time per step between two identical sides then spread with σ ≈ 0.1, up to ×1.5 for one
pair (results/gate_study_together). In lockstep, a barrier before every timed step holds the faster side
until the slower one reaches the same step, so each pair of matched steps shares the core at the same
moment and the gate's paired ratios compare like with like.

The barrier is a pair of pipes that the A/B runner hands to the two workers (:func:`pipes`); a worker finds
its ends in ``NODEBENCH_LOCKSTEP`` (``"READ_FD,WRITE_FD"``). At each barrier a side writes one byte and
reads one. When its partner has ended (finished, failed, timed out), the read finds the end of the pipe and
the survivor goes on alone: a barrier never turns one side's failure into the other's. The waits are
outside every clock of the harness.
"""

from __future__ import annotations

import os

ENV = "NODEBENCH_LOCKSTEP"


class Lockstep:
    """One worker's end of the barrier (module docstring); :meth:`wait` before each timed step."""

    def __init__(self, read_fd: int, write_fd: int):
        self._read, self._write = read_fd, write_fd
        self.active = True
        self.barriers = 0

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Lockstep | None:
        """The barrier handed to this process, or None outside a lockstep A/B pair."""
        value = (os.environ if environ is None else environ).get(ENV)
        if not value:
            return None
        read_fd, write_fd = (int(fd) for fd in value.split(","))
        return cls(read_fd, write_fd)

    def wait(self) -> None:
        """Block until the partner reaches its matching barrier; a no-op once the partner has ended."""
        if not self.active:
            return
        try:
            os.write(self._write, b".")
            if os.read(self._read, 1):
                self.barriers += 1
                return
        except OSError:  # BrokenPipeError: the partner has gone
            pass
        self.close()

    def close(self) -> None:
        """Leave lockstep: the partner's waits then find the end of the pipe and go on alone."""
        if self.active:
            self.active = False
            for fd in (self._read, self._write):
                os.close(fd)


def pipes() -> tuple[tuple[int, int], tuple[int, int]]:
    """Two crossed pipes: ``(read, write)`` descriptors for each side; each side's write end is the other's
    read end. The caller hands each pair to its worker (``pass_fds``) and then closes its own copies, so
    that a worker's exit ends the pipe for its partner."""
    first_read, second_write = os.pipe()
    second_read, first_write = os.pipe()
    return (first_read, first_write), (second_read, second_write)


def env_value(fds: tuple[int, int]) -> str:
    """The ``NODEBENCH_LOCKSTEP`` value that hands ``(read, write)`` to a worker."""
    return f"{fds[0]},{fds[1]}"
