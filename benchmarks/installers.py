"""Installer figures: bundle and .deb size per flavour, install time, cold start and proposal time of the
installed application beside the source install (the reference: `pip install -e` in .venv).

    python packaging/build.py all            # first: dist/radlabel-<v>-linux-x86_64-cpu/ and the .deb
    sudo .venv/bin/python benchmarks/installers.py [--dist dist] [--no-install]

Targets (issue #8): CPU flavour <= 800 MB installed; cold start <= 3 s to the first rendered frame; a LiteMedSAM
proposal on the CPU within 20 % of the source install's. "Cold start" is the first launch after installing,
with the page cache dropped first where the kernel allows it (`/proc/sys/vm/drop_caches`); the warm figure is
the median of the next three launches. The frame is the demo case drawn in the window under Xvfb, reported
by the window itself through ``$RADLABEL_FIRST_FRAME_FILE``. Without root (or with --no-install) it prints
sizes only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))
sys.path.insert(0, str(ROOT / "tests"))
from check_deb import bare_env, brain_box  # noqa: E402
from conftest import find_shared_data  # noqa: E402

# packaging/build.py knows the names of what it builds; loaded by path, as "build" is also a PyPI package
# (and the name of the scratch folder at the project root).
_spec = importlib.util.spec_from_file_location("radlabel_packaging_build", ROOT / "packaging" / "build.py")
assert _spec is not None and _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

SOURCE = ROOT / ".venv" / "bin" / "radlabel"
INSTALLED = Path("/usr/bin/radlabel")


def folder_mb(path: Path) -> float:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def first_frame_s(command: list[str], env: dict[str, str], timeout: float = 60.0) -> float:
    """Seconds from starting ``command`` (the demo in a window) until the window reports its first frame."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "frame"
        started = time.time()
        process = subprocess.Popen(
            command,
            env={**env, "RADLABEL_FIRST_FRAME_FILE": str(report)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            while not report.exists() or not report.read_text().strip():
                if process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited with {process.returncode}: {process.stderr.read()[-500:]}")  # type: ignore[union-attr]
                if time.time() - started > timeout:
                    raise RuntimeError(f"{command[0]}: no frame within {timeout:.0f} s")
                time.sleep(0.005)
            return float(report.read_text().split()[0]) - started
        finally:
            process.kill()
            process.wait()


def segment_s(command: list[str], image: Path, box: str, env: dict[str, str], out: Path) -> float:
    arguments = ["segment", str(image), "--plugin", "litemedsam", "--box", box, "--label", "Tumour"]
    started = time.perf_counter()
    subprocess.run(
        [*command, *arguments, "-o", str(out), "--case", str(out.with_suffix(".case"))],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def row(name: str, measured: str, reference: str, target: str, met: bool | None) -> None:
    verdict = "" if met is None else ("met" if met else "MISSED")
    print(f"{name:<44} {measured:>14} {reference:>16} {target:>14} {verdict:>7}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--no-install", action="store_true", help="sizes only")
    args = parser.parse_args()
    print(f"{'measure':<44} {'measured':>14} {'source install':>16} {'target':>14}")
    source_mb = folder_mb(ROOT / ".venv")
    flavours = []
    for flavour in sorted(build.FLAVOURS):
        bundle = build.bundle_dir(args.dist, flavour)
        deb = build.deb_path(args.dist, flavour)
        if not bundle.is_dir():
            print(f"{flavour}: no bundle in {args.dist} (python packaging/build.py all --flavour {flavour})")
            continue
        flavours.append(flavour)
        size = folder_mb(bundle)
        target_ok = size <= 800 if flavour == "cpu" else None
        row(
            f"{flavour} bundle size",
            f"{size:.0f} MB",
            f"{source_mb:.0f} MB venv",
            "<= 800 MB" if flavour == "cpu" else "-",
            target_ok,
        )
        if deb.is_file():
            row(f"{flavour} .deb size", f"{deb.stat().st_size / 1e6:.0f} MB", "-", "-", None)
    if args.no_install or os.geteuid() != 0 or "cpu" not in flavours:
        return 0
    deb = build.deb_path(args.dist, "cpu")
    if not deb.is_file():
        return 0
    data = find_shared_data()
    env_apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    started = time.perf_counter()
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", str(deb.resolve())],
        env=env_apt,
        check=True,
        capture_output=True,
    )
    install_s = time.perf_counter() - started
    try:
        installed_mb = folder_mb(Path("/opt/radlabel"))
        row(
            "cpu installed size (/opt/radlabel)",
            f"{installed_mb:.0f} MB",
            f"{source_mb:.0f} MB venv",
            "<= 800 MB",
            installed_mb <= 800,
        )
        row("install time (apt-get install ./deb)", f"{install_s:.1f} s", "-", "-", None)
        with tempfile.TemporaryDirectory() as scratch:
            home = Path(scratch) / "home"
            home.mkdir()
            env = bare_env(home)
            if shutil.which("xvfb-run") and "DISPLAY" not in os.environ:
                from radlabel.ui import display

                server = display.start_xvfb()
                os.environ["DISPLAY"] = server.display
            env["DISPLAY"] = os.environ.get("DISPLAY", "")
            source_env = {**os.environ, "HOME": str(home)}
            dropped = drop_caches()
            cold = first_frame_s([str(INSTALLED), "--demo"], env)
            warm = statistics.median(first_frame_s([str(INSTALLED), "--demo"], env) for _ in range(3))
            drop_caches()
            source_cold = first_frame_s([str(SOURCE), "--demo"], source_env)
            source_warm = statistics.median(first_frame_s([str(SOURCE), "--demo"], source_env) for _ in range(3))
            note = "" if dropped else " (cache not dropped)"
            row("cold start to first frame" + note, f"{cold:.2f} s", f"{source_cold:.2f} s", "<= 3 s", cold <= 3.0)
            row("warm start to first frame (median of 3)", f"{warm:.2f} s", f"{source_warm:.2f} s", "-", None)
            if data is not None:
                image, box = brain_box(data)
                out = Path(scratch)
                installed = statistics.median(
                    segment_s([str(INSTALLED)], image, box, env, out / f"i{n}.nii.gz") for n in range(3)
                )
                source = statistics.median(
                    segment_s([str(SOURCE)], image, box, source_env, out / f"s{n}.nii.gz") for n in range(3)
                )
                row(
                    "`radlabel segment` LiteMedSAM box, CPU (median of 3)",
                    f"{installed:.2f} s",
                    f"{source:.2f} s",
                    "<= 1.2x source",
                    installed <= 1.2 * source,
                )
    finally:
        subprocess.run(["dpkg", "-P", build.FLAVOURS["cpu"]["package"]], check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
