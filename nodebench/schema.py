"""The records schema: every column of ``records.parquet``, its type and its meaning, in one place.

Rows are checked against it when a worker writes them (:func:`check_row`), and every records file a
command reads is checked before use (:func:`check_records`), so a file from elsewhere gets one line naming
what is missing instead of a traceback. The README's column table is generated from :data:`COLUMNS`
(``python -m nodebench.schema`` prints it) and a test keeps the two in step. Task metrics (:mod:`nodebench.metrics`)
and extra columns a task reports are allowed beside these.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import pandas as pd

from nodebench.errors import UserError


@dataclass(frozen=True)
class Column:
    """A records column: ``kind`` is ``str``, ``int``, ``float`` or ``bool``; ``required`` columns are what a
    command needs to read a records file at all (others may be missing, e.g. GPU fields on a CPU)."""

    name: str
    kind: str
    meaning: str
    required: bool = False


COLUMNS: tuple[Column, ...] = (
    # identity of the case
    Column("run_id", "str", "the run the row was merged into"),
    Column("case_id", "str", "hash of the case's configuration; names its files", True),
    Column("paper", "str", "paper package, empty for `nodebench run`"),
    Column("experiment", "str", "experiment (suite entry) of the paper"),
    Column("task", "str", "task id", True),
    Column("method", "str", "training method id", True),
    Column("seed", "int", "seed of the model initialisation and the data draws", True),
    Column("device", "str", "cpu, cuda or cuda:N"),
    Column("preset", "str", "preset (or suite) the case belongs to"),
    Column("hparams", "str", "the case's hyper-parameters and method options as JSON"),
    Column("headline_metric", "str", "the task's figure of merit (the first of its metrics)"),
    # the data (nodebench.records.PROVENANCE)
    Column("dataset", "str", "data set or file the task read, empty for generated data"),
    Column("n_train", "int", "training examples (trajectories, rows, images)"),
    Column("n_val", "int", "validation examples, 0 when the task holds none out"),
    Column("n_test", "int", "test examples"),
    Column("data_verified", "bool", "the data files matched their pinned checksums"),
    # outcome
    Column("status", "str", "ok, diverged, oom, killed, timeout or error", True),
    Column("reason", "str", "one line on why a case did not end ok"),
    # training cost
    Column("iters", "int", "training iterations run"),
    Column("train_wall_s", "float", "summed timed step time [s] (synchronised on GPU)"),
    Column("time_per_iter_s", "float", "median step time [s]"),
    Column("forward_time_per_iter_s", "float", "median forward (loss) time per step [s]"),
    Column("train_event_s", "float", "summed CUDA-event step time [s] (GPU only)"),
    Column("warmup_s", "float", "untimed warm-up time [s]"),
    Column("peak_mem_forward_bytes", "float", "peak memory the forward pass adds [bytes]"),
    Column("peak_mem_bytes", "float", "peak memory a step adds [bytes]"),
    Column("peak_reserved_bytes", "float", "peak memory reserved by the CUDA allocator [bytes]"),
    Column("alloc_peak_forward_bytes", "float", "peak tensor bytes the forward pass allocates, from an untimed "
           "pass after the timed steps (CPU: profiler allocation events; CUDA: allocator) [bytes]"),
    Column("alloc_peak_bytes", "float", "the same for forward + backward, up to the end of backward (SNODE: "
           "forward is its coefficient block, forward + backward a whole iteration) [bytes]"),
    Column("alloc_peak_optimizer_bytes", "float", "the same for the optimiser step alone (empty for SNODE, whose "
           "Adam steps belong to its blocks) [bytes]"),
    Column("mem_growth_bytes", "float", "memory held at the start of the last timed step minus at the first, a leak "
           "check (CUDA: allocated bytes; CPU: resident set, which moves by MiBs without a leak; empty under two "
           "steps) [bytes]"),
    Column("mem_source", "str", "how memory was measured (cuda allocator, CPU high-water mark)"),
    Column("nfe_forward", "int", "field evaluations in forward passes, summed: one per call at one time on the "
           "batch, n for n stacked times (gq_batched); SNODE: one per batched call at all its nodes (N trajectories "
           "× E·Q nodes), not comparable with a solver's"),
    Column("nfe_backward", "int", "field evaluations in backward passes (adjoint solves), summed, counted as "
           "`nfe_forward`"),
    Column("nfe_forward_per_iter", "float", "mean field evaluations per forward pass"),
    Column("nfe_backward_per_iter", "float", "mean field evaluations per backward pass"),
    Column("steps_forward", "int", "attempted solver steps in forward passes"),
    Column("steps_backward", "int", "attempted solver steps in backward passes"),
    Column("accepted_forward", "int", "accepted adaptive steps in forward passes"),
    Column("accepted_backward", "int", "accepted adaptive steps in backward passes"),
    Column("final_loss", "float", "training loss of the last iteration"),
    Column("final_task_loss", "float", "task loss of the last iteration, without a regulariser's λ·R"),
    # environment
    Column("git_sha", "str", "commit of the code that ran (-dirty: with uncommitted changes; unknown: not a checkout)"),
    Column("python_version", "str", "Python version"),
    Column("version_torch", "str", "torch version (likewise version_<package> for the other dependencies)"),
    Column("cpu_model", "str", "CPU model"),
    Column("cpu_count", "int", "CPUs the process may use (its affinity mask)"),
    Column("gpu_model", "str", "GPU model, empty on a CPU"),
    Column("cuda_version", "str", "CUDA version, empty on a CPU"),
    Column("cudnn_version", "str", "cuDNN version (torch's integer form, e.g. 91002), empty on a CPU"),
    Column("gpu_driver_version", "str", "NVIDIA driver version (nvidia-smi), empty on a CPU"),
    Column("gpu_sm_clock_mhz", "int", "GPU SM clock read before training [MHz], empty on a CPU"),
    Column("gpu_mem_clock_mhz", "int", "GPU memory clock read before training [MHz], empty on a CPU"),
    Column("gpu_throttle_reasons", "str",
           "active GPU clock throttle reasons read before training (nvidia-smi's bit mask; 0x0000000000000000: none), "
           "empty on a CPU"),
    Column("num_threads", "int", "torch threads"),
    Column("hostname", "str", "machine"),
    Column("started_at", "str", "UTC start time of the case"),
)
SCHEMA = {column.name: column for column in COLUMNS}
REQUIRED = tuple(column.name for column in COLUMNS if column.required)
#: What every row a worker writes holds (``run_id`` is added when the rows are merged).
ROW_KEYS = ("case_id", "paper", "experiment", "task", "method", "seed", "device", "preset", "hparams", "status")
_TYPES = {"str": (str,), "int": (numbers.Integral,), "float": (numbers.Real,), "bool": (bool,)}


def check_row(row: dict) -> None:
    """A ``ValueError`` naming an identity column missing from ``row`` or a value of the wrong type (a
    programming error in a task or the harness, never user input)."""
    missing = [name for name in ROW_KEYS if name not in row]
    if missing:
        raise ValueError(f"record row lacks column(s) {', '.join(missing)}")
    for name, value in row.items():
        column = SCHEMA.get(name)
        if column is None or value is None:
            continue
        if isinstance(value, bool) and column.kind != "bool" or not isinstance(value, _TYPES[column.kind]):
            raise ValueError(f"record column {name} must be {column.kind}, got {value!r}")


def check_records(records: pd.DataFrame, where: str, *, needs_rows: bool = True) -> pd.DataFrame:
    """``records`` if it is a records table: every required column present (and at least one row when
    ``needs_rows``); else a one-line :class:`UserError` naming what is missing and from where."""
    missing = [name for name in REQUIRED if name not in records]
    if missing:
        raise UserError(f"{where!r} has no {', '.join(missing)} column(s); give records written by nodebench "
                        f"(columns {', '.join(REQUIRED)}, ...)")
    if needs_rows and records.empty:
        raise UserError(f"{where!r} holds no records (zero rows); give a run with at least one finished case")
    return records


def markdown() -> str:
    """The column table for the README."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.kind} | {c.meaning}{' (always present)' if c.required else ''} |" for c in COLUMNS]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
