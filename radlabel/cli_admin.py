"""Commands for the people who install and run radlabel (registered by :func:`add_commands`). No Qt here.

- ``radlabel config show [--json]``: every effective setting, its value and the file it came from (or
  "default"), the files read and the warnings. An invalid settings file: one line, exit 2.
- ``radlabel models list [--json]`` / ``install PACK [--site] [--force]`` / ``verify [NAME] [--json]`` /
  ``remove NAME [--site]``: offline model packs (`radlabel.app.model_packs`). ``verify`` exits 1 when a
  pack fails.
- ``radlabel doctor [--json]``: checks of this installation (Python, CPUs, GPU, settings, identity, storage,
  model packs, plugins, audit logs of the cases, Qt). Exit 0 when every check passes, 1 when one fails;
  warnings do not fail. torch is imported only when a GPU driver is present; Qt is never started. The
  storage check creates the cases folder when it is missing (as opening a case would) and a temporary file.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from radlabel import __version__
from radlabel.core.errors import RadlabelError

EXIT_CHECK_FAILED = 1
OK, WARN, FAIL = "ok", "warn", "fail"


def _format_value(value: Any) -> str:
    if value is None:
        return "(not set)"
    return json.dumps(value, ensure_ascii=False, default=str)


# --- config ----------------------------------------------------------------------------------------------------


def cmd_config_show(args: argparse.Namespace) -> int:
    from radlabel.core.settings import load_settings

    settings = load_settings()
    reader, how, _ = settings.identity.resolve()
    rows = settings.effective()
    folders = settings.models.search_folders()
    if args.json:
        payload = {
            "settings": [{"key": key, "value": value, "source": source} for key, value, source in rows],
            "files": [asdict(f) for f in settings.files],
            "warnings": list(settings.warnings),
            "reader": {"name": reader, "from": how},
            "model_search_path": [{"path": str(p), "origin": origin} for p, origin in folders],
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False, default=str))
        return 0
    width = max(len(key) for key, _, _ in rows)
    values = [_format_value(value) for _, value, _ in rows]
    value_width = min(max(len(v) for v in values), 50)
    print(f"{'setting':<{width}}  {'value':<{value_width}}  source")
    for (key, _, source), value in zip(rows, values, strict=True):
        print(f"{key:<{width}}  {value:<{value_width}}  {source}")
    print()
    print(f"reader recorded in the audit trail: {reader} (from {how})")
    print("model packs are searched in:")
    for path, origin in folders:
        print(f"  {path}  ({origin})")
    print("settings files:")
    for file in settings.files:
        state = "read" if file.read else "not present (defaults)"
        print(f"  {file.role:<5} {file.path}  {state}")
    if settings.warnings:
        print("warnings:")
        for warning in settings.warnings:
            print(f"  {warning}")
    else:
        print("warnings: none")
    return 0


# --- models ----------------------------------------------------------------------------------------------------


def cmd_models_list(args: argparse.Namespace) -> int:
    from radlabel.app.model_packs import scan_packs
    from radlabel.core.settings import load_settings

    settings = load_settings()
    scan = scan_packs(settings)
    if args.json:
        payload = {
            "folders": [{"path": str(p), "origin": o, "exists": p.is_dir()} for p, o in scan.folders],
            "packs": [pack.to_json() for pack in scan.packs],
            "broken": [{"path": str(b.path), "origin": b.origin, "problem": b.problem} for b in scan.broken],
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    if not scan.packs and not scan.broken:
        print("no model packs installed; searched:")
        for path, origin in scan.folders:
            print(f"  {path}  ({origin})")
        return 0
    for pack in scan.packs:
        plugins = ", ".join(pack.manifest.plugins) or "-"
        print(f"{pack.name} {pack.version}  {pack.kind}  plugins: {plugins}  [{pack.origin}] {pack.path}")
        if pack.shadowed_by is not None:
            print(f"    shadowed by {pack.shadowed_by} (found earlier in the search order; not used)")
    for broken in scan.broken:
        print(f"broken: {broken.problem}")
    return 0


def cmd_models_install(args: argparse.Namespace) -> int:
    from radlabel.app.model_packs import install_pack
    from radlabel.cli import _progress_printer
    from radlabel.core.settings import load_settings

    progress = _progress_printer(True)
    result = install_pack(args.pack, load_settings(), site=args.site, force=args.force, progress=progress)
    pack = result.pack
    replaced = f"; replaced version {result.replaced_version}" if result.replaced_version else ""
    files = len(pack.manifest.files)
    print(f"installed {pack.name} {pack.version} ({pack.kind}, {files} file(s)) in {pack.path}{replaced}")
    return 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    from radlabel.app.model_packs import ModelPackError, scan_packs
    from radlabel.core.settings import load_settings

    scan = scan_packs(load_settings())
    packs = scan.packs
    broken = scan.broken
    if args.name:
        packs = [p for p in scan.active if p.name == args.name]
        broken = [b for b in broken if b.path.name == args.name]
        if not packs and not broken:
            raise ModelPackError("is not installed", args.name, fix="see 'radlabel models list'")
    results = [(pack, pack.verify()) for pack in packs]
    failed = any(problems for _, problems in results) or bool(broken)
    if args.json:
        payload = {
            "ok": not failed,
            "packs": [{**pack.to_json(), "problems": problems} for pack, problems in results],
            "broken": [{"path": str(b.path), "problem": b.problem} for b in broken],
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return EXIT_CHECK_FAILED if failed else 0
    for pack, problems in results:
        if problems:
            print(f"FAILED {pack.name} {pack.version} ({pack.path}):", file=sys.stderr)
            for problem in problems:
                print(f"    {problem}", file=sys.stderr)
        else:
            print(f"ok {pack.name} {pack.version}: {len(pack.manifest.files)} file(s) verified ({pack.path})")
    for item in broken:
        print(f"FAILED {item.problem}", file=sys.stderr)
    if not results and not broken:
        print("no model packs installed")
    return EXIT_CHECK_FAILED if failed else 0


def cmd_models_remove(args: argparse.Namespace) -> int:
    from radlabel.app.model_packs import remove_pack
    from radlabel.core.settings import load_settings

    removed = remove_pack(args.name, load_settings(), site=args.site)
    print(f"removed {args.name} ({removed})")
    return 0


# --- doctor ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, warn, fail
    detail: str


def _check_python() -> Iterator[Check]:
    frozen = bool(getattr(sys, "frozen", False))
    yield Check(
        "python",
        OK,
        f"Python {platform.python_version()} ({sys.executable}), radlabel {__version__}, "
        f"{'frozen application bundle' if frozen else 'not frozen'}, {platform.platform()}",
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    yield Check("cpu", OK, f"{os.cpu_count()} CPU(s), {usable} usable by this process")


def _check_gpu(settings: Any) -> Iterator[Check]:
    from radlabel.ai.registry import probe_accelerator

    parts: list[str] = []
    status = OK
    has_cuda = False
    if importlib.util.find_spec("torch") is None:
        parts.append("no torch: CPU only")
    else:
        try:
            version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        accelerator = probe_accelerator()
        if accelerator == "cpu":
            parts.append(f"torch {version}; no GPU driver found: CPU only")
        else:
            try:
                import torch  # lazy: only where a driver says there is a GPU to ask about

                if accelerator == "cuda" and torch.cuda.is_available():
                    has_cuda = True
                    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
                    parts.append(f"torch {version}, CUDA {torch.version.cuda}: {names}")
                elif accelerator == "mps" and torch.backends.mps.is_available():
                    parts.append(f"torch {version}: Apple MPS")
                else:
                    status = WARN
                    parts.append(
                        f"a {accelerator} driver is present but torch {version} cannot use it "
                        f"(built for CUDA {torch.version.cuda}): CPU only"
                    )
            except Exception as exc:
                status = WARN
                parts.append(f"torch {version} failed to import ({type(exc).__name__}: {exc}): CPU only")
    if importlib.util.find_spec("onnxruntime") is not None:
        try:
            import onnxruntime

            providers = ", ".join(onnxruntime.get_available_providers())
            parts.append(f"onnxruntime {onnxruntime.__version__}: {providers}")
        except Exception as exc:
            status = WARN
            parts.append(f"onnxruntime failed to import ({type(exc).__name__}: {exc})")
    else:
        parts.append("no onnxruntime")
    if not settings.ai.allow_gpu:
        parts.append(f"GPUs disabled by policy (ai.allow_gpu = false in {settings.source_of('ai.allow_gpu')})")
    elif settings.ai.device.startswith("cuda") and not has_cuda:
        status = WARN
        parts.append(f"ai.device = {settings.ai.device!r} ({settings.source_of('ai.device')}) but CUDA is unusable")
    yield Check("gpu", status, "; ".join(parts))


def _check_settings() -> tuple[Any, list[Check]]:
    from radlabel.core.settings import Settings, load_settings

    try:
        settings = load_settings()
    except RadlabelError as exc:
        return Settings(), [Check("settings", FAIL, f"{exc} (the other checks use the defaults)")]
    read = [f"{f.role} {f.path}" for f in settings.files if f.read]
    missing = [f"{f.role} {f.path}" for f in settings.files if not f.read]
    detail = "read: " + (", ".join(read) or "none (defaults)")
    if missing:
        detail += "; not present: " + ", ".join(missing)
    checks = [Check("settings", WARN if settings.warnings else OK, detail)]
    checks += [Check("settings", WARN, warning) for warning in settings.warnings]
    name, how, warning = settings.identity.resolve()
    checks.append(Check("identity", WARN if warning else OK, warning or f"the audit trail records {name!r} ({how})"))
    return settings, checks


def _check_storage(settings: Any) -> Iterator[Check]:
    folder = Path(settings.storage.cases_dir)
    where = (
        "every case goes there"
        if settings.storage.case_location == "cases-dir" or os.environ.get("RADLABEL_CASES_DIR")
        else "cases go beside the image when its folder is writable, else there"
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".radlabel-doctor-"):
            pass
        source = settings.source_of("storage.cases_dir")
        yield Check("storage", OK, f"cases folder {folder} is writable ({source}); {where}")
    except OSError as exc:
        yield Check(
            "storage",
            FAIL,
            f"cases folder {folder} is not writable ({exc.strerror or exc}); set storage.cases_dir "
            f"(now from {settings.source_of('storage.cases_dir')}) to a writable folder",
        )
    install = Path(settings.models.install_dir)
    probe = install if install.exists() else next((p for p in install.parents if p.exists()), install)
    if not os.access(probe, os.W_OK):
        yield Check("storage", WARN, f"models.install_dir {install} is not writable: 'radlabel models install' fails")


def _check_models(settings: Any) -> Iterator[Check]:
    from radlabel.app.model_packs import leftovers, scan_packs

    scan = scan_packs(settings)
    for pack in scan.packs:
        name = f"model pack {pack.name}"
        problems = pack.verify()
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            yield Check(name, FAIL, f"{pack.version} fails verification: {problems[0]}{more}")
        elif pack.shadowed_by is not None:
            yield Check(name, WARN, f"{pack.version} in {pack.path} is shadowed by {pack.shadowed_by} (not used)")
        else:
            files = len(pack.manifest.files)
            yield Check(name, OK, f"{pack.version} ({pack.kind}), {files} file(s) verified, {pack.path}")
    for broken in scan.broken:
        yield Check("model packs", FAIL, broken.problem)
    for leftover in leftovers(settings):
        yield Check("model packs", WARN, f"{leftover} was left by an interrupted install or remove; delete it")
    if not scan.packs and not scan.broken:
        searched = ", ".join(str(p) for p, _ in scan.folders)
        yield Check("model packs", OK, f"none installed (searched {searched})")


def _check_plugins(settings: Any) -> Iterator[Check]:
    from radlabel.ai.registry import discover

    infos = discover(settings)
    if not infos:
        yield Check("plugins", OK, "no plugins installed")
    for info in infos:
        name = f"plugin {info.name}"
        if not info.allowed:
            yield Check(name, OK, f"not allowed by policy ({info.error})")
        elif info.capabilities is None:
            yield Check(name, FAIL, info.error or "cannot be created")
        elif info.error:
            yield Check(name, WARN, f"{info.version}: {info.error}")
        else:
            digest = f" (sha256 {info.weights.sha256[:12]})" if info.weights and info.weights.sha256 else ""
            yield Check(name, OK, f"{info.version}, device {info.device}, weights present{digest}")


def _audit_files(root: Path, depth: int = 3) -> Iterator[Path]:
    from radlabel.core.audit import AUDIT_FILE_NAME

    if not root.is_dir():
        return
    for directory, dirnames, filenames in os.walk(root):
        level = len(Path(directory).relative_to(root).parts)
        if AUDIT_FILE_NAME in filenames:
            yield Path(directory, AUDIT_FILE_NAME)
        if level >= depth:
            dirnames.clear()
        dirnames.sort()


def _check_audit(settings: Any) -> Iterator[Check]:
    from radlabel.core.audit import AuditLog

    root = Path(settings.storage.cases_dir)
    good = 0
    for path in _audit_files(root):
        try:
            with AuditLog(path) as log:
                result = log.verify()
        except (RadlabelError, OSError) as exc:
            yield Check("audit", FAIL, f"{path}: cannot be read ({exc})")
            continue
        if result.ok:
            good += 1
        else:
            yield Check("audit", FAIL, f"{path}: first bad record {result.first_bad_seq}: {result.problems[0]}")
    yield Check("audit", OK, f"{good} case audit log(s) under {root} verified")


def _check_qt() -> Iterator[Check]:
    if importlib.util.find_spec("PySide6") is None:
        yield Check("qt", WARN, "PySide6 is not installed: no window (pip install 'radlabel[gui]'); the CLI works")
        return
    import PySide6  # the package only: no Qt library is loaded, no window opened

    folder = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms"
    if not folder.is_dir():
        folder = Path(PySide6.__file__).parent / "plugins" / "platforms"
    files = folder.glob("*") if folder.is_dir() else iter(())
    names = sorted({p.name.split(".")[0].removeprefix("lib").removeprefix("q") for p in files})
    platforms = ", ".join(names) or "none found"
    detail = f"PySide6 {PySide6.__version__}, platform plugins: {platforms}"
    status = OK
    if sys.platform.startswith("linux"):
        chosen = os.environ.get("QT_QPA_PLATFORM", "")
        display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        if display:
            detail += f"; display {display}"
        elif chosen.startswith("offscreen"):
            detail += "; offscreen (QT_QPA_PLATFORM)"
        else:
            status = WARN
            detail += "; no display ($DISPLAY and $WAYLAND_DISPLAY unset): only offscreen rendering (--screenshot)"
    if importlib.util.find_spec("vtkmodules") is None:  # the package the views import (bundles lack "vtk")
        status = WARN
        detail += "; VTK is not installed: no image views (pip install 'radlabel[gui]')"
    yield Check("qt", status, detail)


def run_doctor() -> list[Check]:
    """Every check of ``radlabel doctor``, in order; a check that crashes is reported as failed."""
    settings, checks = _check_settings()
    steps: list[tuple[str, Callable[[], Iterator[Check]]]] = [
        ("python", _check_python),
        ("gpu", lambda: _check_gpu(settings)),
        ("storage", lambda: _check_storage(settings)),
        ("model packs", lambda: _check_models(settings)),
        ("plugins", lambda: _check_plugins(settings)),
        ("audit", lambda: _check_audit(settings)),
        ("qt", _check_qt),
    ]
    result: list[Check] = []
    for name, step in steps:
        if name == "gpu":
            result += checks  # settings and identity after the machine itself
        try:
            result += list(step())
        except Exception as exc:
            result.append(Check(name, FAIL, f"the check crashed: {type(exc).__name__}: {exc}"))
    return result


def cmd_doctor(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    checks = run_doctor()
    failed = any(c.status == FAIL for c in checks)
    elapsed = time.perf_counter() - started
    if args.json:
        payload = {"ok": not failed, "seconds": round(elapsed, 2), "checks": [asdict(c) for c in checks]}
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return EXIT_CHECK_FAILED if failed else 0
    width = max(len(c.name) for c in checks)
    for check in checks:
        label = {OK: "ok", WARN: "WARN", FAIL: "FAIL"}[check.status]
        print(f"{label:<4}  {check.name:<{width}}  {check.detail}")
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}
    print(f"{len(checks)} checks: {counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failed ({elapsed:.1f} s)")
    return EXIT_CHECK_FAILED if failed else 0


# --- registration ------------------------------------------------------------------------------------------------


def add_commands(commands: Any) -> None:
    """Register ``config``, ``models`` and ``doctor`` on the main parser's subcommands."""
    config = commands.add_parser("config", help="the settings in effect: values and the file each comes from")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser("show", help="every setting, its value and its source; files and warnings")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_config_show)

    models = commands.add_parser("models", help="offline model packs: list, install, verify, remove")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    listing = models_commands.add_parser("list", help="installed packs in search order (shadowed ones marked)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=cmd_models_list)
    install = models_commands.add_parser("install", help="install a pack folder, .zip or .tar(.gz) after checking it")
    install.add_argument("pack", metavar="PACK", help="pack folder, .zip or .tar(.gz) holding radlabel-pack.json")
    install.add_argument("--site", action="store_true", help="install into the site folder (administrators)")
    install.add_argument("--force", action="store_true", help="replace an installed pack of the same version")
    install.set_defaults(func=cmd_models_install)
    verify = models_commands.add_parser("verify", help="recheck sizes and SHA-256 of installed packs (exit 1: failed)")
    verify.add_argument("name", nargs="?", metavar="NAME", help="only this pack")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(func=cmd_models_verify)
    remove = models_commands.add_parser("remove", help="remove an installed pack")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--site", action="store_true", help="remove it from the site folder (administrators)")
    remove.set_defaults(func=cmd_models_remove)

    doctor = commands.add_parser("doctor", help="check this installation (exit 1 when a check fails)")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=cmd_doctor)
