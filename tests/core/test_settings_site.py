"""Site deployment settings: precedence with provenance, policy keys, locks, paths, identity, and an error that
names the file, the line and the key for every invalid value."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from radlabel.ai.registry import choose_device, discover
from radlabel.ai.sdk import Capabilities, Dimension, PromptKind
from radlabel.core.errors import InputError
from radlabel.core.settings import (
    EXPORT_FORMATS,
    KEYS,
    Settings,
    load_settings,
    settings_from_mapping,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment for load_settings without any of the variables the settings read."""
    return {"XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path / "home")}


def rows(settings: Settings) -> dict[str, tuple[object, str]]:
    return {key: (value, source) for key, value, source in settings.effective()}


def test_defaults_cover_every_key_with_source_default(tmp_path: Path, env: dict[str, str]) -> None:
    settings = load_settings(tmp_path / "no-user.toml", tmp_path / "no-site.toml", env)
    table = rows(settings)
    assert [k.dotted for k in KEYS] == [key for key, _, _ in settings.effective()][: len(KEYS)]
    assert all(source == "default" for _, source in table.values())
    assert table["storage.cases_dir"][0] == str(tmp_path / "data" / "radlabel" / "cases")
    assert table["models.install_dir"][0] == str(tmp_path / "data" / "radlabel" / "models")
    assert table["models.site_dir"][0] == "/var/lib/radlabel/models"
    assert table["models.bundled_dir"][0] is None
    assert table["storage.case_location"][0] == "beside-image"
    assert table["export.formats"][0] == ["dicom-seg"]
    assert table["ai.allow_gpu"][0] is True
    assert [f.read for f in settings.files] == [False, False]
    assert [f.role for f in settings.files] == ["site", "user"]


def test_user_over_site_over_default_with_provenance(tmp_path: Path, env: dict[str, str]) -> None:
    site = write(
        tmp_path / "etc" / "site.toml",
        '[ai]\npredict_timeout_s = 60\ndevice = "cuda"\n[storage]\ncases_dir = "/srv/cases"\n'
        '[export]\nformats = ["dicom-seg", "nifti"]\n[plugins.medsam]\ncheckpoint = "/opt/m.pth"\npreset = "soft"\n',
    )
    user = write(
        tmp_path / "home" / "user.toml",
        '[ai]\ndevice = "cpu"\n[storage]\ncases_dir = "~/my-cases"\n[plugins.medsam]\npreset = "lung"\n',
    )
    settings = load_settings(user, site, env)
    table = rows(settings)
    assert table["ai.device"] == ("cpu", str(user))
    assert table["ai.predict_timeout_s"] == (60.0, str(site))
    assert table["ai.load_timeout_s"] == (300.0, "default")
    assert table["storage.cases_dir"] == (str(Path("~/my-cases").expanduser()), str(user))
    assert table["export.formats"] == (["dicom-seg", "nifti"], str(site))
    assert table["plugins.medsam.checkpoint"] == ("/opt/m.pth", str(site))
    assert table["plugins.medsam.preset"] == ("lung", str(user))
    assert settings.source_of("ai.cache_entries") == "default"
    assert settings.export.suffixes() == [".dcm", ".nii.gz"]
    assert [f.read for f in settings.files] == [True, True]
    # Settings travel to the worker process by pickling.
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_case_location_is_site_policy(tmp_path: Path, env: dict[str, str]) -> None:
    site = write(tmp_path / "site.toml", '[storage]\ncase_location = "cases-dir"\n')
    user = write(tmp_path / "user.toml", '[storage]\ncase_location = "beside-image"\ncases_dir = "/data/me"\n')
    settings = load_settings(user, site, env)
    assert settings.storage.case_location == "cases-dir"
    assert settings.source_of("storage.case_location") == str(site)
    assert settings.storage.cases_dir == Path("/data/me")  # not policy: the user's folder
    assert any("storage.case_location is set by the site" in w and str(user) in w for w in settings.warnings)
    # Without a site value the user chooses.
    alone = load_settings(user, tmp_path / "none.toml", env)
    assert alone.storage.case_location == "beside-image"


def test_allow_gpu_false_forces_the_cpu(tmp_path: Path, env: dict[str, str]) -> None:
    site = write(tmp_path / "site.toml", "[ai]\nallow_gpu = false\n")
    user = write(tmp_path / "user.toml", '[ai]\nallow_gpu = true\ndevice = "cuda:1"\n')
    settings = load_settings(user, site, env)
    assert settings.ai.allow_gpu is False
    assert settings.ai.device == "cpu"
    value, source = rows(settings)["ai.device"]
    assert value == "cpu" and str(site) in source and "allow_gpu" in source
    assert any("ai.device = 'cuda:1' ignored" in w for w in settings.warnings)
    assert any("ai.allow_gpu is set by the site" in w for w in settings.warnings)
    gpu_plugin = Capabilities(frozenset({PromptKind.BOX}), frozenset({Dimension.SLICE_2D}))
    cuda_only = Capabilities(frozenset({PromptKind.BOX}), frozenset({Dimension.SLICE_2D}), devices=frozenset({"cuda"}))
    assert choose_device(gpu_plugin, "auto", "cuda", allow_gpu=False) == "cpu"
    assert choose_device(cuda_only, "cuda", "cuda", allow_gpu=False) == "cpu"
    assert choose_device(gpu_plugin, "auto", "cuda") == "cuda"
    assert all(info.device in ("", "cpu") for info in discover(settings))


def test_site_locks_more_keys(tmp_path: Path, env: dict[str, str]) -> None:
    site = write(
        tmp_path / "site.toml",
        '[policy]\nlocked = ["storage.cases_dir", "identity.source", "plugins.medsam", "models.folders"]\n'
        '[identity]\nsource = "os"\n[models]\nfolders = ["/opt/packs"]\n',
    )
    user = write(
        tmp_path / "user.toml",
        '[identity]\nsource = "setting"\nuser = "Someone Else"\n[storage]\ncases_dir = "/tmp/mine"\n'
        '[models]\nfolders = ["/home/me/packs"]\n[plugins.medsam]\ncheckpoint = "/home/me/x.pth"\n'
        "[policy]\nlocked = []\n",
    )
    settings = load_settings(user, site, env)
    assert settings.identity.source == "os"
    assert settings.identity.resolve(env)[1] == "OS login"
    assert settings.storage.cases_dir == Path(env["XDG_DATA_HOME"]) / "radlabel" / "cases"  # locked at the default
    assert settings.models.folders == (Path("/opt/packs"),)
    assert settings.plugin_options("medsam") == {}
    assert settings.locked["storage.cases_dir"] == str(site)
    assert rows(settings)["policy.locked"] == (
        sorted(["storage.cases_dir", "identity.source", "plugins.medsam", "models.folders"]),
        str(site),
    )
    for key in ("storage.cases_dir", "identity.source", "plugins.medsam.checkpoint", "models.folders"):
        assert any(f"{key} is locked by the site ({site})" in w for w in settings.warnings), key
    assert any("[policy] is read from the site file only" in w for w in settings.warnings)


def test_model_folders_concatenate_site_first_and_relative_paths(tmp_path: Path, env: dict[str, str]) -> None:
    site = write(tmp_path / "etc" / "site.toml", '[models]\nfolders = ["packs", "/opt/radlabel/packs"]\n')
    user = write(tmp_path / "home" / "user.toml", '[models]\nfolders = ["~/packs"]\ninstall_dir = "installed"\n')
    env = {**env, "RADLABEL_SITE_MODELS": str(tmp_path / "var"), "RADLABEL_BUNDLED_MODELS": str(tmp_path / "app")}
    settings = load_settings(user, site, env)
    assert settings.models.folders == (
        tmp_path / "etc" / "packs",
        Path("/opt/radlabel/packs"),
        Path("~/packs").expanduser(),
    )
    assert rows(settings)["models.folders"][1] == f"{site} + {user}"
    assert settings.models.install_dir == tmp_path / "home" / "installed"
    assert [origin for _, origin in settings.models.search_folders()] == [
        "configured",
        "configured",
        "configured",
        "user",
        "site",
        "bundled",
    ]
    assert settings.models.search_folders()[-2:] == [(tmp_path / "var", "site"), (tmp_path / "app", "bundled")]
    table = rows(settings)
    assert table["models.site_dir"] == (str(tmp_path / "var"), "$RADLABEL_SITE_MODELS")
    assert table["models.bundled_dir"] == (str(tmp_path / "app"), "$RADLABEL_BUNDLED_MODELS")


def test_cases_dir_environment_variable_wins(tmp_path: Path, env: dict[str, str]) -> None:
    user = write(tmp_path / "user.toml", '[storage]\ncases_dir = "/data/me"\n')
    settings = load_settings(user, tmp_path / "none.toml", {**env, "RADLABEL_CASES_DIR": str(tmp_path / "t")})
    assert settings.storage.cases_dir == tmp_path / "t"
    assert settings.source_of("storage.cases_dir") == "$RADLABEL_CASES_DIR"


def test_identity_sources(tmp_path: Path, env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    from radlabel.core.audit import current_user

    from_env = write(tmp_path / "env.toml", '[identity]\nsource = "env"\nenv_var = "HOSPITAL_READER"\nuser = "x"\n')
    settings = load_settings(tmp_path / "none.toml", from_env, {**env, "HOSPITAL_READER": "Dr B. Login"})
    assert settings.identity.resolve({"HOSPITAL_READER": "Dr B. Login"}) == ("Dr B. Login", "$HOSPITAL_READER", "")
    assert not settings.warnings
    # The variable unset: the OS login name, with a warning at load time and when resolved.
    unset = load_settings(tmp_path / "none.toml", from_env, env)
    assert any("$HOSPITAL_READER is not set" in w and str(from_env) in w for w in unset.warnings)
    with caplog.at_level(logging.WARNING):
        assert unset.identity.resolved_user() == current_user()
    assert "HOSPITAL_READER is not set" in caplog.text
    os_source = settings_from_mapping({"identity": {"source": "os", "user": "Ignored"}}, environ=env)
    assert os_source.identity.resolved_user() == current_user()
    setting = settings_from_mapping({"identity": {"source": "setting", "user": "Dr A"}}, environ=env)
    assert setting.identity.resolved_user() == "Dr A"
    no_user = settings_from_mapping({"identity": {"source": "setting"}}, environ=env)
    assert any("identity.user is not set" in w for w in no_user.warnings)
    assert settings_from_mapping({"identity": {"user": "Dr C"}}, environ=env).identity.resolved_user() == "Dr C"


def test_export_format_names_are_what_the_exporters_write() -> None:
    from radlabel.core.io.seg.api import output_kind

    for name, suffix in EXPORT_FORMATS.items():
        kind = output_kind(f"out{suffix}", rtstruct=name == "rtstruct")
        expected = {"dicom-seg": "seg", "rtstruct": "rtstruct"}.get(name, "labelmap")
        assert kind == expected, name


# Every key with a bad value: (section, key, TOML value, what the message says it must be).
BAD_VALUES = [
    ("identity", "source", '"ldap"', 'one of "auto", "os", "setting", "env"'),
    ("identity", "user", "42", "a string"),
    ("identity", "env_var", '"MY-VAR"', "an environment variable name"),
    ("ai", "device", '"tpu"', "one of auto, cpu, cuda, mps"),
    ("ai", "allow_gpu", '"no"', "true or false"),
    ("ai", "allowed_plugins", '"litemedsam"', "a list of strings"),
    ("ai", "extra_plugins", "[1]", "a list of strings"),
    ("ai", "load_timeout_s", "-1", "a positive number"),
    ("ai", "predict_timeout_s", '"soon"', "a positive number"),
    ("ai", "stall_timeout_s", "0", "a positive number"),
    ("ai", "cancel_grace_s", "true", "a positive number"),
    ("ai", "cache_entries", "1.5", "a positive integer"),
    ("ai", "allow_network", "1", "true or false"),
    ("storage", "cases_dir", '""', "a folder path"),
    ("storage", "case_location", '"next-to-image"', 'one of "beside-image", "cases-dir"'),
    ("models", "folders", '"/opt/packs"', "a list of folder paths"),
    ("models", "install_dir", "3", "a folder path"),
    ("export", "formats", '["dicom-seg", "png"]', "('png' is not one)"),
    ("export", "seg_type", '"probability"', 'one of "binary", "fractional", "labelmap"'),
    ("policy", "locked", '["storage.nope"]', "('storage.nope' is not a setting)"),
]


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"), BAD_VALUES, ids=[f"{s}.{k}" for s, k, _, _ in BAD_VALUES]
)
def test_every_invalid_value_names_file_line_and_key(
    tmp_path: Path, env: dict[str, str], section: str, key: str, value: str, expected: str
) -> None:
    site = write(tmp_path / "site.toml", f"# site settings\n\n[{section}]\n# a comment\n{key} = {value}\n")
    with pytest.raises(InputError) as caught:
        load_settings(tmp_path / "none.toml", site, env)
    message = str(caught.value)
    assert message.startswith(f"{site}: line 5: {section}.{key} must be ")
    assert expected in message
    assert "correct" in message.lower()  # says what to do
    assert caught.value.path == str(site)


def test_bad_value_in_the_user_file_names_the_user_file(tmp_path: Path, env: dict[str, str]) -> None:
    site = write(tmp_path / "site.toml", '[storage]\ncase_location = "cases-dir"\n')
    user = write(tmp_path / "user.toml", 'storage.case_location = "nowhere"\n')  # dotted key at the top level
    with pytest.raises(InputError, match=r"line 1: storage\.case_location must be one of") as caught:
        load_settings(user, site, env)
    assert caught.value.path == str(user)


def test_a_section_that_is_not_a_table(tmp_path: Path, env: dict[str, str]) -> None:
    user = write(tmp_path / "user.toml", 'storage = "/data"\n')
    with pytest.raises(InputError, match=r"line 1: storage must be a table") as caught:
        load_settings(user, tmp_path / "none.toml", env)
    assert str(user) in str(caught.value)


def test_unknown_keys_in_new_sections_are_warnings(tmp_path: Path, env: dict[str, str]) -> None:
    user = write(tmp_path / "user.toml", '[storage]\ncase_dir = "/x"\n[models]\nfolder = ["/y"]\n')
    settings = load_settings(user, tmp_path / "none.toml", env)
    assert any("unknown key storage.case_dir" in w for w in settings.warnings)
    assert any("unknown key models.folder" in w for w in settings.warnings)


def test_windows_site_file_is_under_programdata(monkeypatch: pytest.MonkeyPatch) -> None:
    """packaging/windows/radlabel.nsi installs the site file there; the variable still wins."""
    from radlabel.core import settings as settings_module

    monkeypatch.setattr(settings_module.sys, "platform", "win32")
    found = settings_module.site_settings_path({"PROGRAMDATA": "D:\\ProgramData"})
    assert found == Path("D:\\ProgramData") / "radlabel" / "settings.toml"
    given = settings_module.site_settings_path({"RADLABEL_SITE_SETTINGS": "/srv/site.toml"})
    assert given == Path("/srv/site.toml")
