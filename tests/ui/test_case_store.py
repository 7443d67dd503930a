"""Where cases go (Qt-free): beside the image, or in the cases folder when the settings say so or when
``$RADLABEL_CASES_DIR`` is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from radlabel.core.settings import load_settings
from radlabel.ui.case_store import case_folder_for, user_cases_dir


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("RADLABEL_CASES_DIR", raising=False)
    monkeypatch.setenv("RADLABEL_SETTINGS", str(tmp_path / "user.toml"))
    monkeypatch.setenv("RADLABEL_SITE_SETTINGS", str(tmp_path / "site.toml"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    path = tmp_path / "images" / "ct.nii.gz"
    path.parent.mkdir()
    path.write_bytes(b"")
    return path


def test_beside_the_image_by_default(image: Path) -> None:
    assert case_folder_for(image) == image.parent / "ct.nii.gz.radlabel"
    assert user_cases_dir() == image.parents[1] / "data" / "radlabel" / "cases"


def test_site_policy_puts_cases_in_the_cases_dir(image: Path, tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(f'[storage]\ncase_location = "cases-dir"\ncases_dir = "{tmp_path / "srv"}"\n')
    (tmp_path / "user.toml").write_text('[storage]\ncase_location = "beside-image"\n')  # policy: ignored
    folder = case_folder_for(image, "1.2.3")
    assert folder.parent.parent == tmp_path / "srv"
    assert folder.parent.name.startswith("ct.nii.gz-") and folder.name.startswith("series-")
    assert user_cases_dir() == tmp_path / "srv"


def test_user_cases_dir_setting_and_explicit_settings(image: Path, tmp_path: Path) -> None:
    (tmp_path / "user.toml").write_text(f'[storage]\ncase_location = "cases-dir"\ncases_dir = "{tmp_path / "mine"}"\n')
    assert case_folder_for(image).parent == tmp_path / "mine"
    other = load_settings(tmp_path / "none.toml", tmp_path / "none.toml")
    assert case_folder_for(image, settings=other) == image.parent / "ct.nii.gz.radlabel"


def test_environment_variable_wins(image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site.toml").write_text(f'[storage]\ncases_dir = "{tmp_path / "srv"}"\n')
    monkeypatch.setenv("RADLABEL_CASES_DIR", str(tmp_path / "tests"))
    assert case_folder_for(image).parent == tmp_path / "tests"
    assert user_cases_dir() == tmp_path / "tests"


def test_the_session_records_the_configured_reader(
    image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from radlabel.core.demo import make_demo_ct
    from radlabel.core.io.writers import save_volume
    from radlabel.ui.case_store import open_or_create

    volume, _ = make_demo_ct((8, 8, 10), spacing=(1.5, 1.5, 3.0))
    source = save_volume(volume, tmp_path / "images" / "ct.nrrd")
    (tmp_path / "site.toml").write_text('[identity]\nsource = "env"\nenv_var = "HOSPITAL_READER"\n')
    monkeypatch.setenv("HOSPITAL_READER", "Dr L. Script")
    session, reopened = open_or_create(volume, source)
    try:
        assert not reopened and session.user == "Dr L. Script"
        assert session.case_dir == source.parent / "ct.nrrd.radlabel"
    finally:
        session.close()
