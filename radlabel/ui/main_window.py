"""The main window: views in a 2x2 / 1x3 / 1x1 layout, File and View menus, drag and drop, recent files, a
status bar with the cursor readout, and the segment display panel.

Opening runs off the GUI thread (:mod:`radlabel.ui.loader_thread`); a path with several series opens the
series browser. Errors become a message box and an entry in :attr:`MainWindow.messages` (tests read it),
never a crash. Opening an image opens its case (`radlabel.ui.case_store`: a `Session` folder beside the image
or in the user's cases folder); the Segments, Tools, AI and Audit panels work on that session through the
`CaseController`. File > Save writes the case; the journal keeps every step in between.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QGridLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QWidget,
)

from radlabel import __version__
from radlabel.core.errors import Cancelled, RadlabelError
from radlabel.core.segmentation.model import Segmentation
from radlabel.core.volume import Volume
from radlabel.ui import presets
from radlabel.ui.ai_panel import AIPanel
from radlabel.ui.audit_panel import AuditPanel
from radlabel.ui.case_controller import CaseController
from radlabel.ui.cases import demo_case, load_labelmap
from radlabel.ui.loader_thread import BackgroundJob
from radlabel.ui.segment_panel import SegmentPanel
from radlabel.ui.slice_view import SliceView
from radlabel.ui.tools_panel import TOOLS, ToolsPanel
from radlabel.ui.viewer_state import SLICE_VIEWS, Change, Layout, View, ViewerState
from radlabel.ui.volume_view3d import VolumeView
from radlabel.ui.vtk_canvas import uses_offscreen_canvas
from radlabel.ui.vtk_image import CaseImages

if TYPE_CHECKING:  # loaded with the first image opened, not with the window
    from radlabel.core.io.series import LoadedSeries, ScanResult, SeriesEntry
    from radlabel.ui.series_browser import SeriesBrowser

MAX_RECENT = 10
DEMO_TITLE = "radlabel demo phantom"
#: Work that waits for the first frame of a case (see `MainWindow.after_first_frame`) starts after this at worst.
FIRST_FRAME_FALLBACK_MS = 1000
#: The AI plugins are listed this long after a case opens (or when the AI panel is first shown).
PLUGIN_LIST_DELAY_MS = 3000
RECENT_KEY = "recent_files"
LAYOUT_LABELS = {Layout.GRID_2X2: "2 × 2", Layout.ROW_1X3: "1 × 3", Layout.SINGLE_1X1: "1 × 1"}
LAYOUT_SHORTCUTS = {Layout.GRID_2X2: "Ctrl+1", Layout.ROW_1X3: "Ctrl+2", Layout.SINGLE_1X1: "Ctrl+3"}


def app_settings() -> QSettings:
    """User settings (recent files, window geometry); an INI file in the user's config folder."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "radlabel", "radlabel")


class MainWindow(QMainWindow):
    case_shown = Signal()
    """Every view on show has rendered the case `set_case` put up (its first frame); slow work starts then."""

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else app_settings()
        self.ask_about_recovery = True
        """Offer recovered journal steps in a dialog (False for screenshots: they are kept, noted in the status
        bar)."""
        self.recovery_box: QMessageBox | None = None
        self.state = ViewerState()
        self.images = CaseImages(self.state)  # before the views: it must sync first (see CaseImages)
        self.messages: list[tuple[str, str]] = []
        self.notices: list[str] = []
        self.message_box: QMessageBox | None = None
        self.series_browser: SeriesBrowser | None = None
        self.jobs: list[BackgroundJob] = []
        self._case_pending = False  # the demo on show, its case folder not made yet (see `busy`)
        self.case_path: str | None = None
        self.warnings: list[str] = []
        self.exports: list[Any] = []
        self._last_scan_series = 1
        self.setWindowTitle("radlabel")
        self.setAcceptDrops(True)
        self.resize(1280, 860)

        self.slice_views: dict[View, SliceView] = {
            view: SliceView(view, self.state, self.images) for view in SLICE_VIEWS
        }
        self.view_3d = VolumeView(self.state, self.images, [v.scene for v in self.slice_views.values()])
        self.views: dict[View, SliceView | VolumeView] = {**self.slice_views, View.THREE_D: self.view_3d}
        central = QWidget(self)
        self._grid = QGridLayout(central)
        self._grid.setContentsMargins(2, 2, 2, 2)
        self._grid.setSpacing(3)
        self.setCentralWidget(central)
        self._welcome = QLabel(
            "Open a DICOM folder, file or zip, or a NIfTI/NRRD volume (File > Open, or drop it here),\n"
            "or File > Open demo case.",
            self,
        )
        self._welcome.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.controller = CaseController(self.state, self)
        self.controller.error.connect(self.show_error)
        self.controller.event.connect(lambda _event: self._refresh_edit_actions())
        self.controller.session_changed.connect(self._refresh_edit_actions)
        self.segment_panel = SegmentPanel(self.state, self.controller, self)
        segments_dock = self.add_panel("Segments", self.segment_panel)
        self.tools_panel = ToolsPanel(self.state, self.controller, self)
        tools_dock = self.add_panel("Tools", self.tools_panel)
        self.ai_panel = AIPanel(self.state, self.controller, self)
        ai_dock = self.add_panel("AI", self.ai_panel)
        self.tabifyDockWidget(tools_dock, ai_dock)
        tools_dock.raise_()
        self.audit_panel = AuditPanel(self.controller, self)
        self.audit_dock = self.add_panel("Audit", self.audit_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.audit_dock.hide()
        self.docks = {"segments": segments_dock, "tools": tools_dock, "ai": ai_dock, "audit": self.audit_dock}
        self.resizeDocks([segments_dock], [330], Qt.Orientation.Horizontal)
        self.tools_panel.tool_changed.connect(lambda tool: self._set_mouse_tool(tool, "tools"))
        self.ai_panel.tool_changed.connect(lambda tool: self._set_mouse_tool(tool, "ai"))
        self.ai_panel.edit_requested.connect(lambda: self.tools_panel.select("paint"))
        ai_dock.visibilityChanged.connect(lambda visible: self._list_plugins() if visible else None)
        self._plugins_listed = False
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._readout = QLabel("", self)
        self._readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.statusBar().addPermanentWidget(self._readout, 1)
        self.state.subscribe(self._on_state)
        self._apply_layout()

    # -- construction --------------------------------------------------------------------------------------

    def _action(
        self, text: str, slot: Callable[[], Any], shortcut: str | QKeySequence.StandardKey | None = None
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _build_actions(self) -> None:
        self.open_file_action = self._action("Open &File…", self.choose_file, QKeySequence.StandardKey.Open)
        self.open_folder_action = self._action("Open F&older…", self.choose_folder, "Ctrl+Shift+O")
        self.open_zip_action = self._action("Open &Zip…", self.choose_zip)
        self.open_demo_action = self._action("Open &Demo Case", self.open_demo, "Ctrl+D")
        self.open_labels_action = self._action("Open &Label Map…", self.choose_labelmap)
        self.screenshot_action = self._action("Save &Screenshot…", self.choose_screenshot)
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.save_action = self._action("&Save Case", self.save_case, QKeySequence.StandardKey.Save)
        self.export_action = self._action("&Export Segmentation…", self.choose_export, "Ctrl+E")
        self.undo_action = self._action("&Undo", self.controller.undo, "Ctrl+Z")
        self.redo_action = self._action("&Redo", self.controller.redo, "Ctrl+Shift+Z")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.tool_actions: dict[str, QAction] = {}
        for key, label, shortcut in TOOLS:
            action = self._action(label, lambda key=key: self.tools_panel.select(key), shortcut or None)
            self.tool_actions[key] = action
        self.tool_actions["navigate"].setShortcuts([QKeySequence("N"), QKeySequence("Esc")])
        self.layout_actions: dict[Layout, QAction] = {}
        group = QActionGroup(self)
        for layout in Layout:
            action = self._action(f"Layout {LAYOUT_LABELS[layout]}", lambda layout=layout: self.set_layout(layout))
            action.setShortcut(QKeySequence(LAYOUT_SHORTCUTS[layout]))
            action.setCheckable(True)
            group.addAction(action)
            self.layout_actions[layout] = action
        self.preset_actions: dict[str, QAction] = {}
        preset_group = QActionGroup(self)
        shortcuts = {p.name: p.shortcut for p in presets.CT_PRESETS} | {presets.AUTO: presets.AUTO_SHORTCUT}
        for name in presets.PRESET_NAMES:
            action = self._action(name, lambda name=name: self.apply_preset(name), shortcuts[name])
            action.setCheckable(True)
            preset_group.addAction(action)
            self.preset_actions[name] = action
        self.reset_view_action = self._action("&Reset Zoom and Pan", self.state.reset_cameras, "Ctrl+0")
        self.crosshair_action = self._action("Show &Crosshair", self._toggle_crosshair, "C")
        self.crosshair_action.setCheckable(True)
        self.crosshair_action.setChecked(True)
        self.volume_rendering_action = self._action("3D &Volume Rendering", self._toggle_volume_rendering, "V")
        self.volume_rendering_action.setCheckable(True)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        for action in (self.open_file_action, self.open_folder_action, self.open_zip_action, self.open_demo_action):
            file_menu.addAction(action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self._refresh_recent_menu()
        file_menu.addSeparator()
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.open_labels_action)
        file_menu.addAction(self.screenshot_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        self.edit_menu = self.menuBar().addMenu("&Edit")
        self.edit_menu.addAction(self.undo_action)
        self.edit_menu.addAction(self.redo_action)
        self._refresh_edit_actions()
        tools_menu = self.menuBar().addMenu("&Tools")
        for action in self.tool_actions.values():
            tools_menu.addAction(action)
        view_menu = self.menuBar().addMenu("&View")
        for action in self.layout_actions.values():
            view_menu.addAction(action)
        view_menu.addSeparator()
        wl_menu = view_menu.addMenu("&Window/Level")
        for action in self.preset_actions.values():
            wl_menu.addAction(action)
        view_menu.addAction(self.reset_view_action)
        view_menu.addAction(self.crosshair_action)
        view_menu.addAction(self.volume_rendering_action)
        self.panels_menu = view_menu.addMenu("&Panels")
        for dock in self.findChildren(QDockWidget):
            self.panels_menu.addAction(dock.toggleViewAction())
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("&Mouse and Keys", self.show_help))
        help_menu.addAction(self._action("&About radlabel", self.show_about))

    def _build_toolbar(self) -> None:
        toolbar = self.addToolBar("View")
        toolbar.setObjectName("view_toolbar")
        toolbar.setMovable(False)
        toolbar.addAction(self.open_file_action)
        toolbar.addAction(self.open_folder_action)
        toolbar.addSeparator()
        for action in self.layout_actions.values():
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" W/L "))
        self.preset_combo = QComboBox(self)
        self.preset_combo.addItems(list(presets.PRESET_NAMES))
        self.preset_combo.setCurrentIndex(-1)
        self.preset_combo.setPlaceholderText("custom")
        self.preset_combo.textActivated.connect(self.apply_preset)
        toolbar.addWidget(self.preset_combo)
        self.toolbar = toolbar

    def add_panel(
        self, title: str, widget: QWidget, area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea
    ) -> QDockWidget:
        """Dock a panel (segments now; tools, AI review and audit in phase 2)."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"panel_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        dock.setMinimumWidth(200)
        self.addDockWidget(area, dock)
        if hasattr(self, "panels_menu"):
            self.panels_menu.addAction(dock.toggleViewAction())
        return dock

    # -- state -> widgets ----------------------------------------------------------------------------------

    def _on_state(self, changes: set[Change]) -> None:
        if Change.LAYOUT in changes or Change.VOLUME in changes:
            self._apply_layout()
        if changes & {Change.POINTER, Change.CURSOR, Change.VOLUME, Change.SEGMENTATION}:
            readout = self.state.readout()
            self._readout.setText(readout.text() if readout is not None else "")
        if Change.WINDOW in changes:
            for name, action in self.preset_actions.items():
                action.setChecked(name == self.state.preset)
            self.preset_combo.setCurrentIndex(
                presets.PRESET_NAMES.index(self.state.preset) if self.state.preset in presets.PRESET_NAMES else -1
            )
        if Change.VOLUME in changes:
            self._update_title()

    @property
    def readout_text(self) -> str:
        return self._readout.text()

    def _apply_layout(self) -> None:
        for widget in [*self.views.values(), self._welcome]:
            self._grid.removeWidget(widget)
            widget.hide()
        for row in range(3):
            self._grid.setRowStretch(row, 0)
        for column in range(3):
            self._grid.setColumnStretch(column, 0)
        if self.state.volume is None:
            self._grid.addWidget(self._welcome, 0, 0)
            self._welcome.show()
            self._grid.setRowStretch(0, 1)
            self._grid.setColumnStretch(0, 1)
        else:
            visible = self.state.visible_views()
            columns = {Layout.GRID_2X2: 2, Layout.ROW_1X3: 3, Layout.SINGLE_1X1: 1}[self.state.layout]
            for index, view in enumerate(visible):
                row, column = divmod(index, columns)
                self._grid.addWidget(self.views[view], row, column)
                self.views[view].show()
                self._grid.setRowStretch(row, 1)
                self._grid.setColumnStretch(column, 1)
        self.layout_actions[self.state.layout].setChecked(True)

    def _update_title(self) -> None:
        volume = self.state.volume
        if volume is None:
            self.setWindowTitle("radlabel")
            return
        size = "×".join(str(n) for n in volume.size)
        modality = volume.metadata.get("modality", "")
        self.setWindowTitle(f"{self.state.title or 'untitled'} — {modality} {size} {volume.orientation} — radlabel")

    # -- opening -------------------------------------------------------------------------------------------

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open file",
            self._last_folder(),
            "Images (*.dcm *.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.zip *);;All files (*)",
        )
        if path:
            self.open_path(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder", self._last_folder())
        if path:
            self.open_path(path)

    def choose_zip(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open zip", self._last_folder(), "Zip archives (*.zip)")
        if path:
            self.open_path(path)

    def choose_labelmap(self) -> None:
        if self.state.volume is None:
            self.show_error("Open an image before its label map.")
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Open label map", self._last_folder(), "Label maps (*.nii *.nii.gz *.nrrd *.mha);;All files (*)"
        )
        if path:
            self.open_labelmap(path)

    def _last_folder(self) -> str:
        recent = self.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def open_path(
        self, path: str | Path, series_uid: str | None = None, segment: str | Path | None = None
    ) -> BackgroundJob:
        """Scan ``path`` off the GUI thread; one series opens directly, several open the series browser."""
        from radlabel.core.io.loader import scan  # pydicom and scipy: imported after the window is up

        path = str(path)
        job = self._start_job(f"Reading {Path(path).name}", lambda progress: scan(path, progress))
        job.done.connect(lambda result: self._on_scanned(path, result, series_uid, segment))
        return job

    def _on_scanned(self, path: str, result: ScanResult, series_uid: str | None, segment: str | Path | None) -> None:
        skipped = len(result.bad_files)
        if skipped:
            first = result.bad_files[0]
            self.notify(f"{skipped} file(s) skipped, e.g. {Path(first.path).name}: {first.reason}", 15000)
        self._last_scan_series = len(result.series)
        if series_uid is not None or len(result.series) == 1:
            from radlabel.core.io.loader import choose_series

            try:
                entry = choose_series(result, series_uid)
            except RadlabelError as exc:
                self.show_error(str(exc))
                return
            self.load_entry(path, entry, segment=segment)
            return
        from radlabel.ui.series_browser import SeriesBrowser

        browser = SeriesBrowser(result, self)
        browser.accepted.connect(lambda: self._on_series_chosen(path, browser, segment))
        self.series_browser = browser
        browser.open()

    def _on_series_chosen(self, path: str, browser: SeriesBrowser, segment: str | Path | None) -> None:
        entry = browser.selected_entry()
        cached = browser.loaded.get(entry.info.uid)
        if cached is not None:
            self._on_loaded(path, cached, segment)
        else:
            self.load_entry(path, entry, segment=segment)

    def load_entry(self, path: str, entry: SeriesEntry, segment: str | Path | None = None) -> BackgroundJob:
        name = entry.info.description or Path(path).name
        job = self._start_job(f"Loading {name}", entry.load)
        job.done.connect(lambda loaded: self._on_loaded(path, loaded, segment))
        return job

    def _on_loaded(self, path: str, loaded: LoadedSeries, segment: str | Path | None) -> None:
        info = loaded.info
        title = info.description or Path(path).name
        self.warnings = [*loaded.warnings]
        segmentation = None
        if segment is not None:
            try:
                segmentation, label_warnings = load_labelmap(segment, loaded.volume)
                self.warnings.extend(label_warnings)
            except RadlabelError as exc:
                self.show_error(str(exc))
        if len(loaded.volumes) > 1:
            self.warnings.append(f"{len(loaded.volumes)} volumes in this series; showing the first")
        from radlabel.ui import case_store

        several = self._last_scan_series > 1
        folder = case_store.case_folder_for(path, info.uid if several else None)
        if case_store.has_case(folder):  # reopen: the session reloads the image and replays its journal
            job = self._start_job(
                f"Opening the case {folder.name}",
                lambda progress: case_store.open_or_create(
                    loaded.volume, path, info.uid, None, progress, several_series=several
                )[0],
            )
            job.done.connect(lambda session: self.attach_session(session, title, path))
            job.failed.connect(lambda _message: self.set_case(loaded.volume, segmentation, title=title, path=path))
        else:
            try:
                session, _ = case_store.open_or_create(
                    loaded.volume, path, info.uid, segmentation, several_series=several
                )
            except RadlabelError as exc:
                self.show_error(f"{exc} — the image is shown, but edits cannot be saved")
                self.set_case(loaded.volume, segmentation, title=title, path=path)
            else:
                self.attach_session(session, title, path)
        if self.warnings:
            self.notify("; ".join(self.warnings), 20000)

    def open_demo(self) -> BackgroundJob:
        """The synthetic CT phantom with its lesion as the segment "Liver lesion" (made off the GUI thread).

        The phantom is shown as soon as it is made; its case (a session in a temporary folder, with the phantom
        written there as NIfTI) is made right after, off the GUI thread too, and attached when ready: editing
        starts then (see `_on_demo_session`)."""
        job = self._start_job("Making the demo case", lambda _progress: demo_case())
        job.done.connect(self._on_demo)
        return job

    def _on_demo(self, result: Any) -> None:
        volume, segmentation = result
        self.set_case(volume, segmentation, title=DEMO_TITLE)

        def work(progress: Any) -> Any:
            from radlabel.ui import case_store

            try:
                session = case_store.demo_session(volume, segmentation)
            except RadlabelError as exc:
                return str(exc)
            if not progress(1.0, ""):  # the window closed meanwhile
                session.close()
                raise Cancelled()
            return session

        def start() -> None:
            self._case_pending = False
            if self.state.volume is not volume:  # another case was opened (or the window closed) meanwhile
                return
            job = self._start_job("Making the demo case folder", work, show_dialog=False)
            job.done.connect(lambda session: self._on_demo_session(session, volume))

        # writing the phantom and the case files (nibabel, SQLite, ...) would compete with the first frame
        self._case_pending = True
        self.after_first_frame(start)

    def _on_demo_session(self, result: Any, volume: Volume) -> None:
        if isinstance(result, str):  # no case folder could be made: the phantom stays on show without one
            self.show_error(f"{result} — the demo is shown, but edits cannot be saved")
            return
        if self.state.volume is not volume or self.controller.session is not None:  # another case since
            result.close()
            return
        self.attach_session(result, DEMO_TITLE)

    def attach_session(self, session: Any, title: str, path: str | None = None) -> None:
        """Show the case of ``session`` (its volume and segmentation) and edit it through the panels."""
        self.controller.attach(session)
        if self.state.volume is session.volume and self.state.segmentation is session.segmentation:
            self.case_path = path  # on show already (the demo): keep the views as the user left them
            self.state.title = title or self.state.title
            self._update_title()
            if path is not None:
                self.add_recent(path)
        else:
            self.set_case(session.volume, session.segmentation, title=title, path=path)
        self.state.sync_segment_visibility()
        if session.recovered_steps:
            self.notify(
                f"Recovered {session.recovered_steps} unsaved step(s) from the case journal (work done before the "
                "last crash or close without saving); File > Save keeps them",
                30000,
            )
            if self.ask_about_recovery:
                self.offer_recovery(session)
        for warning in session.warnings:
            self.notify(warning, 20000)
        # plugin packages are imported to describe them: not before the first frame, and at once if the AI
        # panel is on show
        QTimer.singleShot(PLUGIN_LIST_DELAY_MS, self._list_plugins)

    def offer_recovery(self, session: Any) -> QMessageBox:
        """Ask (without blocking: `QMessageBox.open`) whether to keep the steps the journal brought back."""
        steps = session.recovered_steps
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Recovered work",
            f"{steps} step{'s' if steps != 1 else ''} recovered from the journal: work done after the last save, "
            "before a crash or a close without saving.",
            QMessageBox.StandardButton.NoButton,
            self,
        )
        box.setInformativeText(
            "Keep them, or discard them: the case goes back to its last saved state (recorded in the audit trail; "
            "Redo can still bring them back)."
        )
        keep = box.addButton("Keep", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda button: self._on_recovery_choice(session, button is not discard))
        box.finished.connect(lambda _code: setattr(self, "recovery_box", None))
        self.recovery_box = box
        box.open()
        return box

    def _on_recovery_choice(self, session: Any, keep: bool) -> None:
        if session is not self.controller.session:  # another case was opened meanwhile
            return
        if keep:
            self.controller.keep_recovered()
        elif self.controller.discard_recovered():
            self.notify("Discarded the recovered steps: the case is as last saved (Redo brings them back)", 15000)
        self.audit_panel.refresh()

    def open_labelmap(self, path: str | Path) -> None:
        if self.state.volume is None:
            return
        try:
            segmentation, warnings = load_labelmap(path, self.state.volume)
        except RadlabelError as exc:
            self.show_error(str(exc))
            return
        if warnings:
            self.notify("; ".join(warnings), 20000)
        if self.controller.session is not None:
            first = self._import_segments(segmentation, str(path))
            self.state.jump_to_segment(first)
            return
        with self.state.batch():
            self.state.set_segmentation(segmentation)
            self.state.jump_to_segment()

    def _import_segments(self, segmentation: Segmentation, source: str) -> int | None:
        """Add a label map's segments to the open case (each an undoable step); the first new segment's id."""
        from radlabel.core.edit.request import EditMode, Region

        session = self.controller.session
        assert session is not None
        first: int | None = None
        for segment in segmentation.segments.values():
            added = self.controller.try_call(
                session.add_segment,
                segment.name,
                segment.color,
                category=segment.category,
                type=segment.type,
                type_modifier=segment.type_modifier,
                anatomic_region=segment.anatomic_region,
            )
            if added is None:
                continue
            first = added.id if first is None else first
            region = Region.whole(segmentation.mask(segment.id))
            self.controller.try_call(
                self.controller.edit, "import-labelmap", {"source": source}, region, EditMode.ADD, added.id
            )
        return first

    def set_case(
        self, volume: Volume, segmentation: Segmentation | None = None, title: str = "", path: str | None = None
    ) -> None:
        """Show ``volume`` (and its segmentation) in all views."""
        session = self.controller.session
        if session is not None and session.volume is not volume:
            self.controller.attach(None)  # shown without a case (e.g. a screenshot): nothing to edit
        self.case_path = path
        with self.state.batch():
            self.state.set_volume(volume, segmentation, title=title)
            self.state.jump_to_segment()
        self.after_first_frame(self._on_case_shown)
        if path is not None:
            self.add_recent(path)

    def _on_case_shown(self) -> None:
        # surfaces and statistics run on worker threads: started earlier they would slow the first frame down
        self.view_3d.mesh_now()
        self.segment_panel.measure_now()
        self.case_shown.emit()

    @property
    def busy(self) -> bool:
        """A case is being opened: a job runs, or the case of an image on show is still to be made."""
        return bool(self.jobs) or self._case_pending

    def after_first_frame(self, callback: Callable[[], Any], fallback_ms: int = FIRST_FRAME_FALLBACK_MS) -> None:
        """Call ``callback`` on the GUI thread once every view on show has rendered a frame (the case just set
        is on screen), or after ``fallback_ms`` (a hidden or minimised window renders nothing)."""
        windows = [self.views[view].canvas.render_window for view in self.state.visible_views()]
        waiting = set(range(len(windows)))
        observers: list[tuple[Any, int]] = []
        called = False

        def finish() -> None:
            nonlocal called
            if called:
                return
            called = True
            for window, tag in observers:
                window.RemoveObserver(tag)
            callback()

        def rendered(n: int) -> None:
            waiting.discard(n)
            if not waiting:
                QTimer.singleShot(0, finish)  # not from inside VTK's render

        for n, window in enumerate(windows):
            observers.append((window, window.AddObserver("EndEvent", lambda *_args, n=n: rendered(n))))
        if not windows:
            QTimer.singleShot(0, finish)
        QTimer.singleShot(fallback_ms, finish)

    def _start_job(self, title: str, work: Callable[[Any], Any], show_dialog: bool = True) -> BackgroundJob:
        job = BackgroundJob(self, title, work, show_dialog=show_dialog)
        job.failed.connect(self.show_error)
        job.cancelled.connect(lambda: self.notify(f"{title}: cancelled", 5000))
        job.done.connect(lambda _result: self._forget(job))
        job.failed.connect(lambda _message: self._forget(job))
        job.cancelled.connect(lambda: self._forget(job))
        self.jobs.append(job)
        job.start()
        return job

    def _forget(self, job: BackgroundJob) -> None:
        if job in self.jobs:
            self.jobs.remove(job)

    # -- recent files --------------------------------------------------------------------------------------

    def recent_files(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, path: str) -> None:
        absolute = os.path.abspath(path)
        recent = [absolute, *[p for p in self.recent_files() if p != absolute]][:MAX_RECENT]
        self.settings.setValue(RECENT_KEY, recent)
        self.settings.sync()
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            self.recent_menu.addAction(self._action(path, lambda path=path: self.open_path(path)))
        if not recent:
            empty = self.recent_menu.addAction("(none)")
            empty.setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction(self._action("Clear", self._clear_recent))

    def _clear_recent(self) -> None:
        self.settings.setValue(RECENT_KEY, [])
        self._refresh_recent_menu()

    # -- drag and drop -------------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

    # -- view commands -------------------------------------------------------------------------------------

    def set_layout(self, layout: Layout | str, single_view: View | str | None = None) -> None:
        self.state.set_layout(layout, single_view)

    def apply_preset(self, name: str) -> None:
        self.state.apply_preset(name)

    def _toggle_crosshair(self) -> None:
        self.state.set_segment_display(show_crosshair=self.crosshair_action.isChecked())

    def _toggle_volume_rendering(self) -> None:
        self.view_3d.set_volume_rendering(self.volume_rendering_action.isChecked())

    # -- case: tools, save, export --------------------------------------------------------------------------

    def _set_mouse_tool(self, tool: Any, source: str) -> None:
        """Give the slice views' left button to ``tool`` (None: navigation); one panel's tool at a time."""
        for view in self.slice_views.values():
            view.set_tool(tool)
        if tool is not None and source == "ai" and self.tools_panel.active != "navigate":
            self.tools_panel.buttons["navigate"].setChecked(True)
            self.tools_panel.active = "navigate"
            self.tools_panel.stack.setCurrentWidget(self.tools_panel.pages["navigate"])
        if source == "tools":
            for button in self.ai_panel.mode_buttons.values():
                button.setAutoExclusive(False)
                button.setChecked(False)
                button.setAutoExclusive(True)

    def _refresh_edit_actions(self) -> None:
        undo, redo = self.controller.undo_text()
        self.undo_action.setText(undo)
        self.redo_action.setText(redo)
        session = self.controller.session
        self.undo_action.setEnabled(bool(session and session.undo_stack.can_undo))
        self.redo_action.setEnabled(bool(session and session.undo_stack.can_redo))
        self.save_action.setEnabled(session is not None)
        self.export_action.setEnabled(session is not None)

    def show_panel(self, name: str) -> None:
        """Show and raise a panel: ``segments``, ``tools``, ``ai`` or ``audit``."""
        dock = self.docks[name]
        dock.show()
        dock.raise_()

    def _list_plugins(self) -> None:
        """List the AI plugins once, off the GUI thread (plugin packages are imported to describe them)."""
        if self._plugins_listed:
            return
        self._plugins_listed = True

        def work(progress: Any) -> Any:
            from radlabel.ai.registry import discover

            return discover()

        job = BackgroundJob(self, "Listing AI plugins", work, show_dialog=False)
        job.done.connect(self.ai_panel.set_plugins)
        job.failed.connect(lambda message: self.notify(f"AI plugins could not be listed: {message}", 20000))
        self._plugin_job = job
        job.start()

    def save_case(self) -> Path | None:
        session = self.controller.session
        if session is None:
            return None
        path = self.controller.try_call(session.save)
        if path is not None:
            self.notify(f"Saved the case in {session.case_dir}", 8000)
        return path

    def choose_export(self) -> None:
        if self.controller.session is None:
            return
        filters = "DICOM SEG (*.dcm);;RTSTRUCT (*.dcm);;NIfTI (*.nii.gz *.nii);;NRRD (*.seg.nrrd *.nrrd)"
        path, chosen = QFileDialog.getSaveFileName(self, "Export segmentation", self._last_folder(), filters)
        if path:
            rtstruct = chosen.startswith("RTSTRUCT")
            if chosen.startswith(("DICOM", "RTSTRUCT")) and not path.lower().endswith(".dcm"):
                path += ".dcm"
            self.export_to(path, rtstruct=rtstruct)

    def export_to(self, path: str | Path, rtstruct: bool = False) -> BackgroundJob | None:
        """Write the case's segmentation to ``path`` (format by name: .dcm = DICOM SEG, or RTSTRUCT with
        ``rtstruct``; .nii.gz / .nrrd / .seg.nrrd label maps) with the audit head, off the GUI thread."""
        session = self.controller.session
        if session is None:
            self.show_error("no case is open: nothing to export")
            return None
        volume, segmentation, case_dir, user = session.volume, session.segmentation, session.case_dir, session.user

        def work(progress: Any) -> Any:
            from radlabel.core.io.seg.api import export_segmentation

            return export_segmentation(
                volume, segmentation, path, rtstruct=rtstruct, user=user, case=case_dir, progress=progress
            )

        job = self._start_job(f"Exporting {Path(path).name}", work)
        job.done.connect(lambda result: self._on_exported(result))
        return job

    def _on_exported(self, result: Any) -> None:
        self.exports.append(result)
        self.notify(f"Exported {result.format} to {result.path}", 15000)
        self.audit_panel.refresh()

    # -- messages ------------------------------------------------------------------------------------------

    def notify(self, text: str, milliseconds: int = 10000) -> None:
        """A passing note in the status bar (skipped files, resampling warnings, cancellations), kept in
        :attr:`notices`."""
        self.notices.append(text)
        self.statusBar().showMessage(text, milliseconds)

    def show_error(self, text: str) -> None:
        """Tell the user (non-blocking message box) and keep the message in :attr:`messages`."""
        self.messages.append(("error", text))
        box = QMessageBox(QMessageBox.Icon.Warning, "radlabel", text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _code: setattr(self, "message_box", None))
        self.message_box = box
        box.open()

    def show_help(self) -> None:
        QMessageBox.information(
            self,
            "Mouse and keys",
            "Click: move the linked cursor (all views follow)\n"
            "Shift + drag: drag the cursor\n"
            "Left drag: window/level (horizontal = width, vertical = level)\n"
            "Right drag / Ctrl + wheel: zoom    Middle drag / Ctrl + left drag: pan\n"
            "Wheel, Up/Down, PageUp/PageDown: next/previous slice (one voxel spacing)\n"
            "Double click: this view alone, and back\n"
            "1-6: window presets    Ctrl+1/2/3: layouts    Ctrl+0: reset zoom    C: crosshair\n"
            "Tools: B paint, E erase, L lasso, F flood fill, T threshold, G grow from seeds, N / Esc navigate\n"
            "Ctrl+Z / Ctrl+Shift+Z: undo / redo (the Edit menu names the step)    Ctrl+S: save the case\n"
            "Ctrl+E: export (DICOM SEG, RTSTRUCT, NIfTI, NRRD)",
        )

    def show_about(self) -> None:
        QMessageBox.about(self, "About radlabel", f"radlabel {__version__}\nAnnotation workstation for radiologists.")

    # -- rendering and screenshots -------------------------------------------------------------------------

    def render_all(self) -> None:
        """Render every visible view now (tests and screenshots; the event loop renders on its own)."""
        QGuiApplication.processEvents()
        for view in self.state.visible_views():
            self.views[view].render_now()

    def grab_image(self) -> QImage:
        """The window as it looks, VTK views included."""
        self.render_all()
        QGuiApplication.processEvents()
        if uses_offscreen_canvas():
            return self.grab().toImage()  # offscreen canvases paint their frames like any widget
        screen = self.screen() or QGuiApplication.primaryScreen()
        return screen.grabWindow(self.winId()).toImage()

    def save_screenshot(self, path: str | Path) -> Path:
        image = self.grab_image()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(out)):
            raise RadlabelError("cannot write the screenshot", out, "check the folder exists and is writable")
        return out

    def choose_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "radlabel.png", "PNG images (*.png)")
        if path:
            self.save_screenshot(path)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        for job in list(self.jobs):
            job.cancel()
        self.ai_panel.close_panel()
        self.segment_panel.close_panel()
        self.controller.close()
        for view in self.views.values():
            view.close_view()
        super().closeEvent(event)
