"""Plugin discovery: the installed example plugin, broken plugins, site policy, `radlabel plugins list`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from radlabel.ai import registry
from radlabel.ai.sdk import SDK_VERSION, Dimension, PromptKind
from radlabel.cli import main
from radlabel.core.errors import PluginError
from radlabel.core.settings import AISettings, Settings, load_settings

from .conftest import MISBEHAVING

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PARAMETERS = ROOT / "plugins" / "radlabel-example-threshold" / "radlabel_example_threshold" / "parameters.json"


def by_name(infos: list[registry.PluginInfo]) -> dict[str, registry.PluginInfo]:
    named: dict[str, registry.PluginInfo] = {}
    for info in infos:
        named.setdefault(info.name, info)  # the first declaration of a name is the one used
    return named


def test_installed_example_plugin_is_discovered() -> None:
    info = by_name(registry.discover(Settings()))["example-threshold"]
    assert info.usable, info.error
    assert info.source.origin == "entry point"
    assert info.source.package == "radlabel-example-threshold"
    assert info.source.target == "radlabel_example_threshold.plugin:create"
    # the example plugin was written against SDK 1.1; the registry accepts any 1.x
    assert info.version == "0.1.0" and info.sdk_version == "1.1" and SDK_VERSION.startswith("1.")
    assert info.capabilities is not None
    assert info.capabilities.prompt_kinds == {PromptKind.BOX, PromptKind.POINT}
    assert Dimension.SLICE_2D in info.capabilities.dimensions
    assert info.device == "cpu"  # it declares CPU only, whatever the machine has
    assert info.weights is not None and info.weights.present
    assert info.weights.sha256 == hashlib.sha256(EXAMPLE_PARAMETERS.read_bytes()).hexdigest()


def test_listing_imports_no_torch_and_prints_json(tmp_path: Path) -> None:
    """In a fresh interpreter: `radlabel plugins list --json` lists the example plugin and never imports torch
    (the site allows only the example plugin, so other installed plugins are listed without running them)."""
    site = tmp_path / "site.toml"
    site.write_text('[ai]\nallowed_plugins = ["example-threshold"]\n', encoding="utf-8")
    code = (
        "import sys, json\n"
        "from radlabel.cli import main\n"
        "rc = main(['plugins', 'list', '--json'])\n"
        "assert rc == 0\n"
        "assert 'torch' not in sys.modules, 'listing imported torch'\n"
        "assert 'PySide6' not in sys.modules\n"
    )
    env = {
        **os.environ,
        "RADLABEL_SETTINGS": str(tmp_path / "none.toml"),
        "RADLABEL_SITE_SETTINGS": str(site),
    }
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = {entry["name"]: entry for entry in json.loads(done.stdout)}
    example = listed["example-threshold"]
    assert example["usable"] and example["allowed"]
    assert example["capabilities"]["prompt_kinds"] == ["box", "point"]
    assert example["device"] == "cpu"
    assert example["weights"]["present"] is True and len(example["weights"]["sha256"]) == 64
    assert example["package"] == "radlabel-example-threshold"
    for name, entry in listed.items():
        if name != "example-threshold":
            assert not entry["allowed"] and "allowed_plugins" in entry["error"] and str(site) in entry["error"]


def test_plugins_list_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "list"]) == 0
    out = capsys.readouterr().out
    assert "example-threshold 0.1.0 (radlabel-example-threshold 0.1.0)" in out
    assert "prompts box, point | 2d, 3d | modalities any | device cpu | weights present (sha256 " in out


def test_broken_plugins_are_listed_with_their_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "RADLABEL_EXTRA_PLUGINS",
        f"broken={MISBEHAVING}:create_broken, not-a-plugin={MISBEHAVING}:create_not_a_plugin "
        f"future={MISBEHAVING}:create_future_sdk,missing=no_such_module:create,"
        f"example-threshold={MISBEHAVING}:create",
    )
    infos = by_name(registry.discover(Settings()))
    assert "RuntimeError: factory exploded" in infos["broken"].error
    assert "not a radlabel plugin" in infos["not-a-plugin"].error
    assert f"written for plugin SDK 2.0; this radlabel provides SDK {SDK_VERSION}" in infos["future"].error
    assert "ModuleNotFoundError" in infos["missing"].error
    assert infos["example-threshold"].usable  # the installed one keeps the name
    duplicates = [i for i in registry.discover(Settings()) if i.name == "example-threshold" and i.error]
    assert len(duplicates) == 1 and "already used by radlabel-example-threshold" in duplicates[0].error
    assert infos["broken"].source.origin == "$RADLABEL_EXTRA_PLUGINS"


def test_bad_extra_spec_is_one_listed_error() -> None:
    infos = registry.discover(Settings(ai=AISettings(extra_plugins=("not a spec",))))
    assert len(infos) == 1 and "not 'name=module:function'" in infos[0].error


def test_unnamed_extra_is_named_by_its_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADLABEL_EXTRA_PLUGINS", f"{MISBEHAVING}:create")
    assert by_name(registry.discover(Settings()))["misbehaving"].usable
    source, plugin = registry.resolve("misbehaving", Settings())
    assert plugin.name == "misbehaving" and source.origin == "$RADLABEL_EXTRA_PLUGINS"


def test_site_policy_blocks_without_running_plugin_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[ai]\nallowed_plugins = ["misbehaving"]\n', encoding="utf-8")
    monkeypatch.setenv("RADLABEL_SITE_SETTINGS", str(site))
    monkeypatch.setenv("RADLABEL_EXTRA_PLUGINS", f"misbehaving={MISBEHAVING}:create {MISBEHAVING}:create_broken")
    settings = load_settings()
    infos = registry.discover(settings)
    named = by_name(infos)
    assert named["misbehaving"].usable
    assert not named["example-threshold"].allowed and named["example-threshold"].capabilities is None
    unnamed = [i for i in infos if i.name.endswith(":create_broken")]
    assert unnamed and not unnamed[0].allowed  # under a policy an extra must be named to be checked
    with pytest.raises(PluginError, match=rf"not in ai.allowed_plugins of {site}"):
        registry.resolve("example-threshold", settings)


def test_unknown_plugin_names_the_installed_ones() -> None:
    with pytest.raises(PluginError, match=r"plugin 'nope': no such plugin \(installed: .*example-threshold"):
        registry.resolve("nope", Settings())


def test_example_weights_with_wrong_hash_are_not_present(tmp_path: Path) -> None:
    parameters = tmp_path / "parameters.json"
    parameters.write_text('{"otsu_bins": 16}', encoding="utf-8")
    settings = Settings(plugins={"example-threshold": {"parameters": str(parameters), "parameters_sha256": "12" * 32}})
    from radlabel.ai import sdk

    monkey = sdk._settings_object
    sdk._settings_object = settings
    try:
        info = by_name(registry.discover(settings))["example-threshold"]
    finally:
        sdk._settings_object = monkey
    assert info.weights is not None and not info.weights.present and not info.usable
    assert "refusing to load" in info.error and str(parameters) in info.error
