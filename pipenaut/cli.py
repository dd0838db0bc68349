"""The ``pipenaut`` command line: run, compare, explain.

Every number printed comes from a measured (or, where labelled, simulated) timeline; textbook
formulas are printed beside them, labelled as theory. Bad input gets one line naming the problem
and the fix, exit code 2, and no trace file.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import render
from .engine import PipelineError
from .model import ModelConfig, layer_split
from .schedule import Schedule, ScheduleError
from .schedules import SCHEDULES, ScheduleInfo, build_schedule, get_schedule_info, schedule_names
from .simulator import Costs, simulate, validate
from .trace import check_writable, write_trace
from .training import RunResult, train


class UsageProblem(Exception):
    """Bad input: reported as one line, exit code 2."""

    exit_code = 2


class _OneLineErrors(typer.core.TyperGroup):
    """Report usage errors (typer's and ours) as one line on stderr instead of a framed panel."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except UsageProblem as exc:
            code = self._report(str(exc), exc.exit_code)
        except typer.Abort:
            code = self._report("aborted", 1)
        except Exception as exc:  # typer's parsing errors: duck-typed, they moved between releases
            if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
                raise
            hint = " (see --help)" if exc.exit_code == 2 else ""
            code = self._report(exc.format_message() + hint, exc.exit_code)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    @staticmethod
    def _report(message: str, code: int) -> int:
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        return code


app = typer.Typer(
    cls=_OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Experience pipeline parallelism: train a numpy MLP on one thread per pipeline device.",
)

PERFETTO_HINT = "open https://ui.perfetto.dev, click 'Open trace file' and pick it (or drag it onto the page)"


def fail(message: str) -> None:
    raise UsageProblem(message)


@dataclass(frozen=True)
class Settings:
    workers: int
    chunks: int
    steps: int
    batch_size: int
    dim: int
    layers: int
    seed: int

    def model(self) -> ModelConfig:
        return ModelConfig(dim=self.dim, layers=self.layers, batch_size=self.batch_size, seed=self.seed)


def make_settings(workers, chunks, steps, batch_size, dim, layers, seed) -> Settings:
    """Check every number before anything runs."""
    for flag, value in [("--workers", workers), ("--chunks", chunks), ("--steps", steps), ("--batch-size", batch_size), ("--dim", dim)]:
        if value < 1:
            fail(f"{flag} must be at least 1 (got {value}); pass {flag} 1 or more")
    if layers is None:
        layers = max(8, workers)
    if layers < 1:
        fail(f"--layers must be at least 1 (got {layers}); pass --layers 1 or more")
    if layers < workers:
        fail(f"{layers} layers cannot be split over {workers} workers; pass --layers {workers} or more, or fewer --workers")
    if batch_size < chunks:
        fail(f"a batch of {batch_size} cannot be cut into {chunks} microbatches; pass --batch-size {chunks} or more, or fewer --chunks")
    return Settings(workers, chunks, steps, batch_size, dim, layers, seed)


def pick_schedule(name: str, settings: Settings) -> Schedule:
    try:
        schedule = build_schedule(name, settings.workers, settings.chunks)
        validate(schedule)
    except ScheduleError as exc:
        fail(str(exc))
    return schedule


def trace_target(trace: Optional[Path], no_trace: bool, default: str) -> Optional[Path]:
    if no_trace:
        return None
    path = trace if trace is not None else Path("traces") / default
    try:
        return check_writable(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        fail(f"cannot write the trace to {path}: {reason}; pass another --trace PATH, or --no-trace")


def theory_bubble(schedule: Schedule) -> float | None:
    info = SCHEDULES.get(schedule.name)
    return info.bubble(schedule.workers, schedule.microbatches) if info else None


def summary(result: RunResult, trace: Optional[Path]) -> dict:
    """The JSON object of one run: every number from the measured timeline."""
    timeline, step = result.timeline, result.timeline.typical_step()
    schedule = result.schedule
    return {
        "schedule": schedule.name,
        "workers": schedule.workers,
        "chunks": schedule.microbatches,
        "steps": len(result.losses),
        "batch_size": result.config.batch_size,
        "dim": result.config.dim,
        "layers": result.config.layers,
        "seed": result.config.seed,
        "step_time_s": timeline.step_time(step),
        "measured_step": step,
        "makespan_s": timeline.makespan(step),
        "bubble_measured": timeline.bubble(step),
        "bubble_formula": theory_bubble(schedule),
        "idle_per_worker_s": timeline.idle(step),
        "busy_per_worker_s": timeline.busy(step),
        "peak_activations": timeline.peak_activations(step),
        "mean_action_s": timeline.mean_costs(),
        "losses": [_finite(loss) for loss in result.losses],
        "final_loss": _finite(result.final_loss),
        "trace": str(trace) if trace is not None else None,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _train(schedule: Schedule, settings: Settings, console: Console | None, label: str = "training") -> RunResult:
    """Train with a progress bar (none when ``console`` is None); engine failures become one line."""
    try:
        if console is None:
            return train(schedule, settings.model(), settings.steps)
        columns = [TextColumn(f"{label} {schedule.name:<6}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn()]
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(label, total=settings.steps, loss="-")
            return train(
                schedule,
                settings.model(),
                settings.steps,
                on_step=lambda step, loss: progress.update(task, completed=step + 1, loss=f"{loss:.4f}"),
            )
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def _split_note(settings: Settings) -> str:
    split = layer_split(settings.layers, settings.workers)
    if len(set(split)) == 1:
        return f"{split[0]} layers per stage"
    return f"layers per stage {split}: {settings.layers} does not divide by {settings.workers}, the first stages take one more"


def _cores_note(workers: int) -> str | None:
    cores = os.cpu_count() or 1
    if cores < workers:
        return (
            f"note: {workers} workers share {cores} cores, so they cannot all compute at once; "
            "the measured bubble includes that wait for a core, the theory does not."
        )
    return None


WorkersOpt = Annotated[int, typer.Option("--workers", "-w", help="Pipeline devices (one thread each).")]
ChunksOpt = Annotated[int, typer.Option("--chunks", "-c", help="Microbatches per step.")]
StepsOpt = Annotated[int, typer.Option("--steps", help="Training steps (one pipeline flush + Adam step each).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Samples per step, cut into --chunks microbatches.")]
DimOpt = Annotated[int, typer.Option("--dim", help="Width of the MLP's hidden layers.")]
LayersOpt = Annotated[Optional[int], typer.Option("--layers", help="Hidden layers, spread over the workers. [default: 8, or one per worker]", show_default=False)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for the weights and the synthetic data.")]
TraceOpt = Annotated[Optional[Path], typer.Option("--trace", help="Where to write the Perfetto trace (Chrome JSON).", show_default=False)]
NoTraceOpt = Annotated[bool, typer.Option("--no-trace", help="Write no trace file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]


@app.command()
def run(
    schedule: Annotated[str, typer.Option("--schedule", "-s", help=f"One of: {schedule_names()}.")] = "1f1b",
    workers: WorkersOpt = 4,
    chunks: ChunksOpt = 8,
    steps: StepsOpt = 30,
    batch_size: BatchOpt = 256,
    dim: DimOpt = 256,
    layers: LayersOpt = None,
    seed: SeedOpt = 0,
    trace: TraceOpt = None,
    no_trace: NoTraceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train under one schedule, show the bars of a measured step, and write a trace."""
    settings = make_settings(workers, chunks, steps, batch_size, dim, layers, seed)
    plan = pick_schedule(schedule, settings)
    target = trace_target(trace, no_trace, f"{plan.name}.json")
    console = None if as_json else Console(highlight=False)
    if console is not None:
        micro = settings.batch_size // settings.chunks
        console.print(
            f"[bold]pipenaut run[/] · {plan.name} · {settings.workers} workers · {settings.chunks} microbatches of "
            f"~{micro} · MLP {settings.layers}×{settings.dim} ({_split_note(settings)}) · {settings.steps} steps"
        )
    result = _train(plan, settings, console)
    if target is not None:
        write_trace(target, [(f"{plan.name} (measured)", result.timeline)])
    data = summary(result, target)
    if console is None:
        print(json.dumps(data))
        return
    timeline, step = result.timeline, data["measured_step"]
    console.print(f"\nMeasured step {step} (the median of {settings.steps} by wall time):")
    console.print(render.bars(timeline, step, console.width))
    formula = get_schedule_info(plan.name)
    console.print(
        f"step {data['step_time_s'] * 1e3:.1f} ms · bubble {data['bubble_measured']:.1%} measured, "
        f"{data['bubble_formula']:.1%} theory {formula.bubble_formula} · peak activations "
        f"{' '.join(map(str, data['peak_activations']))} (per worker) · loss {result.losses[0]:.4f} → {result.final_loss:.4f}"
    )
    note = _cores_note(settings.workers)
    if note:
        console.print(note, style="grey50")
    if target is not None:
        console.print(f"trace: {target} — {PERFETTO_HINT}")


@app.command()
def compare(
    workers: WorkersOpt = 4,
    chunks: ChunksOpt = 8,
    steps: StepsOpt = 30,
    batch_size: BatchOpt = 256,
    dim: DimOpt = 256,
    layers: LayersOpt = None,
    seed: SeedOpt = 0,
    trace: TraceOpt = None,
    no_trace: NoTraceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run every schedule with the same settings; one table and one combined trace."""
    settings = make_settings(workers, chunks, steps, batch_size, dim, layers, seed)
    plans = [pick_schedule(name, settings) for name in SCHEDULES]
    target = trace_target(trace, no_trace, "compare.json")
    console = None if as_json else Console(highlight=False)
    results = [_train(plan, settings, console, label="compare") for plan in plans]
    if target is not None:
        write_trace(target, [(f"{r.schedule.name} (measured)", r.timeline) for r in results])
    runs = [summary(r, target) for r in results]
    if console is None:
        print(json.dumps({"runs": runs, "trace": str(target) if target is not None else None}))
        return
    naive = runs[0]["step_time_s"]
    table = Table(title=f"{settings.workers} workers · {settings.chunks} microbatches · {settings.steps} steps (median step)")
    for column in ["schedule", "step time", "speedup vs naive", "bubble measured", "bubble theory", "peak activations", "final loss"]:
        table.add_column(column, justify="left" if column == "schedule" else "right")
    for run_data, plan in zip(runs, plans):
        table.add_row(
            plan.name,
            f"{run_data['step_time_s'] * 1e3:.1f} ms",
            f"{naive / run_data['step_time_s']:.2f}×",
            f"{run_data['bubble_measured']:.1%}",
            f"{run_data['bubble_formula']:.1%} {get_schedule_info(plan.name).bubble_formula}",
            " ".join(map(str, run_data["peak_activations"])),
            f"{run_data['final_loss']:.4f}" if run_data["final_loss"] is not None else "nan",
        )
    console.print(table)
    note = _cores_note(settings.workers)
    if note:
        console.print(note, style="grey50")
    if target is not None:
        console.print(f"trace: {target} (one process per schedule) — {PERFETTO_HINT}")


@app.command()
def explain(
    name: Annotated[str, typer.Argument(help=f"One of: {schedule_names()}.", show_default=False)],
    workers: WorkersOpt = 4,
    chunks: ChunksOpt = 8,
) -> None:
    """How a schedule works: its diagram, bubble and memory, and where it is used."""
    try:
        info: ScheduleInfo = get_schedule_info(name)
    except ScheduleError as exc:
        fail(str(exc))
    settings = make_settings(workers, chunks, 1, max(chunks, 1), 1, None, 0)
    plan = pick_schedule(info.name, settings)
    costs = Costs(F=1, B=2)
    predicted = simulate(plan, costs)
    console = Console(highlight=False)
    console.print(f"[bold]{info.title}[/] ({info.name})\n")
    console.print(info.how + "\n")
    console.print(f"Simulated with unit costs F=1, B=2, {settings.workers} workers, {settings.chunks} microbatches:")
    console.print(render.bars(predicted, 0, console.width))
    console.print(
        f"\nbubble: theory {info.bubble_formula} = {info.bubble(plan.workers, plan.microbatches):.1%}, "
        f"simulated {predicted.bubble():.1%} (makespan {predicted.makespan():g} units)"
    )
    console.print(f"memory: theory {info.memory}")
    console.print(f"        simulated peak per worker: {' '.join(map(str, predicted.peak_activations()))}")
    console.print(f"used in: {info.used_in}")
    console.print(f"\nthe action lists (torch.distributed.pipelining grammar):\n{plan}")


def main() -> None:
    app()
