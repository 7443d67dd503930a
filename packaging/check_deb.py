"""Install the built .deb and check the installed application, not the source tree (CI runs this as root).

    python packaging/check_deb.py dist/radlabel_<version>_amd64.deb [--data ../shared/data]

1. installs it non-interactively (``apt-get install ./radlabel_*.deb``: dependencies come from the distribution);
2. checks the installed files: command on PATH, desktop entry, icon, file types, site settings, no PyTorch;
3. from ``/usr/bin/radlabel`` with a bare environment (no virtual environment, no source tree on any path):
   ``doctor``, ``plugins list``, a real DICOM series opened under Xvfb with ``--screenshot``, and
   ``radlabel segment`` with the built-in LiteMedSAM inside a network namespace without network
   (``unshare -n``), whose mask is compared with the one the source tree's ``radlabel segment`` produces;
4. removes the package and checks that the reader's case (journal, audit log) and the site's data stay, then
   purges it and checks that only the configuration went.

Run it with the development environment's Python (``.venv/bin/python``): the comparison reads both masks with
radlabel from the source tree. Prints one line per check; exit status 1 when any failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import find_shared_data  # noqa: E402  (the one place that knows where the test data lives)

INSTALLED = Path("/usr/bin/radlabel")
BRAIN = "pyradiomics/brain1_gbm_t1gd_tumour_label"
TILTED_CT = "dcm_qa/ct_ge_gantry_tilt/In"
MIN_DICE_WITH_SOURCE = 0.98  # ONNX Runtime vs PyTorch: the masks differ only in a few boundary pixels

failures: list[str] = []


def check(ok: bool, what: str, detail: str = "") -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {what}" + (f"  ({detail})" if detail else ""), flush=True)
    if not ok:
        failures.append(what)
    return ok


def run(
    command: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def bare_env(home: Path) -> dict[str, str]:
    """What a reader's login session gives the app: no virtual environment, no PYTHONPATH, a fresh home."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    }


def brain_box(data: Path) -> tuple[Path, str]:
    """The brain tumour image and a box (i0,j0,k0,i1,j1,k1) around its label on the label's largest slice."""
    from radlabel.core.io.loader import load

    folder = data / BRAIN
    image = next(folder.rglob("brain1_image.nrrd"))
    label = load(next(folder.rglob("brain1_label.nrrd"))).volume.array  # (k, j, i)
    k = int(np.argmax((label > 0).sum(axis=(1, 2))))
    js, is_ = np.nonzero(label[k] > 0)
    box = f"{is_.min() - 3},{js.min() - 3},{k},{is_.max() + 3},{js.max() + 3},{k}"
    return image, box


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def read_mask(path: Path) -> np.ndarray:
    from radlabel.core.io.loader import load

    mask: np.ndarray = load(path).volume.array > 0
    return mask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("deb", type=Path)
    parser.add_argument("--data", type=Path, help="the shared test data (default: found like the tests find it)")
    args = parser.parse_args(argv)
    data = args.data or find_shared_data()
    if data is None:
        print("FAIL  ../shared/data not found", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("FAIL  installing a .deb needs root", file=sys.stderr)
        return 1
    package = subprocess.run(["dpkg-deb", "-f", str(args.deb), "Package"], capture_output=True, text=True, check=True)
    name = package.stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="radlabel-deb-check-"))
    home = work / "home"
    home.mkdir()
    env = bare_env(home)

    # 1. install
    started = time.perf_counter()
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", str(args.deb.resolve())],
        env=apt_env,
        capture_output=True,
        text=True,
    )
    if not check(result.returncode == 0, f"non-interactive install of {args.deb.name}", result.stderr.strip()[-300:]):
        return 1
    print(f"      installed in {time.perf_counter() - started:.1f} s")

    try:
        checks_after_install(args, data, name, work, home, env)
    finally:
        if Path("/var/lib/dpkg/info").joinpath(f"{name}.list").exists():
            subprocess.run(["dpkg", "-P", name], capture_output=True)  # never leave a half-checked install
    shutil.rmtree(work, ignore_errors=True)
    print(f"{len(failures)} check(s) failed" if failures else "all installed-package checks passed")
    return 1 if failures else 0


def checks_after_install(
    args: argparse.Namespace, data: Path, name: str, work: Path, home: Path, env: dict[str, str]
) -> None:
    # 2. installed files
    check(INSTALLED.is_symlink() and INSTALLED.resolve() == Path("/opt/radlabel/radlabel"), "radlabel on PATH")
    check(shutil.which("radlabel", path=env["PATH"]) == str(INSTALLED), "`radlabel` resolves to the installed one")
    desktop = Path("/usr/share/applications/radlabel.desktop")
    check(desktop.is_file() and "MimeType=application/dicom" in desktop.read_text(), "desktop entry with file types")
    check(Path("/usr/share/icons/hicolor/256x256/apps/radlabel.png").is_file(), "icon")
    check(Path("/usr/share/mime/packages/radlabel.xml").is_file(), "NIfTI/NRRD/DICOM file types")
    check(Path("/etc/radlabel/settings.toml").is_file(), "site settings file")
    torch_files = [p for p in Path("/opt/radlabel").rglob("*torch*")]
    check(not torch_files or name != "radlabel", "no PyTorch in the CPU flavour", f"{len(torch_files)} torch files")

    # 3. the installed command, from a bare environment
    result = run([str(INSTALLED), "doctor"], env)
    check(
        result.returncode == 0, "radlabel doctor", (result.stdout + result.stderr).strip().splitlines()[-1:].__str__()
    )
    print(result.stdout)
    result = run([str(INSTALLED), "plugins", "list"], env)
    check(
        result.returncode == 0 and "litemedsam" in result.stdout, "plugins list shows litemedsam", result.stdout[:400]
    )

    shot = work / "tilted.png"
    result = run(["xvfb-run", "-a", str(INSTALLED), "open", str(data / TILTED_CT), "--screenshot", str(shot)], env)
    if check(result.returncode == 0 and shot.is_file(), "screenshot of a real DICOM series", result.stderr[-400:]):
        from PySide6.QtGui import QImage

        picture = QImage(str(shot))
        values = {picture.pixel(x, y) for x in range(0, picture.width(), 7) for y in range(0, picture.height(), 7)}
        check(picture.width() >= 800 and len(values) > 50, "the screenshot shows images", f"{len(values)} colours")

    image, box = brain_box(data)
    common = ["segment", str(image), "--plugin", "litemedsam", "--box", box, "--label", "Tumour"]
    installed_mask = work / "installed.nii.gz"
    case = home / "cases" / "brain1"
    started = time.perf_counter()
    result = run(["unshare", "-n", str(INSTALLED), *common, "-o", str(installed_mask), "--case", str(case)], env)
    offline_s = time.perf_counter() - started
    check(
        result.returncode == 0 and installed_mask.is_file(),
        "segment with the built-in model, no network",
        result.stderr[-400:],
    )
    source_mask = work / "source.nii.gz"
    source = [
        sys.executable,
        "-m",
        "radlabel.cli",
        *common,
        "-o",
        str(source_mask),
        "--case",
        str(work / "source-case"),
    ]
    result = run(source, {**os.environ, "PYTHONPATH": str(ROOT)})
    check(result.returncode == 0, "segment from the source tree", result.stderr[-400:])
    if installed_mask.is_file() and source_mask.is_file():
        a, b = read_mask(installed_mask), read_mask(source_mask)
        score = dice(a, b)
        check(
            score >= MIN_DICE_WITH_SOURCE and a.sum() > 100,
            "installed mask = source-tree mask",
            f"Dice {score:.4f}, {int(a.sum())} vs {int(b.sum())} voxels, {offline_s:.1f} s",
        )
    audit = case / "audit.sqlite"
    check(audit.is_file(), "the offline proposal is in the case's audit log")
    result = run([str(INSTALLED), "audit", "verify", str(case)], env)
    check(result.returncode == 0, "audit log verifies", result.stdout.strip()[-200:])

    # 4. remove keeps the reader's data, purge removes only the configuration
    site_data = Path("/var/lib/radlabel")
    result = run(["dpkg", "-r", name])
    check(
        result.returncode == 0 and not INSTALLED.exists() and not Path("/opt/radlabel").exists(),
        "remove",
        result.stderr[-200:],
    )
    check(
        audit.is_file() and (case / "journal.sqlite").is_file(), "remove keeps the reader's case, journal and audit log"
    )
    check(Path("/etc/radlabel/settings.toml").is_file(), "remove keeps the site settings")
    result = run(["dpkg", "-P", name])
    check(
        result.returncode == 0 and not Path("/etc/radlabel/settings.toml").exists(), "purge removes the site settings"
    )
    check(site_data.is_dir() and audit.is_file(), "purge keeps /var/lib/radlabel and the reader's data")


if __name__ == "__main__":
    sys.exit(main())
