"""The measurement harness: synchronised time, per-phase peak memory and NFE.

Public surface:

- :func:`measure` and :class:`Measurement`: time and peak memory of any callable;
- :class:`CountingField` (:class:`StepCountingField` for fixed grids) / :func:`count_nfe`: per-phase
  function-evaluation and step counts;
- :class:`Stopwatch` and :class:`PeakMemory`: the primitives, for phase-by-phase readings;
- :class:`StepMeter`: both at once for a training step, with the fewest system calls;
- :func:`environment`: the machine and package metadata stored with every record.
"""

from nodebench.harness.environment import environment
from nodebench.harness.measure import Measurement, measure
from nodebench.harness.memory import PeakMemory
from nodebench.harness.nfe import CountingField, StepCountingField, count_nfe
from nodebench.harness.step_meter import StepMeter, StepReading
from nodebench.harness.timing import Stopwatch

__all__ = ["CountingField", "Measurement", "PeakMemory", "StepCountingField", "StepMeter", "StepReading", "Stopwatch",
           "count_nfe", "environment", "measure"]
