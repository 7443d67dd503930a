"""The frozen application's entry point: the `radlabel` command, with the AI worker's spawn support."""

import multiprocessing
import os
import sys
from pathlib import Path


def _bundle_defaults() -> None:
    # The bundle carries its model packs beside the executable; the plugins find them through this variable
    # (radlabel.app.model_packs). A value set by the site or the user wins.
    base = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
    models = base / "models"
    if models.is_dir():
        os.environ.setdefault("RADLABEL_BUNDLED_MODELS", str(models))


if __name__ == "__main__":
    # A spawned AI worker re-enters here; freeze_support runs it and exits instead of starting the CLI.
    multiprocessing.freeze_support()
    _bundle_defaults()
    from radlabel.cli import main

    sys.exit(main())
