"""The built-in schedules: builders that produce :class:`Schedule` data, plus their textbook theory.

Every builder takes ``workers`` (p) and ``microbatches`` (m) and returns plain data. The theory
(bubble formula, memory bound, where the schedule is used) travels with the builder so that
``explain``, ``run`` and ``compare`` can put the textbook number *beside* the measured one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .actions import Action
from .schedule import Schedule, ScheduleError


def _one_stage_per_worker(name: str, orders: list[list[tuple[str, int]]], m: int) -> Schedule:
    new = tuple.__new__  # Action's constructor without its Python-level wrapper: schedules get large
    actions = tuple(tuple(new(Action, (w, kind, mb)) for kind, mb in order) for w, order in enumerate(orders))
    return Schedule(name, tuple(range(len(orders))), m, actions)


def build_naive(workers: int, microbatches: int) -> Schedule:
    """One microbatch at a time through the whole pipeline: F then B, no overlap between workers.

    Timing-wise this is model parallelism without pipelining (the whole batch as one piece): only
    one worker computes at any moment.
    """
    order = [(kind, mb) for mb in range(microbatches) for kind in ("F", "B")]
    return _one_stage_per_worker("naive", [order] * workers, microbatches)


def build_gpipe(workers: int, microbatches: int) -> Schedule:
    """GPipe: fill (all forwards), then drain (all backwards)."""
    order = [("F", mb) for mb in range(microbatches)] + [("B", mb) for mb in range(microbatches)]
    return _one_stage_per_worker("gpipe", [order] * workers, microbatches)


def build_1f1b(workers: int, microbatches: int) -> Schedule:
    """1F1B (PipeDream-flush): warm-up forwards, a steady state of one backward then one forward,
    then the cool-down backwards.

    Worker ``w`` runs ``p - w`` warm-up forwards (fewer when there are fewer microbatches), so it
    never holds more than ``p - w`` microbatches' activations at once.
    """
    orders = []
    for w in range(workers):
        warmup = min(workers - w, microbatches)
        order = [("F", mb) for mb in range(warmup)]
        for mb in range(microbatches):
            order.append(("B", mb))
            if warmup + mb < microbatches:
                order.append(("F", warmup + mb))
        orders.append(order)
    return _one_stage_per_worker("1f1b", orders, microbatches)


@dataclass(frozen=True)
class ScheduleInfo:
    """A built-in schedule: how to build it and what the textbook says about it."""

    name: str
    build: Callable[[int, int], Schedule]
    title: str
    how: str
    bubble_formula: str  # written with p workers, m microbatches
    bubble: Callable[[int, int], float]
    memory: str
    peak_activations: Callable[[int, int], list[int]]
    used_in: str


SCHEDULES: dict[str, ScheduleInfo] = {
    info.name: info
    for info in [
        ScheduleInfo(
            name="naive",
            build=build_naive,
            title="Naive model parallelism",
            how=(
                "Each microbatch travels forward through every worker and straight back before "
                "the next one starts. Only one worker computes at any moment; the others wait."
            ),
            bubble_formula="(p-1)/p",
            bubble=lambda p, m: (p - 1) / p,
            memory="1 microbatch of activations per worker",
            peak_activations=lambda p, m: [1] * p,
            used_in="the baseline every pipeline schedule is measured against; plain model "
            "parallelism (layers split across devices) without microbatching",
        ),
        ScheduleInfo(
            name="gpipe",
            build=build_gpipe,
            title="GPipe (fill-drain)",
            how=(
                "Split the batch into m microbatches. Fill: every worker runs all m forwards, "
                "passing each activation on as soon as it is ready. Drain: all m backwards flow "
                "back. The bubble is the ramp at the start of the fill and the end of the drain."
            ),
            bubble_formula="(p-1)/(m+p-1)",
            bubble=lambda p, m: (p - 1) / (m + p - 1),
            memory="m microbatches of activations on every worker (all forwards finish first)",
            peak_activations=lambda p, m: [m] * p,
            used_in="GPipe (Huang et al., 2019), torchgpipe, ScheduleGPipe in "
            "torch.distributed.pipelining",
        ),
        ScheduleInfo(
            name="1f1b",
            build=build_1f1b,
            title="1F1B (one forward, one backward)",
            how=(
                "Warm-up: worker w runs p-w forwards. Steady state: one backward, then one "
                "forward, so each finished backward frees an activation before the next forward "
                "stores one. Cool-down: the remaining backwards. Same bubble as GPipe, but "
                "activation memory is capped by the pipeline depth instead of m."
            ),
            bubble_formula="(p-1)/(m+p-1)",
            bubble=lambda p, m: (p - 1) / (m + p - 1),
            memory="min(p-w, m) microbatches of activations on worker w (at most p)",
            peak_activations=lambda p, m: [min(p - w, m) for w in range(p)],
            used_in="PipeDream-Flush (Narayanan et al., 2021), Megatron-LM's non-interleaved "
            "schedule, Schedule1F1B in torch.distributed.pipelining, DeepSpeed",
        ),
    ]
}


def schedule_names() -> str:
    return ", ".join(SCHEDULES)


def get_schedule_info(name: str) -> ScheduleInfo:
    if not isinstance(name, str):
        raise ScheduleError(f"a schedule name is a string, one of: {schedule_names()} (got {name!r})")
    try:
        return SCHEDULES[name.lower()]
    except KeyError:
        raise ScheduleError(f"unknown schedule {name!r}; choose one of: {schedule_names()}") from None


def build_schedule(name: str, workers: int, microbatches: int) -> Schedule:
    """Build a built-in schedule by name, e.g. ``build_schedule("1f1b", 4, 8)``."""
    for what, value in (("workers", workers), ("microbatches", microbatches)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ScheduleError(f"{what} must be an integer >= 1, got {value!r}")
    return get_schedule_info(name).build(workers, microbatches)
