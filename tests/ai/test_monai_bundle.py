"""The MONAI plugin through its real loading path: a bundle folder (inference.json + metadata.json + model.pt)
and a TorchScript file with a JSON config, both made here from a tiny UNet trained for a few seconds on
synthetic spheres in noise. The bundle resamples (1.5 mm) and reorients (RAS), so the test volume on another
grid checks that probabilities come back onto our [k, j, i] grid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.ai.conftest import RecordingContext as Context

torch = pytest.importorskip("torch")
pytest.importorskip("monai")
radlabel_monai_plugin = pytest.importorskip("radlabel_monai.plugin")

from radlabel.ai.sdk import ENTRY_POINT_GROUP, InferenceRequest, Plugin  # noqa: E402
from radlabel.core.errors import Cancelled  # noqa: E402

# torch.jit and MONAI's Orientationd announce future API changes; not what these tests are about
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

PIXDIM = 1.5
A_MIN, A_MAX = -50.0, 150.0
NETWORK = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [4, 8],
    "strides": [2],
    "num_res_units": 1,
}


def _sphere_volume(
    rng: np.random.Generator,
    shape_kji: tuple[int, int, int],
    spacing_ijk: tuple[float, float, float],
    centre_mm,
    radius,
):
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape_kji), indexing="ij")
    distance = np.sqrt(
        ((i + 0.5) * spacing_ijk[0] - centre_mm[0]) ** 2
        + ((j + 0.5) * spacing_ijk[1] - centre_mm[1]) ** 2
        + ((k + 0.5) * spacing_ijk[2] - centre_mm[2]) ** 2
    )
    mask = distance <= radius
    image = np.where(mask, 100.0, 0.0) + rng.normal(0.0, 25.0, shape_kji)
    return image.astype(np.float32), mask


def _train_unet(steps: int = 40):
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = UNet(**{k: v for k, v in NETWORK.items() if k != "_target_"})
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-2)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    for _ in range(steps):
        images, labels = [], []
        for _ in range(4):
            centre = rng.uniform(14, 34, size=3)
            image, mask = _sphere_volume(rng, (32, 32, 32), (PIXDIM,) * 3, centre, rng.uniform(6, 14))
            images.append(np.clip((image - A_MIN) / (A_MAX - A_MIN), 0, 1)[None])
            labels.append(mask[None].astype(np.float32))
        x, y = torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels))
        optimiser.zero_grad()
        loss = loss_function(net(x), y)
        loss.backward()
        optimiser.step()
    return net.eval()  # a few seconds on two CPU cores


@pytest.fixture(scope="module")
def trained_unet():
    return _train_unet()


def _write_bundle(folder: Path, net) -> Path:
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    inference = {
        "imports": ["$import glob"],
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": NETWORK,
        "network": "$@network_def.to(@device)",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image"},
                {"_target_": "EnsureChannelFirstd", "keys": "image"},
                {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
                {"_target_": "Spacingd", "keys": "image", "pixdim": [PIXDIM] * 3, "mode": "bilinear"},
                {
                    "_target_": "ScaleIntensityRanged",
                    "keys": "image",
                    "a_min": A_MIN,
                    "a_max": A_MAX,
                    "b_min": 0.0,
                    "b_max": 1.0,
                    "clip": True,
                },
                {"_target_": "EnsureTyped", "keys": "image"},
            ],
        },
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 32], "sw_batch_size": 2, "overlap": 0.25},
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "softmax": True},
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            ],
        },
        "run": ["$print('the plugin must never run this')"],
    }
    metadata = {
        "name": "Synthetic sphere UNet",
        "version": "0.0.1",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "modality": "CT", "num_channels": 1, "spatial_shape": [32, 32, 32]}},
            "outputs": {
                "pred": {"type": "image", "num_channels": 2, "channel_def": {"0": "background", "1": "sphere"}}
            },
        },
    }
    (folder / "configs" / "inference.json").write_text(json.dumps(inference, indent=1))
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=1))
    torch.save(net.state_dict(), folder / "models" / "model.pt")
    return folder


def _request(rng: np.random.Generator, **options: Any) -> tuple[InferenceRequest, np.ndarray]:
    spacing = (1.0, 1.25, 2.0)  # (i, j, k) mm, unlike the bundle's 1.5 mm
    shape = (28, 44, 56)  # (k, j, i)
    image, mask = _sphere_volume(rng, shape, spacing, centre_mm=(20.0, 30.0, 34.0), radius=11.0)
    request = InferenceRequest(
        image=image,
        origin=(-10.0, 5.0, 30.0),
        spacing=spacing,
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        modality="CT",
        target_label="sphere",
        options=options,
    )
    return request, mask


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


def _full(proposal, shape) -> np.ndarray:
    full = np.zeros(shape, dtype=bool)
    k, j, i = proposal.offset
    part = proposal.mask()
    full[k : k + part.shape[0], j : j + part.shape[1], i : i + part.shape[2]] = part
    return full


def test_bundle_folder_segments_a_sphere_on_another_grid(tmp_path, trained_unet):
    bundle = _write_bundle(tmp_path / "sphere_bundle", trained_unet)
    plugin = radlabel_monai_plugin.MonaiBundlePlugin(bundle)
    assert isinstance(plugin, Plugin)
    status = plugin.weights_status()
    assert status.present and status.location.endswith("model.pt") and len(status.sha256) == 64
    context = Context()
    plugin.load(context)
    assert plugin.capabilities.labels == ("sphere",)
    request, truth = _request(np.random.default_rng(1))
    proposal = plugin.predict(request, context)
    mask = _full(proposal, truth.shape)
    score = _dice(mask, truth)
    assert score > 0.8, score
    assert proposal.label_names == {1: "sphere"}
    assert proposal.model.name == "Synthetic sphere UNet" and proposal.model.weights_sha256 == status.sha256
    assert proposal.probabilities is not None and proposal.probabilities.dtype == np.float32
    assert float(proposal.probabilities.min()) >= 0.0 and float(proposal.probabilities.max()) <= 1.0
    assert proposal.device == "cpu"
    assert context.calls and context.calls[-1][0] == 1.0


def test_torchscript_file_with_json_config(tmp_path, trained_unet):
    scripted = torch.jit.script(trained_unet)
    model_path = tmp_path / "sphere.ts"
    scripted.save(str(model_path))
    config = {
        "spatial_size": [32, 32, 32],
        "pixdim": [PIXDIM] * 3,
        "axcodes": "RAS",
        "intensity": {"a_min": A_MIN, "a_max": A_MAX, "b_min": 0.0, "b_max": 1.0, "clip": True},
        "activation": "softmax",
        "labels": {"1": "sphere"},
        "name": "sphere-ts",
    }
    model_path.with_suffix(".json").write_text(json.dumps(config))
    plugin = radlabel_monai_plugin.MonaiBundlePlugin()
    request, truth = _request(np.random.default_rng(2), bundle=str(model_path))
    proposal = plugin.predict(request, Context())
    assert _dice(_full(proposal, truth.shape), truth) > 0.8
    assert proposal.model.name == "sphere-ts"


def test_cancel_stops_inference(tmp_path, trained_unet):
    bundle = _write_bundle(tmp_path / "b", trained_unet)
    plugin = radlabel_monai_plugin.MonaiBundlePlugin(bundle)
    request, _ = _request(np.random.default_rng(3))
    with pytest.raises(Cancelled):
        plugin.predict(request, Context(cancel_after=2))


def _isolated_settings(monkeypatch, tmp_path: Path, user_toml: str = "") -> None:
    """No settings file and no model pack of this machine's user or site leak into the test."""
    monkeypatch.delenv(radlabel_monai_plugin.ENV, raising=False)
    monkeypatch.delenv("RADLABEL_BUNDLED_MODELS", raising=False)
    user = tmp_path / "user.toml"
    user.write_text(user_toml)
    monkeypatch.setenv("RADLABEL_SETTINGS", str(user))
    monkeypatch.setenv("RADLABEL_SITE_SETTINGS", str(tmp_path / "no-site.toml"))
    monkeypatch.setenv("RADLABEL_SITE_MODELS", str(tmp_path / "site-models"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def test_bundle_installed_as_a_model_pack_is_found_and_checked(monkeypatch, tmp_path, trained_unet):
    from radlabel.app.model_packs import install_pack, make_manifest
    from radlabel.core.errors import PluginWeightsError

    _isolated_settings(monkeypatch, tmp_path)
    bundle = _write_bundle(tmp_path / "sphere-unet", trained_unet)
    manifest = make_manifest(
        bundle, "sphere-unet", "1.0", "monai-bundle", {"models/model.pt": "weights"}, plugins=["monai_bundle"]
    )
    (bundle / "radlabel-pack.json").write_text(json.dumps(manifest))
    installed = install_pack(bundle).pack
    plugin = radlabel_monai_plugin.create()
    status = plugin.weights_status()
    assert status.present and Path(status.location).is_relative_to(installed.path)
    request, truth = _request(np.random.default_rng(4))
    assert _dice(_full(plugin.predict(request, Context()), truth.shape), truth) > 0.8
    weights = installed.path / "models" / "model.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed after installation
    weights.write_bytes(bytes(data))
    with pytest.raises(PluginWeightsError, match="damaged"):
        radlabel_monai_plugin.create().load(Context())


def test_not_configured_is_reported_not_crashed(monkeypatch, tmp_path):
    _isolated_settings(monkeypatch, tmp_path)
    plugin = radlabel_monai_plugin.create()
    status = plugin.weights_status()
    assert not status.present and radlabel_monai_plugin.SETTING in status.message
    from radlabel_monai.errors import BundleError, ModelNotConfiguredError

    with pytest.raises(ModelNotConfiguredError, match="RADLABEL_MONAI_BUNDLE"):
        plugin.load(Context())
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"inference\.json"):
        radlabel_monai_plugin.MonaiBundlePlugin(tmp_path / "empty").load(Context())


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert names.get("monai_bundle") == "radlabel_monai.plugin:create"
