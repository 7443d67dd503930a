"""Window responsiveness under Xvfb (or the current display): figures side by side with the issue's targets.

    python benchmarks/gui.py [--slices 300] [--repeats 60]

Every figure is taken the way a user meets it: input goes in as Qt events (wheel, mouse) through the event
loop, and a frame counts when VTK has rendered and presented it (the render window's EndEvent), not when a
render was asked for. Views that only follow a change (the crosshair lines of the other views, the 3D view)
draw on idle ticks after the view that shows it (see `radlabel.ui.vtk_canvas`); the time until every view is
up to date is reported beside each figure, and the loop lets those frames happen between samples, so they
are never skipped.

- **first frame**: from launching a fresh Python process to the demo case rendered in every view of the
  window, by the same code path as `radlabel demo` (`radlabel.ui.app.start`; no AI plugin loaded; the
  process imports Qt, VTK and radlabel itself). Target <= 2 s. The case folder (session) of the demo is made
  after that frame, off the GUI thread; the time until it is attached (editing possible) is reported below.
- **slice change**: median time from a wheel event on the axial view of a 512 x 512 x N CT with a segment
  to the new slice presented there, with notches 60 ms apart (a brisk scroll). Target <= 16 ms. The same
  with each notch sent as soon as every view has drawn the previous one is reported below it.
- **brush stroke to screen**: median time from a mouse-move of the paint brush in the axial view (moves at
  60 Hz) to the stroke presented there; the release (one session edit, journalled) is reported too.
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
# Python puts this script's folder first on the path; sibling benchmarks must not shadow libraries
# (a benchmark named like a library, e.g. packaging.py, would hide that library from nibabel and others).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(ROOT))


def _setup_display() -> None:
    from radlabel.ui import display

    if not display.has_display():
        server = display.start_xvfb()
        os.environ["DISPLAY"] = server.display
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")


def child_first_frame(started: float) -> None:
    """Run in a fresh process: start the window as `radlabel demo` does, print seconds since ``started``."""
    _setup_display()
    from radlabel.ui.app import start

    app, window = start(demo=True, size=(1280, 800))
    shown: dict[object, float] = {}

    def rendered(view: object) -> None:
        if window.state.volume is not None:  # a frame of the demo case, not of the empty window
            shown.setdefault(view, time.time())

    for view in window.state.visible_views():
        canvas = window.views[view].canvas
        canvas.render_window.AddObserver("EndEvent", lambda *_args, view=view: rendered(view))
    while len(shown) < len(window.state.visible_views()):
        app.processEvents()
        time.sleep(0.001)
    elapsed = max(shown.values()) - started
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


class Frames:
    """When each view presented a frame (VTK's EndEvent, after the render window swapped its buffers)."""

    def __init__(self, window: object) -> None:
        self.log: list[tuple[object, float]] = []
        for view, widget in window.views.items():  # type: ignore[attr-defined]
            widget.canvas.render_window.AddObserver("EndEvent", lambda *_args, view=view: self._seen(view))

    def _seen(self, view: object) -> None:
        self.log.append((view, time.perf_counter()))

    def first_after(self, view: object, start: float) -> float | None:
        return next((t for v, t in self.log if v == view and t >= start), None)


#: When `drive` last sent an event.
_last_sent = [0.0]
#: A brisk scroll: about 16 wheel notches a second.
WHEEL_CADENCE_S = 0.06
#: Mouse moves during a drag come with the screen's refresh (60 Hz).
MOVE_CADENCE_S = 1 / 60


def drive(
    app: object, window: object, frames: Frames, view: object, send: object, cadence_s: float = 0.0
) -> tuple[float, float]:
    """Send one input event (``send()``) and run the event loop: seconds until ``view`` and every other view
    that draws the change in its next paint have presented it, and seconds until the views that draw on idle
    ticks have too (the last frame).

    ``cadence_s``: the event is sent no sooner than this after the previous one (the event loop runs
    meanwhile), as a user's wheel notches or mouse moves come; 0 sends it as soon as every view is drawn."""
    from radlabel.ui.vtk_canvas import renders_waiting

    while time.perf_counter() - _last_sent[0] < cadence_s:
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.0005)
    views = window.views  # type: ignore[attr-defined]
    start = _last_sent[0] = time.perf_counter()
    send()  # type: ignore[operator]
    now = {view} | {v for v, widget in views.items() if widget.canvas.paint_pending and widget.isVisible()}
    while any(frames.first_after(v, start) is None for v in now):
        app.processEvents()  # type: ignore[attr-defined]
        if time.perf_counter() - start > 10:
            raise RuntimeError(f"the {view} view drew no frame for the event")
    shown = max(frames.first_after(v, start) or start for v in now) - start
    while renders_waiting() or any(w.canvas.paint_pending and w.isVisible() for w in views.values()):
        app.processEvents()  # type: ignore[attr-defined]
    last = max((t for _, t in frames.log if t >= start), default=start)
    del frames.log[:]
    return shown, last - start


def in_window(slices: int, repeats: int) -> dict[str, float]:
    _setup_display()
    from PySide6.QtCore import QElapsedTimer, QEvent, QPoint, QPointF, Qt, QTimer
    from PySide6.QtGui import QMouseEvent, QWheelEvent
    from PySide6.QtWidgets import QApplication

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
    canvas = axial.canvas
    frames = Frames(window)
    results: dict[str, float] = {}

    def wheel(steps: int) -> None:
        centre = QPointF(canvas.width() / 2, canvas.height() / 2)
        event = QWheelEvent(
            centre,
            canvas.mapToGlobal(centre),
            QPoint(0, 0),
            QPoint(0, 120 * steps),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(canvas, event)

    for key, cadence in (("slice", WHEEL_CADENCE_S), ("slice_burst", 0.0)):
        shown, everywhere = [], []
        for n in range(repeats):
            step = 1 if n % 20 < 10 else -1
            times = drive(app, window, frames, View.AXIAL, lambda step=step: wheel(step), cadence)
            shown.append(times[0])
            everywhere.append(times[1])
        results[f"{key}_ms"] = 1000 * statistics.median(shown)
        results[f"{key}_all_ms"] = 1000 * statistics.median(everywhere)

    def mouse(kind: QEvent.Type, world: np.ndarray) -> None:
        x, y = axial.scene.world_to_display(world)
        ratio = canvas.devicePixelRatioF()
        local = QPointF(float(np.floor(x / ratio)), float(np.floor(canvas.height() - y / ratio)))
        button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
        event = QMouseEvent(
            kind,
            local,
            canvas.mapToGlobal(local),
            button,
            Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseButtonRelease else Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(canvas, event)

    window.tools_panel.select("paint")
    window.tools_panel.paint_radius.setValue(5.0)
    centre = window.state.cursor + np.array([-60.0, 0.0, 0.0])
    drive(app, window, frames, View.AXIAL, lambda: mouse(QEvent.Type.MouseButtonPress, centre))
    shown, everywhere = [], []
    point = centre
    for n in range(1, repeats + 1):
        point = centre + np.array([0.5 * n, 0.3 * n, 0.0])
        times = drive(
            app, window, frames, View.AXIAL, lambda point=point: mouse(QEvent.Type.MouseMove, point), MOVE_CADENCE_S
        )
        shown.append(times[0])
        everywhere.append(times[1])
    release = drive(app, window, frames, View.AXIAL, lambda: mouse(QEvent.Type.MouseButtonRelease, point))
    assert window.tools_panel.brush.last_diff is not None, "the stroke made no edit"
    results["release_ms"] = 1000 * release[0]
    results["stroke_ms"] = 1000 * statistics.median(shown)
    results["stroke_p95_ms"] = 1000 * float(np.percentile(shown, 95))
    results["stroke_all_ms"] = 1000 * statistics.median(everywhere)

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
        ("  every view up to date (crosshairs, 3D; median)", f"{figures['slice_all_ms']:.1f} ms", "", True),
        (
            "  wheel events back to back: new slice / every view (median)",
            f"{figures['slice_burst_ms']:.1f} / {figures['slice_burst_all_ms']:.0f} ms",
            "",
            True,
        ),
        (
            f"brush stroke to screen (median; p95 {figures['stroke_p95_ms']:.1f} ms)",
            f"{figures['stroke_ms']:.1f} ms",
            "<= 30 ms",
            figures["stroke_ms"] <= 30,
        ),
        ("  every view up to date (median)", f"{figures['stroke_all_ms']:.1f} ms", "", True),
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
