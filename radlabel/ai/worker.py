"""Inference in a separate process, so a plugin that crashes, runs out of memory or hangs cannot take the
reader's session with it.

``WorkerClient`` (in the radlabel process) starts one worker process per plugin with the ``spawn`` start
method (never ``fork``: the parent may hold Qt or CUDA state), keeps it and its loaded model between
requests, and talks to it over a ``multiprocessing`` Pipe:

- the volume (and any mask prompts) go through ``multiprocessing.shared_memory``, never through pickle: the
  client writes one segment per request, the worker maps it read-only, and the client unlinks it when the
  request ends, however it ends (result, error, cancel, timeout, crash). The proposal's arrays come back the
  same way in a segment whose name the client chose, so the client can remove it even when the worker died
  after creating it. No segment outlives its request.
- progress messages come back as they happen; a cancel sets a flag the plugin sees in ``context.progress`` /
  ``context.cancelled``. A plugin that has not stopped ``cancel_grace_s`` after a cancel is killed.
- a worker that dies (``os._exit``, a segfault, the kernel's OOM killer) is noticed through its process
  sentinel and reported as ``PluginCrashedError`` with its exit code; a plugin that does not answer within
  ``predict_timeout_s`` (or reports no progress for ``stall_timeout_s``) is killed and reported as
  ``PluginTimeoutError``. After any of these the client is usable again: the next request starts a new worker.
- the worker refuses network access (an audit hook on Python's socket calls; see ``_NetworkGuard``).

``predict`` blocks (CLI, tests, background threads); ``submit`` returns an ``InferenceJob`` at once (GUI):
its progress callback runs on the client's worker thread, so a GUI must only post from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import gc
import itertools
import multiprocessing
import os
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from multiprocessing.connection import Connection, wait
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.ai import registry, sdk
from radlabel.ai.sdk import (
    Capabilities,
    InferenceRequest,
    MaskPrompt,
    ModelIdentity,
    Plugin,
    Proposal,
    WeightsStatus,
)
from radlabel.core import errors
from radlabel.core.errors import (
    Cancelled,
    PluginCrashedError,
    PluginError,
    PluginNetworkError,
    PluginTimeoutError,
    PluginWeightsError,
    RadlabelError,
)
from radlabel.core.settings import Settings, load_settings

ProgressCallback = Callable[[float, str], "bool | None"]

_ALIGN = 64
_POLL_S = 0.05
_STOP_WAIT_S = 2.0
_STATS_TIMEOUT_S = 10.0
_PROGRESS_INTERVAL_S = 0.05
# Set in the worker so that libraries that would otherwise try to reach a model hub stay offline.
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def shm_prefix(pid: int | None = None) -> str:
    """Prefix of the shared-memory segments a radlabel process creates (they appear in /dev/shm on Linux)."""
    return f"rl{(pid if pid is not None else os.getpid()):x}_"


def _segment_name(kind: str) -> str:
    # Short: macOS allows 31 characters for a POSIX shared-memory name.
    return f"{shm_prefix()}{secrets.token_hex(4)}{kind}"


# --- shared memory -------------------------------------------------------------------------------------------

Layout = dict[str, tuple[int, tuple[int, ...], str]]  # key -> (byte offset, shape, dtype.str)


def _create_segment(name: str, arrays: Mapping[str, NDArray[Any]]) -> tuple[SharedMemory | None, Layout]:
    """Write ``arrays`` into a new segment ``name`` and unmap it (the segment stays until unlinked)."""
    layout: Layout = {}
    size = 0
    for key, array in arrays.items():
        if array.dtype.hasobject:
            raise TypeError(f"array {key!r} has dtype object, which cannot be shared")
        size = -(-size // _ALIGN) * _ALIGN
        layout[key] = (size, tuple(int(n) for n in array.shape), array.dtype.str)
        size += array.nbytes
    if not layout:
        return None, {}
    _check_shared_memory_space(size)
    segment = SharedMemory(name=name, create=True, size=max(size, 1))
    try:
        for key, array in arrays.items():
            offset, shape, dtype = layout[key]
            view: NDArray[Any] = np.ndarray(shape, dtype=dtype, buffer=segment.buf, offset=offset)
            view[...] = array
            del view
        segment.close()
    except BaseException:
        segment.close()
        segment.unlink()
        raise
    return segment, layout


def _check_shared_memory_space(size: int) -> None:
    """Refuse a segment that /dev/shm cannot hold: writing past its end would kill the process with SIGBUS
    (Docker's default /dev/shm is 64 MB)."""
    if not sys.platform.startswith("linux") or not os.path.isdir("/dev/shm"):
        return
    stats = os.statvfs("/dev/shm")
    free = stats.f_bavail * stats.f_frsize
    if size > free:
        raise PluginError(
            f"this request needs {size / 2**20:.0f} MB of shared memory but /dev/shm has {free / 2**20:.0f} MB free",
            fix="enlarge /dev/shm (in Docker: --shm-size=4g) or close programs that use it",
        )


def _map_segment(name: str, layout: Layout, writeable: bool = False) -> tuple[SharedMemory, dict[str, NDArray[Any]]]:
    segment = SharedMemory(name=name)
    views: dict[str, NDArray[Any]] = {}
    for key, (offset, shape, dtype) in layout.items():
        view: NDArray[Any] = np.ndarray(shape, dtype=dtype, buffer=segment.buf, offset=offset)
        view.flags.writeable = writeable
        views[key] = view
    return segment, views


def _unlink_quietly(name: str) -> None:
    """Remove segment ``name`` if it exists (a worker may have died after creating it)."""
    try:
        segment = SharedMemory(name=name)
    except (FileNotFoundError, OSError, ValueError):
        return
    segment.close()
    with contextlib.suppress(FileNotFoundError):
        segment.unlink()


_retained: list[SharedMemory] = []  # worker side: mappings a plugin kept views of (closed when it lets go)


def _close_mapping(segment: SharedMemory) -> None:
    try:
        segment.close()
    except BufferError:  # the plugin still holds a view (e.g. in its cache); try again after collecting
        gc.collect()
        try:
            segment.close()
        except BufferError:
            _retained.append(segment)
    still: list[SharedMemory] = []
    for old in _retained:
        try:
            old.close()
        except BufferError:
            still.append(old)
    _retained[:] = still


# --- errors across the process boundary ---------------------------------------------------------------------


def _error_payload(exc: BaseException) -> dict[str, Any]:
    attrs = {k: v for k, v in vars(exc).items() if isinstance(v, str | int | float | bool | type(None))}
    return {
        "module": type(exc).__module__,
        "qualname": type(exc).__qualname__,
        "args": [a if isinstance(a, str | int | float | bool | type(None)) else str(a) for a in exc.args],
        "attrs": attrs,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _rebuild_error(payload: Mapping[str, Any], plugin: str) -> RadlabelError:
    """The worker's exception as a radlabel error: radlabel's own error types keep their type and message;
    anything else (a plugin's ValueError, ...) becomes a PluginError that names it."""
    cls = getattr(errors, str(payload["qualname"]), None) if payload["module"] == errors.__name__ else None
    if isinstance(cls, type) and issubclass(cls, RadlabelError):
        rebuilt: RadlabelError = cls.__new__(cls)
        rebuilt.args = tuple(payload["args"])
        rebuilt.__dict__.update(payload["attrs"])
        if isinstance(rebuilt, PluginError):
            rebuilt.plugin = rebuilt.plugin or plugin
            rebuilt.details = rebuilt.details or str(payload["traceback"])
        return rebuilt
    return PluginError(
        f"failed: {payload['qualname']}: {payload['message']}",
        plugin,
        "the session is unaffected; try another prompt, and report this to the plugin's authors if it repeats",
        details=str(payload["traceback"]),
    )


def _describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "stopped answering"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        hint = ""
        crashes = {getattr(signal, n, None) for n in ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL")}
        if -exit_code == getattr(signal, "SIGKILL", None):
            hint = " (the system may have run out of memory)"
        elif -exit_code in crashes:
            hint = " (a crash in native code)"
        return f"was killed by {name}{hint}"
    return f"exited with code {exit_code}"


# --- the worker process ----------------------------------------------------------------------------------------


class _NetworkGuard:
    """Refuses network use inside the worker and remembers every attempt.

    An audit hook (PEP 578) sees Python's socket calls, however a library reached them: it refuses internet
    connections, datagrams and host-name look-ups (local Unix sockets stay allowed). The attempt is recorded
    even when the plugin swallows the exception, and the request then fails with PluginNetworkError. Code that
    opens sockets in C without going through Python's socket module is not seen.
    """

    _INET = (socket.AF_INET, socket.AF_INET6)

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.attempts: list[str] = []

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not event.startswith("socket."):
            return
        what = ""
        if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            sock = args[0]
            if getattr(sock, "family", None) in self._INET:
                what = f"open a connection to {args[1]!r}" if event == "socket.connect" else f"send to {args[1]!r}"
        elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
            what = f"look up the host {args[0]!r}"
        if what:
            self.attempts.append(what)
            raise PluginNetworkError(
                f"tried to {what}; plugins must not use the network",
                self.plugin,
                "ship what the plugin needs (weights, configuration) with it or point to it in settings.toml",
            )


class WorkerCache(dict[str, Any]):
    """``context.cache``: a dict that keeps the ``max_entries`` most recently used entries."""

    def __init__(self, max_entries: int) -> None:
        super().__init__()
        self.max_entries = max(1, max_entries)

    def __getitem__(self, key: str) -> Any:
        value = super().pop(key)
        super().__setitem__(key, value)  # most recently used goes last
        return value

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        return default

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self:
            super().pop(key)
        super().__setitem__(key, value)
        while len(self) > self.max_entries:
            super().pop(next(iter(self)))

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


class _WorkerContext:
    """The ``PluginContext`` the worker gives to ``load`` and ``predict``."""

    def __init__(self, device: str, conn: Connection, cancel_event: Any, cache: WorkerCache) -> None:
        self.device = device
        self.request_id: int | None = None
        self._conn = conn
        self._cancel_event = cancel_event
        self._cache = cache
        self._lock = threading.Lock()
        self._last_sent = 0.0
        self._last_message = ""

    def progress(self, fraction: float, message: str = "") -> None:
        if self._cancel_event.is_set():
            raise Cancelled("proposal")
        now = time.monotonic()
        fraction = float(min(max(fraction, 0.0), 1.0))
        recent = now - self._last_sent < _PROGRESS_INTERVAL_S
        if fraction not in (0.0, 1.0) and message == self._last_message and recent:
            return
        with self._lock:
            self._conn.send(("progress", self.request_id, fraction, str(message)))
        self._last_sent = now
        self._last_message = message

    @property
    def cancelled(self) -> bool:
        return bool(self._cancel_event.is_set())

    @property
    def cache(self) -> dict[str, Any]:
        return self._cache

    def send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self._conn.send(message)


def _worker_device(capabilities: Capabilities, settings: Settings) -> tuple[str, list[str]]:
    """The device in the worker: torch is asked (imported) only for plugins that may use an accelerator."""
    notes: list[str] = []
    if capabilities.devices and capabilities.devices <= {"cpu"}:
        return "cpu", notes
    if not settings.ai.allow_gpu:
        # Site policy: hide the GPUs from CUDA too, so a plugin that ignores the device it is given cannot
        # reach one (torch reads the variable when it first initialises CUDA, after this point).
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        notes.append("the site configuration allows the CPU only (ai.allow_gpu = false)")
        return "cpu", notes
    available = sdk.select_device(None)
    device = registry.choose_device(capabilities, settings.ai.device, available, allow_gpu=settings.ai.allow_gpu)
    wanted = device.split(":")[0]
    if wanted in ("cuda", "mps") and wanted != available:
        notes.append(f"{device} was asked for but is not available here; using cpu")
        device = "cpu"
    return device, notes


def _plain(value: Any, where: str) -> Any:
    """JSON-like values only (numpy scalars become Python numbers), so the client never unpickles plugin
    classes (which could import torch into the radlabel process)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    raise TypeError(f"{where} holds a {type(value).__name__}; use JSON values or top-level numpy arrays")


def _proposal_payload(
    proposal: Any, request: InferenceRequest, plugin: str
) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """Check a plugin's answer and split it into plain metadata and arrays."""
    if not isinstance(proposal, Proposal):
        raise PluginError(f"predict returned {type(proposal).__name__}, not a Proposal", plugin)
    if not isinstance(proposal.model, ModelIdentity):
        raise PluginError("its Proposal.model is not a ModelIdentity", plugin)
    arrays: dict[str, NDArray[Any]] = {}
    if proposal.probabilities is not None:
        probabilities = np.asarray(proposal.probabilities, dtype=np.float32)
        if probabilities.size and not (
            np.isfinite(probabilities).all() and probabilities.min() >= 0.0 and probabilities.max() <= 1.0
        ):
            raise PluginError("returned probabilities outside [0, 1] (or NaN)", plugin)
        arrays["probabilities"] = probabilities
    if proposal.labels is not None:
        labels = np.asarray(proposal.labels)
        if labels.dtype != np.uint8:
            if labels.size and (labels.min() < 0 or labels.max() > 255):
                raise PluginError("returned labels outside 0..255", plugin)
            labels = labels.astype(np.uint8)
        arrays["labels"] = labels
    if not arrays:
        raise PluginError("returned a Proposal with neither probabilities nor labels", plugin)
    shapes = {a.shape for a in arrays.values()}
    shape = next(iter(shapes))
    if len(shapes) > 1 or len(shape) != 3:
        raise PluginError(f"returned proposal arrays of shapes {sorted(shapes)}; they must be one 3D box", plugin)
    offset = tuple(int(v) for v in proposal.offset)
    grid = request.image.shape
    if len(offset) != 3 or any(o < 0 or o + n > g for o, n, g in zip(offset, shape, grid, strict=True)):
        raise PluginError(f"returned a box at {offset} of shape {shape} outside the image grid {grid}", plugin)
    extra: dict[str, Any] = {}
    for key, value in proposal.extra.items():
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            arrays[f"extra.{key}"] = value
        else:
            try:
                extra[str(key)] = _plain(value, f"Proposal.extra[{key!r}]")
            except TypeError as exc:
                raise PluginError(str(exc), plugin) from None
    meta = {
        "offset": offset,
        "model": proposal.model.to_json(),
        "label_names": {int(k): str(v) for k, v in proposal.label_names.items()},
        "device": str(proposal.device),
        "timing": {str(k): float(v) for k, v in proposal.timing.items()},
        "prompt": _plain(proposal.prompt or request.prompt_json(), "Proposal.prompt"),
        "extra": extra,
    }
    return meta, arrays


def _watch_parent(parent_pid: int) -> None:
    """Leave when the radlabel process is gone, even in the middle of a long prediction."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


def _child_main(conn: Connection, plugin_name: str, settings: Settings, cancel_event: Any, parent_pid: int) -> None:
    """Entry point of the worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's to handle (it cancels or stops us)
    faulthandler.enable()  # a segfault prints the Python stack to stderr before the client reports it
    os.environ.update(_OFFLINE_ENV)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()
    guard = _NetworkGuard(plugin_name)
    if not settings.ai.allow_network:
        guard.install()
    sdk._settings_object = settings
    try:
        started = time.perf_counter()
        source, plugin = registry.resolve(plugin_name, settings)
        status = plugin.weights_status()
        if not status.present:
            raise PluginWeightsError(
                f"weights not available: {status.message or 'missing'}",
                plugin_name,
                f"install them or set their path under [plugins.{plugin_name}] in settings.toml",
            )
        device, notes = _worker_device(plugin.capabilities, settings)
        context = _WorkerContext(device, conn, cancel_event, WorkerCache(settings.ai.cache_entries))
        plugin.load(context)
        if guard.attempts:
            raise PluginNetworkError(f"tried to use the network while loading ({guard.attempts[0]})", plugin_name)
        info = {
            "plugin": plugin_name,
            "version": str(plugin.version),
            "device": device,
            "weights": dataclasses.asdict(status),
            "pid": os.getpid(),
            "load_s": time.perf_counter() - started,
            "notes": notes,
            "network_guard": not settings.ai.allow_network,
            "package": source.package,
        }
        conn.send(("ready", info))
    except Exception as exc:
        conn.send(("error", None, _error_payload(exc)))
        return
    _serve(conn, plugin_name, plugin, context, guard)


def _serve(conn: Connection, plugin_name: str, plugin: Plugin, context: _WorkerContext, guard: _NetworkGuard) -> None:
    requests = 0
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the client is gone
        kind = message[0]
        if kind == "stop":
            return
        if kind == "stats":
            stats = {"network_attempts": list(guard.attempts), "cache_entries": len(context.cache)}
            context.send(("stats", {**stats, "requests": requests}))
        elif kind == "predict":
            requests += 1
            _serve_predict(message, plugin_name, plugin, context, guard)


def _serve_predict(
    message: tuple[Any, ...], plugin_name: str, plugin: Plugin, context: _WorkerContext, guard: _NetworkGuard
) -> None:
    _, request_id, meta, in_name, in_layout, out_name = message
    mapped: list[SharedMemory] = []
    context.request_id = request_id
    try:
        reply = _predict_once(
            request_id, meta, in_name, in_layout, out_name, plugin_name, plugin, context, guard, mapped
        )
    finally:
        context.request_id = None
    # _predict_once has returned, so its frames (and the request's views of the input) are gone: unmap.
    for segment in mapped:
        _close_mapping(segment)
    context.send(reply)


def _predict_once(
    request_id: int,
    meta: InferenceRequest,
    in_name: str,
    in_layout: Layout,
    out_name: str,
    plugin_name: str,
    plugin: Plugin,
    context: _WorkerContext,
    guard: _NetworkGuard,
    mapped: list[SharedMemory],
) -> tuple[Any, ...]:
    attempts_before = len(guard.attempts)
    timing: dict[str, float] = {}
    try:
        clock = time.perf_counter()
        views: dict[str, NDArray[Any]] = {}
        if in_layout:
            segment, views = _map_segment(in_name, in_layout)
            mapped.append(segment)
        request = _rebuild_request(meta, views)
        del views
        timing["attach"] = time.perf_counter() - clock
        clock = time.perf_counter()
        proposal = plugin.predict(request, context)
        timing["predict"] = time.perf_counter() - clock
        if len(guard.attempts) > attempts_before:
            raise PluginNetworkError(
                f"tried to {guard.attempts[attempts_before]}; plugins must not use the network", plugin_name
            )
        clock = time.perf_counter()
        meta_out, arrays = _proposal_payload(proposal, request, plugin_name)
        del proposal, request
        out, layout = _create_segment(out_name, arrays)
        del arrays
        timing["pack"] = time.perf_counter() - clock
        return ("result", request_id, meta_out, layout if out is not None else None, timing)
    except Cancelled:
        return ("cancelled", request_id)
    except Exception as exc:
        failure: BaseException = exc
        if len(guard.attempts) > attempts_before and not isinstance(exc, PluginNetworkError):
            failure = PluginNetworkError(
                f"tried to {guard.attempts[attempts_before]} (plugins must not use the network) and then failed: {exc}",
                plugin_name,
            )
        return ("error", request_id, _error_payload(failure))


def _rebuild_request(meta: InferenceRequest, views: Mapping[str, NDArray[Any]]) -> InferenceRequest:
    prompts = [
        dataclasses.replace(p, mask=views[f"mask{i}"]) if isinstance(p, MaskPrompt) else p
        for i, p in enumerate(meta.prompts)
    ]
    return dataclasses.replace(meta, image=views["image"], prompts=prompts)


# --- the client ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """What a started worker reports about its plugin."""

    plugin: str
    version: str
    device: str
    weights: WeightsStatus
    pid: int
    load_s: float
    notes: tuple[str, ...] = ()
    network_guard: bool = True
    package: str = ""


@dataclasses.dataclass
class _Worker:
    process: Any  # multiprocessing.context.SpawnProcess
    conn: Connection
    cancel_event: Any
    info: WorkerInfo | None = None

    def alive(self) -> bool:
        return bool(self.process.is_alive())


_START_LOCK = threading.Lock()


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start the child without re-importing the parent's ``__main__`` (a GUI script would import Qt there):
    the worker's entry point lives in this module, so the child never needs it."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__dict__["__spec__"] = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _stop_process(worker: _Worker, graceful: bool) -> None:
    process = worker.process
    if graceful and process.is_alive():
        with contextlib.suppress(OSError, ValueError):
            worker.conn.send(("stop",))
        process.join(_STOP_WAIT_S)
    if process.is_alive():
        process.terminate()
        process.join(1.0)
    if process.is_alive():
        process.kill()
        process.join(5.0)
    with contextlib.suppress(OSError):
        worker.conn.close()


def _stop_slot(slot: list[_Worker | None]) -> None:
    worker = slot[0]
    slot[0] = None
    if worker is not None:
        _stop_process(worker, graceful=False)


class InferenceJob:
    """A request running in the background (``WorkerClient.submit``); Future-like."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.cancel_event = threading.Event()
        self._future: Future[Proposal] = Future()

    def cancel(self) -> None:
        """Ask the plugin to stop; ``result()`` then raises Cancelled (within the grace period)."""
        self.cancel_event.set()
        self._future.cancel()  # succeeds only while the job is still queued

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> Proposal:
        """The proposal; raises what ``predict`` raises, Cancelled, or TimeoutError after ``timeout``."""
        try:
            return self._future.result(timeout)
        except CancelledError:
            raise Cancelled(f"{self.plugin} proposal") from None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return self._future.exception(timeout)
        except CancelledError:
            return Cancelled(f"{self.plugin} proposal")

    def add_done_callback(self, callback: Callable[[InferenceJob], None]) -> None:
        """``callback(job)`` when the job ends (on the client's thread, or at once when already done)."""
        self._future.add_done_callback(lambda _future: callback(self))


class WorkerClient:
    """Runs one plugin in a worker process; see the module docstring. Use as a context manager or ``close()``.

    Timeouts default to the settings (``ai.load_timeout_s``, ``ai.predict_timeout_s``, ``ai.stall_timeout_s``,
    ``ai.cancel_grace_s``). Thread-safe: requests run one at a time in submission order.
    """

    def __init__(
        self,
        plugin: str | None = None,
        settings: Settings | None = None,
        *,
        load_timeout_s: float | None = None,
        predict_timeout_s: float | None = None,
        stall_timeout_s: float | None = None,
        cancel_grace_s: float | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        ai = self.settings.ai
        self.load_timeout_s = load_timeout_s if load_timeout_s is not None else ai.load_timeout_s
        self.predict_timeout_s = predict_timeout_s if predict_timeout_s is not None else ai.predict_timeout_s
        self.stall_timeout_s = stall_timeout_s if stall_timeout_s is not None else ai.stall_timeout_s
        self.cancel_grace_s = cancel_grace_s if cancel_grace_s is not None else ai.cancel_grace_s
        self._plugin = plugin
        self._slot: list[_Worker | None] = [None]
        self._lock = threading.RLock()
        self._serial = itertools.count(1)
        self._current_cancel: threading.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self.restarts = 0  # workers started after the first (crash, timeout, forced cancel)
        self._started_once = False
        self._finalizer = weakref.finalize(self, _stop_slot, self._slot)

    # -- state --

    @property
    def plugin(self) -> str | None:
        return self._plugin

    @property
    def info(self) -> WorkerInfo | None:
        worker = self._slot[0]
        return worker.info if worker is not None else None

    @property
    def running(self) -> bool:
        worker = self._slot[0]
        return worker is not None and worker.alive()

    # -- lifecycle --

    def start(self, plugin: str | None = None, progress: ProgressCallback | None = None) -> WorkerInfo:
        """Start the worker for ``plugin`` (or the client's plugin) and load the model; blocks until loaded.

        Raises PluginError (unknown, not allowed, failed to load), PluginWeightsError, PluginCrashedError,
        PluginTimeoutError (``load_timeout_s``), or Cancelled when ``progress`` returns False.
        """
        with self._lock:
            self._check_open()
            if plugin is not None and plugin != self._plugin:
                self._stop_worker(graceful=True)
                self._plugin = plugin
            worker = self._slot[0]
            if worker is not None and worker.alive() and worker.info is not None:
                return worker.info
            return self._spawn(progress, threading.Event())

    def stop(self) -> None:
        """Stop the worker (the model is unloaded); the next request starts it again."""
        with self._lock:
            self._stop_worker(graceful=True)

    def close(self) -> None:
        """Cancel what runs, stop the worker and the client's thread. The client cannot be used afterwards."""
        self._closed = True
        current = self._current_cancel
        if current is not None:
            current.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._stop_worker(graceful=True)

    def __enter__(self) -> WorkerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """The worker's counters: ``network_attempts`` (list), ``cache_entries``, ``requests``."""
        with self._lock:
            worker = self._require_worker()
            worker.conn.send(("stats",))
            message = self._wait(worker, None, None, threading.Event(), _STATS_TIMEOUT_S, _STATS_TIMEOUT_S, "stats")
            return dict(message[1])

    # -- requests --

    def predict(
        self, request: InferenceRequest, progress: ProgressCallback | None = None, *, timeout_s: float | None = None
    ) -> Proposal:
        """Run one request and return the proposal (blocking). ``cancel()`` from another thread, or
        ``progress`` returning False, stops it with Cancelled. Starts (or restarts) the worker as needed."""
        return self._predict(request, progress, threading.Event(), timeout_s)

    def submit(
        self, request: InferenceRequest, progress: ProgressCallback | None = None, *, timeout_s: float | None = None
    ) -> InferenceJob:
        """Queue a request and return at once; ``job.result()`` waits for it, ``job.cancel()`` stops it."""
        self._check_open()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="radlabel-ai")
        job = InferenceJob(self._plugin or "?")
        future = self._executor.submit(self._predict, request, progress, job.cancel_event, timeout_s)
        job._future = future
        return job

    def cancel(self) -> None:
        """Cancel the request that is running now (if any)."""
        current = self._current_cancel
        if current is not None:
            current.set()

    # -- internals --

    def _check_open(self) -> None:
        if self._closed:
            raise PluginError("this worker client was closed", self._plugin or "")

    def _require_worker(self) -> _Worker:
        worker = self._slot[0]
        if worker is None or not worker.alive():
            self._spawn(None, threading.Event())
            worker = self._slot[0]
        assert worker is not None
        return worker

    def _stop_worker(self, graceful: bool) -> None:
        worker = self._slot[0]
        self._slot[0] = None
        if worker is not None:
            _stop_process(worker, graceful)

    def _spawn(self, progress: ProgressCallback | None, cancel: threading.Event) -> WorkerInfo:
        name = self._plugin
        if not name:
            raise PluginError("no plugin chosen", fix="pass a plugin name to WorkerClient or start()")
        self._stop_worker(graceful=False)
        registry.check_available(name, self.settings)  # unknown or not allowed: fail before spawning
        context = multiprocessing.get_context("spawn")
        parent_conn, child_conn = context.Pipe(duplex=True)
        cancel_event = context.Event()
        process = context.Process(
            target=_child_main,
            args=(child_conn, name, self.settings, cancel_event, os.getpid()),
            name=f"radlabel-plugin-{name}",
            daemon=True,
        )
        with _START_LOCK, _main_module_hidden():
            process.start()
        child_conn.close()
        worker = _Worker(process, parent_conn, cancel_event)
        self._slot[0] = worker
        if self._started_once:
            self.restarts += 1
        self._started_once = True
        try:
            message = self._wait(worker, None, progress, cancel, self.load_timeout_s, self.load_timeout_s, "loading")
        except BaseException:
            self._stop_worker(graceful=False)
            raise
        if message[0] == "error":
            self._stop_worker(graceful=False)
            raise _rebuild_error(message[2], name)
        info = message[1]
        worker.info = WorkerInfo(
            plugin=info["plugin"],
            version=info["version"],
            device=info["device"],
            weights=WeightsStatus(**info["weights"]),
            pid=info["pid"],
            load_s=info["load_s"],
            notes=tuple(info["notes"]),
            network_guard=info["network_guard"],
            package=info["package"],
        )
        return worker.info

    def _wait(
        self,
        worker: _Worker,
        request_id: int | None,
        progress: ProgressCallback | None,
        cancel: threading.Event,
        timeout_s: float,
        stall_s: float,
        stage: str,
    ) -> tuple[Any, ...]:
        """The worker's next answer to ``request_id``, forwarding progress; enforces timeouts and the cancel
        grace period, and turns a dead worker into PluginCrashedError."""
        name = self._plugin or "?"
        start = last_activity = time.monotonic()
        cancelled_at: float | None = None
        callback_error: BaseException | None = None
        closed = False
        while True:
            now = time.monotonic()
            if cancel.is_set() and cancelled_at is None:
                worker.cancel_event.set()
                cancelled_at = now
            if cancelled_at is not None and now - cancelled_at > self.cancel_grace_s:
                self._stop_worker(graceful=False)
                if callback_error is not None:
                    raise callback_error
                raise Cancelled(f"{name} {stage} (the plugin did not stop in time; its worker was stopped)")
            remaining = min(start + timeout_s - now, last_activity + stall_s - now)
            if remaining <= 0 and cancelled_at is None:
                self._stop_worker(graceful=False)
                silent = now - last_activity >= stall_s and now - start < timeout_s
                limit = f"did not finish within {timeout_s:g} s"
                if silent:
                    limit = f"reported no progress for {stall_s:g} s"
                raise PluginTimeoutError(
                    f"{limit} while {stage}; its worker was stopped",
                    name,
                    "the next request starts it again; for big inputs raise ai.predict_timeout_s / "
                    "ai.stall_timeout_s in settings.toml",
                )
            pause = min(remaining, _POLL_S) if remaining > 0 else _POLL_S
            ready = wait([worker.conn, worker.process.sentinel], timeout=pause)
            if not closed and (worker.conn in ready or (ready and worker.conn.poll())):
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):  # its end of the pipe is closed: it is gone or going
                    closed = True
                    message = None
                if message is not None:
                    if message[0] == "progress":
                        if message[1] == request_id:
                            last_activity = time.monotonic()
                            if progress is not None and cancelled_at is None:
                                try:
                                    if progress(float(message[2]), str(message[3])) is False:
                                        cancel.set()
                                except Exception as exc:  # a broken callback must not leave the worker busy
                                    callback_error = exc
                                    cancel.set()
                        continue
                    if message[0] in ("ready", "stats") or message[1] == request_id:
                        if callback_error is not None:
                            raise callback_error
                        return tuple(message)
                    continue  # a late answer to an earlier request
            if closed or worker.process.sentinel in ready or not worker.alive():
                if not closed and worker.conn.poll():
                    continue  # read what it said before it went
                worker.process.join(5.0)
                exit_code = worker.process.exitcode
                self._stop_worker(graceful=False)
                raise PluginCrashedError(
                    f"its worker process {_describe_exit(exit_code)} while {stage}",
                    name,
                    "your work is safe; the next request starts the plugin again. If this repeats, report it to "
                    "the plugin's authors",
                    exit_code=exit_code,
                )

    def _predict(
        self,
        request: InferenceRequest,
        progress: ProgressCallback | None,
        cancel: threading.Event,
        timeout_s: float | None,
    ) -> Proposal:
        self._check_open()
        arrays = _request_arrays(request)
        with self._lock:
            if cancel.is_set():
                raise Cancelled(f"{self._plugin} proposal")
            self._current_cancel = cancel
            try:
                return self._run(request, arrays, progress, cancel, timeout_s)
            finally:
                self._current_cancel = None

    def _run(
        self,
        request: InferenceRequest,
        arrays: dict[str, NDArray[Any]],
        progress: ProgressCallback | None,
        cancel: threading.Event,
        timeout_s: float | None,
    ) -> Proposal:
        name = self._plugin or "?"
        timing: dict[str, float] = {}
        total = time.perf_counter()
        worker = self._slot[0]
        if worker is None or not worker.alive() or worker.info is None:
            clock = time.perf_counter()
            self._spawn(progress, cancel)
            timing["worker_start"] = time.perf_counter() - clock
            worker = self._slot[0]
            assert worker is not None
        request_id = next(self._serial)
        in_name, out_name = _segment_name("i"), _segment_name("o")
        clock = time.perf_counter()
        segment, layout = _create_segment(in_name, arrays)
        try:
            timing["send"] = time.perf_counter() - clock
            worker.cancel_event.clear()
            meta = _request_meta(request)
            with contextlib.suppress(OSError, ValueError):  # it died: _wait reports how
                worker.conn.send(("predict", request_id, meta, in_name, layout, out_name))
            limit = timeout_s if timeout_s is not None else self.predict_timeout_s
            message = self._wait(worker, request_id, progress, cancel, limit, self.stall_timeout_s, "predicting")
            kind = message[0]
            if kind == "cancelled" or (kind == "result" and cancel.is_set()):  # a late result is not wanted
                raise Cancelled(f"{name} proposal")
            if kind == "error":
                raise _rebuild_error(message[2], name)
            clock = time.perf_counter()
            proposal = _read_proposal(message[2], out_name, message[3])
            timing["receive"] = time.perf_counter() - clock
            worker_timing = message[4]
        finally:
            if segment is not None:
                with contextlib.suppress(FileNotFoundError):
                    segment.unlink()
            _unlink_quietly(out_name)
        timing["total"] = time.perf_counter() - total
        ours = {**worker_timing, **timing}
        theirs = {(f"plugin_{k}" if k in ours else k): v for k, v in proposal.timing.items()}
        proposal.timing = {**theirs, **ours}
        return proposal


def _request_arrays(request: InferenceRequest) -> dict[str, NDArray[Any]]:
    image = request.image
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.dtype.hasobject:
        raise PluginError("the request's image must be a 3D numeric array [k, j, i]")
    arrays: dict[str, NDArray[Any]] = {"image": image}
    for index, prompt in enumerate(request.prompts):
        if isinstance(prompt, MaskPrompt):
            if prompt.mask.shape != image.shape:
                raise PluginError(f"mask prompt {index} has shape {prompt.mask.shape}, the image {image.shape}")
            arrays[f"mask{index}"] = np.asarray(prompt.mask, dtype=bool)
    return arrays


def _request_meta(request: InferenceRequest) -> InferenceRequest:
    """The request without its arrays (they travel in shared memory)."""
    prompts = [
        dataclasses.replace(p, mask=np.zeros((0, 0, 0), dtype=bool)) if isinstance(p, MaskPrompt) else p
        for p in request.prompts
    ]
    return dataclasses.replace(request, image=np.zeros((0, 0, 0), dtype=request.image.dtype), prompts=prompts)


def _read_proposal(meta: Mapping[str, Any], out_name: str, layout: Layout | None) -> Proposal:
    arrays: dict[str, NDArray[Any]] = {}
    if layout:
        segment, views = _map_segment(out_name, layout)
        try:
            arrays = {key: np.array(view) for key, view in views.items()}
        finally:
            del views
            segment.close()
            with contextlib.suppress(FileNotFoundError):
                segment.unlink()
    extra = dict(meta["extra"])
    extra.update({key.removeprefix("extra."): a for key, a in arrays.items() if key.startswith("extra.")})
    return Proposal(
        offset=tuple(meta["offset"]),
        model=ModelIdentity(**meta["model"]),
        probabilities=arrays.get("probabilities"),
        labels=arrays.get("labels"),
        label_names=dict(meta["label_names"]),
        device=meta["device"],
        timing=dict(meta["timing"]),
        prompt=list(meta["prompt"]),
        extra=extra,
    )
