"""pipenaut: experience pipeline parallelism on a laptop.

Build a schedule (data), simulate it, run it on worker threads, export the timeline::

    import pipenaut
    schedule = pipenaut.build_schedule("1f1b", workers=4, microbatches=8)
    predicted = pipenaut.simulate(schedule, pipenaut.Costs(F=1, B=2))
    result = pipenaut.train(schedule, pipenaut.ModelConfig(), steps=10)
    pipenaut.write_trace("traces/1f1b.json", [("1f1b", result.timeline)])
"""

__version__ = "0.1.0"

from .actions import Action, ActionError
from .engine import PipelineError
from .model import ModelConfig
from .schedule import Schedule, ScheduleError, parse_schedule, read_schedule_file
from .schedules import SCHEDULES, build_schedule
from .simulator import Costs, simulate, validate
from .timeline import Span, Timeline
from .trace import write_trace
from .training import RunResult, train, train_sequential

__all__ = [
    "Action",
    "ActionError",
    "Costs",
    "ModelConfig",
    "PipelineError",
    "RunResult",
    "SCHEDULES",
    "Schedule",
    "ScheduleError",
    "Span",
    "Timeline",
    "build_schedule",
    "parse_schedule",
    "read_schedule_file",
    "simulate",
    "train",
    "train_sequential",
    "validate",
    "write_trace",
]
