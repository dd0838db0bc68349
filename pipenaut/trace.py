"""Chrome Trace Event JSON for ui.perfetto.dev: one process per run, one thread track per worker.

Design choices that come from how the Perfetto UI reads these files:

* thread ids are ``1000 * pid + worker + 1``: never 0 and never equal to the pid (either would
  make the UI treat the track as the process's main thread), and far below 2^32;
* timestamps are whole microseconds, rounded from the timeline monotonically, so slices that did
  not overlap on a worker do not overlap after rounding (overlap would push one onto an extra
  track);
* nothing non-finite is written: one NaN makes the whole file fail to load;
* slice names are chosen for colour. Perfetto colours a slice by its name with the digits taken
  out, so ``F3`` and ``B3`` would both come out as the colour of "F"/"B", which are nearly the
  same. ``0F3 forward``, ``0B3 backward``, ``0I3 igrad``, ``0W3 wgrad``, ``blocked on 0F3
  from worker 0`` and ``optimizer`` land on well separated hues (tests/test_trace.py checks this
  with the UI's own colour hash).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from .timeline import Span, Timeline

SLICE_WORDS = {"F": "forward", "B": "backward", "I": "igrad", "W": "wgrad"}


def slice_name(span: Span) -> str:
    if span.kind == "wait":
        return f"blocked on {span.action} from worker {span.peer}"
    if span.kind == "optimizer":
        return "optimizer"
    if span.kind == "overlap":
        return f"{span.action} overlapped"
    return f"{span.action} {SLICE_WORDS[span.kind]}"


def _category(span: Span) -> str:
    if span.kind == "overlap":
        return "overlapped"
    return span.action.kind_name if span.is_compute else span.kind


def _args(span: Span) -> dict:
    args: dict = {"step": span.step}
    if span.is_compute:
        args.update(action=str(span.action), stage=span.action.stage, microbatch=span.action.microbatch, kind=span.action.kind_name)
    elif span.kind == "overlap":
        args.update(action=str(span.action), first=str(span.action.first), second=str(span.action.second))
    elif span.kind == "wait":
        args.update(waiting_for=str(span.action), from_worker=span.peer, stage=span.action.stage, microbatch=span.action.microbatch)
    return args


def _us(seconds: float) -> int:
    if not math.isfinite(seconds):
        raise ValueError(f"non-finite time {seconds} in timeline")
    return round(seconds * 1e6)


def thread_id(pid: int, worker: int) -> int:
    return 1000 * pid + worker + 1


def trace_events(timeline: Timeline, pid: int, process_name: str, sort_index: int = 0) -> list[dict]:
    """The events of one run: metadata naming and ordering its tracks, then one slice per span."""
    events: list[dict] = [
        {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": process_name}},
        {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": sort_index}},
    ]
    for w in range(timeline.workers):
        tid = thread_id(pid, w)
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": f"worker {w}"}})
        events.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": w}})
    # parents (an overlapped pair) before the children they enclose, which start with them
    for span in sorted(timeline.spans, key=lambda s: (s.worker, s.start, -s.end)):
        start, end = _us(span.start), _us(span.end)
        events.append(
            {
                "ph": "X",
                "name": slice_name(span),
                "cat": _category(span),
                "pid": pid,
                "tid": thread_id(pid, span.worker),
                "ts": start,
                "dur": end - start,
                "args": _args(span),
            }
        )
    return events


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


def write_trace(path: str | Path, runs: list[tuple[str, Timeline]]) -> Path:
    """Write one process per ``(name, timeline)`` run, in the given order, all from time zero.

    The file appears whole or not at all: it is written next to its destination and renamed.
    """
    target = _destination(path)
    events = []
    for index, (name, timeline) in enumerate(runs):
        events += trace_events(timeline, pid=index + 1, process_name=name, sort_index=index)
    text = json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}, allow_nan=False, separators=(",", ":"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
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
