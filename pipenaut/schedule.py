"""A schedule is data: for every worker (device), the ordered list of actions it runs.

The placement of model stages on workers is part of the schedule. Nothing here knows about any
particular schedule: the builders in :mod:`pipenaut.schedules` and a user's hand-written file both
produce a :class:`Schedule`, and the engine and simulator run any valid one the same way.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .actions import Action, ActionError, Overlap, parse_step


class ScheduleError(ValueError):
    """A schedule that cannot run; the message says why and what to change."""


@dataclass(frozen=True)
class Schedule:
    name: str
    placement: tuple[int, ...]  # placement[stage] is the worker that holds that stage
    microbatches: int
    actions: tuple[tuple[Action | Overlap, ...], ...]  # actions[worker], in the order the worker runs them

    @property
    def workers(self) -> int:
        return len(self.actions)

    @property
    def stages(self) -> int:
        return len(self.placement)

    @cached_property
    def flat(self) -> tuple[tuple[Action, ...], ...]:
        """Each worker's actions with overlapped pairs taken apart, in the order they run."""
        if not any(isinstance(step, Overlap) for row in self.actions for step in row):
            return self.actions
        return tuple(tuple(a for step in row for a in step.parts) for row in self.actions)

    def stages_on(self, worker: int) -> list[int]:
        return self._stages_by_worker.get(worker, [])

    @cached_property
    def _stages_by_worker(self) -> dict[int, list[int]]:
        by_worker: dict[int, list[int]] = {}
        for stage, owner in enumerate(self.placement):
            by_worker.setdefault(owner, []).append(stage)
        return by_worker

    def prerequisites(self, action: Action) -> tuple[Action, ...]:
        """Every action that must finish before `action` can start.

        * ``F`` of stage s needs the activation from ``F`` of stage s-1;
        * ``B`` / ``I`` need the stage's own ``F`` (its stash) and the input gradient from the
          backward (``B`` or ``I``) of stage s+1;
        * ``W`` needs the stage's own ``I``.

        The first stage's forward reads the data and the last stage's backward starts from its own
        loss, so they have no neighbour to wait for.
        """
        return self.prerequisite_map[action]

    def upstream(self, action: Action) -> Action | None:
        """The neighbouring stage's action whose output `action` consumes, if any."""
        return next((p for p in self.prerequisites(action) if p.stage != action.stage), None)

    @cached_property
    def prerequisite_map(self) -> dict[Action, tuple[Action, ...]]:
        """:meth:`prerequisites` of every action, computed once in one tight loop: schedules of
        a hundred thousand actions are simulated interactively."""
        existing = {a: a for row in self.flat for a in row}  # reuse, rather than rebuild, actions
        try:
            return self._prerequisites_from(existing.__getitem__)
        except KeyError:  # an incomplete schedule: name the missing actions all the same
            return self._prerequisites_from(lambda key: existing.get(key) or Action._make(key))

    def _prerequisites_from(self, get) -> dict[Action, tuple[Action, ...]]:
        backward_kind = {(s, mb): k for row in self.flat for s, k, mb in row if k in ("B", "I")}
        last = self.stages - 1
        result = {}
        for row in self.flat:
            for a in row:
                s, kind, mb = a
                if kind == "F":
                    result[a] = (get((s - 1, "F", mb)),) if s > 0 else ()
                elif kind == "W":
                    result[a] = (get((s, "I", mb)),)
                elif s < last:
                    result[a] = (get((s, "F", mb)), get((s + 1, backward_kind.get((s + 1, mb), "B"), mb)))
                else:
                    result[a] = (get((s, "F", mb)),)
        return result

    def worker_of(self, action: Action) -> int:
        return self.placement[action.stage]

    def format(self) -> str:
        """One line per worker, actions in the torch grammar; :func:`parse_schedule` reads it back."""
        return "\n".join(" ".join(str(a) for a in worker_actions) for worker_actions in self.actions)

    def __str__(self) -> str:
        return "\n".join(
            f"worker {w}: " + " ".join(str(a) for a in worker_actions)
            for w, worker_actions in enumerate(self.actions)
        )


_SEPARATORS = re.compile(r"[\s,]+")  # not ";": it joins the two halves of an overlapped pair
_PAIR = re.compile(r"\([^)]*\)")  # spaces inside a pair do not split it
_WORKER_PREFIX = re.compile(r"^\s*(worker|rank)\s*(\d+)\s*:", re.IGNORECASE)


def parse_schedule(text: str, name: str = "custom") -> Schedule:
    """Read a schedule: one line per worker, actions separated by spaces or commas.

    Blank lines and ``#`` comments are skipped; a leading ``worker 0:`` is allowed. The stage
    placement and the microbatch count are read off the actions.
    """
    rows: list[tuple[Action, ...]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0]
        label = _WORKER_PREFIX.match(line)
        if label and int(label.group(2)) != len(rows):
            raise ScheduleError(
                f"line {number} is labelled {label.group(1)} {label.group(2)} but is worker {len(rows)}'s line; "
                "list the workers in order, 0, 1, 2, ..."
            )
        line = _WORKER_PREFIX.sub("", line).replace('"', " ").strip()  # CSV cells may come quoted
        line = _PAIR.sub(lambda m: re.sub(r"\s+", "", m.group(0)), line)  # "(0F7; 7B3)" is one entry
        if not line:
            continue
        try:
            rows.append(tuple(parse_step(tok) for tok in _SEPARATORS.split(line) if tok))
        except ActionError as exc:
            raise ScheduleError(f"line {number}: {exc}") from None
    if not rows:
        raise ScheduleError("the schedule has no actions; write one line of actions per worker")
    owner: dict[int, int] = {}
    for worker, worker_actions in enumerate(rows):
        for a in (a for step in worker_actions for a in step.parts):
            if owner.setdefault(a.stage, worker) != worker:
                raise ScheduleError(
                    f"stage {a.stage} appears on worker {owner[a.stage]} and worker {worker}; "
                    "each stage must live on exactly one worker"
                )
    stages = max(owner) + 1
    missing = [s for s in range(stages) if s not in owner]
    if missing:
        raise ScheduleError(
            f"stage {missing[0]} has no actions; stages must be numbered 0..{stages - 1} without gaps"
        )
    microbatches = 1 + max(a.microbatch for row in rows for step in row for a in step.parts)
    return Schedule(name, tuple(owner[s] for s in range(stages)), microbatches, tuple(rows))


def read_schedule_file(path: str | Path) -> Schedule:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first action
    except UnicodeDecodeError:
        raise ScheduleError(f"schedule file {path} is not UTF-8 text; save it as UTF-8 (plain ASCII will do)") from None
    except OSError as exc:
        raise ScheduleError(f"cannot read schedule file {path}: {exc.strerror or exc}") from None
    return parse_schedule(text, name=path.stem)


def schedule_csv(schedule: Schedule) -> str:
    """The compute-only CSV of torch.distributed.pipelining: one row per rank, one action per
    cell. :func:`read_schedule_file` reads it back."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([str(step) for step in row] for row in schedule.actions)
    return buffer.getvalue()


def write_schedule_csv(path: str | Path, schedule: Schedule) -> None:
    Path(path).write_text(schedule_csv(schedule))
