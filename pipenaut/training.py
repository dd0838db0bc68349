"""Training runs: the pipelined one on worker threads, and the sequential reference it must match."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .engine import Batch, Engine
from .model import Adam, ModelConfig, Stage, build_stages, make_dataset, split_microbatches
from .schedule import Schedule
from .simulator import Costs, validate
from .timeline import Timeline


@dataclass
class RunResult:
    schedule: Schedule
    config: ModelConfig
    timeline: Timeline
    losses: list[float]
    stages: list[Stage] = field(repr=False)

    @property
    def final_loss(self) -> float:
        return self.losses[-1]

    def parameters(self) -> list[np.ndarray]:
        """Every parameter of the model, in layer order (comparable across stage cuts)."""
        return [p for stage in self.stages for p, _ in stage.params()]


def make_batch(config: ModelConfig, microbatches: int, step: int) -> Batch:
    inputs, labels = make_dataset(config, step)
    pieces = split_microbatches(config.batch_size, microbatches)
    return Batch(
        inputs=[inputs[p] for p in pieces],
        labels=[labels[p] for p in pieces],
        weights=[(p.stop - p.start) / config.batch_size for p in pieces],
    )


def train(
    schedule: Schedule,
    config: ModelConfig = ModelConfig(),
    steps: int = 30,
    on_step: Callable[[int, float], None] | None = None,
    emulate: Costs | None = None,
    latency: float = 0.0,
) -> RunResult:
    """Train the MLP for ``steps`` pipeline steps under ``schedule`` on one thread per worker.

    The schedule is validated first, so a broken one raises :class:`ScheduleError` instead of
    leaving threads waiting for each other. ``emulate`` and ``latency`` (seconds) emulate devices
    and links: see :class:`~pipenaut.engine.Engine`.
    """
    validate(schedule)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if config.batch_size < schedule.microbatches:
        raise ValueError(f"a batch of {config.batch_size} cannot be cut into {schedule.microbatches} microbatches")
    stages = build_stages(config, schedule.stages)
    optimizers = [Adam(stage.params(), config.learning_rate) for stage in stages]
    engine = Engine(
        schedule, stages, optimizers, lambda step: make_batch(config, schedule.microbatches, step), emulate, latency
    )
    timeline, losses = engine.run(steps, on_step)
    return RunResult(schedule, config, timeline, losses, stages)


def train_sequential(config: ModelConfig, steps: int) -> tuple[list[np.ndarray], list[float]]:
    """The reference: the whole batch through the whole model on one thread, one Adam step per
    step. Returns the parameters (layer order) and the losses."""
    (model,) = build_stages(config, 1)
    optimizer = Adam(model.params(), config.learning_rate)
    losses = []
    for step in range(steps):
        inputs, labels = make_dataset(config, step)
        model.forward(0, inputs, labels, weight=1.0)
        model.backward_input(0, None, need_input_grad=False)
        model.backward_weight(0)
        losses.append(model.losses.pop(0))
        optimizer.step()
    return [p for p, _ in model.params()], losses
