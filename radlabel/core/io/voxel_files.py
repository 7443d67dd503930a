"""The image model NRRD and MetaImage headers describe, and reading/writing their voxel bytes.

:mod:`radlabel.core.io.nrrd` and :mod:`radlabel.core.io.metaimage` parse their headers into an
:class:`ImageHeader` with the geometry ITK gives such a file (``size``, ``spacing``, ``origin`` in LPS, and
``direction`` with the axes as columns, all in ITK's (i, j, k, t) order) and a list of :class:`DataPiece` saying
where the voxel bytes are and how they are encoded. :meth:`ImageHeader.read` then returns the voxels in the
layout ``SimpleITK.GetArrayFromImage`` gives: ``[t, k, j, i]`` (slowest axis first), with a last axis of
``components`` for vector images.

Reading keeps memory close to the volume's size: raw data go straight from the file into the array
(``numpy.fromfile``) and compressed data are inflated block by block into a preallocated buffer. Every
failure is an :class:`InputError` subclass naming the file; a short file says how many bytes it holds.
"""

from __future__ import annotations

import bz2
import contextlib
import math
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BufferedReader
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from radlabel.core.errors import CorruptPixelDataError, InputError, UnreadablePathError, UnsupportedFormatError

Encoding = Literal["raw", "gzip", "bzip2", "zlib", "ascii", "hex"]
"""``zlib`` accepts zlib and gzip streams (as MetaIO's inflate does); ``gzip`` the same plus concatenated members."""

COMPRESSED: frozenset[str] = frozenset({"gzip", "bzip2", "zlib"})

#: Compressed input is read, and output produced, in blocks of this many bytes (bounds memory for data that
#: compress 1000:1, such as empty label maps).
_BLOCK = 1 << 22
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class DataPiece:
    """One run of voxel data in one file (a header may spread the volume over several files).

    ``offset``: where the data (or the compressed stream) begin; ``line_skip`` lines and then ``byte_skip`` bytes
    after it are skipped first. ``byte_skip == -1`` means the data are the last bytes of the file (raw only). For
    compressed encodings ``byte_skip`` is applied to the *decompressed* bytes, as teem does for NRRD, and
    ``compressed_size`` (MetaImage's CompressedDataSize) bounds the compressed bytes read.
    """

    path: Path
    offset: int
    encoding: Encoding
    elements: int
    line_skip: int = 0
    byte_skip: int = 0
    compressed_size: int | None = None


@dataclass
class ImageHeader:
    """What a NRRD or MetaImage header says, as ITK's ImageIO reports it (see the module documentation)."""

    path: Path
    format: str
    dimension: int
    size: tuple[int, ...]
    components: int
    dtype: np.dtype[Any]
    """Element type in native byte order (what the array holds)."""
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: NDArray[np.float64]
    byte_order: Literal["<", ">"]
    pieces: list[DataPiece]
    fields: dict[str, str] = field(default_factory=dict)
    """Header fields and key/value pairs as text (3D Slicer's ``Segment0_Name`` etc. among them)."""
    warnings: list[str] = field(default_factory=list)
    file_shape: tuple[int, ...] = ()
    """Shape of the element stream as stored, slowest axis first (empty: ``array_shape``)."""
    component_axis: int | None = None
    """Axis of ``file_shape`` holding the components when it is not already the last (NRRD list axes)."""

    @property
    def array_shape(self) -> tuple[int, ...]:
        shape = tuple(reversed(self.size))
        return (*shape, self.components) if self.components > 1 else shape

    @property
    def elements(self) -> int:
        return int(np.prod(self.size, dtype=np.int64)) * self.components

    @property
    def nbytes(self) -> int:
        return self.elements * self.dtype.itemsize

    @property
    def data_files(self) -> list[Path]:
        """Files other than the header that hold voxel data, in reading order, without repeats."""
        seen: list[Path] = []
        for piece in self.pieces:
            if piece.path != self.path and piece.path not in seen:
                seen.append(piece.path)
        return seen

    def read(self, progress: Callable[[float], None] | None = None) -> NDArray[Any]:
        """The voxels in SimpleITK's array layout (see the module documentation), native byte order."""
        for piece in self.pieces:
            # before allocating: a damaged header must not make us reserve gigabytes for a file of kilobytes
            _check_available(piece, piece.elements * self.dtype.itemsize, self.path)
        flat = np.empty(self.elements, dtype=self.dtype)
        start = 0
        for n, piece in enumerate(self.pieces):
            stop = start + piece.elements
            _read_piece(piece, flat[start:stop], self.byte_order, self.path)
            start = stop
            if progress is not None:
                progress((n + 1) / len(self.pieces))
        if self.component_axis is None:
            return flat.reshape(self.array_shape)
        stored = flat.reshape(self.file_shape)
        return np.ascontiguousarray(np.moveaxis(stored, self.component_axis, -1))


# --------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------


def truncated_error(header_path: Path, piece_path: Path, available: int, expected: int) -> CorruptPixelDataError:
    where = "the file" if piece_path == header_path else f"the voxel data file {piece_path.name}"
    return CorruptPixelDataError(
        f"{where} ends after {max(available, 0)} of {expected} bytes of image data "
        "(it is truncated, e.g. an interrupted download or copy)",
        header_path,
    )


def _data_start(f: BufferedReader, piece: DataPiece) -> int:
    f.seek(piece.offset)
    for _ in range(piece.line_skip):
        if not f.readline():
            break
    return f.tell()


def _read_piece(piece: DataPiece, out: NDArray[Any], byte_order: str, header_path: Path) -> None:
    """Fill ``out`` (native dtype, ``piece.elements`` long) from the piece's file."""
    try:
        with open(piece.path, "rb") as f:
            if piece.encoding in COMPRESSED:
                _read_compressed(f, piece, out, byte_order, header_path)
            elif piece.encoding == "raw":
                _read_raw(f, piece, out, byte_order, header_path)
            else:
                _read_text(f, piece, out, byte_order, header_path)
    except FileNotFoundError:
        raise UnreadablePathError(f"the voxel data file {piece.path.name} is missing", header_path) from None
    except PermissionError:
        raise UnreadablePathError(f"the voxel data file {piece.path.name} cannot be read", header_path) from None


#: Deflate cannot expand data more than ~1032:1; a stream shorter than needed / this cannot hold the voxels.
_DEFLATE_MAX_RATIO = 1100


def _raw_span(f: BufferedReader, piece: DataPiece, nbytes: int) -> tuple[int, int]:
    """(start, bytes available from there) of a piece's stored data in its open file. The byte skip counts here
    only for uncompressed data (compressed streams skip decompressed bytes)."""
    size = os.fstat(f.fileno()).st_size
    if piece.byte_skip == -1:
        start = size - nbytes
    else:
        start = _data_start(f, piece) + (0 if piece.encoding in COMPRESSED else piece.byte_skip)
    return start, size - max(start, 0) if start >= 0 else size


def _check_available(piece: DataPiece, nbytes: int, header_path: Path) -> None:
    """Raise the truncation error now when the piece's file cannot hold its data (raw: exactly; deflate: by the
    largest possible expansion, then counting what the stream really gives)."""
    if piece.encoding not in ("raw", "gzip", "zlib"):
        return  # text is checked while parsed; bzip2 has no useful bound on its expansion
    try:
        with open(piece.path, "rb") as f:
            start, available = _raw_span(f, piece, nbytes)
            if piece.encoding == "raw":
                if available < nbytes or start < 0:
                    raise truncated_error(header_path, piece.path, available, nbytes)
                return
            compressed = available if piece.compressed_size is None else min(available, piece.compressed_size)
            needed = nbytes + max(piece.byte_skip, 0)
            if compressed * _DEFLATE_MAX_RATIO >= needed:
                return
            f.seek(start)
            got = 0
            with contextlib.suppress(zlib.error):
                for block in _inflated_blocks(f, piece.encoding, piece.compressed_size):
                    got += len(block)
            raise truncated_error(header_path, piece.path, got - max(piece.byte_skip, 0), nbytes)
    except OSError:
        return  # missing or unreadable: _read_piece says so precisely


def _read_raw(f: BufferedReader, piece: DataPiece, out: NDArray[Any], byte_order: str, header_path: Path) -> None:
    nbytes = out.nbytes
    start, available = _raw_span(f, piece, nbytes)
    if available < nbytes or start < 0:
        raise truncated_error(header_path, piece.path, available, nbytes)
    f.seek(start)
    view = out.view(np.uint8)
    filled = f.readinto(view.data)
    if filled != nbytes:
        raise truncated_error(header_path, piece.path, filled or 0, nbytes)
    if out.dtype.itemsize > 1 and byte_order != _native_order():
        out.byteswap(inplace=True)


def _native_order() -> str:
    return "<" if np.little_endian else ">"


def _inflated_blocks(f: BufferedReader, encoding: str, limit: int | None) -> Iterator[bytes]:
    """Decompressed data in blocks of at most ``_BLOCK`` bytes, until the stream (and any further gzip members)
    or the input ends. A stream that stops early just ends the iteration; the caller counts the bytes."""
    budget = limit

    def more() -> bytes:
        nonlocal budget
        size = _BLOCK if budget is None else min(_BLOCK, budget)
        data = f.read(size) if size > 0 else b""
        if budget is not None:
            budget -= len(data)
        return data

    if encoding == "bzip2":
        bz = bz2.BZ2Decompressor()
        data = more()
        while True:
            if bz.eof:
                rest = bz.unused_data or more()
                if not rest.startswith(b"BZh"):
                    return
                bz, data = bz2.BZ2Decompressor(), rest
            if bz.needs_input and not data:
                data = more()
                if not data:
                    return
            block = bz.decompress(data if bz.needs_input else b"", _BLOCK)
            data = b""
            if block:
                yield block
    else:
        # wbits 47: zlib or gzip wrapper, detected from the stream itself (teem's gzread and MetaIO's inflate
        # accept what they accept); concatenated gzip members are read one after the other, as gzread does.
        inflate = zlib.decompressobj(47)
        data = more()
        while True:
            if not data:
                data = more()
                if not data:
                    return
            block = inflate.decompress(data, _BLOCK)
            data = inflate.unconsumed_tail
            if block:
                yield block
            if inflate.eof:
                rest = inflate.unused_data + data
                if not rest:
                    rest = more()
                if not rest.startswith(_GZIP_MAGIC):
                    return
                inflate, data = zlib.decompressobj(47), rest


def _read_compressed(
    f: BufferedReader, piece: DataPiece, out: NDArray[Any], byte_order: str, header_path: Path
) -> None:
    f.seek(_data_start(f, piece))
    view = out.view(np.uint8).data
    nbytes = out.nbytes
    skip = max(piece.byte_skip, 0)
    filled = 0
    try:
        for block in _inflated_blocks(f, piece.encoding, piece.compressed_size):
            if skip:
                used = min(skip, len(block))
                skip -= used
                block = block[used:]
            take = min(len(block), nbytes - filled)
            view[filled : filled + take] = block[:take]
            filled += take
            if filled == nbytes:
                break
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        kind = "bzip2" if piece.encoding == "bzip2" else "zlib/gzip"
        raise CorruptPixelDataError(
            f"the {kind}-compressed image data are damaged and cannot be decompressed ({exc})", header_path
        ) from None
    if filled < nbytes:
        raise truncated_error(header_path, piece.path, filled, nbytes)
    if out.dtype.itemsize > 1 and byte_order != _native_order():
        out.byteswap(inplace=True)


def _read_text(f: BufferedReader, piece: DataPiece, out: NDArray[Any], byte_order: str, header_path: Path) -> None:
    f.seek(_data_start(f, piece) + max(piece.byte_skip, 0))
    text = f.read().decode("latin-1")
    if piece.encoding == "hex":
        digits = "".join(text.split())
        nbytes = out.nbytes
        if len(digits) < 2 * nbytes:
            raise truncated_error(header_path, piece.path, len(digits) // 2, nbytes)
        try:
            data = bytes.fromhex(digits[: 2 * nbytes])
        except ValueError:
            raise CorruptPixelDataError(
                "the hex-encoded image data hold characters that are not hex digits", header_path
            ) from None
        values = np.frombuffer(data, dtype=out.dtype.newbyteorder(">" if byte_order == ">" else "<"))
        out[...] = values
        return
    tokens = text.replace(",", " ").split()
    if len(tokens) < out.size:
        raise CorruptPixelDataError(
            f"the text image data end after {len(tokens)} of {out.size} values (the file is truncated)", header_path
        )
    tokens = tokens[: out.size]
    try:
        if out.dtype.kind in "iu":
            try:
                out[...] = np.array(tokens, dtype=np.int64 if out.dtype.kind == "i" else np.uint64)
            except (ValueError, OverflowError):
                # "3.0" or "1e3" in an integer image: read as numbers and truncate, as C stream input does
                out[...] = np.trunc(np.array(tokens, dtype=np.float64))
        else:
            out[...] = np.array(tokens, dtype=np.float64)
    except (ValueError, OverflowError):
        bad = next((t for t in tokens if not _is_number(t)), tokens[0])
        raise CorruptPixelDataError(
            f"the text image data hold '{bad[:20]}', which is not a number", header_path
        ) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------


def little_endian_bytes(array: NDArray[Any]) -> NDArray[Any]:
    """``array`` with little-endian elements (both writers store little endian, as ITK does on x86)."""
    little = array.dtype.newbyteorder("<")
    return np.ascontiguousarray(array, dtype=little)


def compressed_blocks(
    arrays: list[NDArray[Any]], wbits: int, level: int, progress: Callable[[float], None] | None = None
) -> Iterator[bytes]:
    """Deflate the arrays' little-endian bytes, one after the other, as one stream (``wbits`` 31: gzip, 15: zlib).

    ``progress`` gets the fraction of input consumed (and may raise :class:`Cancelled` to stop).
    """
    compressor = zlib.compressobj(level, zlib.DEFLATED, wbits)
    total = sum(a.nbytes for a in arrays) or 1
    done = 0
    for array in arrays:
        data = little_endian_bytes(array).reshape(-1).view(np.uint8).data
        for start in range(0, len(data), _BLOCK):
            chunk = data[start : start + _BLOCK]
            block = compressor.compress(chunk)
            done += len(chunk)
            if block:
                yield block
            if progress is not None:
                progress(done / total)
    yield compressor.flush()


def check_dimensions(size: tuple[int, ...], components: int, dtype: np.dtype[Any], path: Path) -> None:
    """Refuse headers whose voxel count overflows or is zero before anything is allocated."""
    if any(s <= 0 for s in size):
        raise InputError(f"the header gives an empty image (size {size})", path)
    total = 1
    for s in (*size, components):
        total *= s
    if total * dtype.itemsize > 1 << 46:
        raise InputError(f"the header gives an impossibly large image (size {size})", path)


__all__ = [
    "COMPRESSED",
    "DataPiece",
    "Encoding",
    "ImageHeader",
    "check_dimensions",
    "compressed_blocks",
    "little_endian_bytes",
    "truncated_error",
]


def header_numbers(words: list[str], field: str, path: Path, integer: bool = False) -> list[float]:
    """A header field's words as numbers (whole numbers with ``integer``); ``field`` names it in messages
    ("the NRRD field 'sizes'"). NRRD and MetaImage headers share this rule."""
    values: list[float] = []
    for word in words:
        try:
            value = float(word)
        except ValueError:
            raise UnsupportedFormatError(f"{field} holds '{word}', which is not a number", path) from None
        if integer and (not math.isfinite(value) or value != int(value)):
            raise UnsupportedFormatError(f"{field} holds '{word}', which is not a whole number", path)
        values.append(value)
    return values
