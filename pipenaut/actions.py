"""Actions: the unit a schedule is made of, in the grammar of torch.distributed.pipelining.

An action is written ``"{stage}{kind}{microbatch}"``: ``0F3`` is the forward of stage 0 on
microbatch 3, ``2B0`` the full backward of stage 2 on microbatch 0. The backward can also be split
in two: ``1I5`` computes only the gradient for the stage's *input* (what the previous stage needs
to go on), ``1W5`` only the gradient for the stage's *weights* (which nobody waits for, so it can
be deferred into a bubble). A full backward ``B`` is ``I`` then ``W``.

DualPipe issues a forward of one microbatch together with a backward of another as one
*overlapped* step, written ``(0F7;7B3)OVERLAP_F_B`` as torch.distributed.pipelining does (the short
``(0F7;7B3)`` is read too); pipenaut runs the two back to back on the worker.
"""

from __future__ import annotations

import re
from typing import NamedTuple

KIND_NAMES = {
    "F": "forward",
    "B": "backward",
    "I": "input-grad",
    "W": "weight-grad",
}
_ACTION = re.compile(r"(\d+)([A-Za-z])(\d+)")


class ActionError(ValueError):
    """A piece of text is not an action of the grammar."""


class Action(NamedTuple):
    """One action; a tuple, so that schedules of a million actions hash and compare fast."""

    stage: int
    kind: str
    microbatch: int

    def __str__(self) -> str:
        return f"{self.stage}{self.kind}{self.microbatch}"

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    @property
    def parts(self) -> tuple[Action, ...]:
        return (self,)

    @classmethod
    def parse(cls, text: str) -> Action:
        """Parse ``"0F3"``; ``str(Action.parse(s)) == s`` for every well-formed ``s``."""
        match = _ACTION.fullmatch(text.strip())
        if match is None:
            raise ActionError(
                f"{text.strip()!r} is not an action; write stage, kind, microbatch, e.g. 0F3 or 2B0"
            )
        stage, kind, microbatch = match.groups()
        if kind.upper() not in KIND_NAMES:
            raise ActionError(f"{text.strip()!r} has unknown kind {kind!r}; kinds are F, B, I and W")
        return cls(int(stage), kind.upper(), int(microbatch))


OVERLAP_SUFFIX = "OVERLAP_F_B"  # torch.distributed.pipelining's name for the overlapped kind


class Overlap(NamedTuple):
    """Two actions of one worker issued as one step, e.g. ``(0F7;7B3)OVERLAP_F_B``; run back to back."""

    first: Action
    second: Action

    def __str__(self) -> str:
        return f"{self.short}{OVERLAP_SUFFIX}"

    @property
    def short(self) -> str:
        return f"({self.first};{self.second})"

    @property
    def parts(self) -> tuple[Action, ...]:
        return (self.first, self.second)


def parse_step(text: str) -> Action | Overlap:
    """One entry of a worker's list: an action (``0F3``) or an overlapped pair
    (``(0F7;7B3)OVERLAP_F_B``, or just ``(0F7;7B3)``)."""
    text = text.strip()
    if text.upper().endswith(OVERLAP_SUFFIX):
        text = text[: -len(OVERLAP_SUFFIX)]
    if text.startswith("(") and text.endswith(")"):
        parts = text[1:-1].split(";")
        if len(parts) != 2:
            raise ActionError(f"{text!r} is not an overlapped pair; write two actions, e.g. (0F7;7B3)")
        return Overlap(Action.parse(parts[0]), Action.parse(parts[1]))
    return Action.parse(text)
