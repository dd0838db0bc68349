"""Re-take the screenshots in docs/reading-traces.md from the real Perfetto UI.

From the repo root, after ``pip install '.[test]'`` (and Debian's chromium):

    python docs/screenshots.py

It writes fresh traces with pipenaut, loads them into the offline Perfetto UI in headless Chromium
(the machinery of tests/perfetto_ui.py) and saves PNGs to docs/images/.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from perfetto_ui import PerfettoUI, missing  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def pipenaut(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pipenaut", *args, "--json"], check=True, capture_output=True)


def zoom_in(trace, presses: int) -> None:
    """Hover the timeline and hold W, as a person would, to zoom into the first step."""
    page = trace.page
    if not presses:
        return
    page.mouse.move(520, 300)
    for _ in range(presses):
        page.keyboard.down("w")
        time.sleep(0.12)
        page.keyboard.up("w")
    time.sleep(0.8)


def main() -> None:
    reason = missing()
    if reason:
        sys.exit(f"cannot take screenshots: {reason}")
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder, PerfettoUI() as ui:

        def shoot(file: str, command: list[str], pictures: list[tuple[str, int]]) -> None:
            """Write a trace with ``command``, then one screenshot per (name, zoom presses)."""
            path = Path(folder) / file
            pipenaut(*command, "--trace", str(path))
            trace = ui.load(path)
            for name, presses in pictures:
                zoom_in(trace, presses)
                trace.screenshot(IMAGES / name)
            trace.close()

        shoot("1f1b.pftrace", ["run", "-s", "1f1b", "--steps", "3"], [("run-overview.png", 0), ("run-one-step.png", 6)])
        shoot("dualpipev.json", ["run", "-s", "dualpipev", "--steps", "2"], [("dualpipev-one-step.png", 6)])
        shoot("compare.json", ["compare", "--steps", "3", "--schedules", "naive,gpipe,1f1b,zb-h1"], [("compare.png", 0)])
    print(f"wrote {', '.join(sorted(p.name for p in IMAGES.glob('*.png')))} to {IMAGES}")


if __name__ == "__main__":
    main()
