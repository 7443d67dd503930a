"""Where a view's VTK renderer draws: a QVTK widget (normal case, X11/Xvfb/Wayland/Windows/macOS) or, when
Qt runs on its ``offscreen`` platform (no display at all), a plain QWidget that renders through an offscreen
VTK window (EGL) and paints the image, so `QWidget.grab` still yields a full screenshot.

Both forward Qt input events to a handler object (the view) and expose the same small interface:
``render_window``, ``render_now()``, ``request_render()``, ``request_render_later()`` and ``capture()`` (the
last rendered frame as an (rows, columns, 3) uint8 array, row 0 at the bottom, exactly as
`vtkWindowToImageFilter` gives it).

**Render budget.** With software OpenGL (Mesa llvmpipe, what Xvfb and many reading-room VMs have) one frame
of a ~450 x 360 view costs 4-7 ms (filling its pixels, presenting them), so a change must not re-render views
it does not change, and views that only follow along may wait. ``request_render()`` asks for a frame in the
next paint (the view that shows a change); ``request_render_later()`` puts the view in a queue that renders
one view per idle tick of the event loop, after every pending paint, so a slice change in one view is on
screen before the crosshair lines in the others move. Off: multisampling in software OpenGL (4x MSAA doubles
the cost of a frame there; on a GPU it stays on), VTK's timer log (a system call per render pass that nothing
reads) and the copy of the depth buffer to the window.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import vtkmodules.qt
from numpy.typing import NDArray
from shiboken6 import Shiboken

vtkmodules.qt.PyQtImpl = "PySide6"

import vtkmodules.vtkInteractionStyle  # noqa: E402  (registers the interactor styles)
import vtkmodules.vtkRenderingFreeType  # noqa: E402  (text rendering)
import vtkmodules.vtkRenderingOpenGL2  # noqa: E402  (the OpenGL render window)
from PySide6.QtCore import QEvent, QObject, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtWidgets import QSizePolicy, QWidget  # noqa: E402
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.util import numpy_support  # noqa: E402
from vtkmodules.vtkCommonSystem import vtkTimerLog  # noqa: E402
from vtkmodules.vtkRenderingCore import vtkRenderWindow, vtkWindowToImageFilter  # noqa: E402

vtkTimerLog.LoggingOff()


class CanvasHandler(Protocol):
    """What a canvas calls. Each method returns True when it consumed the event."""

    def before_render(self, width: int, height: int) -> None: ...
    def mouse_press(self, event: Any) -> bool: ...
    def mouse_move(self, event: Any) -> bool: ...
    def mouse_release(self, event: Any) -> bool: ...
    def mouse_double_click(self, event: Any) -> bool: ...
    def wheel(self, event: Any) -> bool: ...
    def key_press(self, event: Any) -> bool: ...
    def leave(self) -> None: ...


def uses_offscreen_canvas() -> bool:
    """True when Qt has no real display (platform ``offscreen``/``minimal``): VTK then renders through EGL."""
    return QGuiApplication.platformName() in ("offscreen", "minimal")


#: Multisampling where OpenGL runs on a GPU (in software it would double the cost of every frame).
HARDWARE_MULTISAMPLES = 4
_SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "swiftshader", "gdi generic")
_software: bool | None = None


def software_opengl(window: vtkRenderWindow) -> bool:
    """Does OpenGL run in software (Mesa llvmpipe, ...)? Asked once, of an initialised render window."""
    global _software
    if _software is None:
        report = (window.ReportCapabilities() or "").lower()
        _software = not report or any(name in report for name in _SOFTWARE_RENDERERS)
    return _software


#: Idle ticks the queue lets pass while a paint of a changed view is pending (a window that is not exposed
#: never paints; the queue then renders anyway rather than spin).
MAX_YIELDS = 20


def _shown(canvas: Any) -> bool:
    return bool(Shiboken.isValid(canvas) and canvas.isVisible())


class _LaterQueue(QObject):
    """Canvases waiting for a frame that may wait (see the module docstring), rendered one per idle tick."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Any] = []
        self._yields = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._tick)

    def add(self, canvas: Any) -> None:
        if canvas not in self.pending:
            self.pending.append(canvas)
        if not self._timer.isActive():
            self._timer.start(0)

    def discard(self, canvas: Any) -> None:
        if canvas in self.pending:
            self.pending.remove(canvas)

    def _tick(self) -> None:
        if self._yields < MAX_YIELDS and any(c.paint_pending and _shown(c) for c in _canvases):
            self._yields += 1
            self._timer.start(1)  # a view that shows a change goes first
            return
        self._yields = 0
        while self.pending:
            canvas = self.pending.pop(0)
            if _shown(canvas):  # a hidden view renders when it is shown again
                canvas.render_now()
                canvas.present()
                break
        if self.pending:
            self._timer.start(0)


_later: _LaterQueue | None = None
#: Canvases alive, so the queue can tell whether any paint that shows a change is pending.
_canvases: list[Any] = []


def later_queue() -> _LaterQueue:
    global _later
    if _later is None:
        _later = _LaterQueue()
    return _later


def renders_waiting() -> bool:
    """True while a view waits for its idle-tick frame."""
    return bool(_later is not None and _later.pending)


def read_frame(window: vtkRenderWindow) -> NDArray[np.uint8]:
    """The last frame ``window`` rendered (rows, columns, 3), row 0 at the bottom; renders nothing."""
    grabber = vtkWindowToImageFilter()
    grabber.SetInput(window)
    grabber.SetInputBufferTypeToRGB()
    grabber.ReadFrontBufferOff()
    grabber.ShouldRerenderOff()
    grabber.Update()
    image = grabber.GetOutput()
    width, height, _ = image.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    return np.array(pixels.reshape(height, width, 3), dtype=np.uint8)


class QtVtkCanvas(QVTKRenderWindowInteractor):  # type: ignore[misc]
    """The on-screen canvas. Events the handler does not consume go to VTK's interactor (3D trackball)."""

    def __init__(self, parent: QWidget | None, handler: CanvasHandler) -> None:
        super().__init__(parent)
        self.handler = handler
        self.setMinimumSize(64, 64)
        self.render_window: vtkRenderWindow = self.GetRenderWindow()
        self.render_window.SetMultiSamples(0)
        # Nothing draws into the window after VTK, so its depth buffer need not follow the colours there;
        # "to hardware" copies it with an extra full-window shader pass (~15 % of a software frame).
        self.render_window.SetFrameBlitModeToBlitToCurrent()
        self.interactor = self._Iren
        self.paint_pending = False
        self.Initialize()
        if not software_opengl(self.render_window):
            self.render_window.SetMultiSamples(HARDWARE_MULTISAMPLES)  # smooth lines cost a GPU next to nothing
        _canvases.append(self)
        self.destroyed.connect(lambda *_args, canvas=self: _forget(canvas))

    def pixel_size(self) -> tuple[int, int]:
        ratio = self.devicePixelRatioF()
        return max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio))

    def paintEvent(self, event: Any) -> None:  # noqa: N802
        self.paint_pending = False
        later_queue().discard(self)
        self.handler.before_render(*self.pixel_size())
        super().paintEvent(event)

    def render_now(self) -> None:
        if _later is not None:
            _later.discard(self)  # this frame is the one it waited for
        width, height = self.pixel_size()
        if tuple(self.render_window.GetSize()) != (width, height):
            self.render_window.SetSize(width, height)
        self.handler.before_render(width, height)
        self.render_window.Render()

    def present(self) -> None:
        """Show the frame `render_now` made (the render window draws on screen itself)."""

    def request_render(self) -> None:
        self.paint_pending = True
        self.update()

    def request_render_later(self) -> None:
        if not self.paint_pending:
            later_queue().add(self)

    def capture(self) -> NDArray[np.uint8]:
        self.render_now()
        return read_frame(self.render_window)

    def mousePressEvent(self, event: Any) -> None:  # noqa: N802
        if not self.handler.mouse_press(event):
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: Any) -> None:  # noqa: N802
        if not self.handler.mouse_move(event):
            super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802
        if not self.handler.mouse_release(event):
            super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: Any) -> None:  # noqa: N802
        if not self.handler.mouse_double_click(event):
            super().mouseDoubleClickEvent(event)

    def wheelEvent(self, event: Any) -> None:  # noqa: N802
        if not self.handler.wheel(event):
            super().wheelEvent(event)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802
        if not self.handler.key_press(event):
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: Any) -> None:  # noqa: N802
        # VTK's default key bindings (w: wireframe, e/q: exit, ...) are not for a reading workstation.
        event.ignore()

    def leaveEvent(self, event: Any) -> None:  # noqa: N802
        self.handler.leave()
        super().leaveEvent(event)


class OffscreenCanvas(QWidget):
    """Canvas for Qt's offscreen platform: renders with an offscreen VTK window and paints the pixels."""

    def __init__(self, parent: QWidget | None, handler: CanvasHandler) -> None:
        super().__init__(parent)
        self.handler = handler
        self.setSizePolicy(QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding))
        self.setMinimumSize(64, 64)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.render_window = vtkRenderWindow()
        self.render_window.SetOffScreenRendering(1)
        self.render_window.SetMultiSamples(0)
        self._frame: QImage | None = None
        self._dirty = True
        self.paint_pending = False
        _canvases.append(self)
        self.destroyed.connect(lambda *_args, canvas=self: _forget(canvas))

    def pixel_size(self) -> tuple[int, int]:
        return max(1, self.width()), max(1, self.height())

    def render_now(self) -> None:
        if _later is not None:
            _later.discard(self)  # this frame is the one it waited for
        width, height = self.pixel_size()
        self.render_window.SetSize(width, height)
        self.handler.before_render(width, height)
        self.render_window.Render()
        pixels = np.ascontiguousarray(read_frame(self.render_window)[::-1])
        self._frame = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
        self._dirty = False

    def present(self) -> None:
        self.update()  # paints the frame `render_now` made

    def request_render(self) -> None:
        self._dirty = True
        self.paint_pending = True
        self.update()

    def request_render_later(self) -> None:
        if not self.paint_pending:
            self._dirty = True
            later_queue().add(self)

    def capture(self) -> NDArray[np.uint8]:
        self.render_now()
        return read_frame(self.render_window)

    def paintEvent(self, event: Any) -> None:  # noqa: N802
        self.paint_pending = False
        if self._dirty or self._frame is None or self._frame.size() != self.size():
            self.render_now()
        painter = QPainter(self)
        if self._frame is not None:
            painter.drawImage(0, 0, self._frame)
        painter.end()

    def event(self, event: QEvent) -> bool:
        handled = {
            QEvent.Type.MouseButtonPress: self.handler.mouse_press,
            QEvent.Type.MouseMove: self.handler.mouse_move,
            QEvent.Type.MouseButtonRelease: self.handler.mouse_release,
            QEvent.Type.MouseButtonDblClick: self.handler.mouse_double_click,
            QEvent.Type.Wheel: self.handler.wheel,
            QEvent.Type.KeyPress: self.handler.key_press,
        }.get(event.type())
        if handled is not None:
            handled(event)
            return True
        if event.type() == QEvent.Type.Leave:
            self.handler.leave()
        return bool(super().event(event))


Canvas = QtVtkCanvas | OffscreenCanvas


def _forget(canvas: Any) -> None:
    if canvas in _canvases:
        _canvases.remove(canvas)
    if _later is not None:
        _later.discard(canvas)


def make_canvas(parent: QWidget | None, handler: CanvasHandler) -> Canvas:
    """The canvas that works on the current Qt platform."""
    if uses_offscreen_canvas():
        return OffscreenCanvas(parent, handler)
    return QtVtkCanvas(parent, handler)
