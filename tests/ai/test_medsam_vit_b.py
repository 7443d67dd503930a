"""MedSAM ViT-B through the real loading path: a checkpoint file named by the environment variable, read with
``torch.load(weights_only=True)`` into segment-anything's ``vit_b``, 1024 x 1024 input. No real MedSAM weights
exist here, so the checkpoint is a randomly initialised ViT-B state dict: this checks loading, hashing,
geometry and the output contract, not accuracy. One ViT-B encode on CPU takes a few seconds."""

from __future__ import annotations

import numpy as np
import pytest

from tests.ai.conftest import RecordingContext as Context

torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")
plugin_module = pytest.importorskip("radlabel_medsam.plugin")

from radlabel_medsam import weights  # noqa: E402
from radlabel_medsam.errors import WeightsHashError, WeightsMissingError  # noqa: E402

from radlabel.ai.sdk import BoxPrompt, InferenceRequest, sha256_of  # noqa: E402


@pytest.fixture
def no_configured_checkpoint(monkeypatch, tmp_path):
    """Neither the environment nor a settings file of this machine names a checkpoint."""
    monkeypatch.delenv(weights.MEDSAM_ENV, raising=False)
    monkeypatch.delenv(weights.MEDSAM_SHA_ENV, raising=False)
    monkeypatch.setenv("RADLABEL_SETTINGS", str(tmp_path / "no-user.toml"))
    monkeypatch.setenv("RADLABEL_SITE_SETTINGS", str(tmp_path / "no-site.toml"))


def test_without_a_checkpoint_the_status_names_the_setting(no_configured_checkpoint):
    plugin = plugin_module.create_medsam()
    status = plugin.weights_status()
    assert not status.present
    assert weights.MEDSAM_SETTING in status.message and weights.MEDSAM_ENV in status.message
    with pytest.raises(WeightsMissingError, match="no MedSAM ViT-B checkpoint"):
        plugin.load(Context())


def test_vit_b_checkpoint_loads_and_answers_a_box(tmp_path, monkeypatch, no_configured_checkpoint):
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    checkpoint = tmp_path / "medsam_vit_b.pth"
    torch.save(sam_model_registry["vit_b"]().state_dict(), checkpoint)
    digest = sha256_of(checkpoint)
    monkeypatch.setenv(weights.MEDSAM_ENV, str(checkpoint))

    plugin = plugin_module.create_medsam()
    status = plugin.weights_status()
    assert status.present and status.sha256 == digest and status.location == str(checkpoint)
    context = Context()
    plugin.load(context)
    assert plugin.model.image_size == 1024 and not plugin.model.keep_aspect
    assert plugin.identity.weights_sha256 == digest and plugin.identity.name == "MedSAM"

    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 10.0, (3, 40, 56)).astype(np.float32)
    image[1, 10:25, 20:40] += 200.0
    request = InferenceRequest(
        image=image,
        origin=(0.0, 0.0, 0.0),
        spacing=(0.8, 0.8, 3.0),
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        modality="MR",
        prompts=[BoxPrompt((18, 8, 1), (41, 26, 1), axis=0)],
        options={"zoom": False},
    )
    proposal = plugin.predict(request, context)
    assert proposal.model.weights_sha256 == digest
    assert proposal.offset[0] == 1 and proposal.probabilities.shape[0] == 1
    assert proposal.probabilities.dtype == np.float32
    assert 0.0 <= float(proposal.probabilities.min()) <= float(proposal.probabilities.max()) <= 1.0
    assert plugin.model.encoder_calls == 1

    # an expected hash that does not match is refused before anything is loaded
    monkeypatch.setenv(weights.MEDSAM_SHA_ENV, "0" * 64)
    refused = plugin_module.create_medsam()
    assert not refused.weights_status().present
    with pytest.raises(WeightsHashError):
        refused.load(Context())


def test_without_torch_the_status_says_so(monkeypatch):
    """The CPU application bundle has no PyTorch: MedSAM ViT-B is listed as unusable for that reason."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a)
    )
    status = plugin_module.create_medsam().weights_status()
    assert not status.present and "needs PyTorch" in status.message and "litemedsam" in status.message
