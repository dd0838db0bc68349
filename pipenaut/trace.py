"""Traces for ui.perfetto.dev: one process per run, one thread track per worker, in Chrome Trace
Event JSON (``.json``, ``.json.gz``) or Perfetto's native protobuf (``.pftrace``).

One mechanism serves both formats: :func:`trace_records` turns timelines into a stream of
format-neutral records (tracks, slices with their flows, counters, instants), and a writer per
format encodes them. What is in every trace:

* a slice per action with its stage, microbatch, step and kind; waits as slices that say what the
  worker waited for (``blocked on 1F3 from worker 0``), with the part spent on an emulated link
  nested in them; overlapped pairs enclosing their two halves; the optimizer step;
* a flow arrow for every transfer, from the slice that produced an activation or gradient to the
  slice that consumed it;
* per worker, counters of the stashed microbatches and (when measured) activation bytes, and the
  parameter + gradient bytes as a constant line;
* an instant at the start of every step, and the run's settings and bubbles as metadata.

Design choices that come from how the Perfetto UI reads these files:

* thread ids are ``1000 * pid + worker + 1``: never 0 and never equal to the pid (either would
  make the UI treat the track as the process's main thread), and far below 2^32;
* timestamps are rounded monotonically (whole microseconds in JSON, nanoseconds in protobuf), so
  slices that did not overlap on a worker do not overlap after rounding;
* nothing non-finite is written: one NaN makes a JSON file fail to load;
* slice names are chosen for colour. Perfetto colours a slice by its name with the digits taken
  out, so ``F3`` and ``B3`` would both come out as the colour of "F"/"B", which are nearly the
  same. ``0F3 forward``, ``0B3 backward``, ``0I3 igrad``, ``0W3 wgrad``, ``blocked on 0F3
  from worker 0``, ``(0F7;7B3) overlapped`` and ``optimizer`` land on well separated hues
  (tests/test_trace.py checks this with the UI's own colour hash).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from .timeline import COMPUTE_KINDS, STASH_CHANGE, Span, Timeline

SLICE_WORDS = {"F": "forward", "B": "backward", "I": "igrad", "W": "wgrad"}
FORMATS = (".json", ".json.gz", ".pftrace")


def slice_name(span: Span) -> str:
    if span.kind == "wait":
        return f"blocked on {span.action} from worker {span.peer}"
    if span.kind == "transit":
        return f"in transit {span.action} (link latency)"
    if span.kind == "optimizer":
        return "optimizer"
    if span.kind == "overlap":
        return f"{span.action.short} overlapped"
    return f"{span.action} {SLICE_WORDS[span.kind]}"


def _category(span: Span) -> str:
    if span.kind == "overlap":
        return "overlapped"
    return span.action.kind_name if span.is_compute else span.kind


def _args(span: Span) -> dict:
    args: dict = {"step": span.step}
    if span.is_compute:
        args.update(action=str(span.action), stage=span.action.stage, microbatch=span.action.microbatch, kind=span.action.kind_name)
        if span.memory is not None:
            args["activation_bytes_held"] = span.memory
    elif span.kind == "overlap":
        args.update(action=span.action.short, first=str(span.action.first), second=str(span.action.second))
    elif span.kind in ("wait", "transit"):
        args.update(waiting_for=str(span.action), from_worker=span.peer, stage=span.action.stage, microbatch=span.action.microbatch)
    return args


def thread_id(pid: int, worker: int) -> int:
    return 1000 * pid + worker + 1


# -- the format-neutral records ------------------------------------------------------------------


@dataclass
class Process:
    pid: int
    name: str
    order: int
    metadata: dict


@dataclass
class Thread:
    pid: int
    tid: int
    name: str
    order: int


@dataclass
class CounterTrack:
    pid: int
    key: str  # unique within the process
    group: str  # "worker 0"
    series: str  # "stashed microbatches"
    unit: str  # "count" or "bytes"

    @property
    def name(self) -> str:
        return f"{self.group} {self.series}"


@dataclass
class Slice:
    """``flow`` chains the slices one microbatch's activation (or gradient) passes through in a
    step: a slice takes the flow in from the previous stage and/or passes it on to the next."""

    pid: int
    tid: int
    name: str
    category: str
    start: float  # seconds
    end: float
    args: dict
    flow: int | None = None
    flow_in: bool = False
    flow_out: bool = False


@dataclass
class Counter:
    pid: int
    key: str
    time: float
    value: float


@dataclass
class Instant:
    pid: int
    tid: int
    name: str
    time: float
    args: dict


def trace_records(runs: list[tuple[str, Timeline]], metadata: list[dict] | None = None) -> Iterator:
    """Everything a trace holds, run by run: tracks first, then slices, counters and instants."""
    flow = 0
    for index, (name, timeline) in enumerate(runs):
        pid = index + 1
        yield Process(pid, name, index, (metadata[index] if metadata else {}) | {"source": timeline.source})
        workers = timeline.workers
        for w in range(workers):
            yield Thread(pid, thread_id(pid, w), f"worker {w}", w)
        measured_memory = any(s.memory is not None for s in timeline.spans)
        for w in range(workers):
            yield CounterTrack(pid, f"stash{w}", f"worker {w}", "stashed microbatches", "count")
            if measured_memory:
                yield CounterTrack(pid, f"bytes{w}", f"worker {w}", "activation bytes", "bytes")
            if timeline.static_memory is not None:
                yield CounterTrack(pid, f"static{w}", f"worker {w}", "parameter+gradient bytes", "bytes")
        # one flow per (step, microbatch, direction): activations go up the stages, gradients down
        last_stage = timeline.schedule.stages - 1
        chains: dict[tuple, int] = {}
        end = max((s.end for s in timeline.spans), default=0.0)
        for w in range(workers):
            mine = sorted((s for s in timeline.spans if s.worker == w), key=lambda s: (s.start, -s.end))
            held = 0
            yield Counter(pid, f"stash{w}", 0.0, 0)
            if timeline.static_memory is not None:
                yield Counter(pid, f"static{w}", 0.0, timeline.static_memory[w])
                yield Counter(pid, f"static{w}", end, timeline.static_memory[w])
            for span in mine:
                record = Slice(pid, thread_id(pid, w), slice_name(span), _category(span), span.start, span.end, _args(span))
                if span.kind in ("F", "B", "I"):
                    stage, forward = span.action.stage, span.kind == "F"
                    key = (span.step, span.action.microbatch, forward)
                    if key not in chains:
                        flow += 1
                        chains[key] = flow
                    record.flow = chains[key]
                    record.flow_in = stage > 0 if forward else stage < last_stage
                    record.flow_out = stage < last_stage if forward else stage > 0
                yield record
                if span.kind in COMPUTE_KINDS:
                    held += STASH_CHANGE[span.kind]
                    yield Counter(pid, f"stash{w}", span.end, held)
                    if span.memory is not None:
                        yield Counter(pid, f"bytes{w}", span.end, span.memory)
        yield Instant(pid, thread_id(pid, 0), f"run settings: {name}", 0.0, (metadata[index] if metadata else {}) | {"source": timeline.source})
        for step, start in enumerate(timeline.step_starts):
            yield Instant(pid, thread_id(pid, 0), f"step {step}", start, {"step": step})


# -- Chrome JSON -------------------------------------------------------------------------------


def _us(seconds: float) -> int:
    if not math.isfinite(seconds):
        raise ValueError(f"non-finite time {seconds} in timeline")
    return round(seconds * 1e6)


def _json_events(records: Iterator) -> Iterator[dict]:
    counters: dict[tuple[int, str], str] = {}
    for r in records:
        if isinstance(r, Process):
            yield {"ph": "M", "name": "process_name", "pid": r.pid, "tid": 0, "args": {"name": r.name}}
            yield {"ph": "M", "name": "process_sort_index", "pid": r.pid, "tid": 0, "args": {"sort_index": r.order}}
        elif isinstance(r, Thread):
            yield {"ph": "M", "name": "thread_name", "pid": r.pid, "tid": r.tid, "args": {"name": r.name}}
            yield {"ph": "M", "name": "thread_sort_index", "pid": r.pid, "tid": r.tid, "args": {"sort_index": r.order}}
        elif isinstance(r, CounterTrack):
            counters[r.pid, r.key] = (r.group, r.series)  # the UI names the track "group series"
        elif isinstance(r, Slice):
            start, end = _us(r.start), _us(r.end)
            event = {"ph": "X", "name": r.name, "cat": r.category, "pid": r.pid, "tid": r.tid, "ts": start, "dur": end - start, "args": r.args}
            if r.flow is not None and (r.flow_in or r.flow_out):  # flow v2: the slice itself carries it
                event.update(bind_id=r.flow, flow_in=r.flow_in, flow_out=r.flow_out)
            yield event
        elif isinstance(r, Counter):
            group, series = counters[r.pid, r.key]
            yield {"ph": "C", "name": group, "pid": r.pid, "tid": 0, "ts": _us(r.time), "args": {series: r.value}}
        elif isinstance(r, Instant):
            yield {"ph": "i", "s": "p", "name": r.name, "pid": r.pid, "tid": r.tid, "ts": _us(r.time), "args": r.args}


def _write_json(f: IO[str], runs: list[tuple[str, Timeline]], metadata: list[dict] | None) -> None:
    """Streams the events: a long run is never held in memory as one document."""
    f.write('{"displayTimeUnit":"ms","metadata":')
    f.write(json.dumps({"pipenaut": metadata or [{"name": name} for name, _ in runs]}, allow_nan=False))
    f.write(',"traceEvents":[\n')
    for i, event in enumerate(_json_events(trace_records(runs, metadata))):
        f.write((",\n" if i else "") + json.dumps(event, allow_nan=False, separators=(",", ":")))
    f.write("\n]}\n")


# -- files -------------------------------------------------------------------------------------


def check_writable(path: str | Path) -> Path:
    """Fail early, before any training, if a trace cannot be written to ``path``.

    Refuses anything but a regular file (a device such as /dev/null, a FIFO or a directory would
    be replaced, not written to); a symbolic link is followed to its target. Probes the folder
    with a temporary file and leaves no folder behind that it had to create for the probe.
    """
    target = _destination(path)
    missing = []
    folder = target.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    try:
        for created in reversed(missing):
            created.mkdir()
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=True):
            pass
    finally:
        for created in missing:
            if created.exists():
                created.rmdir()
    if target.exists() and not os.access(target, os.W_OK):
        raise PermissionError(13, "Permission denied")
    return Path(path)


def _destination(path: str | Path) -> Path:
    """The regular file a trace at ``path`` lands in (a link is followed to its target)."""
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    if target.exists() and not target.is_file():
        raise OSError(f"it is not a regular file (a device, socket or pipe): {path}")
    return target


def trace_format(path: str | Path) -> str:
    """``.pftrace`` is Perfetto's protobuf, ``.json.gz`` gzipped JSON, anything else JSON."""
    name = str(path).lower()
    return ".pftrace" if name.endswith(".pftrace") else ".json.gz" if name.endswith(".json.gz") else ".json"


def write_trace(path: str | Path, runs: list[tuple[str, Timeline]], metadata: list[dict] | None = None) -> Path:
    """Write one process per ``(name, timeline)`` run, in the given order, all from time zero;
    ``metadata`` (one dict per run: settings, bubbles) goes into the trace as well.

    The format follows the extension (see :func:`trace_format`). The file appears whole or not at
    all: it is written next to its destination and renamed.
    """
    target = _destination(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        kind = trace_format(path)
        if kind == ".pftrace":
            from .pftrace import write_pftrace  # protobuf only when asked for

            with open(tmp, "wb") as f:
                write_pftrace(f, trace_records(runs, metadata))
        else:
            with (gzip.open(tmp, "wt", encoding="utf-8") if kind == ".json.gz" else open(tmp, "w", encoding="utf-8")) as f:
                _write_json(f, runs, metadata)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a trace is an ordinary file
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
