"""AI panel: choose a plugin, prompt it with a box or ± points on a slice, review its proposal.

The plugin runs in its own process (`radlabel.ai.worker.WorkerClient`); ``submit`` returns at once and a
QTimer polls the job (progress bar, Cancel), so the GUI thread never waits for a model. The proposal shows as
a cyan overlay (light fill + outline), distinct from the segments, until the reader decides through
`radlabel.app.review.ProposalReview`: Accept (whole proposal), Accept slice (only the slice on show), Reject,
or Edit (accept, then the brush). When the plugin's capabilities say ``propagation``, "Propagate through
slices" asks it to continue from the prompted slice (request option ``propagate``, as the MedSAM plugin
reads it). Plugin errors (`PluginError` and the rest of `RadlabelError`) become messages.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from radlabel.core.errors import Cancelled, RadlabelError
from radlabel.ui.case_controller import CaseController
from radlabel.ui.edit_tools import ScratchLayer, inside, view_axis, world_to_kji
from radlabel.ui.viewer_state import ViewerState

POLL_MS = 40
PROPOSAL_COLOR = (0, 230, 255)
PROMPT_COLORS = {1: (90, 255, 90), 2: (255, 80, 80), 3: (255, 230, 0)}  # + point, - point, box


class PromptTool:
    """Box (drag) or point (click) prompts on a slice view, drawn in a scratch layer while they are made."""

    def __init__(self, panel: AIPanel) -> None:
        self.panel = panel
        self.state = panel.state
        self.scratch = ScratchLayer(panel.state, "prompts", opacity=0.9, outline=False)
        self.mode = "box"  # "box", "positive", "negative"
        self._start: NDArray[np.float64] | None = None
        self._axis = 0

    def _box_region(self, a: NDArray[np.float64], b: NDArray[np.float64]) -> Any:
        from radlabel.core.edit.request import Region

        low = np.minimum(np.rint(a), np.rint(b)).astype(int)
        high = np.maximum(np.rint(a), np.rint(b)).astype(int)
        low[self._axis] = high[self._axis] = int(np.rint(a[self._axis]))
        shape = np.array(self.state.volume.array.shape)  # type: ignore[union-attr]
        low, high = np.clip(low, 0, shape - 1), np.clip(high, 0, shape - 1)
        mask = np.zeros(tuple(int(v) for v in high - low + 1), bool)
        others = [x for x in range(3) if x != self._axis]
        for axis in others:
            for end in (0, -1):
                index: list[Any] = [slice(None)] * 3
                index[axis] = end
                mask[tuple(index)] = True
        return Region((int(low[0]), int(low[1]), int(low[2])), mask), low, high

    def press(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        volume = self.state.volume
        if volume is None:
            return False
        kji = world_to_kji(volume, world)
        if not inside(volume.array.shape, kji):
            return True
        self._axis = view_axis(volume, view.view)
        if self.mode == "box":
            self._start = kji
            return True
        from radlabel.core.edit import brush

        positive = self.mode == "positive"
        self.panel.add_point(tuple(int(v) for v in np.rint(kji)), positive, self._axis, world)
        dot = brush.dab(volume, tuple(np.rint(kji)), 2.0 * float(min(volume.spacing)), axis=self._axis)
        self.scratch.paint(dot, 1 if positive else 2, PROMPT_COLORS)
        return True

    def move(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        volume = self.state.volume
        if volume is None or self._start is None:
            return True
        region, _low, _high = self._box_region(self._start, world_to_kji(volume, world))
        self.panel.clear_box_drawing()
        self.scratch.paint(region, 3, PROMPT_COLORS)
        return True

    def release(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        volume = self.state.volume
        if volume is None or self._start is None:
            return True
        start, self._start = self._start, None
        region, low, high = self._box_region(start, world_to_kji(volume, world))
        if np.count_nonzero(high - low) < 2:
            return True  # a click, not a box
        self.panel.set_box(tuple(int(v) for v in low), tuple(int(v) for v in high), self._axis)
        self.panel.clear_box_drawing()
        self.scratch.paint(region, 3, PROMPT_COLORS)
        return True


class AIPanel(QWidget):
    """See the module docstring."""

    tool_changed = Signal(object)  # the prompt tool for the slice views (or None)
    edit_requested = Signal()  # "Edit": the proposal was accepted, the reader wants the brush
    proposal_ready = Signal()

    def __init__(self, state: ViewerState, controller: CaseController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.controller = controller
        self.plugins: dict[str, Any] = {}
        self.client: Any = None
        self.job: Any = None
        self.errors: list[str] = []
        self.box: Any = None
        self.points: list[Any] = []
        self.prompt_tool = PromptTool(self)
        self.proposal_layer = ScratchLayer(state, "proposal", opacity=0.25, outline=True)
        self._progress = (0.0, "")
        self._progress_lock = threading.Lock()
        self._request_axis = 0
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        form = QFormLayout()
        self.plugin_combo = QComboBox(self)
        self.plugin_combo.currentTextChanged.connect(self._on_plugin)
        form.addRow("Plugin", self.plugin_combo)
        self.plugin_info = QLabel("", self)
        self.plugin_info.setWordWrap(True)
        form.addRow(self.plugin_info)
        self.target = QLineEdit("Liver lesion", self)
        form.addRow("Target", self.target)
        self.into_selected = QCheckBox("Add to the selected segment (else a new one)", self)
        self.into_selected.setChecked(True)
        form.addRow(self.into_selected)
        layout.addLayout(form)

        prompts = QGroupBox("Prompt on a slice", self)
        row = QHBoxLayout(prompts)
        self.mode_buttons: dict[str, QToolButton] = {}
        group = QButtonGroup(self)
        for mode, text in (("box", "Box"), ("positive", "+ Point"), ("negative", "− Point")):
            button = QToolButton(self)
            button.setText(text)
            button.setCheckable(True)
            button.clicked.connect(lambda _c=False, mode=mode: self.set_prompt_mode(mode))
            group.addButton(button)
            row.addWidget(button)
            self.mode_buttons[mode] = button
        clear = QToolButton(self)
        clear.setText("Clear")
        clear.clicked.connect(self.clear_prompts)
        row.addWidget(clear)
        layout.addWidget(prompts)
        self.prompt_label = QLabel("Choose Box or ± Point, then draw on a slice.", self)
        self.prompt_label.setWordWrap(True)
        layout.addWidget(self.prompt_label)

        self.propagate = QCheckBox("Propagate through slices", self)
        layout.addWidget(self.propagate)
        run_row = QHBoxLayout()
        self.run_button = QPushButton("Run", self)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        layout.addLayout(run_row)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        review = QGroupBox("Review", self)
        grid = QHBoxLayout(review)
        self.accept_button = QPushButton("Accept", self)
        self.accept_button.clicked.connect(lambda: self.accept())
        self.accept_slice_button = QPushButton("Accept slice", self)
        self.accept_slice_button.clicked.connect(lambda: self.accept(slice_only=True))
        self.reject_button = QPushButton("Reject", self)
        self.reject_button.clicked.connect(lambda: self.reject())
        self.edit_button = QPushButton("Edit", self)
        self.edit_button.clicked.connect(self.accept_and_edit)
        for button in (self.accept_button, self.accept_slice_button, self.reject_button, self.edit_button):
            button.setMinimumWidth(10)
            grid.addWidget(button)
        layout.addWidget(review)
        layout.addStretch(1)
        self._update_buttons()
        controller.session_changed.connect(self._on_session_changed)

    # -- plugins -------------------------------------------------------------------------------------------

    def set_plugins(self, infos: list[Any]) -> None:
        """Fill the plugin list (from `radlabel.ai.registry.discover`); unusable ones are listed, disabled."""
        self.plugins = {info.name: info for info in infos}
        current = self.plugin_combo.currentText()
        self.plugin_combo.blockSignals(True)
        self.plugin_combo.clear()
        for info in infos:
            self.plugin_combo.addItem(info.name)
        index = self.plugin_combo.findText(current)
        usable = [n for n, info in enumerate(infos) if not info.error]
        self.plugin_combo.setCurrentIndex(index if index >= 0 else (usable[0] if usable else 0))
        self.plugin_combo.blockSignals(False)
        self._on_plugin(self.plugin_combo.currentText())

    def _on_plugin(self, name: str) -> None:
        info = self.plugins.get(name)
        if info is None:
            self.plugin_info.setText("")
            self.propagate.setEnabled(False)
        else:
            caps = info.capabilities
            kinds = ", ".join(sorted(k.value for k in caps.prompt_kinds)) if caps else "?"
            text = f"{info.version} — prompts: {kinds}"
            if info.error:
                text += f"\n⚠ {info.error}"
            self.plugin_info.setText(text)
            self.propagate.setEnabled(bool(caps and caps.propagation))
            if not (caps and caps.propagation):
                self.propagate.setChecked(False)
        self._update_buttons()

    # -- prompts -------------------------------------------------------------------------------------------

    def set_prompt_mode(self, mode: str | None) -> None:
        """``"box"``, ``"positive"`` or ``"negative"`` takes over the slice views' left button; None frees it."""
        if mode is None:
            self.tool_changed.emit(None)
            return
        self.mode_buttons[mode].setChecked(True)
        self.prompt_tool.mode = mode
        self.tool_changed.emit(self.prompt_tool)

    def set_box(self, low_kji: tuple[int, ...], high_kji: tuple[int, ...], axis: int | None) -> None:
        from radlabel.ai.sdk import BoxPrompt

        self.box = BoxPrompt((low_kji[2], low_kji[1], low_kji[0]), (high_kji[2], high_kji[1], high_kji[0]), axis=axis)
        self._request_axis = axis if axis is not None else 0
        self._show_prompts()

    def add_point(self, kji: tuple[int, ...], positive: bool, axis: int | None, world: Any = None) -> None:
        from radlabel.ai.sdk import PointPrompt

        w = tuple(float(v) for v in world) if world is not None else None
        self.points.append(PointPrompt((kji[2], kji[1], kji[0]), positive, axis, w))
        self._request_axis = axis if axis is not None else 0
        self._show_prompts()

    def clear_box_drawing(self) -> None:
        """Remove the drawn box (points stay)."""
        array = self.prompt_tool.scratch.array
        if array is not None:
            array[array == 3] = 0

    def clear_prompts(self) -> None:
        self.box = None
        self.points = []
        self.prompt_tool.scratch.clear()
        self._show_prompts()

    def _show_prompts(self) -> None:
        parts = []
        if self.box is not None:
            parts.append(
                f"box i {self.box.ijk_min[0]}–{self.box.ijk_max[0]}, j {self.box.ijk_min[1]}–"
                f"{self.box.ijk_max[1]}, k {self.box.ijk_min[2]}–{self.box.ijk_max[2]}"
            )
        positives = sum(p.positive for p in self.points)
        if self.points:
            parts.append(f"{positives} + / {len(self.points) - positives} − points")
        self.prompt_label.setText("Prompt: " + "; ".join(parts) if parts else "No prompt yet.")
        self._update_buttons()

    # -- running -------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.job is not None

    def run(self, plugin: str | None = None) -> bool:
        """Send the prompts to ``plugin`` (default: the chosen one) off the GUI thread. False when it could
        not start (the reason is in ``errors`` and shown)."""
        name = plugin or self.plugin_combo.currentText()
        try:
            request = self._request()
            if not name:
                raise RadlabelError("no AI plugin is installed (see `radlabel plugins list`)")
            from radlabel.ai.worker import WorkerClient

            if self.client is None or self.client.plugin != name:
                if self.client is not None:
                    self.client.close()
                self.client = WorkerClient(name)
            self._progress = (0.0, "starting")
            self.job = self.client.submit(request, self._on_progress)
        except RadlabelError as exc:
            self._fail(str(exc))
            return False
        self.status.setText(f"Running {name}…")
        self.progress.setValue(0)
        self._timer.start()
        self._update_buttons()
        return True

    def _request(self) -> Any:
        from radlabel.ai.sdk import InferenceRequest

        session = self.controller.require_session()
        if self.box is None and not any(p.positive for p in self.points):
            raise RadlabelError("draw a box or click a + point on a slice first")
        volume = session.volume
        options: dict[str, Any] = {}
        if self.propagate.isEnabled() and self.propagate.isChecked():
            options["propagate"] = True
        prompts: list[Any] = ([self.box] if self.box is not None else []) + list(self.points)
        return InferenceRequest(
            image=volume.array,
            origin=tuple(float(v) for v in volume.origin),  # type: ignore[arg-type]
            spacing=tuple(float(v) for v in volume.spacing),  # type: ignore[arg-type]
            direction=tuple(tuple(float(v) for v in row) for row in np.asarray(volume.direction)),
            modality=str(volume.metadata.get("modality", "")),
            prompts=prompts,
            target_label=self.target.text().strip() or "object",
            options=options,
        )

    def _on_progress(self, fraction: float, message: str = "") -> bool:
        """Called on the worker's thread: only store, the timer shows it."""
        with self._progress_lock:
            self._progress = (float(fraction), str(message))
        job = self.job
        return not (job is not None and job.cancelled())

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.setText("Cancelling…")

    def _poll(self) -> None:
        job = self.job
        with self._progress_lock:
            fraction, message = self._progress
        self.progress.setValue(round(1000 * min(max(fraction, 0.0), 1.0)))
        if message:
            self.status.setText(f"{self.plugin_combo.currentText()}: {message}")
        if job is None or not job.done():
            return
        self._timer.stop()
        self.job = None
        error = job.exception(0)
        if isinstance(error, Cancelled) or job.cancelled():
            self.status.setText("Cancelled.")
            self.progress.setValue(0)
        elif error is not None:
            text = str(error) if isinstance(error, RadlabelError) else f"{type(error).__name__}: {error}"
            self._fail(text)
        else:
            self._show_proposal(job.result(0))
        self._update_buttons()

    def _fail(self, text: str) -> None:
        self.errors.append(text)
        self.status.setText(f"Failed: {text}")
        self.progress.setValue(0)
        self.controller.error.emit(text)
        self._update_buttons()

    def _show_proposal(self, proposal: Any) -> None:
        from radlabel.ai.proposals import proposal_to_region

        review = self.controller.review
        session = self.controller.session
        if review is None or session is None:
            return
        sid = self.controller.current_segment_id if self.into_selected.isChecked() else None
        target = self.target.text().strip() or "object"
        if sid is not None and sid in session.segmentation.segments:
            target = session.segmentation.segments[sid].name
        review.show(proposal, target, sid)
        region = proposal_to_region(proposal, review.threshold, shape=session.segmentation.grid.shape)
        self.proposal_layer.clear(hide=False)
        self.proposal_layer.paint(region, 1, {1: PROPOSAL_COLOR})
        voxels = int(region.mask.sum())
        self.status.setText(f"Proposal from {proposal.model.name} {proposal.model.version}: {voxels:,} voxels.")
        self.progress.setValue(1000)
        self.proposal_ready.emit()

    # -- review --------------------------------------------------------------------------------------------

    @property
    def pending(self) -> Any:
        review = self.controller.review
        return review.pending if review is not None else None

    def accept(self, slice_only: bool = False) -> Any:
        review = self.controller.review
        if review is None or review.pending is None:
            return None
        where = None
        if slice_only:
            axis = self._request_axis
            kji = world_to_kji(self.state.volume, self.state.cursor)  # type: ignore[arg-type]
            where = (axis, int(np.rint(kji[axis])))
        diff = self.controller.try_call(review.accept, where, self.controller.effective_rules())
        if diff is not None and diff.segment_id is not None:
            self.controller.set_current_segment(diff.segment_id)
        self._close_review("Accepted." if diff is not None else "Nothing added.")
        return diff

    def reject(self, reason: str = "rejected by the reader") -> None:
        review = self.controller.review
        if review is None or review.pending is None:
            return
        self.controller.try_call(review.reject, reason)
        self._close_review("Rejected.")

    def accept_and_edit(self) -> None:
        if self.accept() is not None:
            self.edit_requested.emit()

    def _close_review(self, text: str) -> None:
        self.proposal_layer.clear()
        self.clear_prompts()
        self.status.setText(text)
        self._update_buttons()

    def _update_buttons(self) -> None:
        pending = self.pending is not None
        for button in (self.accept_button, self.accept_slice_button, self.reject_button, self.edit_button):
            button.setEnabled(pending and not self.running)
        self.run_button.setEnabled(not self.running)
        self.cancel_button.setEnabled(self.running)

    def _on_session_changed(self) -> None:
        if self.job is not None:
            self.job.cancel()
        self.box, self.points = None, []
        self.prompt_tool.scratch.array = None
        self.proposal_layer.array = None
        self._update_buttons()

    def close_panel(self) -> None:
        self._timer.stop()
        if self.job is not None:
            self.job.cancel()
        if self.client is not None:
            self.client.close()
            self.client = None
