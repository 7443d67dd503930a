"""Where a view's VTK renderer draws: a QVTK widget (normal case, X11/Xvfb/Wayland/Windows/macOS) or, when
Qt runs on its ``offscreen`` platform (no display at all), a plain QWidget that renders through an offscreen
VTK window (EGL) and paints the image, so `QWidget.grab` still yields a full screenshot.

Both forward Qt input events to a handler object (the view) and expose the same small interface:
``render_window``, ``render_now()``, ``request_render()`` and ``capture()`` (the last rendered frame as an
(rows, columns, 3) uint8 array, row 0 at the bottom, exactly as `vtkWindowToImageFilter` gives it).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import vtkmodules.qt
from numpy.typing import NDArray

vtkmodules.qt.PyQtImpl = "PySide6"

import vtkmodules.vtkInteractionStyle  # noqa: E402  (registers the interactor styles)
import vtkmodules.vtkRenderingFreeType  # noqa: E402  (text rendering)
import vtkmodules.vtkRenderingOpenGL2  # noqa: E402  (the OpenGL render window)
from PySide6.QtCore import QEvent, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtWidgets import QSizePolicy, QWidget  # noqa: E402
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.util import numpy_support  # noqa: E402
from vtkmodules.vtkRenderingCore import vtkRenderWindow, vtkWindowToImageFilter  # noqa: E402


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


def _capture(window: vtkRenderWindow) -> NDArray[np.uint8]:
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
        self.interactor = self._Iren
        self.Initialize()

    def pixel_size(self) -> tuple[int, int]:
        ratio = self.devicePixelRatioF()
        return max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio))

    def paintEvent(self, event: Any) -> None:  # noqa: N802
        self.handler.before_render(*self.pixel_size())
        super().paintEvent(event)

    def render_now(self) -> None:
        width, height = self.pixel_size()
        if tuple(self.render_window.GetSize()) != (width, height):
            self.render_window.SetSize(width, height)
        self.handler.before_render(width, height)
        self.render_window.Render()

    def request_render(self) -> None:
        self.update()

    def capture(self) -> NDArray[np.uint8]:
        self.render_now()
        return _capture(self.render_window)

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
        self._frame: QImage | None = None
        self._dirty = True

    def pixel_size(self) -> tuple[int, int]:
        return max(1, self.width()), max(1, self.height())

    def render_now(self) -> None:
        width, height = self.pixel_size()
        self.render_window.SetSize(width, height)
        self.handler.before_render(width, height)
        self.render_window.Render()
        pixels = np.ascontiguousarray(_capture(self.render_window)[::-1])
        self._frame = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
        self._dirty = False

    def request_render(self) -> None:
        self._dirty = True
        self.update()

    def capture(self) -> NDArray[np.uint8]:
        self.render_now()
        return _capture(self.render_window)

    def paintEvent(self, event: Any) -> None:  # noqa: N802
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


def make_canvas(parent: QWidget | None, handler: CanvasHandler) -> Canvas:
    """The canvas that works on the current Qt platform."""
    if uses_offscreen_canvas():
        return OffscreenCanvas(parent, handler)
    return QtVtkCanvas(parent, handler)
