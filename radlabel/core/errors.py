"""Typed errors of radlabel.

Every error a user can cause with bad input is a subclass of :class:`RadlabelError`. Its message is one line
that names the file and says what is wrong and, where there is one, what to do about it. The CLI prints that
line and exits with code 2; the GUI shows it in a message box. Neither prints a traceback.
"""

from __future__ import annotations

from pathlib import Path


class RadlabelError(Exception):
    """Base of all errors radlabel reports to a user."""

    def __init__(self, message: str, path: str | Path | None = None, fix: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.problem = message
        self.fix = fix
        parts = [f"{self.path}: {message}" if self.path else message]
        if fix:
            parts.append(fix[:1].upper() + fix[1:])
        super().__init__(". ".join(p.rstrip(".") for p in parts) + ".")


class InputError(RadlabelError):
    """An input path or file cannot be used."""


class UnreadablePathError(InputError):
    """The path does not exist or cannot be read (permissions, I/O error)."""


class EmptyInputError(InputError):
    """A folder, zip or DICOMDIR holds no image the readers understand."""


class UnsupportedFormatError(InputError):
    """The file is neither DICOM nor a volume format radlabel reads."""


class NotDicomError(UnsupportedFormatError):
    """The file is not a DICOM file (or too damaged to be recognised as one)."""


class NoPixelDataError(InputError):
    """The DICOM file is valid but holds no image (RTSTRUCT, SR, ...)."""


class CorruptPixelDataError(InputError):
    """Pixel data are truncated or cannot be decoded."""


class UnsupportedTransferSyntaxError(InputError):
    """The pixel data use an encoding no installed decoder handles, or the transfer syntax is missing."""


class InconsistentSeriesError(InputError):
    """The files of one series cannot form a volume (mixed sizes, no positions, ...)."""


class SeriesNotFoundError(InputError):
    """A series UID asked for is not in the input, or the input holds several and none was chosen."""


class OutputError(RadlabelError):
    """An output file cannot be written (unknown extension, unwritable folder, ...)."""


class Cancelled(RadlabelError):
    """The user cancelled a long operation through its progress callback."""

    def __init__(self, what: str = "operation") -> None:
        super().__init__(f"{what} cancelled")


class EditError(RadlabelError):
    """An edit cannot be applied (unknown segment, region off the grid, masking rules that do not fit)."""


class LockedSegmentError(EditError):
    """The segment an edit would change is locked; unlock it first."""


class CaseError(RadlabelError):
    """A case folder cannot be created or opened (missing source image, open elsewhere, not a case)."""


class JournalError(CaseError):
    """The edit journal cannot be written; the edit that needed it was not applied."""


class PluginError(RadlabelError):
    """An AI plugin cannot be found, loaded or run, or it failed; the session and its edits are unaffected."""

    def __init__(self, message: str, plugin: str = "", fix: str | None = None, details: str = "") -> None:
        self.plugin = plugin
        self.details = details  # e.g. the plugin's traceback, for a log or a "details" button
        super().__init__(f"plugin '{plugin}': {message}" if plugin else message, fix=fix)


class PluginCrashedError(PluginError):
    """The plugin's worker process died (crash, segfault, killed for memory); ``exit_code`` says how."""

    def __init__(self, message: str, plugin: str = "", fix: str | None = None, exit_code: int | None = None) -> None:
        self.exit_code = exit_code  # negative: killed by that signal (-9 SIGKILL is what an OOM kill looks like)
        super().__init__(message, plugin, fix)


class PluginTimeoutError(PluginError):
    """The plugin did not answer within its time limit; its worker was stopped."""


class PluginWeightsError(PluginError):
    """A plugin's weights are missing or their SHA-256 differs from the expected one; they were not loaded."""


class PluginNetworkError(PluginError):
    """A plugin tried to use the network, which plugins must never do at run time."""
