"""The built-in schedules: builders that produce :class:`Schedule` data, plus their textbook theory.

Every builder takes ``workers`` (p) and ``microbatches`` (m) and returns plain data. The theory
(bubble formula, memory bound, where the schedule is used) travels with the builder so that
``explain``, ``run`` and ``compare`` can put the textbook number *beside* the measured one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .actions import Action, Overlap
from .schedule import Schedule, ScheduleError


Entry = tuple  # (stage, kind, microbatch), or an Overlap of two actions


def _make(name: str, placement: list[int], m: int, orders: list[list[Entry]]) -> Schedule:
    new = tuple.__new__  # Action's constructor without its Python-level wrapper: schedules get large
    actions = tuple(
        tuple(e if isinstance(e, Overlap) else new(Action, e) for e in order) for order in orders
    )
    return Schedule(name, tuple(placement), m, actions)


def _one_stage_per_worker(name: str, orders: list[list[tuple[str, int]]], m: int) -> Schedule:
    return _make(name, list(range(len(orders))), m, [[(w, kind, mb) for kind, mb in order] for w, order in enumerate(orders)])


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


def _looped(workers: int, virtual: int) -> list[int]:
    """Stage s lives on worker s mod p: worker d holds stages d, d+p, d+2p, ..."""
    return [s % workers for s in range(workers * virtual)]


def build_interleaved(workers: int, microbatches: int, virtual: int = 2) -> Schedule:
    """Interleaved 1F1B (Megatron-LM): each worker holds ``v`` model chunks in a loop.

    Microbatches go in rounds of g (g = p when p divides m): a round's forwards run through
    chunk 0, then chunk 1, ... (its backwards through the chunks in reverse). Warm-up: worker d
    runs ``2(p-d-1) + (v-1)g`` forwards; steady state: one forward, one backward; cool-down: the
    remaining backwards. Megatron asks for m divisible by p; otherwise the ``m // p`` rounds here
    take the remainder between them (sizes differ by at most one), which keeps the order valid.
    """
    p, m, v = workers, microbatches, virtual
    rounds = max(1, m // p)
    sizes = [m // rounds + (1 if r < m % rounds else 0) for r in range(rounds)]
    starts = [sum(sizes[:r]) for r in range(rounds)]
    groups = [range(start, start + size) for start, size in zip(starts, sizes)]
    forwards = [(chunk, mb) for group in groups for chunk in range(v) for mb in group]
    backwards = [(chunk, mb) for group in groups for chunk in reversed(range(v)) for mb in group]
    orders = []
    for d in range(p):
        warmup = min(2 * (p - d - 1) + (v - 1) * sizes[0], len(forwards))
        order = [(d + c * p, "F", mb) for c, mb in forwards[:warmup]]
        for i, (c, mb) in enumerate(backwards):
            if warmup + i < len(forwards):
                fc, fmb = forwards[warmup + i]
                order.append((d + fc * p, "F", fmb))
            order.append((d + c * p, "B", mb))
        orders.append(order)
    return _make("interleaved", _looped(p, v), m, orders)


def build_looped_bfs(workers: int, microbatches: int, virtual: int = 2) -> Schedule:
    """Looped BFS (breadth first): the interleaved placement, but each worker runs all forwards
    of its first chunk, then of its next chunk, ..., then all backwards, last chunk first and
    last microbatch first (the order torch.distributed.pipelining's ScheduleLoopedBFS runs)."""
    p, m, v = workers, microbatches, virtual
    orders = [
        [(d + c * p, "F", mb) for c in range(v) for mb in range(m)]
        + [(d + c * p, "B", mb) for c in reversed(range(v)) for mb in reversed(range(m))]
        for d in range(p)
    ]
    return _make("looped-bfs", _looped(p, v), m, orders)


def _split_backward(name: str, p: int, m: int, warmup, delay) -> Schedule:
    """The zero-bubble family on one stage per worker: worker d runs ``warmup(d)`` forwards, then
    per microbatch its input-gradient I, the W held back by ``delay(d)`` microbatches, and the
    next forward; the held-back W's close the list."""
    orders = []
    for d in range(p):
        ahead, late = min(warmup(d), m), delay(d)
        order = [("F", mb) for mb in range(ahead)]
        for mb in range(m):
            order.append(("I", mb))
            if mb >= late:
                order.append(("W", mb - late))
            if ahead + mb < m:
                order.append(("F", ahead + mb))
        order += [("W", mb) for mb in range(max(0, m - late), m)]
        orders.append(order)
    return _one_stage_per_worker(name, orders, m)


def build_zb_h1(workers: int, microbatches: int) -> Schedule:
    """ZB-H1 (zero bubble, Qi et al. 2024): 1F1B with the backward split into I and W.

    Worker d runs 1F1B's warm-up (``p-d`` forwards), then I/F pairs, but defers each W by ``d``
    input-gradients, so the W's fill the bubbles that 1F1B's later workers wait in. Activation
    memory stays at 1F1B's p microbatches."""
    p = workers
    return _split_backward("zb-h1", p, microbatches, warmup=lambda d: p - d, delay=lambda d: d)


def build_zb_h2(workers: int, microbatches: int) -> Schedule:
    """ZB-H2: more warm-up forwards (``2(p-d)-1`` on worker d) fill the time before the first
    input-gradient comes back; then I, W, F per microbatch, with W deferred by ``2d-p+1`` on the
    later workers, so no worker idles between its first and last action of the steady state.
    About twice 1F1B's activation memory (``2p-1`` on worker 0)."""
    p = workers
    return _split_backward("zb-h2", p, microbatches, warmup=lambda d: 2 * (p - d) - 1, delay=lambda d: max(0, 2 * d - p + 1))


def _v_shape(workers: int) -> list[int]:
    """Worker d holds stages d and 2p-1-d: the model goes down the workers and back up."""
    return [s if s < workers else 2 * workers - 1 - s for s in range(2 * workers)]


def build_zb_v(workers: int, microbatches: int) -> Schedule:
    """ZB-V (zero bubble in a V): two chunks per worker in V placement, I/W split.

    Warm-up: ``2(p-d)-1`` forwards of chunk 0, then ``d`` pairs of chunk 1 / chunk 0 forwards,
    then ``p-d`` rounds of chunk 1 F, I, W. Steady state: F, I, W of chunk 0, then of chunk 1.
    Cool-down: the remaining input-gradients with W's filling the gaps, then the last W's.
    (The order torch.distributed.pipelining's ScheduleZBVZeroBubble runs.)"""
    p, m = workers, microbatches
    n = max(2 * p - 1, m)  # built for at least 2p-1 microbatches, then trimmed to m
    orders = [[e for e in _zb_v_worker(p, n, d) if e[2] < m] for d in range(p)]
    return _make("zb-v", _v_shape(p), m, orders)


def _zb_v_worker(p: int, n: int, d: int) -> list[Entry]:
    """Worker d's list of ZB-V, for n microbatches."""
    low, high = d, 2 * p - 1 - d
    count = {"F0": 0, "F1": 0, "B0": 0, "B1": 0}
    order: list[Entry] = []

    def add(stage: int, kind: str, key: str | None = None, mb: int | None = None) -> None:
        if mb is None:
            mb = count[key]
            count[key] += 1
        order.append((stage, kind, mb))

    for _ in range(2 * (p - d) - 1):
        add(low, "F", "F0")
    for _ in range(d):
        add(high, "F", "F1")
        add(low, "F", "F0")
    for _ in range(p - d):
        add(high, "F", "F1")
        add(high, "I", mb=count["B1"])
        add(high, "W", "B1")
    while count["F1"] < count["F0"] or count["F0"] < n:
        if count["F0"] < n:
            add(low, "F", "F0")
        add(low, "I", mb=count["B0"])
        add(low, "W", "B0")
        add(high, "F", "F1")
        add(high, "I", mb=count["B1"])
        add(high, "W", "B1")
    w0, w1 = count["B0"], count["B1"]
    for _ in range(d):
        add(low, "I", "B0")
        add(high, "I", "B1")
    for _ in range(p - d):
        add(low, "I", "B0")
        add(low, "W", mb=w0)
        w0 += 1
    order += [(high, "W", mb) for mb in range(w1, count["B1"])]
    order += [(low, "W", mb) for mb in range(w0, count["B0"])]
    return order


def build_dualpipev(workers: int, microbatches: int) -> Schedule:
    """DualPipeV (DeepSeek): the V placement, with the forward of one microbatch and the backward
    of another issued as one overlapped step ``(sF m;tB n)`` in the steady state, so one's
    compute can hide the other's communication on a real cluster (here they run back to back).

    Per worker d (the phases of DeepSeek's reference implementation): chunk-0 forwards;
    chunk-0/chunk-1 forward pairs; zero-bubble rounds of chunk-1 I, W, F; the main phase of
    overlapped (F chunk 0; B chunk 1) and (F chunk 1; B chunk 0) steps; backwards with overlap;
    the backward tail, its second half split into I and deferred W; the remaining W's.
    Needs at least 2p microbatches.
    """
    p, m = workers, microbatches
    if m < 2 * p:
        raise ScheduleError(f"dualpipev needs at least 2 x workers = {2 * p} microbatches (got {m}); use {2 * p} or more")
    return _make("dualpipev", _v_shape(p), m, [_dualpipev_worker(p, m, d) for d in range(p)])


def _dualpipev_worker(p: int, m: int, d: int) -> list[Entry]:
    """Worker d's list of DualPipeV."""
    chunk_stage = (d, 2 * p - 1 - d)
    forward, backward = [0, 0], [0, 0]
    deferred: list[tuple[int, str, int]] = []  # W's split off zero-bubble backwards, oldest first
    order: list[Entry] = []

    def f(chunk: int) -> tuple[int, str, int]:
        forward[chunk] += 1
        return (chunk_stage[chunk], "F", forward[chunk] - 1)

    def b(chunk: int, zero_bubble: bool = False) -> list[tuple[int, str, int]]:
        backward[chunk] += 1
        stage, mb = chunk_stage[chunk], backward[chunk] - 1
        if not zero_bubble:
            return [(stage, "B", mb)]
        deferred.append((stage, "W", mb))
        return [(stage, "I", mb)]

    def w() -> tuple[int, str, int]:
        return deferred.pop(0)

    def fb(forward_chunk: int, backward_chunk: int) -> Overlap:
        first = f(forward_chunk)
        (second,) = b(backward_chunk)
        return Overlap(Action(*first), Action(*second))

    order += [f(0) for _ in range((p - d - 1) * 2)]  # 1: chunk-0 forwards
    for _ in range(d + 1):  # 2: pairs of chunk-0 and chunk-1 forwards
        order += [f(0), f(1)]
    for _ in range(p - d - 1):  # 3: chunk-1 backward (zero bubble), its W, next chunk-1 forward
        order += b(1, zero_bubble=True)
        order += [w(), f(1)]
    for i in range(m - 2 * p + d + 1):  # 4: the main, overlapped phase
        if i == 0 and d == p - 1:  # the bottom of the V does these two apart (as DualPipeV)
            order += [f(0)] + b(1)
        else:
            order.append(fb(0, 1))
        order.append(fb(1, 0))
    for _ in range(p - d - 1):  # 5: chunk-1 backward, then an overlapped chunk-1 F / chunk-0 B
        order += b(1)
        order.append(fb(1, 0))
    zero_bubble = False
    for i in range(d + 1):  # 6: the backward tail; its second half splits I and W
        if i == (d + 1) // 2 and d % 2 == 1:
            zero_bubble = True
        order += b(1, zero_bubble)
        if i == (d + 1) // 2 and d % 2 == 0:
            zero_bubble = True
        order += b(0, zero_bubble)
    for _ in range(p - d - 1):  # 7: a deferred W, then a chunk-0 input-gradient
        order.append(w())
        order += b(0, zero_bubble=True)
    order += [w() for _ in range(len(deferred))]  # 8: the remaining W's
    return order


@dataclass(frozen=True)
class ScheduleInfo:
    """A built-in schedule: how to build it and what the textbook says about it.

    ``bubble`` and ``peak_activations`` take (p workers, m microbatches, v stages per worker).
    The zero-bubble formulas assume equal F, I and W costs; peaks count stage activations (a
    chunk of a worker that holds v stages is 1/v of the model slice a one-stage worker holds).
    """

    name: str
    build: Callable[..., Schedule]
    title: str
    how: str
    bubble_formula: str
    bubble: Callable[[int, int, int], float]
    memory: str
    peak_activations: Callable[[int, int, int], list[int]]
    used_in: str
    stages_per_worker: int | None = 1  # None: chosen with --virtual (default 2)

    def virtual(self, requested: int | None) -> int:
        """The stages per worker this schedule runs with, given a requested --virtual."""
        if self.stages_per_worker is None:
            v = 2 if requested is None else requested
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ScheduleError(f"virtual stages per worker must be an integer >= 1, got {v!r}")
            return v
        if requested is not None and requested != self.stages_per_worker:
            raise ScheduleError(
                f"{self.name} places {self.stages_per_worker} stage{'s' if self.stages_per_worker > 1 else ''} "
                f"on each worker; virtual stages apply to {', '.join(n for n, i in SCHEDULES.items() if i.stages_per_worker is None)}"
            )
        return self.stages_per_worker


def _round_size(p: int, m: int) -> int:
    """The size of interleaved 1F1B's first round of microbatches (p when p divides m)."""
    rounds = max(1, m // p)
    return -(-m // rounds)


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
            bubble=lambda p, m, v: (p - 1) / p,
            memory="1 microbatch of activations per worker",
            peak_activations=lambda p, m, v: [1] * p,
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
            bubble=lambda p, m, v: (p - 1) / (m + p - 1),
            memory="m microbatches of activations on every worker (all forwards finish first)",
            peak_activations=lambda p, m, v: [m] * p,
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
            bubble=lambda p, m, v: (p - 1) / (m + p - 1),
            memory="min(p-w, m) microbatches of activations on worker w (at most p)",
            peak_activations=lambda p, m, v: [min(p - w, m) for w in range(p)],
            used_in="PipeDream-Flush (Narayanan et al., 2021), Megatron-LM's non-interleaved "
            "schedule, Schedule1F1B in torch.distributed.pipelining, DeepSpeed",
        ),
        ScheduleInfo(
            name="interleaved",
            build=build_interleaved,
            title="Interleaved 1F1B (virtual stages)",
            how=(
                "Each worker holds v model chunks in a loop (worker d: stages d, d+p, d+2p, ...), "
                "so a microbatch visits every worker v times in smaller steps. Rounds of p "
                "microbatches go through chunk 0, then chunk 1, ...; after a longer warm-up the "
                "workers alternate one forward and one backward. The ramp shrinks by v: the "
                "bubble is (p-1)/(v*m) of the ideal time, for v times more messages."
            ),
            bubble_formula="(p-1)/(v*m+p-1)",
            bubble=lambda p, m, v: (p - 1) / (v * m + p - 1),
            memory="(v-1)*g + 2(p-w-1) + 1 chunk activations on worker w, g = p microbatches per round",
            peak_activations=lambda p, m, v: [min(v * m, (v - 1) * _round_size(p, m) + 2 * (p - w - 1) + 1) for w in range(p)],
            used_in="Megatron-LM (Narayanan et al., 2021) --num-layers-per-virtual-pipeline-stage, "
            "ScheduleInterleaved1F1B in torch.distributed.pipelining",
            stages_per_worker=None,
        ),
        ScheduleInfo(
            name="looped-bfs",
            build=build_looped_bfs,
            title="Looped BFS (breadth first)",
            how=(
                "The interleaved placement, but breadth first: each worker runs every forward of "
                "its first chunk, then of its next chunk, and only then the backwards, last chunk "
                "first. The bubble shrinks like interleaved 1F1B's; memory grows like GPipe's."
            ),
            bubble_formula="(p-1)/(v*m+p-1)",
            bubble=lambda p, m, v: (p - 1) / (v * m + p - 1),
            memory="all v*m chunk activations on every worker",
            peak_activations=lambda p, m, v: [v * m] * p,
            used_in="Breadth-First Pipeline Parallelism (Lamy-Poirier, 2023), ScheduleLoopedBFS "
            "in torch.distributed.pipelining",
            stages_per_worker=None,
        ),
        ScheduleInfo(
            name="zb-h1",
            build=build_zb_h1,
            title="ZB-H1 (zero bubble, 1F1B memory)",
            how=(
                "The backward splits into I (input gradient: the previous worker waits for it) and "
                "W (weight gradient: nobody waits). 1F1B's order with I in B's place, and each W "
                "deferred by d input-gradients on worker d, into the time 1F1B's later workers "
                "spend waiting. The bubble per worker drops to (p-1)(F+I-W); memory stays 1F1B's."
            ),
            bubble_formula="(p-1)/(3m+p-1)",
            bubble=lambda p, m, v: (p - 1) / (3 * m + p - 1),
            memory="min(p, m) microbatches of activations on every worker",
            peak_activations=lambda p, m, v: [min(p, m)] * p,
            used_in="Zero Bubble Pipeline Parallelism (Qi et al., ICLR 2024); "
            "torch.distributed.pipelining's ScheduleInterleavedZeroBubble applies the same I/W split "
            "to interleaved stages",
        ),
        ScheduleInfo(
            name="zb-h2",
            build=build_zb_h2,
            title="ZB-H2 (zero bubble, twice the memory)",
            how=(
                "Like ZB-H1, but worker d runs 2(p-d)-1 warm-up forwards, filling the time before "
                "its first input-gradient returns, then I, W, F per microbatch. The early workers' "
                "idle time moves from the start of the step to its end, for about twice 1F1B's "
                "activation memory. Within one flushed step, as here, that cannot beat ZB-H1: the "
                "last worker still starts (p-1)F late, so both take m(F+I+W) + (p-1)F. The paper's "
                "gain comes when consecutive steps overlap (it replaces the optimizer's sync with "
                "post-validation), which a flush after every step does not allow."
            ),
            bubble_formula="(p-1)/(3m+p-1)",
            bubble=lambda p, m, v: (p - 1) / (3 * m + p - 1),
            memory="2(p-w)-1 + max(0, 2w-p+1) microbatches on worker w (2p-1 on worker 0)",
            peak_activations=lambda p, m, v: [min(m, 2 * (p - w) - 1 + max(0, 2 * w - p + 1)) for w in range(p)],
            used_in="Zero Bubble Pipeline Parallelism (Qi et al., ICLR 2024)",
        ),
        ScheduleInfo(
            name="zb-v",
            build=build_zb_v,
            title="ZB-V (zero bubble in a V)",
            how=(
                "Two chunks per worker placed in a V (worker d holds stages d and 2p-1-d), so a "
                "microbatch goes down the workers and comes back up; the last stage (and the "
                "loss) sits on worker 0, next to the first. With I/W split and W's filling the "
                "gaps, the bubble is the ramp of one chunk, at 1F1B's memory."
            ),
            bubble_formula="(p-1)/(6m+p-1)",
            bubble=lambda p, m, v: (p - 1) / (6 * m + p - 1),
            memory="2p chunk activations (p microbatches' worth) on every worker, when m >= p",
            peak_activations=lambda p, m, v: [min(2 * p, 2 * m)] * p,
            used_in="Zero Bubble Pipeline Parallelism (Qi et al., 2024), ScheduleZBVZeroBubble "
            "in torch.distributed.pipelining",
            stages_per_worker=2,
        ),
        ScheduleInfo(
            name="dualpipev",
            build=build_dualpipev,
            title="DualPipeV (DeepSeek)",
            how=(
                "The V placement, with the steady state made of overlapped steps: the forward of "
                "one microbatch and the backward of another issued together, (sFm;tBn), so on a "
                "real cluster one's computation hides the other's all-to-all communication. Here "
                "the pair runs back to back on the worker; the tail splits I and W like ZB-V."
            ),
            bubble_formula="(p-1)/(6m+p-1)",
            bubble=lambda p, m, v: (p - 1) / (6 * m + p - 1),
            memory="2p+1 chunk activations on every worker",
            peak_activations=lambda p, m, v: [2 * p + 1] * p,
            used_in="DeepSeek-V3 (DualPipe, 2024) and its cut-in-half variant DualPipeV",
            stages_per_worker=2,
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


def build_schedule(name: str, workers: int, microbatches: int, virtual: int | None = None) -> Schedule:
    """Build a built-in schedule by name, e.g. ``build_schedule("interleaved", 4, 8, virtual=2)``.

    ``virtual`` (stages per worker) applies to interleaved and looped-bfs (default 2).
    """
    info = get_schedule_info(name)
    for what, value in (("workers", workers), ("microbatches", microbatches)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ScheduleError(f"{what} must be an integer >= 1, got {value!r}")
    v = info.virtual(virtual)
    return info.build(workers, microbatches, v) if info.stages_per_worker is None else info.build(workers, microbatches)
