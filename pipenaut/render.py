"""Terminal bars of one step of a timeline (measured or simulated), scaled to the terminal width.

Each worker gets one row; each cell shows what the worker did for most of that cell's time.
Kinds differ by letter as well as colour, so the bars read without colour too:
``F`` forward, ``B`` backward, ``I`` input-grad, ``W`` weight-grad, ``·`` idle, ``o`` optimizer.
A span wide enough shows its microbatch number right after its letter.
"""

from __future__ import annotations

import math

from rich.console import Group
from rich.text import Text

from .timeline import Span, Timeline

GLYPHS = {
    "F": ("F", "bold black on cyan"),
    "B": ("B", "bold black on dark_orange"),
    "I": ("I", "bold white on purple"),
    "W": ("W", "bold black on green"),
    "optimizer": ("o", "black on grey70"),
    "wait": ("·", "grey50"),
}
IDLE = GLYPHS["wait"]
DRAWN = {"F", "B", "I", "W", "optimizer"}  # what a cell can show besides idle


LABELS = {"F": "forward", "B": "backward", "I": "input-grad", "W": "weight-grad", "wait": "idle", "optimizer": "optimizer"}


def legend(kinds: set[str]) -> Text:
    """The legend of the glyphs that appear (idle always does)."""
    text = Text("legend: ")
    for kind, label in LABELS.items():
        if kind not in kinds and kind != "wait":
            continue
        glyph, style = GLYPHS[kind]
        text.append(glyph, style)
        text.append(f" {label}  ")
    return text


def _cells(spans: list[Span], t0: float, t1: float, width: int) -> Text:
    """Paint one worker's row: each cell shows what covers most of its time, idle included, so
    the bars show the bubble as large as it was."""
    scale = width / (t1 - t0) if t1 > t0 else 0.0
    owner: list[Span | None] = [None] * width
    cover = [0.0] * width  # the largest share of the cell one span covers
    busy = [0.0] * width  # the share of the cell any span covers
    for span in spans:
        if span.kind not in DRAWN:
            continue  # waits (and their transit) are idle, the background; an overlap is drawn as its halves
        # rounded so that float noise (0.001 s * 2000 cells/s = 1.9999...) cannot shift a boundary
        a, b = round((span.start - t0) * scale, 6), round((span.end - t0) * scale, 6)
        for cell in range(max(0, int(a)), min(width, math.ceil(b))):
            overlap = min(b, cell + 1) - max(a, cell)
            busy[cell] += overlap
            if overlap > cover[cell]:
                owner[cell], cover[cell] = span, overlap
    for cell in range(width):
        if cover[cell] < 1.0 - busy[cell]:  # idle covers more of this cell than any span
            owner[cell] = None
    shown = set(map(id, owner))
    for span in spans:  # an action shorter than a cell still gets an idle cell at or next to its middle
        middle = min(width - 1, int((span.start + span.end) / 2 * scale - t0 * scale))
        if span.kind not in DRAWN or id(span) in shown:
            continue
        free = [c for c in (middle, middle - 1, middle + 1) if 0 <= c < width and owner[c] is None]
        if free:
            owner[free[0]] = span
    row = Text()
    cell = 0
    while cell < width:
        span = owner[cell]
        run = 1
        while cell + run < width and owner[cell + run] is span:
            run += 1
        if span is None:
            row.append(IDLE[0] * run, IDLE[1])
        else:
            glyph, style = GLYPHS[span.kind]
            label = glyph + (str(span.action.microbatch) if span.action is not None else "")
            body = label if len(label) <= run else glyph
            row.append((body + glyph * run)[:run], style)
        cell += run
    return row


def bars(timeline: Timeline, step: int, width: int) -> Group:
    """The bars of ``step``, ``width`` characters wide in all, with a time axis."""
    spans = timeline.spans_of_step(step)
    t0 = timeline.step_starts[step]
    t1 = t0 + timeline.step_time(step)
    label_width = len(f"worker {timeline.workers - 1} ")
    cells = max(10, width - label_width)
    span_ms = (t1 - t0) * 1e3
    if timeline.source == "simulated" and 0 < span_ms <= cells:
        cells = int(cells // span_ms * span_ms)  # whole cells per millisecond: whole-ms costs draw crisply
    rows = []
    for w in range(timeline.workers):
        row = Text(f"worker {w}".ljust(label_width))
        row.append_text(_cells([s for s in spans if s.worker == w], t0, t1, cells))
        rows.append(row)
    end = f"{span_ms:.4g} ms"
    axis = Text(" " * label_width + "0" + end.rjust(cells - 1), style="grey50")
    return Group(*rows, axis, legend({s.kind for s in spans}))
