"""Check pipenaut's schedules against torch.distributed.pipelining itself (needs torch installed;
not a test dependency). From the repo root: ``python docs/check_torch.py``.

For every built-in schedule and a few sizes: the CSV pipenaut writes parses with torch's
``_Action.from_str``, prints back to the same text, and passes torch's ``_validate_schedule``; for
the schedules torch also builds (1F1B-family multi-stage ones), the order is identical to torch's.
"""

from __future__ import annotations

import csv
import io
import sys

import torch.distributed.pipelining.schedules as torch_schedules

from pipenaut import SCHEDULES, build_schedule
from pipenaut.schedule import schedule_csv

SIZES = [(2, 4), (4, 8), (4, 12), (3, 6)]


def torch_orders(name: str, p: int, m: int) -> list[list[str]] | None:
    """torch's own order for the schedules whose builders can run without a process group."""
    if name == "interleaved":
        s = object.__new__(torch_schedules.ScheduleInterleaved1F1B)
        s.pp_group_size, s.n_local_stages, s._n_microbatches, s._num_stages = p, 2, m, 2 * p
        s.number_of_rounds = max(1, m // p)
        s.microbatches_per_round = m // s.number_of_rounds
        if m % s.number_of_rounds:
            return None  # torch refuses these sizes; pipenaut runs them
        return [[repr(a) for a in s._calculate_single_rank_operations(r) if a is not None] for r in range(p)]
    if name == "looped-bfs":
        s = object.__new__(torch_schedules.ScheduleLoopedBFS)
        s.pp_group_size, s._stages, s._n_microbatches = p, [None, None], m
    elif name == "zb-v":
        s = object.__new__(torch_schedules.ScheduleZBVZeroBubble)
        s.pp_group_size, s.num_stages, s._n_microbatches = p, 2 * p, m
    elif name == "dualpipev":
        s = object.__new__(torch_schedules.ScheduleDualPipeV)
        s.pp_group_size, s._n_microbatches, s._num_stages, s.num_stages = p, m, 2 * p, 2 * p
    else:
        return None
    return [[repr(a) for a in s._calculate_single_rank_operations(r) if a is not None] for r in range(p)]


def main() -> int:
    failures = 0
    for name in SCHEDULES:
        for p, m in SIZES:
            if name == "dualpipev" and m < 2 * p:
                continue
            schedule = build_schedule(name, p, m)
            rows = list(csv.reader(io.StringIO(schedule_csv(schedule))))
            parsed = {rank: [torch_schedules._Action.from_str(cell) for cell in row] for rank, row in enumerate(rows)}
            printed = [[repr(a) for a in parsed[rank]] for rank in range(len(rows))]
            torch_schedules._validate_schedule(parsed, p, schedule.stages, m)
            same_text = printed == rows
            theirs = torch_orders(name, p, m)
            same_order = "n/a" if theirs is None else theirs == rows
            ok = same_text and same_order in (True, "n/a")
            failures += not ok
            print(f"{name:12} p={p} m={m}: torch parses and validates it; same text: {same_text}; same order as torch's builder: {same_order}")
    print("all agree" if not failures else f"{failures} disagree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
