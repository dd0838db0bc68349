"""Benchmarks behind docs/performance.md. Run from the repo root: ``python docs/benchmark.py``.

Ratios are measured within one run on the same machine, never against fixed timings: these
machines are shared and noisy. Each figure is the median of several repetitions.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info

from pipenaut import Costs, build_schedule, simulate


def cli(*args: str) -> tuple[float, dict]:
    """Wall time of one whole ``pipenaut`` command (interpreter start included) and its JSON."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pipenaut", *args, "--json"], check=True, capture_output=True, text=True)
    return time.perf_counter() - started, json.loads(out.stdout)


def compare_wall(repeats: int) -> None:
    for extra, label in [([], "all nine schedules"), (["--schedules", "naive,gpipe,1f1b"], "the three classic ones")]:
        walls = [cli("compare", "--workers", "4", "--steps", "30", "--no-trace", *extra)[0] for _ in range(repeats)]
        print(f"- `pipenaut compare --workers 4 --steps 30 {' '.join(extra)}` ({label}, defaults): median wall "
              f"{statistics.median(walls):.2f} s over {repeats} runs (min {min(walls):.2f}, max {max(walls):.2f}); target < 3 s")


def blas_bound_speedup(repeats: int) -> None:
    args = ["--workers", "2", "--chunks", "8", "--dim", "1024", "--batch-size", "512", "--steps", "10", "--no-trace"]
    ratios, rows = [], []
    for _ in range(repeats):
        naive = cli("run", "-s", "naive", *args)[1]
        one_f_one_b = cli("run", "-s", "1f1b", *args)[1]
        ratios.append(naive["step_time_s"] / one_f_one_b["step_time_s"])
        rows.append((naive["step_time_s"], one_f_one_b["step_time_s"], one_f_one_b["bubble_measured"]))
    print(f"- `pipenaut run -s naive|1f1b {' '.join(args)}`: 1F1B over naive step time, median "
          f"{statistics.median(ratios):.2f}x over {repeats} pairs (each: {', '.join(f'{r:.2f}x' for r in ratios)}); "
          f"ideal 2*8/(8+2-1) = 1.78x; target >= 1.5x")
    naive_s, ofob_s, bubble = (statistics.median(c) for c in zip(*rows))
    print(f"  median step: naive {naive_s * 1e3:.1f} ms, 1f1b {ofob_s * 1e3:.1f} ms, 1f1b measured bubble {bubble:.1%}")


def emulation_vs_simulator(repeats: int) -> None:
    args = ["run", "-w", "4", "-c", "8", "--compute", "emulate", "--costs", "F=2,B=4", "--steps", "10", "--no-trace"]
    nominal = simulate(build_schedule("1f1b", 4, 8), Costs(F=2e-3, B=4e-3)).makespan()
    errors, refit = [], []
    for _ in range(repeats):
        data = cli(*args)[1]
        errors.append(data["makespan_s"] / nominal - 1)
        refit.append(data["makespan_s"] / data["makespan_predicted_s"] - 1)
    print(f"- `pipenaut {' '.join(args)}`: measured makespan over the simulator's prediction from the "
          f"requested costs ({nominal * 1e3:.0f} ms), median {statistics.median(errors):+.1%} over {repeats} runs "
          f"(each: {', '.join(f'{e:+.1%}' for e in errors)}); target within 5%. Against the simulator fed with "
          f"the measured action times: {statistics.median(refit):+.1%}")


def simulator_speed(repeats: int) -> None:
    times, timeline = [], None
    for _ in range(repeats):
        del timeline  # freeing the previous run's timeline is not part of this one
        started = time.perf_counter()
        timeline = simulate(build_schedule("1f1b", 64, 1024), Costs(F=1, B=2))
        timeline.bubble()
        times.append(time.perf_counter() - started)
    print(f"- simulate 1F1B, 64 workers x 1024 microbatches (131,072 actions; build, validate, simulate, "
          f"bubble): median {statistics.median(times):.2f} s over {repeats} runs")


def main() -> None:
    blas = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)" for i in threadpool_info() if i["user_api"] == "blas"]
    calibration = time.perf_counter()
    sum(i * 2 for i in range(10**6))
    calibration = time.perf_counter() - calibration
    print(f"python {sys.version.split()[0]} (a 1M-item generator sum takes {calibration * 1e3:.0f} ms here) · "
          f"numpy {np.__version__} · BLAS {', '.join(blas)} · {os.cpu_count()} cores")
    compare_wall(5)
    blas_bound_speedup(3)
    emulation_vs_simulator(3)
    simulator_speed(3)


if __name__ == "__main__":
    main()
