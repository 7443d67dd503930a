"""Decode the stored pixel values of one image plane (before rescale).

Native little/big endian data on disk are read straight from the file at the offset found while parsing
the header (no second parse, no copy of the whole dataset). Everything else (JPEG, JPEG-LS, JPEG 2000, RLE,
deflate, zip members, mosaics) goes through pydicom and its pylibjpeg / gdcm decoders; decoded files are
cached per load so a multi-frame or mosaic file is decoded once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray

from radlabel.core.errors import CorruptPixelDataError, UnsupportedTransferSyntaxError
from radlabel.core.io.dicom.frames import NATIVE_SYNTAXES, FrameRecord


def stored_dtype(record: FrameRecord, byteorder: str = "=") -> np.dtype[Any]:
    kind = "i" if record.signed else "u"
    return np.dtype(f"{byteorder}{kind}{record.bits_allocated // 8}")


def fix_unused_bits(values: NDArray[Any], record: FrameRecord) -> NDArray[Any]:
    """Clear garbage above BitsStored, and sign-extend signed values whose sign bit is bit BitsStored-1."""
    bits = record.bits_stored
    if bits >= record.bits_allocated or bits <= 0:
        return values
    if record.signed:
        unsigned = values.view(np.dtype(f"u{values.dtype.itemsize}")) & ((1 << bits) - 1)
        sign = 1 << (bits - 1)
        result: NDArray[Any] = ((unsigned ^ sign).astype(np.int32) - sign).astype(values.dtype)
        return result
    masked: NDArray[Any] = values & np.array((1 << bits) - 1, dtype=values.dtype)
    return masked


class PixelReader:
    """Reads planes of many records, caching decoded multi-frame/mosaic files between calls."""

    def __init__(self) -> None:
        self._cache_key: str | None = None
        self._cache: NDArray[Any] | None = None

    def read(self, record: FrameRecord) -> NDArray[Any]:
        native = record.transfer_syntax in NATIVE_SYNTAXES and record.pixel_offset is not None
        if native and record.mosaic_tile is None and record.source.is_plain_file:
            plane = self._read_native(record)
        else:
            plane = self._decoded(record)
        return fix_unused_bits(plane, record)

    def _read_native(self, record: FrameRecord) -> NDArray[Any]:
        assert record.source.path is not None and record.pixel_offset is not None
        order = NATIVE_SYNTAXES[record.transfer_syntax][0]
        dtype = stored_dtype(record, order)
        count = record.rows * record.cols
        offset = record.pixel_offset + (record.frame or 0) * count * dtype.itemsize
        try:
            values = np.fromfile(record.source.path, dtype=dtype, count=count, offset=offset)
        except OSError as exc:
            raise CorruptPixelDataError(f"pixel data cannot be read ({exc})", record.source.name) from exc
        if values.size != count:
            raise CorruptPixelDataError(
                f"pixel data are truncated: {values.size * dtype.itemsize} of {count * dtype.itemsize} bytes present",
                record.source.name,
            )
        return values.reshape(record.rows, record.cols).astype(dtype.newbyteorder("="), copy=False)

    def _decoded(self, record: FrameRecord) -> NDArray[Any]:
        key = record.source.name
        if self._cache_key != key:
            self._cache = None
            self._cache_key = key
            self._cache = _decode_file(record)
        assert self._cache is not None
        array = self._cache
        if record.mosaic_tile is not None:
            tile, per_side, _ = record.mosaic_tile
            r, c = divmod(tile, per_side)
            return array[r * record.rows : (r + 1) * record.rows, c * record.cols : (c + 1) * record.cols]
        if array.ndim == 3:
            return array[record.frame or 0]
        return array


def _decode_file(record: FrameRecord) -> NDArray[Any]:
    name = record.source.name
    try:
        with record.source.open() as stream:
            ds = pydicom.dcmread(stream, force=True)
    except Exception as exc:
        raise CorruptPixelDataError(f"cannot be read again for its pixels ({exc})", name) from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise CorruptPixelDataError("has no pixel data", name)
    try:
        array: NDArray[Any] = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        syntax = getattr(ds.file_meta.get("TransferSyntaxUID"), "name", record.transfer_syntax)
        lowered = text.lower()
        decoders_failed = "exceptions were raised by all available plugins" in lowered
        if not decoders_failed and any(
            hint in lowered for hint in ("no available plugin", "no pixel data handler", "missing", "not supported")
        ):
            raise UnsupportedTransferSyntaxError(
                f"pixel data in {syntax} cannot be decoded ({text[:120]})",
                name,
                "install pylibjpeg-libjpeg, pylibjpeg-openjpeg and python-gdcm (radlabel's dependencies)",
            ) from exc
        detail = text.split("plugins:", 1)[-1].strip() if decoders_failed else text
        raise CorruptPixelDataError(
            f"{syntax} pixel data are damaged: every installed decoder failed ({detail[:140]})", name
        ) from exc
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptPixelDataError(f"pixel data cannot be decoded ({text[:160]})", name) from exc
    expected_frames = record.n_frames
    if expected_frames > 1 and (array.ndim != 3 or array.shape[0] != expected_frames):
        raise CorruptPixelDataError(f"decoded {array.shape} but the header announces {expected_frames} frames", name)
    return array.astype(array.dtype.newbyteorder("="), copy=False)
