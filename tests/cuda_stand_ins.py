"""Stand-ins for torch.cuda's timing objects, so that the CUDA paths of the harness run on a machine without a GPU
(the tensors stay on the CPU; only the calls a CUDA run makes are replaced)."""

from __future__ import annotations


class SilentEvent:
    """``torch.cuda.Event`` that records nothing and reads every interval as 1 ms."""

    def __init__(self, enable_timing: bool = False):
        pass

    def record(self, stream=None) -> None:
        pass

    def elapsed_time(self, other) -> float:
        return 1.0
