"""The timeline: what each worker did, when. The threaded engine *measures* one and the simulator
*predicts* one; the bars, the stats and the trace exporter read either the same way.

Definitions used for every number pipenaut shows:

* **makespan** of a step: from the step's start to the end of its last compute action
  (F, B, I or W) on any worker;
* **busy** time of a worker: the summed duration of its compute actions in that window;
* **idle** time: makespan minus busy (waiting for a neighbour, or overhead between actions);
* **bubble**: total idle over ``workers x makespan``;
* **step time**: wall time of the whole step, optimizer included;
* **stashed activations**: a microbatch's activations are held by a stage from its forward until
  its weight gradient is taken (the end of ``B``, or of ``W``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from .actions import Action, Overlap
from .schedule import Schedule

COMPUTE_KINDS = ("F", "B", "I", "W")
# How an action changes the microbatches its stage holds: a forward stashes one, the end of its
# backward (B, or W after I) frees it.
STASH_CHANGE = {"F": 1, "B": -1, "I": 0, "W": -1}


class Span(NamedTuple):
    """One interval on one worker's track. Times are seconds from the start of the run.

    ``kind`` is an action kind (F, B, I, W), ``"wait"``, ``"transit"``, ``"optimizer"`` or
    ``"overlap"``. For a compute span ``action`` is the action run; for a wait it is the action
    whose output was awaited, produced on worker ``peer``; a transit span, nested in a wait, is
    the part of it the message spent on an (emulated) link; an overlap span encloses the spans of
    its two halves. ``memory`` is the activation bytes the worker held after a compute span, when
    measured.
    """

    worker: int
    step: int
    start: float
    end: float
    kind: str
    action: Action | Overlap | None = None
    peer: int | None = None
    memory: int | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def is_compute(self) -> bool:
        return self.kind in COMPUTE_KINDS


@dataclass
class Timeline:
    schedule: Schedule
    spans: list[Span]
    step_starts: list[float]
    source: str  # "measured" or "simulated"
    static_memory: list[int] | None = None  # parameter + gradient bytes per worker, when known

    @property
    def workers(self) -> int:
        return self.schedule.workers

    @property
    def steps(self) -> int:
        return len(self.step_starts)

    def spans_of_step(self, step: int) -> list[Span]:
        if self.steps == 1:
            return self.spans if step == 0 else []
        return self._by_step.get(step, [])

    @cached_property
    def _by_step(self) -> dict[int, list[Span]]:
        by_step: dict[int, list[Span]] = {}
        for s in self.spans:
            by_step.setdefault(s.step, []).append(s)
        return by_step

    def makespan(self, step: int = 0) -> float:
        return self._summary(step)[0]

    def step_time(self, step: int = 0) -> float:
        return self._summary(step)[1]

    def busy(self, step: int = 0) -> list[float]:
        return list(self._summary(step)[2])

    def idle(self, step: int = 0) -> list[float]:
        makespan = self.makespan(step)
        return [max(0.0, makespan - b) for b in self.busy(step)]

    def bubble(self, step: int = 0) -> float:
        makespan = self.makespan(step)
        return sum(self.idle(step)) / (self.workers * makespan) if makespan > 0 else 0.0

    def peak_activations(self, step: int = 0) -> list[int]:
        """The most microbatches whose activations each worker held at once in this step."""
        return list(self._summary(step)[3])

    def _summary(self, step: int) -> tuple[float, float, list[float], list[int]]:
        """makespan, step time, busy and peak activations per worker: one pass over the step."""
        if step not in self._summaries:
            start = self.step_starts[step]
            compute_end = any_end = start
            busy, held, peak = [0.0] * self.workers, [0] * self.workers, [0] * self.workers
            for s in self.spans_of_step(step):  # each worker's spans are in the order it ran them
                worker, _, begin, end, kind = s[:5]
                if end > any_end:
                    any_end = end
                if kind in COMPUTE_KINDS:
                    if end > compute_end:
                        compute_end = end
                    busy[worker] += end - begin
                    held[worker] += STASH_CHANGE[kind]
                    if held[worker] > peak[worker]:
                        peak[worker] = held[worker]
            self._summaries[step] = (compute_end - start, any_end - start, busy, peak)
        return self._summaries[step]

    @cached_property
    def _summaries(self) -> dict[int, tuple]:
        return {}

    def mean_costs(self) -> dict[str, float]:
        """Mean measured duration of each action kind (seconds), over every step."""
        durations: dict[str, list[float]] = {}
        for s in self.spans:
            if s.is_compute:
                durations.setdefault(s.kind, []).append(s.duration)
        return {kind: statistics.fmean(values) for kind, values in durations.items()}

    def typical_step(self) -> int:
        """The step whose wall time is the median: the one pipenaut shows and reports."""
        order = sorted(range(self.steps), key=self.step_time)
        return order[(len(order) - 1) // 2]
