"""Predict a schedule's timeline, and prove it can run, before any thread starts.

:func:`validate` checks the action lists (every stage's forward and backward exactly once per
microbatch, on the worker that owns the stage, in an order that can finish). :func:`simulate`
is a discrete-event simulation of the per-worker lists under given costs; it returns the same
:class:`~pipenaut.timeline.Timeline` type the threaded engine measures.

The model of a worker is the engine's: it runs its list in order, and an action starts when the
worker is free *and* its inputs have arrived (an activation or gradient from another worker arrives
``latency`` after the action that produced it ends).
"""

from __future__ import annotations

import gc
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass

from .actions import KIND_NAMES, Action, Overlap
from .schedule import Schedule, ScheduleError
from .timeline import COMPUTE_KINDS, Span, Timeline


MAX_COST = 1e6  # per action, in the caller's unit: keeps every sum of costs finite


@dataclass(frozen=True)
class Costs:
    """Duration of each action kind, in any time unit (the timeline uses the same unit).

    ``B`` is a full backward; it costs ``I + W`` unless given. ``stage_scale`` multiplies the cost
    of every action of a stage (an unbalanced stage); ``latency`` delays every transfer between
    two workers.
    """

    F: float = 1.0
    I: float = 1.0  # noqa: E741 - the kind's name in the grammar
    W: float = 1.0
    B: float | None = None
    stage_scale: tuple[float, ...] = ()
    latency: float = 0.0

    def __post_init__(self) -> None:
        for name in ("F", "I", "W", "B", "latency"):
            value = getattr(self, name)
            if value is not None and not value >= 0:  # also rejects NaN
                raise ValueError(f"{name} must be a number >= 0, got {value}")
        if any(not s >= 0 for s in self.stage_scale):
            raise ValueError("stage cost multipliers must be >= 0")

    def of_kind(self, kind: str) -> float:
        return self.full_backward if kind == "B" else getattr(self, kind)

    def of(self, action: Action) -> float:
        base = self.of_kind(action.kind)
        if action.stage < len(self.stage_scale):
            base *= self.stage_scale[action.stage]
        return base

    @property
    def full_backward(self) -> float:
        return self.I + self.W if self.B is None else self.B

    def scaled(self, factor: float) -> Costs:
        """The same costs in another unit, e.g. ``scaled(1e-3)`` from milliseconds to seconds."""
        return Costs(
            F=self.F * factor,
            I=self.I * factor,
            W=self.W * factor,
            B=None if self.B is None else self.B * factor,
            stage_scale=self.stage_scale,
            latency=self.latency * factor,
        )

    @classmethod
    def parse(cls, text: str, latency: float = 0.0) -> Costs:
        """Read ``"F=1,B=2"``. Given only ``B``, ``I`` and ``W`` are half of it each."""
        values: dict[str, float] = {}
        items = [part.strip() for part in text.split(",") if part.strip()]
        if not items:
            raise ValueError("no costs given; write KIND=NUMBER pairs, e.g. F=1,B=2")
        for item in items:
            key, sep, value = item.partition("=")
            key = key.strip().upper()
            if not sep or key not in ("F", "B", "I", "W"):
                raise ValueError(f"cannot read cost {item!r}; write KIND=NUMBER with kinds F, B, I, W, e.g. F=1,B=2")
            if key in values:
                raise ValueError(f"{key} is given twice; give each kind once")
            try:
                values[key] = float(value)
            except ValueError:
                raise ValueError(f"cost {item!r} is not a number; write e.g. F=1,B=2") from None
            if not 0 <= values[key] <= MAX_COST:
                raise ValueError(f"cost {item!r} must be a number from 0 to {MAX_COST:g}")
        if "B" in values and "I" not in values and "W" not in values:
            values["I"] = values["W"] = values["B"] / 2
        return cls(**values, latency=latency)


def validate(schedule: Schedule) -> None:
    """Raise :class:`ScheduleError` naming the first problem, or return if the schedule can run."""
    simulate(schedule, Costs())


def simulate(schedule: Schedule, costs: Costs = Costs()) -> Timeline:
    """Predict the timeline of one pipeline step of ``schedule`` under ``costs``."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"expected a Schedule, got {type(schedule).__name__}; build one with build_schedule() or parse_schedule()")
    with _collector_paused():
        _check_actions(schedule)
        return _run_events(schedule, costs)


@contextmanager
def _collector_paused():
    """The simulation allocates a few small tuples per action and frees none of them; letting the
    cyclic garbage collector rescan them all, again and again, costs a quarter of the run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_actions(schedule: Schedule) -> None:
    """Structural checks, done with set operations so that large schedules check fast; the slow,
    explaining pass runs only once something is known to be wrong."""
    stages, m, placement = schedule.stages, schedule.microbatches, schedule.placement
    every = [a for row in schedule.flat for a in row]
    for worker, row in enumerate(schedule.flat):
        owned = set(schedule.stages_on(worker))
        if {a.stage for a in row} <= owned and {a.kind for a in row} <= KIND_NAMES.keys() and all(
            0 <= a.microbatch < m for a in row
        ):
            continue
        for a in row:
            if a.kind not in KIND_NAMES or a.stage < 0 or a.microbatch < 0:
                raise ScheduleError(f"{a} is not an action; write stage, kind (F, B, I, W), microbatch")
            if a.stage >= stages:
                raise ScheduleError(f"{a} names stage {a.stage}, but the model has {stages} stages (0..{stages - 1})")
            if placement[a.stage] != worker:
                raise ScheduleError(
                    f"worker {worker} runs {a}, but stage {a.stage} lives on worker "
                    f"{placement[a.stage]}; move it to that worker's list"
                )
            if a.microbatch >= m:
                raise ScheduleError(f"{a}: microbatch {a.microbatch} is out of range; there are {m} microbatches (0..{m - 1})")
    if len(set(every)) < len(every):
        seen: set[Action] = set()
        duplicate = next(a for a in every if a in seen or seen.add(a))
        raise ScheduleError(f"{duplicate} appears twice; each action runs exactly once")
    by_kind: dict[str, set[tuple[int, int]]] = {kind: set() for kind in KIND_NAMES}
    for stage, kind, mb in every:
        by_kind[kind].add((stage, mb))
    forward, full, inp, weight = (by_kind[k] for k in "FBIW")
    if len(forward) != stages * m or full & inp or inp != weight or len(full) + len(inp) != stages * m:
        _explain_incomplete(stages, m, by_kind)


def _explain_incomplete(stages: int, m: int, by_kind: dict[str, set[tuple[int, int]]]) -> None:
    for stage in range(stages):
        for mb in range(m):
            present = "".join(k for k in "FBIW" if (stage, mb) in by_kind[k])
            forward, full, inp, weight = (Action(stage, k, mb) for k in "FBIW")
            if "F" not in present:
                raise ScheduleError(f"{forward} is missing: every stage needs a forward for every microbatch")
            if "B" in present and ("I" in present or "W" in present):
                raise ScheduleError(f"{full} and {inp if 'I' in present else weight} both appear; use B, or I and W, not both")
            if "B" not in present and "I" not in present and "W" not in present:
                raise ScheduleError(f"the backward of stage {stage} microbatch {mb} is missing: add {full} (or {inp} and {weight})")
            if ("I" in present) != ("W" in present):
                have, lack = (inp, weight) if "I" in present else (weight, inp)
                raise ScheduleError(f"{have} has no matching {lack}; a split backward needs both I and W")


def _run_events(schedule: Schedule, costs: Costs) -> Timeline:
    """Event-driven: each worker runs until its next action waits for an unfinished one; the
    finishing of that one wakes it up. Cost O(actions)."""
    lists, placement = schedule.flat, schedule.placement
    prerequisites_of = schedule.prerequisite_map
    cost_of = [{kind: costs.of(Action(stage, kind, 0)) for kind in KIND_NAMES} for stage in range(schedule.stages)]
    latency = costs.latency
    new = tuple.__new__  # Span's constructor without its Python-level wrapper: this loop runs per action
    workers = len(lists)
    finish: dict[Action, float] = {}
    position = [0] * workers
    free = [0.0] * workers
    blocked_on: dict[Action, list[int]] = {}
    spans: list[Span] = []
    ready = deque(range(workers))
    append, finish_of = spans.append, finish.get
    while ready:
        w = ready.popleft()
        actions = lists[w]
        count, pos, now = len(actions), position[w], free[w]
        while pos < count:
            a = actions[pos]
            start, waited_for = now, None
            for d in prerequisites_of[a]:
                done = finish_of(d)
                if done is None:
                    blocked_on.setdefault(d, []).append(w)
                    break
                if placement[d[0]] != w:
                    done += latency
                if done > start:
                    start, waited_for = done, d
            else:
                if waited_for is not None:
                    peer = placement[waited_for[0]]
                    append(new(Span, (w, 0, now, start, "wait", waited_for, peer, None)))
                    if peer != w and latency > 0:  # the part of the wait the message was on the link
                        append(new(Span, (w, 0, max(now, start - latency), start, "transit", waited_for, peer, None)))
                now = start + cost_of[a[0]][a[1]]
                append(new(Span, (w, 0, start, now, a[1], a, None, None)))
                finish[a] = now
                pos += 1
                if a in blocked_on:
                    ready.extend(blocked_on.pop(a))
                continue
            break
        position[w], free[w] = pos, now
    if any(position[w] < len(lists[w]) for w in range(workers)):
        raise ScheduleError(_describe_deadlock(schedule, position, finish))
    return Timeline(schedule, spans + _overlap_spans(schedule, spans), [0.0], source="simulated")


def _overlap_spans(schedule: Schedule, spans: list[Span]) -> list[Span]:
    """A parent span for each overlapped pair, from the start of its first half to the end of its
    second (a wait between the halves nests inside it)."""
    pairs = [(w, step) for w, row in enumerate(schedule.actions) for step in row if isinstance(step, Overlap)]
    if not pairs:
        return []
    ran = {s.action: s for s in spans if s.kind in COMPUTE_KINDS}
    return [Span(w, 0, ran[pair.first].start, ran[pair.second].end, "overlap", pair) for w, pair in pairs]


def _describe_deadlock(schedule: Schedule, position: list[int], finish: dict[Action, float]) -> str:
    """Follow who-waits-for-whom from a stuck worker until it closes into a cycle."""

    def next_of(worker: int) -> Action:
        return schedule.flat[worker][position[worker]]

    def needs(action: Action) -> Action:
        return next(d for d in schedule.prerequisites(action) if d not in finish)

    stuck = [w for w in range(schedule.workers) if position[w] < len(schedule.flat[w])]
    for worker in stuck:
        waiting = next_of(worker)
        need = needs(waiting)
        if schedule.worker_of(need) == worker:
            return f"on worker {worker}, {waiting} comes before {need}, which it needs; move {waiting} after {need}"
    worker = stuck[0]
    waiting = next_of(worker)
    need = needs(waiting)
    text = f"deadlock: worker {worker} waits for {need} (worker {schedule.worker_of(need)}) to run {waiting}"
    visited = {worker}
    while True:
        worker = schedule.worker_of(need)
        head = next_of(worker)
        if head != need:
            text += f", which is ordered after {head}"
        need = needs(head)
        text += f", which needs {need} from worker {schedule.worker_of(need)}"
        visited.add(worker)
        if schedule.worker_of(need) in visited:
            break
    return text + "; reorder the lists so that no worker waits for an action queued behind its own wait"

