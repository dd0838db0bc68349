"""The threaded engine: one thread per worker runs its action list in order.

Workers talk only through their inboxes (one ``queue.Queue`` each). A message carries an
activation forward or a gradient backward, keyed by ``(step, what, stage, microbatch)``; a worker
that needs a message it has not received yet blocks on its inbox and keeps whatever else arrives
for later, so *any* valid order runs. The engine knows nothing about particular schedules.

Each step ends with a pipeline flush: every worker finishes its list, takes the optimizer step for
its stages, and meets the others at a barrier before the next step starts.

Every action records its start and end, and every blocking receive records when it began, when it
ended and what it waited for; the result is a measured :class:`~pipenaut.timeline.Timeline`.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from .actions import Action, Overlap
from .model import Adam, Stage
from .schedule import Schedule
from .simulator import Costs
from .timeline import Span, Timeline


class PipelineError(RuntimeError):
    """A worker failed; every other worker was stopped."""


class _Stopped(Exception):
    """Raised inside a worker when another worker has failed."""


_STOP = object()
_SPIN = 2e-4  # seconds


@dataclass(frozen=True)
class Batch:
    """The training data, already cut into microbatches."""

    inputs: list[np.ndarray]
    labels: list[np.ndarray]
    weights: list[float]  # each microbatch's share of the batch


class Engine:
    def __init__(
        self,
        schedule: Schedule,
        stages: list[Stage],
        optimizers: list[Adam],
        data: Callable[[int], Batch],
        emulate: Costs | None = None,
        latency: float = 0.0,
    ):
        """``data(step)`` gives the batch of a step, cut into the schedule's microbatches.

        ``emulate`` (seconds per action kind) makes every action take the given time *instead of*
        running its kernel, so the timing of a cluster of N devices can be felt on fewer cores
        (real kernels would compete for them). Messages still travel through the real channels;
        nothing is trained, so the losses are NaN.
        ``latency`` (seconds) delays every message between two workers.
        """
        if len(stages) != schedule.stages:
            raise ValueError(f"the schedule has {schedule.stages} stages, the model {len(stages)}")
        self.schedule, self.stages, self.optimizers, self.data = schedule, stages, optimizers, data
        self.emulate, self.latency = emulate, latency

    def run(self, steps: int, on_step: Callable[[int, float], None] | None = None) -> tuple[Timeline, list[float]]:
        """Train for ``steps`` pipeline steps. Returns the measured timeline and each step's loss."""
        workers = self.schedule.workers
        self._inboxes = [queue.Queue() for _ in range(workers)]
        self._pending: list[dict] = [{} for _ in range(workers)]
        self._spans: list[list[Span]] = [[] for _ in range(workers)]
        self._step_starts: list[list[float]] = [[] for _ in range(workers)]
        self._next_step = 0
        # The last worker to reach the barrier prepares the step's batch while the others wait.
        self._barrier = threading.Barrier(workers, action=self._prepare_batch)
        self._stop = threading.Event()
        self._failure: tuple[int, int, Action | None, BaseException] | None = None
        self._failure_lock = threading.Lock()
        self._done_steps: queue.Queue = queue.Queue()
        self._origin = time.perf_counter()

        threads = [
            threading.Thread(target=self._work, args=(w, steps), name=f"pipenaut-worker-{w}", daemon=True)
            for w in range(workers)
        ]
        losses: list[float] = []
        # One BLAS thread per worker: the workers themselves are the parallelism.
        with threadpool_limits(limits=1, user_api="blas"):
            for t in threads:
                t.start()
            try:
                while len(losses) < steps and not self._stop.is_set():
                    try:
                        losses.append(self._done_steps.get(timeout=0.05))
                    except queue.Empty:
                        if not any(t.is_alive() for t in threads):
                            break
                        continue
                    if on_step is not None:
                        on_step(len(losses) - 1, losses[-1])
            except BaseException:  # Ctrl-C or a failing callback: stop the workers, then re-raise
                self._halt()
                raise
            finally:
                for t in threads:
                    t.join()
        if self._failure is not None:
            worker, step, action, exc = self._failure
            where = f"running {action}" if action is not None else "between actions (optimizer step or loading the batch)"
            raise PipelineError(
                f"worker {worker} failed while {where} in step {step}: {type(exc).__name__}: {exc}"
            ) from exc
        starts = [min(per_worker[i] for per_worker in self._step_starts) for i in range(steps)]
        spans = sorted((s for per_worker in self._spans for s in per_worker), key=lambda s: (s.start, s.worker))
        origin = starts[0] if starts else 0.0
        static = None if self.emulate is not None else [  # emulated devices hold no model
            sum(param.nbytes + grad.nbytes for stage in self.schedule.stages_on(w) for param, grad in self.stages[stage].params())
            for w in range(workers)
        ]
        timeline = Timeline(
            self.schedule, [_shift(s, -origin) for s in spans], [t - origin for t in starts], "measured", static
        )
        return timeline, losses

    # -- inside a worker thread -------------------------------------------------------------

    def _now(self) -> float:
        return time.perf_counter() - self._origin

    def _prepare_batch(self) -> None:
        self.batch = self.data(self._next_step)
        self._next_step += 1

    def _work(self, worker: int, steps: int) -> None:
        step, action = 0, None
        try:
            for step in range(steps):
                self._barrier.wait()
                self._step_starts[worker].append(self._now())
                for entry in self.schedule.actions[worker]:
                    recorded = len(self._spans[worker])
                    for action in entry.parts:  # an overlapped pair runs back to back
                        if self._stop.is_set():
                            raise _Stopped
                        self._run(worker, step, action)
                    if isinstance(entry, Overlap):  # from its first half's start: waits before it stay outside
                        start = next(s.start for s in self._spans[worker][recorded:] if s.is_compute)
                        self._spans[worker].append(Span(worker, step, start, self._now(), "overlap", entry))
                action = None
                if self.emulate is None:
                    start = self._now()
                    for stage in self.schedule.stages_on(worker):
                        self.optimizers[stage].step()
                    self._spans[worker].append(Span(worker, step, start, self._now(), "optimizer"))
                if self.schedule.placement[-1] == worker:
                    self._done_steps.put(self._step_loss())
        except (_Stopped, threading.BrokenBarrierError):
            return
        except BaseException as exc:  # noqa: BLE001 - any failure must stop every worker
            with self._failure_lock:
                if self._failure is None:
                    self._failure = (worker, step, action, exc)
            self._halt()

    def _step_loss(self) -> float:
        """The batch loss: each microbatch's mean loss weighted by its share (NaN when emulated)."""
        if self.emulate is not None:
            return math.nan
        last = self.stages[-1]
        return sum(weight * last.losses.pop(mb) for mb, weight in enumerate(self.batch.weights))

    def _halt(self) -> None:
        self._stop.set()
        self._barrier.abort()
        for inbox in self._inboxes:
            inbox.put(_STOP)

    def _run(self, worker: int, step: int, action: Action) -> None:
        """Receive the action's input from its neighbour, compute, send the output on."""
        stage, mb, kind = self.stages[action.stage], action.microbatch, action.kind
        last = action.stage == self.schedule.stages - 1
        received = None
        if kind == "F" and action.stage > 0:
            received = self._receive(worker, step, action, (step, "activation", action.stage - 1, mb))
        elif kind in ("B", "I") and not last:
            received = self._receive(worker, step, action, (step, "gradient", action.stage + 1, mb))
        start = self._now()
        if self.emulate is None:
            output = self._compute(stage, action, received)
        else:  # an emulated device takes the given time and computes nothing
            output = None
            _sleep_until(self._origin + start + self.emulate.of(action))
        held = self._held_bytes(worker) if self.emulate is None else None  # emulated devices hold nothing
        self._spans[worker].append(Span(worker, step, start, self._now(), kind, action, memory=held))
        if kind == "F" and not last:
            self._send(self.schedule.placement[action.stage + 1], (step, "activation", action.stage, mb), output, worker)
        elif kind in ("B", "I") and action.stage > 0:
            self._send(self.schedule.placement[action.stage - 1], (step, "gradient", action.stage, mb), output, worker)

    def _compute(self, stage: Stage, action: Action, received: np.ndarray | None) -> np.ndarray | None:
        mb = action.microbatch
        if action.kind == "F":
            x = self.batch.inputs[mb] if action.stage == 0 else received
            return stage.forward(mb, x, self.batch.labels[mb], self.batch.weights[mb])
        if action.kind == "W":
            stage.backward_weight(mb)
            return None
        grad = stage.backward_input(mb, received, need_input_grad=action.stage > 0)
        if action.kind == "B":
            stage.backward_weight(mb)
        return grad

    def _send(self, worker: int, key: tuple, payload: np.ndarray, sender: int) -> None:
        arrival = time.perf_counter() + (self.latency if worker != sender else 0.0)
        self._inboxes[worker].put((key, (payload, arrival)))

    def _receive(self, worker: int, step: int, action: Action, key: tuple):
        pending, inbox = self._pending[worker], self._inboxes[worker]
        while key not in pending:  # take what already arrived without blocking
            try:
                self._file(pending, inbox.get_nowait())
            except queue.Empty:
                break
        start, blocked = self._now(), key not in pending
        while key not in pending:
            self._file(pending, inbox.get())
        payload, arrival = pending.pop(key)
        on_link = arrival > time.perf_counter()  # an emulated link: the message is not there before its latency
        if on_link:
            _sleep_until(arrival)
        if blocked or on_link:
            producer = self.schedule.upstream(action)
            peer, end = self.schedule.worker_of(producer), self._now()
            self._spans[worker].append(Span(worker, step, start, end, "wait", producer, peer))
            if on_link:
                sent = arrival - self.latency - self._origin
                self._spans[worker].append(Span(worker, step, max(start, sent), end, "transit", producer, peer))
        return payload

    def _held_bytes(self, worker: int) -> int:
        """Activation bytes the worker's stages hold right now (their stashes)."""
        return sum(
            array.nbytes
            for stage in self.schedule.stages_on(worker)
            for stash in (self.stages[stage].stash, self.stages[stage].pending_weight)
            for saved in stash.values()
            for array in saved
            if array is not None
        )

    @staticmethod
    def _file(pending: dict, message) -> None:
        if message is _STOP:
            raise _Stopped
        key, payload = message
        pending[key] = payload


def _sleep_until(deadline: float) -> None:
    """Sleep, then yield in a short spin for the last stretch: a plain sleep overshoots by about
    a tenth of a millisecond, which adds up over a pipeline of millisecond-long emulated actions."""
    remaining = deadline - time.perf_counter()
    if remaining > _SPIN:
        time.sleep(remaining - _SPIN)
    while time.perf_counter() < deadline:
        time.sleep(0)  # releases the GIL on every turn


def _shift(span: Span, by: float) -> Span:
    return span._replace(start=span.start + by, end=span.end + by)
