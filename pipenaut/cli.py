"""The ``pipenaut`` command line: run, compare, simulate, explain, schedule, view.

Every number printed comes from a measured (or, where labelled, simulated) timeline; textbook
formulas are printed beside them, labelled as theory. Bad input gets one line naming the problem
and the fix, exit code 2, and no trace file.
"""

from __future__ import annotations

import json
import math
import os
import sys
import webbrowser
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__, render
from .engine import PipelineError
from .model import ModelConfig, layer_split
from .schedule import Schedule, ScheduleError, read_schedule_file, write_schedule_csv
from .schedules import SCHEDULES, build_schedule, get_schedule_info, schedule_names
from .simulator import MAX_COST, Costs, simulate, validate
from .timeline import Timeline
from .trace import FORMATS, check_writable, write_trace
from .training import RunResult, train
from .view import UI, PortBusy, TraceServer, serve_until_fetched


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
        except MemoryError:
            code = self._report("out of memory; pass a smaller --dim, --batch-size or --layers", 1)
        except Exception as exc:  # typer's parsing errors: duck-typed, they moved between releases
            if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
                raise
            message = exc.format_message()
            if message:  # an empty one follows the help text that `pipenaut` alone prints
                code = self._report(message + (" (see --help)" if exc.exit_code == 2 else ""), exc.exit_code)
            else:
                code = exc.exit_code
        if code == 130:
            self._report("interrupted; nothing was written", 130)
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

def perfetto_hint(target: Path) -> str:
    return f"open it with: pipenaut view {target}   (or at https://ui.perfetto.dev, 'Open trace file')"


def fail(message: str) -> None:
    raise UsageProblem(message)


def make_console() -> Console:
    # soft_wrap: long lines are left for the terminal to wrap, never broken mid-phrase when piped
    return Console(highlight=False, soft_wrap=True)


def plural(count: int, noun: str) -> str:
    ending = "" if count == 1 else ("es" if noun.endswith("ch") else "s")
    return f"{count} {noun}{ending}"


# -- checking input: everything is checked before anything runs or any file is written ---------


def check_at_least_one(**flags: int | None) -> None:
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if value is not None and value < 1:
            fail(f"{flag} must be at least 1 (got {value}); pass {flag} 1 or more")


def plan_schedule(
    name: str | None, schedule_file: Path | None, workers: int | None, chunks: int | None, virtual: int | None = None
) -> Schedule:
    """A built-in schedule by name (default 1f1b, 4 workers, 8 microbatches) or a user's file,
    validated."""
    check_at_least_one(workers=workers, chunks=chunks, virtual=virtual)
    actions = 3 * (workers or 4) * (chunks or 8) * (virtual or 2)  # an upper bound of the list's size
    if schedule_file is None and actions > MAX_ACTIONS:
        fail(f"that schedule would have about {actions:,} actions, more than {MAX_ACTIONS:,}; pass fewer --chunks or --workers")
    try:
        if schedule_file is None:
            schedule = build_schedule(name or "1f1b", workers or 4, chunks or 8, virtual)
        else:
            if name is not None:
                fail("a schedule name and --schedule-file cannot be used together; pick one")
            if virtual is not None:
                fail("--virtual applies to built-in schedules; a schedule file places its stages itself")
            schedule = read_schedule_file(schedule_file)
            for flag, given, actual, what in [("--workers", workers, schedule.workers, "workers"), ("--chunks", chunks, schedule.microbatches, "microbatches")]:
                if given is not None and given != actual:
                    fail(f"{schedule_file} has {actual} {what} but {flag} {given} was given; drop {flag} or make it {actual}")
        validate(schedule)
    except ScheduleError as exc:
        named = schedule_file is None or str(schedule_file) in str(exc)
        fail(str(exc) if named else f"{schedule_file}: {exc}")
    return schedule


MAX_ACTIONS = 20_000_000  # a few GB of action lists: beyond it, a clear "no" beats swapping


def model_config(schedule: Schedule, batch_size: int, dim: int, layers: int | None, seed: int) -> ModelConfig:
    check_at_least_one(batch_size=batch_size, dim=dim, layers=layers)
    if seed < 0:
        fail(f"--seed must be 0 or more (got {seed})")
    stages = schedule.stages
    if layers is None:
        layers = max(8, stages)
    if layers < stages:
        fail(f"{layers} layers cannot be split over {stages} stages; pass --layers {stages} or more")
    if batch_size < schedule.microbatches:
        fail(
            f"a batch of {batch_size} cannot be cut into {schedule.microbatches} microbatches; "
            f"pass --batch-size {schedule.microbatches} or more, or fewer --chunks"
        )
    config = ModelConfig(dim=dim, layers=layers, batch_size=batch_size, seed=seed)
    need, have = config.estimated_bytes(), _physical_memory()
    if have and need > 0.8 * have:
        fail(
            f"this model needs about {need / 2**30:.3g} GiB, more than this machine's {have / 2**30:.3g} GiB "
            "can hold; pass a smaller --dim, --batch-size or --layers"
        )
    return config


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on every platform
        return None


def per_stage(costs: Costs, schedule: Schedule) -> Costs:
    """``--costs`` are per action of a worker's whole model slice; a worker that holds v stages
    does 1/v of that slice per stage action, so every schedule does the same work per worker."""
    if schedule.stages == schedule.workers:
        return costs
    return replace(costs, stage_scale=(schedule.workers / schedule.stages,) * schedule.stages)


def costs_in_seconds(text: str | None, latency_ms: float) -> Costs:
    """``--costs`` and ``--latency`` are milliseconds; timelines are seconds. Without ``--costs``
    only the latency matters."""
    if not 0 <= latency_ms <= MAX_COST:
        fail(f"--latency must be a number of milliseconds from 0 to {MAX_COST:g} (got {latency_ms}); e.g. --latency 0.5")
    try:
        costs = Costs(latency=latency_ms) if text is None else Costs.parse(text, latency=latency_ms)
    except ValueError as exc:
        fail(f"--costs: {exc}")
    return costs.scaled(1e-3)


class Compute(str, Enum):
    real = "real"
    emulate = "emulate"


def emulation(compute: Compute, costs: str | None, latency_ms: float) -> tuple[Costs | None, float]:
    """What the engine emulates: action durations (seconds) or None, and link latency (seconds)."""
    if compute is Compute.emulate and costs is None:
        fail("--compute emulate needs --costs, e.g. --costs F=2,B=4 (milliseconds)")
    if compute is Compute.real and costs is not None:
        fail("--costs sets emulated action durations; add --compute emulate (or use pipenaut simulate)")
    parsed = costs_in_seconds(costs, latency_ms)
    return (parsed if compute is Compute.emulate else None), parsed.latency


def trace_target(trace: Optional[str], no_trace: bool, default: str | None, flag: str = "--trace") -> Optional[Path]:
    """Where a file will go, checked now: before anything runs, so a bad path costs nothing."""
    if no_trace and trace is not None:
        fail("--trace and --no-trace contradict each other; pass one of them")
    if no_trace or (trace is None and default is None):
        return None
    example = "plan.csv" if flag == "--csv" else "run.json"
    if trace is not None and (trace == "" or trace.endswith(("/", os.sep))):
        fail(f"{flag} {trace!r} names a folder, not a file; pass a file name such as {trace or 'traces/'}{example}")
    path = Path(trace) if trace is not None else Path("traces") / default
    what = "the trace to " if flag == "--trace" else ""
    try:
        check_writable(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        alternative = f"pass another {flag} PATH" + (", or --no-trace" if flag == "--trace" else "")
        fail(f"cannot write {what}{path}: {reason}; {alternative}")
    if flag == "--trace" and not str(path).lower().endswith(FORMATS):
        fail(f"--trace {path}: the extension picks the format; end the name in {', '.join(FORMATS)}")
    return path


def trace_metadata(data: dict) -> dict:
    """The run's settings and bubbles, for the trace: everything but the per-step lists."""
    return {k: v for k, v in data.items() if k not in ("losses", "trace") and not isinstance(v, (list, dict))}


def save_trace(target: Path, runs: list[tuple[str, Timeline]], metadata: list[dict]) -> None:
    """Write the trace; a failure now (the disk filled up during the run) is one line, exit 1."""
    try:
        write_trace(target, runs, metadata)
    except OSError as exc:
        print(f"error: could not write the trace to {target}: {exc.strerror or exc}; nothing was written", file=sys.stderr)
        raise typer.Exit(1) from None


# -- numbers -----------------------------------------------------------------------------------


def theory_bubble(schedule: Schedule) -> float | None:
    info = SCHEDULES.get(schedule.name)
    if info is None:
        return None
    return info.bubble(schedule.workers, schedule.microbatches, schedule.stages // schedule.workers)


def predict(result: RunResult, latency: float) -> Timeline:
    """The simulator fed with the mean measured duration of each action kind."""
    mean = result.timeline.mean_costs()
    costs = Costs(F=mean.get("F", 0.0), I=mean.get("I", 0.0), W=mean.get("W", 0.0), B=mean.get("B"), latency=latency)
    return simulate(result.schedule, costs)


def summary(result: RunResult, trace: Optional[Path], latency: float, emulated: Costs | None) -> dict:
    """The JSON object of one run: every number from the measured timeline, the prediction and
    the textbook value beside it."""
    timeline, step = result.timeline, result.timeline.typical_step()
    schedule, predicted = result.schedule, predict(result, latency)
    return {
        "schedule": schedule.name,
        "workers": schedule.workers,
        "chunks": schedule.microbatches,
        "stages": schedule.stages,
        "steps": len(result.losses),
        "batch_size": result.config.batch_size,
        "dim": result.config.dim,
        "layers": result.config.layers,
        "seed": result.config.seed,
        "compute": "emulate" if emulated is not None else "real",
        "latency_ms": latency * 1e3,
        "step_time_s": timeline.step_time(step),
        "measured_step": step,
        "makespan_s": timeline.makespan(step),
        "makespan_predicted_s": predicted.makespan(),
        "bubble_measured": timeline.bubble(step),
        "bubble_predicted": predicted.bubble(),
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


def _ms(seconds: float) -> float:
    """Seconds to milliseconds, without the float noise of the round trip (33.000000000000014)."""
    return round(seconds * 1e3, 9)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _disagreement(data: dict) -> str | None:
    """Why measured and predicted bubbles differ, when they differ by more than 5 points."""
    if abs(data["bubble_measured"] - data["bubble_predicted"]) <= 0.05:
        return None
    cores = os.cpu_count() or 1
    if data["compute"] == "real" and cores < data["workers"]:
        return (
            f"{data['workers']} workers share {cores} cores, so they cannot all compute at once; the "
            "simulator assumes one device per worker"
        )
    return "time between actions (Python, queues, thread wake-ups) that the simulator does not model"


def _split_note(config: ModelConfig, stages: int) -> str:
    split = layer_split(config.layers, stages)
    if len(set(split)) == 1:
        return f"{plural(split[0], 'layer')} per stage"
    return f"layers per stage {split}: {config.layers} does not divide by {stages}, the first stages take one more"


# -- running -----------------------------------------------------------------------------------


def _train(schedule: Schedule, config: ModelConfig, steps: int, console: Console | None, emulate: Costs | None, latency: float, label: str) -> RunResult:
    """Train with a progress bar (none when ``console`` is None); engine failures become one line."""
    if emulate is not None:
        emulate = per_stage(emulate, schedule)
    try:
        if console is None:
            return train(schedule, config, steps, emulate=emulate, latency=latency)
        columns = [TextColumn(f"{label} {schedule.name:<6}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn()]
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(label, total=steps, loss="-")
            return train(
                schedule,
                config,
                steps,
                on_step=lambda step, loss: progress.update(task, completed=step + 1, loss=f"{loss:.4f}" if math.isfinite(loss) else "-"),
                emulate=emulate,
                latency=latency,
            )
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None


def _print_run(console: Console, result: RunResult, data: dict) -> None:
    timeline, step = result.timeline, data["measured_step"]
    console.print(f"\nMeasured step {step} (the median of {data['steps']} by wall time):")
    console.print(render.bars(timeline, step, console.width))
    info = SCHEDULES.get(result.schedule.name)
    theory = f"{_percent(data['bubble_formula'])} theory {info.bubble_formula}" if info else "no textbook value (custom schedule)"
    console.print(
        f"step {data['step_time_s'] * 1e3:.1f} ms · bubble {data['bubble_measured']:.1%} measured, "
        f"{data['bubble_predicted']:.1%} predicted, {theory}"
    )
    loss = (
        f"loss {result.losses[0]:.4f} → {result.final_loss:.4f}"
        if data["final_loss"] is not None
        else "no loss: emulated devices compute nothing"
    )
    console.print(f"peak activations per worker: {' '.join(map(str, data['peak_activations']))} · {loss}")
    why = _disagreement(data)
    if why:
        console.print(
            f"note: measured and predicted bubbles differ ({data['bubble_measured']:.1%} vs "
            f"{data['bubble_predicted']:.1%}): {why}.",
            style="grey50",
        )


WorkersOpt = Annotated[Optional[int], typer.Option("--workers", "-w", help="Pipeline devices (one thread each). \\[default: 4]", show_default=False)]
ChunksOpt = Annotated[Optional[int], typer.Option("--chunks", "-c", help="Microbatches per step. \\[default: 8]", show_default=False)]
StepsOpt = Annotated[int, typer.Option("--steps", help="Training steps (one pipeline flush + Adam step each).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Samples per step, cut into --chunks microbatches.")]
DimOpt = Annotated[int, typer.Option("--dim", help="Width of the MLP's hidden layers.")]
LayersOpt = Annotated[Optional[int], typer.Option("--layers", help="Hidden layers, spread over the stages. \\[default: 8, or one per stage]", show_default=False)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for the weights and the synthetic data.")]
TraceOpt = Annotated[Optional[str], typer.Option("--trace", help="Where to write the Perfetto trace: .json, .json.gz or .pftrace (Perfetto's protobuf). \\[default: traces/<schedule>.json]", show_default=False)]
NoTraceOpt = Annotated[bool, typer.Option("--no-trace", help="Write no trace file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]
ScheduleFileOpt = Annotated[Optional[Path], typer.Option("--schedule-file", help="A schedule of your own: one line of actions per worker (e.g. 0F0 0F1 0B0 0B1), or a torch.distributed.pipelining CSV.", show_default=False)]
ComputeOpt = Annotated[Compute, typer.Option("--compute", help="real: train with the numpy kernels; emulate: each action takes --costs milliseconds instead (timing only).")]
EmulateCostsOpt = Annotated[Optional[str], typer.Option("--costs", help="With --compute emulate: milliseconds per action kind for a worker's whole model slice, e.g. F=2,B=4 (B defaults to I+W; with v stages per worker each stage action takes 1/v). Emulated devices wait instead of computing, so nothing is trained.", show_default=False)]
LatencyOpt = Annotated[float, typer.Option("--latency", help="Milliseconds every transfer between two workers takes.")]
VirtualOpt = Annotated[Optional[int], typer.Option("--virtual", "-v", help="Stages per worker for interleaved and looped-bfs. \\[default: 2]", show_default=False)]


@app.command()
def run(
    schedule: Annotated[Optional[str], typer.Option("--schedule", "-s", help=f"One of: {schedule_names()}. \\[default: 1f1b]", show_default=False)] = None,
    workers: WorkersOpt = None,
    chunks: ChunksOpt = None,
    steps: StepsOpt = 30,
    batch_size: BatchOpt = 256,
    dim: DimOpt = 256,
    layers: LayersOpt = None,
    seed: SeedOpt = 0,
    trace: TraceOpt = None,
    no_trace: NoTraceOpt = False,
    as_json: JsonOpt = False,
    schedule_file: ScheduleFileOpt = None,
    compute: ComputeOpt = Compute.real,
    costs: EmulateCostsOpt = None,
    latency: LatencyOpt = 0.0,
    virtual: VirtualOpt = None,
) -> None:
    """Train under one schedule, show the bars of a measured step, and write a trace."""
    check_at_least_one(steps=steps)
    plan = plan_schedule(schedule, schedule_file, workers, chunks, virtual)
    config = model_config(plan, batch_size, dim, layers, seed)
    emulate, link = emulation(compute, costs, latency)
    target = trace_target(trace, no_trace, f"{plan.name}.json")
    console = None if as_json else make_console()
    if console is not None:
        micro = config.batch_size // plan.microbatches
        mode = " · emulated devices" if emulate else ""
        console.print(
            f"[bold]pipenaut run[/] · {plan.name} · {plural(plan.workers, 'worker')} · {plural(plan.microbatches, 'microbatch')} of "
            f"~{micro} · MLP {config.layers}×{config.dim} ({_split_note(config, plan.stages)}) · {plural(steps, 'step')}{mode}"
        )
    result = _train(plan, config, steps, console, emulate, link, label="training")
    data = summary(result, target, link, emulate)
    if target is not None:
        save_trace(target, [(f"{plan.name} (measured)", result.timeline)], [trace_metadata(data)])
    if console is None:
        print(json.dumps(data))
        return
    _print_run(console, result, data)
    if target is not None:
        console.print(f"trace: {target} — {perfetto_hint(target)}")


@app.command()
def compare(
    workers: WorkersOpt = None,
    chunks: ChunksOpt = None,
    steps: StepsOpt = 30,
    batch_size: BatchOpt = 256,
    dim: DimOpt = 256,
    layers: LayersOpt = None,
    seed: SeedOpt = 0,
    trace: Annotated[Optional[str], typer.Option("--trace", help="Where to write the Perfetto trace: .json, .json.gz or .pftrace. \\[default: traces/compare.json]", show_default=False)] = None,
    no_trace: NoTraceOpt = False,
    as_json: JsonOpt = False,
    compute: ComputeOpt = Compute.real,
    costs: EmulateCostsOpt = None,
    latency: LatencyOpt = 0.0,
    virtual: VirtualOpt = None,
    schedules: Annotated[Optional[str], typer.Option("--schedules", help="Which schedules, comma-separated, e.g. naive,gpipe,1f1b. \\[default: all]", show_default=False)] = None,
) -> None:
    """Run every schedule with the same settings; one table and one combined trace."""
    check_at_least_one(steps=steps)
    names = list(SCHEDULES) if schedules is None else [n.strip().lower() for n in schedules.split(",") if n.strip()]
    for name in names:
        if name not in SCHEDULES:
            fail(f"unknown schedule {name!r} in --schedules; choose from: {schedule_names()}")
    if not names:
        fail(f"--schedules is empty; name some of: {schedule_names()}")
    check_at_least_one(workers=workers, chunks=chunks, virtual=virtual)  # wrong for every schedule alike
    plans, refused = [], {}
    for name in dict.fromkeys(names):
        info = SCHEDULES[name]
        try:
            plans.append(plan_schedule(name, None, workers, chunks, virtual if info.stages_per_worker is None else None))
        except UsageProblem as exc:  # a schedule's own rule, e.g. dualpipev's m >= 2p: the others still run
            refused[name] = str(exc)
    if not plans:
        messages = set(refused.values())
        fail(messages.pop() if len(messages) == 1 else "; ".join(f"{n}: {m}" for n, m in refused.items()))
    skipped = [f"{name} skipped: {message}" for name, message in refused.items()]
    # one model for all, cut into as many stages as the schedule with the most needs
    layers = layers if layers is not None else max(8, max(plan.stages for plan in plans))
    configs = [model_config(plan, batch_size, dim, layers, seed) for plan in plans]
    emulate, link = emulation(compute, costs, latency)
    target = trace_target(trace, no_trace, "compare.json")
    console = None if as_json else make_console()
    results = [_train(plan, config, steps, console, emulate, link, label="compare") for plan, config in zip(plans, configs)]
    runs = [summary(r, target, link, emulate) for r in results]
    if target is not None:
        save_trace(target, [(f"{r.schedule.name} (measured)", r.timeline) for r in results], [trace_metadata(d) for d in runs])
    if console is None:
        print(json.dumps({"runs": runs, "skipped": skipped, "trace": str(target) if target is not None else None}))
        return
    baseline = next((d for d in runs if d["schedule"] == "naive"), runs[0])
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"{plural(plans[0].workers, 'worker')} · {plural(plans[0].microbatches, 'microbatch')} · {plural(steps, 'step')} · median step")
    for column in ["schedule", "step", f"×{baseline['schedule']}", "bubble", "pred.", "theory", "peak act.", "loss"]:
        table.add_column(column, justify="left" if column == "schedule" else "right", no_wrap=True)
    for data in runs:
        table.add_row(
            data["schedule"],
            f"{data['step_time_s'] * 1e3:.1f}ms",
            f"{baseline['step_time_s'] / data['step_time_s']:.2f}",
            f"{data['bubble_measured']:.1%}",
            f"{data['bubble_predicted']:.1%}",
            _percent(data["bubble_formula"]),
            " ".join(map(str, data["peak_activations"])),
            f"{data['final_loss']:.3f}" if data["final_loss"] is not None else "-",
        )
    console.print(table)
    formulas = {}
    for data in runs:
        formulas.setdefault(SCHEDULES[data["schedule"]].bubble_formula, []).append(data["schedule"])
    console.print(
        f"×{baseline['schedule']}: its step time over the schedule's · bubble: measured · pred.: the simulator "
        "fed with the mean measured action times · theory: "
        + ", ".join(f"{'/'.join(names)} {formula}" for formula, names in formulas.items()),
        style="grey50",
    )
    reasons: dict[str, list[str]] = {}
    for data in runs:
        why = _disagreement(data)
        if why:
            reasons.setdefault(why, []).append(data["schedule"])
    for why, names in reasons.items():
        console.print(f"note: measured bubble and prediction differ by more than 5 points for {', '.join(names)}: {why}.", style="grey50")
    for note in skipped:
        console.print(note, style="grey50")
    if target is not None:
        console.print(f"trace: {target} (one process per schedule) — {perfetto_hint(target)}")


@app.command("simulate")
def simulate_command(
    name: Annotated[Optional[str], typer.Argument(help=f"One of: {schedule_names()}; or use --schedule-file.", show_default=False)] = None,
    workers: WorkersOpt = None,
    chunks: ChunksOpt = None,
    costs: Annotated[str, typer.Option("--costs", help="Milliseconds per action kind for a worker's whole model slice, e.g. F=1,B=2 or F=1,I=1,W=1 (B defaults to I+W); with v stages per worker each stage action takes 1/v.")] = "F=1,B=2",
    latency: LatencyOpt = 0.0,
    schedule_file: ScheduleFileOpt = None,
    trace: Annotated[Optional[str], typer.Option("--trace", help="Also write the predicted timeline as a Perfetto trace.", show_default=False)] = None,
    as_json: JsonOpt = False,
    virtual: VirtualOpt = None,
) -> None:
    """Predict a schedule's timeline with the discrete-event simulator; nothing is trained."""
    if name is None and schedule_file is None:
        fail(f"name a schedule ({schedule_names()}) or pass --schedule-file FILE")
    plan = plan_schedule(name, schedule_file, workers, chunks, virtual)
    predicted_costs = per_stage(costs_in_seconds(costs, latency), plan)
    target = trace_target(trace, False, None)
    timeline = simulate(plan, predicted_costs)
    formula = theory_bubble(plan)
    data = {
        "schedule": plan.name,
        "workers": plan.workers,
        "chunks": plan.microbatches,
        "stages": plan.stages,
        "costs_ms": {kind: _ms(predicted_costs.of_kind(kind)) for kind in ("F", "B", "I", "W")},
        "stage_action_scale": plan.workers / plan.stages,
        "latency_ms": latency,
        "makespan": _ms(timeline.makespan()),
        "bubble": timeline.bubble(),
        "bubble_formula": formula,
        "peak_activations": timeline.peak_activations(),
        "idle_per_worker": [_ms(idle) for idle in timeline.idle()],
        "trace": str(target) if target is not None else None,
    }
    if target is not None:
        save_trace(target, [(f"{plan.name} (simulated)", timeline)], [trace_metadata(data)])
    if as_json:
        print(json.dumps(data))
        return
    console = make_console()
    console.print(f"[bold]pipenaut simulate[/] · {plan.name} · {plural(plan.workers, 'worker')} · {plural(plan.microbatches, 'microbatch')} · costs {costs} ms · latency {latency:g} ms")
    console.print(render.bars(timeline, 0, console.width))
    theory = f", {_percent(formula)} theory {get_schedule_info(plan.name).bubble_formula}" if formula is not None else ""
    console.print(f"makespan {data['makespan']:.4g} ms · bubble {data['bubble']:.1%} simulated{theory}")
    console.print(
        f"peak activations per worker: {' '.join(map(str, data['peak_activations']))} · idle per worker (ms): "
        + " ".join(f"{idle:.3g}" for idle in data["idle_per_worker"])
    )
    if target is not None:
        console.print(f"trace: {target} — {perfetto_hint(target)}")


@app.command()
def explain(
    name: Annotated[str, typer.Argument(help=f"One of: {schedule_names()}.", show_default=False)],
    workers: WorkersOpt = None,
    chunks: ChunksOpt = None,
    virtual: VirtualOpt = None,
) -> None:
    """How a schedule works: its diagram, bubble and memory, and where it is used."""
    try:
        info = get_schedule_info(name)
    except ScheduleError as exc:
        fail(str(exc))
    plan = plan_schedule(info.name, None, workers, chunks, virtual)
    p, m, v = plan.workers, plan.microbatches, plan.stages // plan.workers
    # unit costs per full model slice: a chunk of a worker holding v stages costs 1/v of it
    predicted = simulate(plan, Costs(F=1e-3 / v, I=1e-3 / v, W=1e-3 / v))
    console = make_console()
    console.print(f"[bold]{info.title}[/] ({info.name})\n")
    console.print(info.how + "\n")
    chunk = f", each of the {v} stages per worker 1/{v} of that" if v > 1 else ""
    console.print(f"Simulated with F=I=W=1 ms (B=2 ms){chunk}, {plural(p, 'worker')}, {plural(m, 'microbatch')}:")
    console.print(render.bars(predicted, 0, console.width))
    console.print(
        f"\nbubble: theory {info.bubble_formula} = {info.bubble(p, m, v):.1%}, "
        f"simulated {predicted.bubble():.1%} (makespan {predicted.makespan() * 1e3:.4g} ms)"
    )
    console.print(f"memory: theory {info.memory}: {' '.join(map(str, info.peak_activations(p, m, v)))}")
    console.print(f"        simulated peak per worker: {' '.join(map(str, predicted.peak_activations()))}")
    console.print(f"used in: {info.used_in}")
    console.print(f"\nthe action lists (torch.distributed.pipelining grammar):\n{plan}")


@app.command("schedule")
def schedule_command(
    name: Annotated[str, typer.Argument(help=f"One of: {schedule_names()}.", show_default=False)],
    workers: WorkersOpt = None,
    chunks: ChunksOpt = None,
    virtual: VirtualOpt = None,
    csv_path: Annotated[Optional[str], typer.Option("--csv", help="Write the compute-only CSV torch.distributed.pipelining loads (one row per rank, one action per cell).", show_default=False)] = None,
) -> None:
    """Print each worker's action list in the torch grammar, or write it as a CSV for PyTorch."""
    plan = plan_schedule(name, None, workers, chunks, virtual)
    if csv_path is None:
        print(plan.format())
        return
    target = trace_target(csv_path, False, None, flag="--csv")
    try:
        write_schedule_csv(target, plan)
    except OSError as exc:
        print(f"error: could not write {target}: {exc.strerror or exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"wrote {target}: {plural(plan.workers, 'row')} (one per rank), {sum(map(len, plan.actions))} actions; "
          f"load it with _PipelineScheduleRuntime._load_csv(path, format='compute_only'), or run it here with "
          f"pipenaut run --schedule-file {target}")


@app.command()
def view(
    trace: Annotated[Path, typer.Argument(help="A trace written by pipenaut (.json, .json.gz or .pftrace).", show_default=False)],
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the link instead of opening a browser.")] = False,
) -> None:
    """Open a trace in ui.perfetto.dev: serve just that file on 127.0.0.1:9001 until the UI fetched it."""
    if not trace.is_file():
        fail(f"no trace file at {trace}; pass the path of a trace that pipenaut run, compare or simulate wrote")
    try:
        server = TraceServer(trace)
    except PortBusy as exc:
        print(
            f"error: {exc} (another pipenaut view, or trace_processor --httpd?); stop that, or open "
            f"{UI} and choose 'Open trace file'",
            file=sys.stderr,
        )
        raise typer.Exit(1) from None
    if no_browser or not webbrowser.open(server.link):
        print(f"open this link in a browser: {server.link}")
    else:
        print(f"opened {server.link}")
    print("serving only this file, on 127.0.0.1 only, until the UI has fetched it (Ctrl-C stops)", flush=True)
    serve_until_fetched(server)  # Ctrl-C ends it like any command: exit 130
    print("the UI has the trace; stopped serving")


def _version(value: bool) -> None:
    if value:
        print(f"pipenaut {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Experience pipeline parallelism: train a numpy MLP on one thread per pipeline device."""


def main() -> None:
    app()
