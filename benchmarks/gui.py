"""Window responsiveness under Xvfb (or the current display): figures side by side with the issue's targets.

    python benchmarks/gui.py [--slices 300] [--repeats 60]

- **first frame**: from launching a fresh Python process to the demo case rendered in the window (no AI plugin
  loaded; the process imports Qt, VTK and radlabel itself). Target <= 2 s. The case folder (session) of the
  demo is made after that frame, off the GUI thread; the time until it is attached (editing possible) is
  reported below it.
- **slice change**: median time of one slice step + render of the axial view on a 512 x 512 x N CT with a
  segment. Target <= 16 ms.
- **brush stroke to screen**: median time from a mouse-move of the paint brush to the axial view rendered
  with the stroke (the stroke preview); the release (one session edit, journalled) is reported too.
  Target <= 30 ms.
- **event-loop stall during a proposal**: the longest gap between ticks of a 5 ms QTimer heartbeat while the
  example threshold plugin computes a proposal on that CT in its worker process (worker start included).
  Target <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _setup_display() -> None:
    from radlabel.ui import display

    if not display.has_display():
        server = display.start_xvfb()
        os.environ["DISPLAY"] = server.display
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")


def child_first_frame(started: float) -> None:
    """Run in a fresh process: show the window, open the demo, print seconds since ``started``."""
    _setup_display()
    from radlabel.ui.app import create_application

    app = create_application()
    from radlabel.ui.main_window import MainWindow

    window = MainWindow()
    window.resize(1280, 800)
    window.show()
    window.open_demo()
    while window.state.volume is None:  # the phantom is on show before its case folder is made
        app.processEvents()
        time.sleep(0.002)
    window.render_all()
    elapsed = time.time() - started
    while window.busy:  # then its case (session) is made and attached: editing can start
        app.processEvents()
        time.sleep(0.002)
    ready = time.time() - started
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "monai", "radlabel_medsam"})
    print(f"{elapsed:.3f} {','.join(heavy) or '-'} {ready:.3f}")
    sys.stdout.flush()
    os._exit(0)


def first_frame() -> tuple[float, str, float]:
    """Seconds to the first frame of the demo, heavy modules loaded, seconds until its case is editable."""
    started = time.time()
    output = subprocess.run(
        [sys.executable, __file__, "--child-first-frame", repr(started)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    return float(output[0]), output[1], float(output[2])


def synthetic_ct(slices: int) -> tuple[object, object]:
    from radlabel.core.segmentation.model import Grid, Segment, Segmentation
    from radlabel.core.volume import Volume

    k, j, i = np.ogrid[:slices, :512, :512]
    body = ((j - 256) ** 2 + (i - 256) ** 2) < 220**2
    plane = np.where(body[0], 40, -1000).astype(np.int16)
    plane += np.random.default_rng(0).normal(0, 15, size=(512, 512)).astype(np.int16)
    array = np.repeat(plane[None], slices, axis=0)
    lesion = ((k - slices // 2) ** 2 * 4 + (j - 256) ** 2 + (i - 300) ** 2) < 40**2
    array[lesion] = 90
    volume = Volume(
        array,
        (-180.0, -180.0, -375.0),
        (0.7, 0.7, 2.5),
        np.eye(3),
        metadata={"modality": "CT", "description": "synthetic CT"},
    )
    layer = lesion.astype(np.uint8)
    segmentation = Segmentation(Grid.of(volume), [layer], {1: Segment(id=1, name="Lesion", color=(240, 170, 40))})
    return volume, segmentation


def in_window(slices: int, repeats: int) -> dict[str, float]:
    _setup_display()
    from PySide6.QtCore import QElapsedTimer, QTimer

    from radlabel.app.session import Session
    from radlabel.ui.app import create_application
    from radlabel.ui.viewer_state import View

    app = create_application()
    from radlabel.ui.main_window import MainWindow

    window = MainWindow()
    window.resize(1280, 800)
    window.show()
    for _ in range(5):
        app.processEvents()
    volume, segmentation = synthetic_ct(slices)
    folder = Path(tempfile.mkdtemp(prefix="radlabel-gui-bench-"))
    session = Session.create(folder / "case", volume, folder / "synthetic.nii", segmentation=segmentation)
    window.attach_session(session, "synthetic CT")
    window.render_all()
    axial = window.slice_views[View.AXIAL]
    results: dict[str, float] = {}

    times = []
    for n in range(repeats):
        start = time.perf_counter()
        window.state.move_slice(View.AXIAL, 1 if n % 20 < 10 else -1)
        axial.render_now()
        times.append(time.perf_counter() - start)
    results["slice_ms"] = 1000 * statistics.median(times)

    window.tools_panel.select("paint")
    window.tools_panel.paint_radius.setValue(5.0)
    brush = window.tools_panel.brush
    centre = window.state.cursor + np.array([-60.0, 0.0, 0.0])
    brush.press(axial, centre, None)
    times = []
    for n in range(1, repeats + 1):
        point = centre + np.array([0.5 * n, 0.3 * n, 0.0])
        start = time.perf_counter()
        brush.move(axial, point, None)
        axial.render_now()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    brush.release(axial, point, None)
    axial.render_now()
    results["release_ms"] = 1000 * (time.perf_counter() - start)
    results["stroke_ms"] = 1000 * statistics.median(times)
    results["stroke_p95_ms"] = 1000 * float(np.percentile(times, 95))

    settle = time.perf_counter()  # let the 3D surfaces of the stroke finish (meshed off the GUI thread)
    while (window.view_3d.surfaces_pending or window.segment_panel.stats_pending) and time.perf_counter() - settle < 30:
        app.processEvents()
        time.sleep(0.005)
    window.render_all()
    panel = window.ai_panel
    from radlabel.ai.registry import discover

    panel.set_plugins(discover())
    panel.plugin_combo.setCurrentText("example-threshold")
    c = [int(v) for v in np.rint(volume.world_to_index(window.state.cursor)[0])]
    panel.set_box((c[2], c[1] - 60, c[0] - 20), (c[2], c[1] + 60, c[0] + 100), 0)
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(tick)
    heartbeat.start()
    started = time.perf_counter()
    panel.run()
    while panel.running and time.perf_counter() - started < 120:
        app.processEvents()
        time.sleep(0.001)
    results["proposal_s"] = time.perf_counter() - started
    heartbeat.stop()
    results["stall_ms"] = float(max(gaps)) if gaps else float("nan")
    results["proposal_ok"] = float(panel.pending is not None)
    window.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--child-first-frame", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_first_frame is not None:
        child_first_frame(args.child_first_frame)
        return
    frames = [first_frame() for _ in range(3)]
    figures = in_window(args.slices, args.repeats)
    best = min(f[0] for f in frames)
    rows = [
        ("first frame (demo, fresh process, best of 3)", f"{best:.2f} s", "<= 2 s", best <= 2.0),
        ("  demo case editable (its session attached, best of 3)", f"{min(f[2] for f in frames):.2f} s", "", True),
        (
            f"slice change, 512x512x{args.slices} CT (median)",
            f"{figures['slice_ms']:.1f} ms",
            "<= 16 ms",
            figures["slice_ms"] <= 16,
        ),
        (
            f"brush stroke to screen (median; p95 {figures['stroke_p95_ms']:.1f} ms)",
            f"{figures['stroke_ms']:.1f} ms",
            "<= 30 ms",
            figures["stroke_ms"] <= 30,
        ),
        ("  stroke release: one session edit + render", f"{figures['release_ms']:.1f} ms", "", True),
        (
            f"longest event-loop stall during a proposal ({figures['proposal_s']:.1f} s)",
            f"{figures['stall_ms']:.0f} ms",
            "<= 50 ms",
            figures["stall_ms"] <= 50,
        ),
    ]
    print(f"heavy modules in the first-frame process: {frames[0][1]}")
    print(f"{'measure':62} {'measured':>10} {'target':>10}")
    for name, value, target, ok in rows:
        print(f"{name:62} {value:>10} {target:>10} {'' if not target else ('ok' if ok else 'MISSED')}")
    if not figures["proposal_ok"]:
        print("warning: the example plugin gave no proposal")


if __name__ == "__main__":
    main()
