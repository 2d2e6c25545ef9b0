"""Task registry. ``get_task("cubic_spiral")`` or ``get_task("trajectories:data.npz")``.

The framework registers the generic tasks here (the cubic spiral, the CNF density tasks and the tasks
built from a user's file); each paper package registers the tasks only it uses (:mod:`nodebench.papers`).
"""

from __future__ import annotations

from typing import Callable

from nodebench.errors import UserError
from nodebench.registry import Registry, unknown
from nodebench.tasks.base import Problem, Task
from nodebench.tasks.density import DENSITY_TASKS, DensityFile
from nodebench.tasks.spiral import CubicSpiral
from nodebench.tasks.trajectory_file import TrajectoryFile

TASKS: Registry[type[Task]] = Registry("task")
for _cls in (CubicSpiral, *DENSITY_TASKS):
    TASKS.register(obj=_cls)

#: Tasks built from a user's file: ``"<prefix>:PATH"``.
FILE_TASKS: Registry[Callable[[str], Task]] = Registry("file task")
FILE_TASKS.register("trajectories", TrajectoryFile)
FILE_TASKS.register("density", DensityFile)


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator adding a task to the registry under its ``name`` (used by the paper packages)."""
    return TASKS.register(obj=cls)


def get_task(name: str) -> Task:
    """The task ``name``, or a file task ``prefix:PATH``; unknown names are a :class:`UserError`."""
    prefix, sep, path = str(name).partition(":")
    if sep and prefix in FILE_TASKS:
        if not path:
            raise UserError(f"task {name!r} names no file; use {prefix}:PATH")
        return FILE_TASKS[prefix](path)
    if isinstance(name, str) and name in TASKS:  # a list is no name (and no dict key)
        return TASKS[name]()
    raise unknown("task", name, [*TASKS, *(f"{p}:PATH" for p in FILE_TASKS)])


__all__ = ["FILE_TASKS", "Problem", "TASKS", "Task", "get_task", "register_task"]
