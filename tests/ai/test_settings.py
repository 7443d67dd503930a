"""Settings: user and site files, site policy, clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from radlabel.core.errors import InputError
from radlabel.core.settings import Settings, load_settings, settings_from_mapping


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_files_give_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "nope.toml", tmp_path / "nope-site.toml")
    assert settings.ai == Settings().ai
    assert settings.identity.user is None
    assert settings.sources == ()
    assert settings.identity.resolved_user()  # the OS login name (or "unknown")


def test_environment_names_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = write(tmp_path / "user.toml", '[identity]\nuser = "Dr A. Reader"\n[ai]\ndevice = "cpu"\n')
    site = write(tmp_path / "site.toml", '[ai]\ndevice = "cuda"\npredict_timeout_s = 60\n')
    monkeypatch.setenv("RADLABEL_SETTINGS", str(user))
    monkeypatch.setenv("RADLABEL_SITE_SETTINGS", str(site))
    settings = load_settings()
    assert settings.identity.resolved_user() == "Dr A. Reader"
    assert settings.ai.device == "cpu"  # the user overrides the site's default
    assert settings.ai.predict_timeout_s == 60.0  # from the site, the user did not set it
    assert settings.sources == (str(site), str(user))


def test_site_wins_for_allowed_plugins_and_network(tmp_path: Path) -> None:
    site = write(tmp_path / "site.toml", '[ai]\nallowed_plugins = ["litemedsam"]\nallow_network = false\n')
    user = write(
        tmp_path / "user.toml",
        '[ai]\nallowed_plugins = ["litemedsam", "my-model"]\nallow_network = true\n'
        '[plugins.medsam]\ncheckpoint = "/home/me/medsam_vit_b.pth"\n',
    )
    settings = load_settings(user, site)
    assert settings.ai.allowed_plugins == ("litemedsam",)
    assert settings.ai.allow_network is False
    assert settings.where("ai.allowed_plugins") == str(site)
    assert any("set by the site" in w for w in settings.warnings)
    assert settings.plugin_options("medsam") == {"checkpoint": "/home/me/medsam_vit_b.pth"}
    # Without a site policy the user's list applies.
    assert load_settings(user, tmp_path / "no-site.toml").ai.allowed_plugins == ("litemedsam", "my-model")


def test_plugin_tables_merge_key_by_key(tmp_path: Path) -> None:
    site = write(tmp_path / "site.toml", '[plugins.medsam]\ncheckpoint = "/opt/m.pth"\npreset = "soft"\n')
    user = write(tmp_path / "user.toml", '[plugins.medsam]\npreset = "lung"\n')
    assert load_settings(user, site).plugin_options("medsam") == {"checkpoint": "/opt/m.pth", "preset": "lung"}


def test_malformed_file_names_file_and_line(tmp_path: Path) -> None:
    user = write(tmp_path / "user.toml", '[ai]\ndevice = "cpu"\nallowed_plugins = ["a",\n')
    with pytest.raises(InputError) as caught:
        load_settings(user, tmp_path / "none.toml")
    message = str(caught.value)
    assert str(user) in message and "line" in message and "TOML" in message


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    user = write(tmp_path / "user.toml", '# comment\n[ai]\ndevice = "cpu"\npredict_timeout_s = "soon"\n')
    with pytest.raises(InputError, match=r"line 4: ai\.predict_timeout_s must be a positive number") as caught:
        load_settings(user, tmp_path / "none.toml")
    assert str(user) in str(caught.value)
    bad_device = write(tmp_path / "dev.toml", '[ai]\ndevice = "tpu"\n')
    with pytest.raises(InputError, match=r"line 2: ai\.device must be one of auto, cpu, cuda, mps"):
        load_settings(bad_device, tmp_path / "none.toml")
    with pytest.raises(InputError, match="a list of strings"):
        settings_from_mapping({"ai": {"allowed_plugins": "litemedsam"}})


def test_unknown_keys_are_warnings(tmp_path: Path) -> None:
    user = write(tmp_path / "user.toml", '[ai]\ndevise = "cpu"\n[pacs]\nhost = "x"\n')
    settings = load_settings(user, tmp_path / "none.toml")
    assert any("ai.devise" in w for w in settings.warnings)
    assert any("[pacs]" in w for w in settings.warnings)


def test_a_folder_is_not_a_settings_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        load_settings(tmp_path, tmp_path / "none.toml")
