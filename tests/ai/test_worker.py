"""The worker process: proposals through shared memory, and a session that survives crashing, raising,
hanging, slow, network-using and wrongly-weighted plugins with a clear message in bounded time."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from radlabel.ai.sdk import BoxPrompt, MaskPrompt, PointPrompt, Proposal
from radlabel.ai.worker import WorkerClient, shm_prefix
from radlabel.core.errors import (
    Cancelled,
    InputError,
    PluginCrashedError,
    PluginError,
    PluginNetworkError,
    PluginTimeoutError,
    PluginWeightsError,
)
from radlabel.core.settings import AISettings, Settings

from .conftest import ai_settings, bimodal_volume, make_request

SHM = Path("/dev/shm")


def our_segments() -> list[str]:
    if not SHM.is_dir():
        return []
    return sorted(p.name for p in SHM.iterdir() if p.name.startswith(shm_prefix()))


def reference_otsu(values: np.ndarray) -> float:
    """Otsu by brute force over every distinct value (independent of the plugin's histogram version):
    the threshold t maximising w0 * w1 * (mean0 - mean1)^2 for the classes < t and >= t."""
    data = np.sort(values.astype(np.float64).ravel())
    best, best_t = -1.0, float(data[0])
    for t in np.unique(data)[1:]:
        low, high = data[data < t], data[data >= t]
        score = low.size * high.size * (low.mean() - high.mean()) ** 2
        if score > best:
            best, best_t = score, float(t)
    return best_t


def on_grid(proposal: Proposal, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    k, j, i = proposal.offset
    dk, dj, di = proposal.mask().shape
    mask[k : k + dk, j : j + dj, i : i + di] = proposal.mask()
    return mask


@pytest.fixture(scope="module")
def example() -> Iterator[WorkerClient]:
    with WorkerClient("example-threshold", Settings(), load_timeout_s=60, predict_timeout_s=60) as client:
        yield client


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerClient]:
    settings = ai_settings(tmp_path_factory.mktemp("weights"))
    with WorkerClient(
        "misbehaving", settings, load_timeout_s=60, predict_timeout_s=30, stall_timeout_s=30, cancel_grace_s=1.0
    ) as client:
        yield client


@pytest.fixture(autouse=True)
def no_segment_left_behind() -> Iterator[None]:
    yield
    assert our_segments() == [], "a shared-memory segment outlived its request"


def small_image() -> np.ndarray:
    image = np.zeros((4, 16, 16), dtype=np.int16)
    image[:, 4:12, 4:12] = 100
    return image


# --- proposals ------------------------------------------------------------------------------------------------


def test_box_proposal_is_the_otsu_threshold_in_the_box(example: WorkerClient) -> None:
    volume, blob = bimodal_volume()
    box = BoxPrompt(ijk_min=(28, 20, 3), ijk_max=(72, 70, 3), axis=0)  # (i, j, k), slice k = 3
    seen: list[tuple[float, str]] = []
    proposal = example.predict(make_request(volume, [box]), lambda f, m: seen.append((f, m)) or True)

    inside = volume[3:4, 20:71, 28:73]
    expected = np.zeros(volume.shape, dtype=bool)
    expected[3:4, 20:71, 28:73] = inside >= reference_otsu(inside)
    got = on_grid(proposal, volume.shape)
    assert np.array_equal(got, expected)  # (the plugin crops its answer to the object's bounding box)
    assert 2 * (got & blob).sum() / (got.sum() + blob[3].sum()) > 0.99

    assert proposal.model.name == "example-threshold" and proposal.model.version == "0.1.0"
    assert proposal.model.weights_sha256 == example.info.weights.sha256 and len(proposal.model.weights_sha256) == 64
    assert proposal.label_names == {1: "lesion"} and proposal.device == "cpu"
    assert proposal.prompt == [box.to_json()]
    for stage in ("send", "attach", "predict", "pack", "receive", "total", "threshold"):
        assert proposal.timing[stage] >= 0.0
    # The first request also started the worker: its loading messages come first.
    assert seen[0] == (1.0, "parameters loaded") and (0.0, "thresholding") in seen and seen[-1] == (1.0, "done")


def test_point_prompt_grows_the_clicked_region(example: WorkerClient) -> None:
    volume, blob = bimodal_volume(seed=1)
    proposal = example.predict(make_request(volume, [PointPrompt(ijk=(50, 45, 3))], tolerance=50))
    mask = on_grid(proposal, volume.shape)
    assert mask[3].sum() > 0 and mask[[0, 1, 2, 4, 5, 6]].sum() == 0  # a 2D prompt stays on its slice
    assert 2 * (mask[3] & blob[3]).sum() / (mask[3].sum() + blob[3].sum()) > 0.98


def test_the_worker_keeps_the_plugin_and_its_cache(example: WorkerClient) -> None:
    volume, _ = bimodal_volume()
    pid = example.start().pid
    example.predict(make_request(volume, [BoxPrompt((28, 20, 3), (72, 70, 3))]))
    assert example.info is not None and example.info.pid == pid
    assert example.stats()["cache_entries"] >= 1


def test_bad_prompt_is_an_input_error_and_the_worker_stays(example: WorkerClient) -> None:
    pid = example.start().pid
    with pytest.raises(InputError, match="needs a box or a positive point"):
        example.predict(make_request(small_image(), []))
    example.predict(make_request(small_image(), [BoxPrompt((2, 2, 1), (13, 13, 1))]))
    assert example.start().pid == pid


def test_submit_returns_a_job(example: WorkerClient) -> None:
    done = threading.Event()
    job = example.submit(make_request(small_image(), [BoxPrompt((2, 2, 1), (13, 13, 1))]))
    job.add_done_callback(lambda _job: done.set())
    proposal = job.result(timeout=30)
    assert done.wait(5) and job.done() and proposal.labels is not None
    assert int(proposal.labels.sum()) == 64


def test_no_network_is_attempted_by_the_example_plugin(example: WorkerClient) -> None:
    """The worker counts every attempt to use the network (audit hook on Python's socket calls), even a
    swallowed one; the example plugin's requests made none."""
    example.predict(make_request(small_image(), [PointPrompt((5, 5, 1))]))
    stats = example.stats()
    assert example.info is not None and example.info.network_guard
    assert stats["requests"] >= 1 and stats["network_attempts"] == []


# --- arrays both ways -------------------------------------------------------------------------------------------


def test_mask_prompts_and_extra_arrays_travel_in_shared_memory(misbehaving: WorkerClient) -> None:
    image = small_image()
    scribble = np.zeros(image.shape, dtype=bool)
    scribble[1, 5:8, 5] = True
    proposal = misbehaving.predict(make_request(image, [MaskPrompt(scribble)]))
    assert proposal.extra["mask_prompt_voxels"] == [3]
    assert np.array_equal(proposal.extra["scores"], np.arange(3, dtype=np.float32))
    assert proposal.probabilities is not None and proposal.probabilities.dtype == np.float32
    assert proposal.mask().sum() == (image >= image.mean()).sum()
    assert proposal.timing["plugin_total"] == 123.0 and proposal.timing["decode"] == 0.5  # kept, not clobbered
    assert proposal.timing["total"] < 100


def test_input_is_in_shared_memory_while_the_plugin_runs(misbehaving: WorkerClient) -> None:
    running = threading.Event()
    job = misbehaving.submit(make_request(small_image(), behaviour="slow"), lambda f, m: running.set())
    assert running.wait(15)
    assert any(name.endswith("i") for name in our_segments())
    job.cancel()
    with pytest.raises(Cancelled):
        job.result(timeout=10)


def test_a_plugin_keeping_a_view_of_the_input_does_not_leak_the_segment(misbehaving: WorkerClient) -> None:
    misbehaving.predict(make_request(small_image(), behaviour="keep-view"))
    misbehaving.predict(make_request(small_image()))


# --- failures leave the client usable --------------------------------------------------------------------------


def test_crash_is_reported_and_the_next_request_works(misbehaving: WorkerClient) -> None:
    before = misbehaving.start().pid
    started = time.monotonic()
    with pytest.raises(PluginCrashedError) as caught:
        misbehaving.predict(make_request(small_image(), behaviour="crash"))
    assert time.monotonic() - started < 10
    assert caught.value.exit_code == 3 and caught.value.plugin == "misbehaving"
    assert "plugin 'misbehaving': its worker process exited with code 3 while predicting" in str(caught.value)
    assert "next request starts the plugin again" in str(caught.value)
    assert not misbehaving.running
    proposal = misbehaving.predict(make_request(small_image()))
    assert proposal.extra["pid"] != before and "worker_start" in proposal.timing


def test_segfault_is_reported_with_its_signal(misbehaving: WorkerClient) -> None:
    with pytest.raises(PluginCrashedError, match="killed by SIGSEGV \\(a crash in native code\\)") as caught:
        misbehaving.predict(make_request(small_image(), behaviour="segfault"))
    assert caught.value.exit_code == -11
    misbehaving.predict(make_request(small_image()))


def test_exception_is_reported_and_the_worker_stays(misbehaving: WorkerClient) -> None:
    pid = misbehaving.start().pid
    with pytest.raises(PluginError) as caught:
        misbehaving.predict(make_request(small_image(), behaviour="raise"))
    assert type(caught.value) is PluginError
    assert "plugin 'misbehaving': failed: ValueError: the model does not like this image" in str(caught.value)
    assert "Traceback" in caught.value.details and "misbehaving.py" in caught.value.details
    assert misbehaving.predict(make_request(small_image())).extra["pid"] == pid


def test_hang_times_out_and_the_next_request_works(misbehaving: WorkerClient) -> None:
    started = time.monotonic()
    with pytest.raises(PluginTimeoutError, match=r"did not finish within 1\.5 s while predicting; its worker was"):
        misbehaving.predict(make_request(small_image(), behaviour="hang"), timeout_s=1.5)
    assert time.monotonic() - started < 5
    misbehaving.predict(make_request(small_image()))


def test_a_silent_plugin_hits_the_stall_timeout(misbehaving: WorkerClient) -> None:
    misbehaving.stall_timeout_s = 1.0
    try:
        with pytest.raises(PluginTimeoutError, match="reported no progress for 1 s"):
            misbehaving.predict(make_request(small_image(), behaviour="hang"))
    finally:
        misbehaving.stall_timeout_s = 30
    misbehaving.predict(make_request(small_image()))


def test_cancel_stops_a_slow_plugin_quickly(misbehaving: WorkerClient) -> None:
    pid = misbehaving.start().pid
    running = threading.Event()
    job = misbehaving.submit(make_request(small_image(), behaviour="slow"), lambda f, m: running.set())
    assert running.wait(15)
    started = time.monotonic()
    job.cancel()
    with pytest.raises(Cancelled, match="misbehaving proposal cancelled"):
        job.result(timeout=10)
    assert time.monotonic() - started < 0.5 + misbehaving.cancel_grace_s
    assert misbehaving.start().pid == pid  # it stopped by itself: no restart


def test_cancel_kills_a_plugin_that_ignores_it(misbehaving: WorkerClient) -> None:
    pid = misbehaving.start().pid
    running = threading.Event()
    job = misbehaving.submit(make_request(small_image(), behaviour="hang"), lambda f, m: running.set())
    assert running.wait(15)
    started = time.monotonic()
    job.cancel()
    with pytest.raises(Cancelled, match="did not stop in time; its worker was stopped"):
        job.result(timeout=10)
    assert time.monotonic() - started < misbehaving.cancel_grace_s + 2
    assert misbehaving.predict(make_request(small_image())).extra["pid"] != pid


def test_progress_returning_false_cancels(misbehaving: WorkerClient) -> None:
    with pytest.raises(Cancelled):
        misbehaving.predict(make_request(small_image(), behaviour="slow"), lambda f, m: f < 0.0005)


def test_a_proposal_off_the_grid_is_refused(misbehaving: WorkerClient) -> None:
    with pytest.raises(PluginError, match="outside the image grid"):
        misbehaving.predict(make_request(small_image(), behaviour="bad-box"))


def test_network_use_is_refused(misbehaving: WorkerClient) -> None:
    with pytest.raises(PluginNetworkError, match=r"tried to open a connection to \('192\.0\.2\.1', 9\)"):
        misbehaving.predict(make_request(small_image(), behaviour="network"))
    with pytest.raises(PluginNetworkError, match=r"tried to look up the host 'example\.com'"):
        misbehaving.predict(make_request(small_image(), behaviour="network-swallowed"))
    assert len(misbehaving.stats()["network_attempts"]) == 2
    misbehaving.predict(make_request(small_image()))


# --- start-up failures -----------------------------------------------------------------------------------------


def test_weights_with_a_wrong_hash_are_refused(tmp_path: Path) -> None:
    started = time.monotonic()
    with WorkerClient("wrong-hash", ai_settings(tmp_path)) as client:
        with pytest.raises(PluginWeightsError) as caught:
            client.start()
        assert not client.running
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "plugin 'wrong-hash': weights file" in message and "wrong.pth" in message
    assert f"expected {'0' * 64}; refusing to load it" in message


def test_crash_while_loading(tmp_path: Path) -> None:
    with WorkerClient("crash-on-load", ai_settings(tmp_path)) as client:
        with pytest.raises(PluginCrashedError, match="exited with code 7 while loading") as caught:
            client.start()
        assert caught.value.exit_code == 7


def test_unknown_or_forbidden_plugins_fail_before_spawning(tmp_path: Path) -> None:
    with WorkerClient("nope", Settings()) as client, pytest.raises(PluginError, match="no such plugin"):
        client.predict(make_request(small_image()))
    policy = Settings(ai=AISettings(allowed_plugins=("misbehaving",)))
    with WorkerClient("example-threshold", policy) as client, pytest.raises(PluginError, match="allowed_plugins"):
        client.start()


def test_worker_leaves_when_radlabel_dies(tmp_path: Path) -> None:
    """A radlabel process killed hard (no clean-up at all) does not leave its worker running."""
    code = (
        "import os\n"
        "from radlabel.ai.worker import WorkerClient\n"
        "from radlabel.core.settings import Settings\n"
        "client = WorkerClient('example-threshold', Settings())\n"
        "print(client.start().pid, flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        status = Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}/status").exists() else ""
        if "State:\tZ" in status:
            break
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text()


def test_closed_client_refuses_work() -> None:
    client = WorkerClient("example-threshold", Settings())
    client.close()
    with pytest.raises(PluginError, match="closed"):
        client.predict(make_request(small_image()))
    assert os.getpid() > 0


def test_the_worker_honours_extra_plugins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADLABEL_EXTRA_PLUGINS", "from-env=tests.ai.misbehaving:create")
    with WorkerClient("from-env", Settings()) as client:
        proposal = client.predict(make_request(small_image()))
        assert proposal.model.name == "misbehaving" and client.info is not None
        assert client.info.plugin == "from-env"


def test_too_little_shared_memory_is_a_clear_error(example: WorkerClient, monkeypatch: pytest.MonkeyPatch) -> None:
    example.start()
    real = os.statvfs

    class Tiny:
        f_bavail, f_frsize = 16, 4096  # 64 KiB free

    monkeypatch.setattr(os, "statvfs", lambda path: Tiny() if path == "/dev/shm" else real(path))
    with pytest.raises(PluginError, match=r"needs \d+ MB of shared memory but /dev/shm has 0 MB free"):
        example.predict(make_request(np.zeros((4, 128, 128), dtype=np.int16), [PointPrompt((1, 1, 1))]))
    monkeypatch.undo()
    example.predict(make_request(small_image(), [PointPrompt((5, 5, 1))]))


def test_site_policy_without_gpu_keeps_a_gpu_plugin_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from radlabel.ai.sdk import Capabilities, Dimension, PromptKind
    from radlabel.ai.worker import _worker_device
    from radlabel.core.settings import settings_from_mapping

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    gpu_only = Capabilities(frozenset({PromptKind.BOX}), frozenset({Dimension.SLICE_2D}), devices=frozenset({"cuda"}))
    policy = settings_from_mapping({"ai": {"allow_gpu": False, "device": "cuda"}}, "/etc/radlabel/settings.toml")
    device, notes = _worker_device(gpu_only, policy)
    assert device == "cpu"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # torch in this worker cannot see a GPU either
    assert any("allow_gpu" in note for note in notes)
