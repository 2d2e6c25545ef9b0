"""Task registry. ``get_task("cubic_spiral")`` or ``get_task("trajectories:data.npz")``."""

from __future__ import annotations

from typing import Callable

from nodebench.errors import UserError
from nodebench.tasks.anode import G1D, NestedSpheres
from nodebench.tasks.base import Problem, Task
from nodebench.tasks.classification import CLASSIFICATION_TASKS
from nodebench.tasks.density import DENSITY_TASKS, DensityFile
from nodebench.tasks.image_density import IMAGE_DENSITY_TASKS
from nodebench.tasks.images import IMAGE_TASKS
from nodebench.tasks.latent_ode import LATENT_ODE_TASKS
from nodebench.tasks.ou import OrnsteinUhlenbeck
from nodebench.tasks.sines import Sines
from nodebench.tasks.spiral import CubicSpiral
from nodebench.tasks.systems import SYSTEM_TASKS
from nodebench.tasks.trajectory_file import TrajectoryFile

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in [CubicSpiral, *DENSITY_TASKS, *IMAGE_TASKS, OrnsteinUhlenbeck,
                                                          G1D, NestedSpheres, Sines, *CLASSIFICATION_TASKS,
                                                          *LATENT_ODE_TASKS, *IMAGE_DENSITY_TASKS,
                                                          *SYSTEM_TASKS]}

# Tasks built from a user's file: "<prefix>:PATH".
FILE_TASKS: dict[str, Callable[[str], Task]] = {"trajectories": TrajectoryFile, "density": DensityFile}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator adding a task to the registry (used by the paper packages)."""
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> Task:
    """The task ``name``, or a file task ``prefix:PATH``; unknown names are a :class:`UserError`."""
    prefix, sep, path = name.partition(":")
    if sep and prefix in FILE_TASKS:
        if not path:
            raise UserError(f"task {name!r} names no file; use {prefix}:PATH")
        return FILE_TASKS[prefix](path)
    if name in TASKS:
        return TASKS[name]()
    valid = ", ".join(list(TASKS) + [f"{p}:PATH" for p in FILE_TASKS])
    raise UserError(f"unknown task {name!r}; valid tasks: {valid}")


__all__ = ["FILE_TASKS", "Problem", "TASKS", "Task", "get_task", "register_task"]
