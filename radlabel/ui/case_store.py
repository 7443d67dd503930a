"""Where the window keeps the case (a `radlabel.app.session.Session` folder) of an image it opens. Qt-free.

- **Beside the image** when the settings allow it (``storage.case_location = "beside-image"``, the default)
  and its folder is writable: ``scan.nii.gz`` -> ``scan.nii.gz.radlabel/``, a DICOM folder ``In/`` ->
  ``In.radlabel/``. A series picked from a folder holding several gets its own sub-folder
  ``series-<10 hex digits of the UID's SHA-1>``. The annotation then travels with the image.
- **In the cases folder** for read-only sources (a CD, a shared archive), or always when the site says
  ``storage.case_location = "cases-dir"`` (IT may forbid writing next to images):
  ``<cases dir>/<name>-<10 hex digits of the SHA-1 of the absolute path>[/series-...]``. The cases folder is
  ``$RADLABEL_CASES_DIR`` when set (it then takes every case, which is what tests use), else the setting
  ``storage.cases_dir``, whose default is the platform's user data folder (``~/.local/share/radlabel/cases``
  on Linux).
- The demo phantom gets a fresh case in a temporary folder each time (it is made, not read).

Opening an image whose case folder already holds a case reopens it (`Session.open`: saved segmentation,
then every journalled step after it, so work done before a crash comes back). A settings file that cannot
be read is an `InputError` naming the file, the line and the key.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from radlabel.app.session import CASE_FILE, Session
from radlabel.core.progress import ProgressCallback
from radlabel.core.segmentation.model import Segmentation
from radlabel.core.settings import CASES_DIR_ENV, Settings, load_settings
from radlabel.core.volume import Volume

CASES_DIR_VARIABLE = CASES_DIR_ENV  # "RADLABEL_CASES_DIR"
CASE_SUFFIX = ".radlabel"


def user_cases_dir(settings: Settings | None = None) -> Path:
    """``$RADLABEL_CASES_DIR``, else the setting ``storage.cases_dir`` (default: the user's data folder)."""
    given = os.environ.get(CASES_DIR_VARIABLE)
    if given:
        return Path(given).expanduser()
    settings = settings if settings is not None else load_settings()
    return settings.storage.cases_dir


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def case_folder_for(source: str | Path, series_uid: str | None = None, settings: Settings | None = None) -> Path:
    """The case folder of an image (file, DICOM folder or zip), following the rules in the module docstring."""
    path = Path(source).expanduser().absolute()
    name = path.name or "image"
    beside = path.parent
    if os.environ.get(CASES_DIR_VARIABLE):
        in_cases_dir = True
    else:
        settings = settings if settings is not None else load_settings()
        in_cases_dir = settings.storage.case_location == "cases-dir" or not os.access(beside, os.W_OK)
    if in_cases_dir:
        folder = user_cases_dir(settings) / f"{name}-{_digest(str(path))}"
    else:
        folder = beside / f"{name}{CASE_SUFFIX}"
    if series_uid:
        folder = folder / f"series-{_digest(series_uid)}"
    return folder


def has_case(folder: Path) -> bool:
    return (folder / CASE_FILE).is_file()


def open_or_create(
    volume: Volume,
    source: str | Path,
    series_uid: str | None = None,
    segmentation: Segmentation | None = None,
    progress: ProgressCallback | None = None,
    *,
    several_series: bool = False,
    settings: Settings | None = None,
) -> tuple[Session, bool]:
    """The session of ``source``'s case: reopened when it exists (returns True), else created with
    ``segmentation`` (e.g. a label map given with ``--segment``) as its starting state. ``several_series``:
    the source holds several series, so each gets its own sub-folder. The session's user (recorded in the
    journal and audit trail) is the settings' reader (`IdentitySettings.resolved_user`)."""
    settings = settings if settings is not None else load_settings()
    folder = case_folder_for(source, series_uid if several_series else None, settings)
    user = settings.identity.resolved_user()
    if has_case(folder):
        return Session.open(folder, source_path=source, progress=progress, user=user), True
    return Session.create(folder, volume, source, series_uid=series_uid, segmentation=segmentation, user=user), False


def demo_session(volume: Volume, segmentation: Segmentation) -> Session:
    """A fresh case for the demo phantom in a temporary folder (``$RADLABEL_CASES_DIR`` when set); the
    phantom is written there as ``demo-phantom.nii`` so the case can be reopened like any other."""
    from radlabel.core.io.writers import save_volume

    root = os.environ.get(CASES_DIR_VARIABLE)
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="radlabel-demo-", dir=root or None))
    image = save_volume(volume, folder / "demo-phantom.nii")
    return Session.create(folder / "case", volume, image, segmentation=segmentation)
