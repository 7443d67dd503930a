"""The one edit path: every change to a segmentation goes through this module and comes back as an `EditDiff`.

Tools compute a `Region` + `EditMode` (`radlabel.core.edit.request`); `apply_region` applies it under the
`MaskingRules` and is the only function that writes voxels for an edit. Segment-table changes (add, update,
delete, move to another layer) have their own functions here and give the same kind of diff. A diff is sparse:
per touched layer the changed flat voxel indices (delta-encoded, then zlib) and the old and new values (zlib),
plus the segment-table rows before and after and the layer list (count and dtypes) before and after. Its
memory is proportional to the voxels changed, never to the volume, and `revert` / `reapply` restore the
segmentation bit for bit. `EditDiff.to_bytes` / `from_bytes` serialise a diff for the journal.

Rules (as readers know them from 3D Slicer's Segment Editor):

- editable area: everywhere, inside ``rules.segment_id``, outside every *other* segment, or outside every other
  *visible* segment; intersected with ``rules.intensity_range`` on the reference image.
- where the segment gains a voxel, ``Overwrite.ALL`` takes it from every other segment, ``VISIBLE`` only from
  visible ones (hidden ones keep it), ``NONE`` from none (the voxel then belongs to both).
- locked segments are never changed: a locked target raises `LockedSegmentError`; a voxel of a locked segment
  that the overwrite rule would take is left out of the edit (the locked segment masks it), and where the rule
  keeps it the edited segment overlaps it.
- overlap: when a gained voxel stays in another segment of the edited segment's layer, the edited segment moves
  to the first other layer where none of its voxels collide (a new uint8 layer when none fits). The move is part
  of the same diff, so undo puts the segment back and removes the layer it added.

Everything but such a move works inside the region's box only.
"""

from __future__ import annotations

import enum
import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from radlabel.core.edit.request import Editable, EditMode, MaskingRules, Overwrite, Region
from radlabel.core.errors import EditError, LockedSegmentError
from radlabel.core.segmentation.model import Segment, Segmentation

Box = tuple[tuple[int, int, int], tuple[int, int, int]]
"""A box of the grid as ((k0, j0, i0), (k1, j1, i1)), stop exclusive."""

_MAGIC = b"RLDIFF1\n"
_ZLIB_LEVEL = 1  # delta-encoded indices and label values are runs; level 1 compresses them nearly as well, fast
# Python objects around the compressed bytes (dataclasses, tuples, strings), measured with tracemalloc:
_DIFF_OVERHEAD = 1000  # per diff
_DELTA_OVERHEAD = 300  # per layer delta
_ROW_OVERHEAD = 200  # per segment row kept
_LAYER_FIELDS = ("layer", "label_value", "id")


class DiffKind(enum.StrEnum):
    """What a diff changed."""

    EDIT = "edit"  # voxels of one segment (and, through overwrite, of others)
    SEGMENT_ADDED = "segment-added"
    SEGMENT_UPDATED = "segment-updated"  # name, colour, codes, notes, locked, visible
    SEGMENT_DELETED = "segment-deleted"
    SEGMENT_MOVED = "segment-moved"  # to another layer


class VoxelsChanged(NamedTuple):
    """Voxels the edited segment gained and lost."""

    added: int
    removed: int

    @property
    def total(self) -> int:
        return self.added + self.removed


@dataclass(frozen=True)
class LayerDelta:
    """The changed voxels of one layer: sorted global flat indices with their old and new values, compressed."""

    layer: int
    count: int
    dtype: str  # of the values
    index_dtype: str  # of the delta-encoded indices
    indices: bytes
    old: bytes
    new: bytes

    @classmethod
    def encode(cls, layer: int, indices: NDArray[np.int64], old: NDArray[Any], new: NDArray[Any]) -> LayerDelta:
        deltas = np.diff(indices, prepend=np.int64(0)) if indices.size else indices
        top = int(deltas.max()) if deltas.size else 0
        index_dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if top <= np.iinfo(t).max)
        return cls(
            layer=layer,
            count=int(indices.size),
            dtype=old.dtype.str,
            index_dtype=np.dtype(index_dtype).str,
            indices=zlib.compress(deltas.astype(index_dtype).tobytes(), _ZLIB_LEVEL),
            old=zlib.compress(np.ascontiguousarray(old).tobytes(), _ZLIB_LEVEL),
            new=zlib.compress(np.ascontiguousarray(new).tobytes(), _ZLIB_LEVEL),
        )

    def flat_indices(self) -> NDArray[np.int64]:
        deltas = np.frombuffer(zlib.decompress(self.indices), dtype=self.index_dtype)
        return np.cumsum(deltas, dtype=np.int64)

    def old_values(self) -> NDArray[Any]:
        return np.frombuffer(zlib.decompress(self.old), dtype=self.dtype)

    def new_values(self) -> NDArray[Any]:
        return np.frombuffer(zlib.decompress(self.new), dtype=self.dtype)

    @property
    def nbytes(self) -> int:
        return len(self.indices) + len(self.old) + len(self.new)


@dataclass(frozen=True)
class SegmentChange:
    """One row of the segment table before and after (``None``: the row did not exist)."""

    segment_id: int
    before: Segment | None
    after: Segment | None


@dataclass(frozen=True)
class EditDiff:
    """One undoable change: sparse voxel changes + segment-table changes + the layer list before and after.

    ``parameters`` are the tool's parameters exactly as the caller gave them (JSON-able); ``label`` is what an
    Undo menu shows ("Paint Tumour, 1,204 voxels"); ``box`` bounds every changed voxel (``None`` when no voxel
    changed).
    """

    kind: DiffKind
    label: str
    tool: str
    parameters: Mapping[str, Any]
    segment_id: int | None
    voxels_changed: VoxelsChanged
    box: Box | None
    layer_deltas: tuple[LayerDelta, ...] = ()
    segment_changes: tuple[SegmentChange, ...] = ()
    layers_before: tuple[str, ...] = ()  # dtype of each layer before
    layers_after: tuple[str, ...] = ()

    @property
    def nbytes(self) -> int:
        """Memory this diff holds (compressed voxel data + an estimate of its Python objects)."""
        rows = sum(1 for change in self.segment_changes for row in (change.before, change.after) if row)
        voxels = sum(d.nbytes + _DELTA_OVERHEAD for d in self.layer_deltas)
        return _DIFF_OVERHEAD + voxels + rows * _ROW_OVERHEAD

    @property
    def slices(self) -> tuple[slice, slice, slice] | None:
        """``box`` as slices, to index the layers with."""
        if self.box is None:
            return None
        start, stop = self.box
        return (slice(start[0], stop[0]), slice(start[1], stop[1]), slice(start[2], stop[2]))

    def to_bytes(self) -> bytes:
        """Magic, header length, JSON header, compressed blobs, CRC-32 of everything before it."""
        blobs = [blob for d in self.layer_deltas for blob in (d.indices, d.old, d.new)]
        header = {
            "kind": self.kind.value,
            "label": self.label,
            "tool": self.tool,
            "parameters": self.parameters,
            "segment_id": self.segment_id,
            "voxels_changed": list(self.voxels_changed),
            "box": [list(self.box[0]), list(self.box[1])] if self.box else None,
            "layers_before": list(self.layers_before),
            "layers_after": list(self.layers_after),
            "segments": [
                {
                    "id": c.segment_id,
                    "before": c.before.to_json() if c.before else None,
                    "after": c.after.to_json() if c.after else None,
                }
                for c in self.segment_changes
            ],
            "deltas": [
                {
                    "layer": d.layer,
                    "count": d.count,
                    "dtype": d.dtype,
                    "index_dtype": d.index_dtype,
                    "sizes": [len(d.indices), len(d.old), len(d.new)],
                }
                for d in self.layer_deltas
            ],
        }
        head = json.dumps(header, separators=(",", ":")).encode()
        body = b"".join([_MAGIC, struct.pack("<I", len(head)), head, *blobs])
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> EditDiff:
        """Inverse of `to_bytes`; a truncated or altered record raises `EditError`."""
        if len(data) < len(_MAGIC) + 8 or not data.startswith(_MAGIC):
            raise EditError("not a radlabel edit record (too short or wrong header)")
        body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
        if zlib.crc32(body) != crc:
            raise EditError("edit record is damaged (checksum mismatch)")
        (head_len,) = struct.unpack("<I", body[len(_MAGIC) : len(_MAGIC) + 4])
        pos = len(_MAGIC) + 4
        header = json.loads(body[pos : pos + head_len])
        pos += head_len
        deltas = []
        for d in header["deltas"]:
            parts = []
            for size in d["sizes"]:
                parts.append(bytes(body[pos : pos + size]))
                pos += size
            deltas.append(LayerDelta(d["layer"], d["count"], d["dtype"], d["index_dtype"], *parts))
        box = header["box"]
        return cls(
            kind=DiffKind(header["kind"]),
            label=header["label"],
            tool=header["tool"],
            parameters=header["parameters"],
            segment_id=header["segment_id"],
            voxels_changed=VoxelsChanged(*header["voxels_changed"]),
            box=_box_from_json(box),
            layer_deltas=tuple(deltas),
            segment_changes=tuple(
                SegmentChange(
                    s["id"],
                    Segment.from_json(s["before"]) if s["before"] else None,
                    Segment.from_json(s["after"]) if s["after"] else None,
                )
                for s in header["segments"]
            ),
            layers_before=tuple(header["layers_before"]),
            layers_after=tuple(header["layers_after"]),
        )


def _box_from_json(data: Any) -> Box | None:
    if not data:
        return None
    (k0, j0, i0), (k1, j1, i1) = data
    return ((int(k0), int(j0), int(i0)), (int(k1), int(j1), int(i1)))


# --------------------------------------------------------------------------------------------------------------
# Recording: every write goes through a transaction that keeps the first old value of each voxel it touches.


def _flat(segmentation: Segmentation, layer: int) -> NDArray[Any]:
    """A flat view of one layer (made C-contiguous once if it is not, so writes through the view land)."""
    array: NDArray[Any] = segmentation.layers[layer]
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
        segmentation.layers[layer] = array
    return array.reshape(-1)


def _layer_dtypes(segmentation: Segmentation) -> tuple[str, ...]:
    return tuple(layer.dtype.str for layer in segmentation.layers)


@dataclass
class _Transaction:
    segmentation: Segmentation
    layers_before: tuple[str, ...] = ()
    writes: dict[int, list[tuple[NDArray[np.int64], NDArray[Any]]]] = field(default_factory=dict)
    rows: dict[int, Segment | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers_before = _layer_dtypes(self.segmentation)

    def write(self, layer: int, indices: NDArray[np.int64], value: int) -> None:
        if indices.size == 0:
            return
        flat = _flat(self.segmentation, layer)
        self.writes.setdefault(layer, []).append((indices, flat[indices].copy()))
        flat[indices] = value

    def add_layer(self) -> int:
        self.segmentation.layers.append(np.zeros(self.segmentation.grid.shape, dtype=np.uint8))
        return len(self.segmentation.layers) - 1

    def set_row(self, segment: Segment | None, segment_id: int) -> None:
        table = self.segmentation.segments
        if segment_id not in self.rows:
            self.rows[segment_id] = replace(table[segment_id]) if segment_id in table else None
        if segment is None:
            table.pop(segment_id, None)
        else:
            table[segment_id] = segment
            _sort_table(self.segmentation)

    def rollback(self) -> None:
        """Undo everything done so far (an exception part-way through an edit leaves nothing behind)."""
        seg = self.segmentation
        for layer in sorted(self.writes, reverse=True):
            if layer < len(seg.layers):
                flat = _flat(seg, layer)
                for indices, old in reversed(self.writes[layer]):
                    flat[indices] = old
        _resize_layers(seg, self.layers_before)
        for segment_id, row in self.rows.items():
            if row is None:
                seg.segments.pop(segment_id, None)
            else:
                seg.segments[segment_id] = row
        _sort_table(seg)

    def finish(
        self,
        kind: DiffKind,
        label: str,
        tool: str,
        parameters: Mapping[str, Any] | None,
        segment_id: int | None,
        voxels: VoxelsChanged,
    ) -> EditDiff | None:
        seg = self.segmentation
        deltas: list[LayerDelta] = []
        low = np.full(3, np.iinfo(np.int64).max)
        high = np.full(3, -1)
        for layer in sorted(self.writes):
            parts = self.writes[layer]
            indices = np.concatenate([p[0] for p in parts])
            olds = np.concatenate([p[1] for p in parts])
            unique, first = np.unique(indices, return_index=True)  # first write keeps the value before the edit
            old = olds[first]
            if layer < len(seg.layers):
                new = _flat(seg, layer)[unique]
            else:  # a layer this change removed again: its voxels are gone (zero)
                new = np.zeros_like(old)
            changed = old != new
            unique, old, new = unique[changed], old[changed], new[changed]
            if unique.size == 0:
                continue
            deltas.append(LayerDelta.encode(layer, unique.astype(np.int64), old, new))
            coords = np.unravel_index(unique, seg.grid.shape)
            low = np.minimum(low, [int(c.min()) for c in coords])
            high = np.maximum(high, [int(c.max()) for c in coords])
        changes = tuple(
            SegmentChange(sid, before, replace(seg.segments[sid]) if sid in seg.segments else None)
            for sid, before in sorted(self.rows.items())
            if before != seg.segments.get(sid)
        )
        layers_after = _layer_dtypes(seg)
        if not deltas and not changes and layers_after == self.layers_before:
            return None
        box: Box | None = None
        if deltas:
            box = (
                (int(low[0]), int(low[1]), int(low[2])),
                (int(high[0]) + 1, int(high[1]) + 1, int(high[2]) + 1),
            )
        return EditDiff(
            kind=kind,
            label=label,
            tool=tool,
            parameters=dict(parameters or {}),
            segment_id=segment_id,
            voxels_changed=voxels,
            box=box,
            layer_deltas=tuple(deltas),
            segment_changes=changes,
            layers_before=self.layers_before,
            layers_after=layers_after,
        )


def _sort_table(segmentation: Segmentation) -> None:
    if list(segmentation.segments) != sorted(segmentation.segments):
        segmentation.segments = dict(sorted(segmentation.segments.items()))


def _resize_layers(segmentation: Segmentation, dtypes: tuple[str, ...]) -> None:
    """Make the layer list exactly ``dtypes`` long (new layers zero) with those dtypes."""
    layers = segmentation.layers
    del layers[len(dtypes) :]
    while len(layers) < len(dtypes):
        layers.append(np.zeros(segmentation.grid.shape, dtype=dtypes[len(layers)]))
    for n, dtype in enumerate(dtypes):
        if layers[n].dtype.str != dtype:
            layers[n] = layers[n].astype(dtype)


def _global_indices(mask: NDArray[np.bool_], offset: tuple[int, int, int], shape: tuple[int, ...]) -> NDArray[np.int64]:
    """Sorted global flat indices of the True voxels of a box mask."""
    k, j, i = np.nonzero(mask)
    if k.size == 0:
        return np.zeros(0, dtype=np.int64)
    coords = (k + offset[0], j + offset[1], i + offset[2])
    return np.ravel_multi_index(coords, shape).astype(np.int64)


# --------------------------------------------------------------------------------------------------------------
# Undo and redo


def _check(segmentation: Segmentation, diff: EditDiff, expect_new: bool) -> None:
    """Refuse to revert/reapply a diff onto a segmentation that is not in the state the diff starts from."""
    dtypes = diff.layers_after if expect_new else diff.layers_before
    if _layer_dtypes(segmentation) != dtypes:
        raise EditError(
            f"cannot {'undo' if expect_new else 'redo'} '{diff.label}': the segmentation's layers are not in the "
            "state it expects (the history is out of step)"
        )
    for change in diff.segment_changes:
        expected = change.after if expect_new else change.before
        if segmentation.segments.get(change.segment_id) != expected:
            raise EditError(
                f"cannot {'undo' if expect_new else 'redo'} '{diff.label}': segment {change.segment_id} is not in "
                "the state it expects (the history is out of step)"
            )
    for delta in diff.layer_deltas:
        if delta.layer >= len(segmentation.layers):
            continue
        values = delta.new_values() if expect_new else delta.old_values()
        if not np.array_equal(_flat(segmentation, delta.layer)[delta.flat_indices()], values):
            raise EditError(
                f"cannot {'undo' if expect_new else 'redo'} '{diff.label}': voxels of layer {delta.layer} are not in "
                "the state it expects (the history is out of step)"
            )


def _restore(segmentation: Segmentation, diff: EditDiff, forward: bool) -> None:
    _resize_layers(segmentation, diff.layers_after if forward else diff.layers_before)
    for delta in diff.layer_deltas:
        if delta.layer < len(segmentation.layers):
            values = delta.new_values() if forward else delta.old_values()
            _flat(segmentation, delta.layer)[delta.flat_indices()] = values
    for change in diff.segment_changes:
        row = change.after if forward else change.before
        if row is None:
            segmentation.segments.pop(change.segment_id, None)
        else:
            segmentation.segments[change.segment_id] = replace(row)
    _sort_table(segmentation)


def revert(segmentation: Segmentation, diff: EditDiff, check: bool = True) -> None:
    """Undo ``diff``: the segmentation becomes bit for bit what it was before the change.

    With ``check`` (the default), first verifies that the segmentation is in the state right after the change
    and raises `EditError` otherwise (cost: proportional to the voxels the diff changed).
    """
    if check:
        _check(segmentation, diff, expect_new=True)
    _restore(segmentation, diff, forward=False)


def reapply(segmentation: Segmentation, diff: EditDiff, check: bool = True) -> None:
    """Redo ``diff`` on the segmentation in the state right before it (verified when ``check``)."""
    if check:
        _check(segmentation, diff, expect_new=False)
    _restore(segmentation, diff, forward=True)


# --------------------------------------------------------------------------------------------------------------
# The edit


def _segment(segmentation: Segmentation, segment_id: int) -> Segment:
    try:
        return segmentation.segments[segment_id]
    except KeyError:
        raise EditError(f"there is no segment with id {segment_id}") from None


def _check_region(segmentation: Segmentation, region: Region) -> None:
    shape = segmentation.grid.shape
    if region.mask.ndim != 3:
        raise EditError(f"an edit region must be a 3D mask, got shape {region.mask.shape}")
    start = np.array(region.offset)
    stop = start + np.array(region.mask.shape)
    if np.any(start < 0) or np.any(stop > np.array(shape)):
        raise EditError(
            f"edit region {start.tolist()}..{stop.tolist()} lies outside the grid {list(shape)} "
            "(tools clip their boxes with Region.clipped)"
        )


def _label_lut(segmentation: Segmentation, layer: int, labels: set[int]) -> NDArray[np.bool_]:
    lut = np.zeros(int(np.iinfo(segmentation.layers[layer].dtype).max) + 1, dtype=bool)
    lut[list(labels)] = True
    return lut


def _editable_area(
    segmentation: Segmentation,
    target: Segment,
    box: tuple[slice, slice, slice],
    rules: MaskingRules,
    image_array: NDArray[Any] | None,
) -> NDArray[np.bool_] | None:
    """Where the edit may change voxels inside ``box`` (``None``: everywhere)."""
    area: NDArray[np.bool_] | None = None
    editable = Editable(rules.editable)
    if editable == Editable.INSIDE_SEGMENT:
        if rules.segment_id is None:
            raise EditError("masking 'inside a segment' needs the segment (MaskingRules.segment_id)")
        _segment(segmentation, rules.segment_id)
        area = segmentation.mask_in(rules.segment_id, box)
    elif editable in (Editable.OUTSIDE_SEGMENTS, Editable.OUTSIDE_VISIBLE):
        area = np.ones(tuple(s.stop - s.start for s in box), dtype=bool)
        for layer in range(len(segmentation.layers)):
            labels = {
                s.label_value
                for s in segmentation.segments.values()
                if s.layer == layer and s.id != target.id and (s.visible or editable == Editable.OUTSIDE_SEGMENTS)
            }
            if labels:
                area &= ~_label_lut(segmentation, layer, labels)[segmentation.layers[layer][box]]
    if rules.intensity_range is not None:
        low, high = (float(v) for v in rules.intensity_range)
        if not low <= high:
            raise EditError(f"intensity range [{low:g}, {high:g}] is empty (low must not exceed high)")
        if image_array is None:
            raise EditError("masking by intensity range needs the reference image")
        if image_array.shape != segmentation.grid.shape:
            raise EditError(
                f"the image ({image_array.shape}) is not on the segmentation's grid ({segmentation.grid.shape})"
            )
        values = image_array[box]
        inside = (values >= low) & (values <= high)
        area = inside if area is None else area & inside
    return area


def _move(
    txn: _Transaction, segment: Segment, extra: NDArray[np.int64], layer: int | None = None
) -> tuple[Segment, int]:
    """Move ``segment`` (plus the voxels ``extra`` it is about to gain) to a layer where nothing collides.

    ``layer`` None: the first fitting existing layer, else a new one. Returns the moved segment and the number
    of voxels it had. Cost: one pass over the segment's old layer (moves are rare: the first overlap).
    """
    seg = txn.segmentation
    old_flat = _flat(seg, segment.layer)
    own = np.flatnonzero(old_flat == segment.label_value).astype(np.int64)
    needed = np.union1d(own, extra)
    candidates = [layer] if layer is not None else [n for n in range(len(seg.layers)) if n != segment.layer]
    chosen: int | None = None
    for n in candidates:
        if n == segment.layer or n >= len(seg.layers):
            continue
        label = seg.free_label(n)
        if label > np.iinfo(seg.layers[n].dtype).max:
            continue
        if not np.any(_flat(seg, n)[needed]):
            chosen = n
            break
    if chosen is None:
        if layer is not None and layer < len(seg.layers):
            raise EditError(f"segment '{segment.name}' would overlap another segment in layer {layer}")
        chosen = txn.add_layer()
    label = seg.free_label(chosen)
    txn.write(segment.layer, own, 0)
    txn.write(chosen, own, label)
    moved = replace(segment, layer=chosen, label_value=label)
    txn.set_row(moved, segment.id)
    return moved, int(own.size)


def _edit_label(tool: str, segment: Segment, voxels: VoxelsChanged) -> str:
    action = tool.replace("_", " ").replace("-", " ").strip().capitalize() or "Edit"
    n = voxels.total
    return f"{action} {segment.name}, {n:,} voxel{'' if n == 1 else 's'}"


def apply_region(
    segmentation: Segmentation,
    image_array: NDArray[Any] | None,
    segment_id: int,
    region: Region,
    mode: EditMode | str,
    rules: MaskingRules = MaskingRules(),  # noqa: B008 - frozen dataclass, safe as a default
    *,
    tool: str = "edit",
    parameters: Mapping[str, Any] | None = None,
    label: str | None = None,
) -> EditDiff | None:
    """Apply ``region`` to segment ``segment_id`` under ``rules``; the one function that writes voxels for an edit.

    ``mode``: ADD (the mask's voxels join the segment), REMOVE (they leave it) or REPLACE (inside the box the
    segment becomes exactly the mask). ``image_array`` is the reference volume's array (needed only for an
    intensity range). Returns the diff, or ``None`` when nothing changed. Raises `LockedSegmentError` for a
    locked segment and `EditError` for an unknown segment, a region off the grid or rules that do not fit; on any
    error the segmentation is left as it was.
    """
    target = _segment(segmentation, segment_id)
    if target.locked:
        raise LockedSegmentError(
            f"segment '{target.name}' is locked and cannot be edited", fix="unlock it in the segment list first"
        )
    try:
        mode = EditMode(mode)
    except ValueError:
        raise EditError(f"unknown edit mode {mode!r} (use {', '.join(m.value for m in EditMode)})") from None
    _check_region(segmentation, region)
    if region.mask.size == 0 or (mode != EditMode.REPLACE and not region.mask.any()):
        return None
    box = region.box
    shape = segmentation.grid.shape
    mask = region.mask.astype(bool, copy=False)
    area = _editable_area(segmentation, target, box, rules, image_array)
    effective = mask if area is None else mask & area

    old = segmentation.layers[target.layer][box] == target.label_value
    gain: NDArray[np.bool_] | None = None
    lose: NDArray[np.bool_] | None = None
    if mode == EditMode.ADD:
        gain = effective & ~old
    elif mode == EditMode.REMOVE:
        lose = effective & old
    else:
        gain = effective & ~old
        lose = old & ~mask if area is None else old & ~mask & area

    txn = _Transaction(segmentation)
    try:
        if gain is not None and gain.any():
            gain = _settle_others(txn, target, box, gain, Overwrite(rules.overwrite))
        gain_idx = _global_indices(gain, region.offset, shape) if gain is not None else np.zeros(0, np.int64)
        lose_idx = _global_indices(lose, region.offset, shape) if lose is not None else np.zeros(0, np.int64)
        if gain_idx.size and _collides(segmentation, target, gain_idx):
            target, _ = _move(txn, target, gain_idx)  # a segment that keeps the voxels shares the layer: overlap
        txn.write(target.layer, lose_idx, 0)
        txn.write(target.layer, gain_idx, target.label_value)
        voxels = VoxelsChanged(int(gain_idx.size), int(lose_idx.size))
        return txn.finish(
            DiffKind.EDIT,
            label or _edit_label(tool, target, voxels),
            tool,
            parameters,
            segment_id,
            voxels,
        )
    except BaseException:
        txn.rollback()
        raise


def _collides(segmentation: Segmentation, target: Segment, indices: NDArray[np.int64]) -> bool:
    """Does another segment of the target's layer hold any of these voxels?"""
    labels = {s.label_value for s in segmentation.segments.values() if s.layer == target.layer and s.id != target.id}
    if not labels:
        return False
    return bool(np.any(_label_lut(segmentation, target.layer, labels)[_flat(segmentation, target.layer)[indices]]))


def _settle_others(
    txn: _Transaction,
    target: Segment,
    box: tuple[slice, slice, slice],
    gain: NDArray[np.bool_],
    overwrite: Overwrite,
) -> NDArray[np.bool_]:
    """Apply the overwrite rule where the target gains voxels; returns the gain less the voxels locked segments keep.

    Clears the gained voxels of overwritten segments (through ``txn``); voxels of segments that keep them
    (overwrite NONE, hidden with VISIBLE) stay and the caller makes the target overlap them.
    """
    seg = txn.segmentation
    by_layer: dict[int, list[Segment]] = {}
    for other in seg.segments.values():
        if other.id != target.id:
            by_layer.setdefault(other.layer, []).append(other)

    def taken(other: Segment) -> bool:
        return overwrite == Overwrite.ALL or (overwrite == Overwrite.VISIBLE and other.visible)

    # First the protection of locked segments (it shrinks the gain), then the clearing of the others.
    for layer, others in by_layer.items():
        protected = {o.label_value for o in others if o.locked and taken(o)}
        if protected:
            gain = gain & ~_label_lut(seg, layer, protected)[seg.layers[layer][box]]
    offset = (box[0].start, box[1].start, box[2].start)
    for layer, others in by_layer.items():
        cleared = {o.label_value for o in others if not o.locked and taken(o)}
        if cleared:
            hit = gain & _label_lut(seg, layer, cleared)[seg.layers[layer][box]]
            txn.write(layer, _global_indices(hit, offset, seg.grid.shape), 0)
    return gain


# --------------------------------------------------------------------------------------------------------------
# Segment-table changes


def add_segment(
    segmentation: Segmentation, name: str, color: tuple[int, int, int] | None = None, **fields: Any
) -> EditDiff:
    """Add an empty segment (layer 0, next free label); the diff's ``segment_id`` is the new segment's id."""
    bad = set(fields) & set(_LAYER_FIELDS)
    if bad:
        raise EditError(f"a new segment gets its {', '.join(sorted(bad))} from the segmentation; do not pass it")
    txn = _Transaction(segmentation)
    try:
        segment = segmentation.add_segment(name, color, **fields)
        txn.rows[segment.id] = None
        diff = txn.finish(
            DiffKind.SEGMENT_ADDED, f"Add segment {segment.name}", "segment", {"name": name}, segment.id, _NONE
        )
    except BaseException:
        txn.rollback()
        raise
    assert diff is not None
    return diff


_NONE = VoxelsChanged(0, 0)


def _update_label(before: Segment, after: Segment) -> str:
    if before.name != after.name:
        return f"Rename segment {before.name} to {after.name}"
    if before.locked != after.locked:
        return f"{'Lock' if after.locked else 'Unlock'} segment {after.name}"
    if before.visible != after.visible:
        return f"{'Show' if after.visible else 'Hide'} segment {after.name}"
    if before.color != after.color:
        return f"Recolour segment {after.name}"
    return f"Change segment {after.name}"


def update_segment(segmentation: Segmentation, segment_id: int, **fields: Any) -> EditDiff | None:
    """Change table fields (name, color, category, type, algorithm, notes, locked, visible); voxels untouched.

    Returns ``None`` when nothing changes. Layer and label value change only through `move_segment`.
    """
    before = _segment(segmentation, segment_id)
    bad = set(fields) & set(_LAYER_FIELDS)
    if bad:
        raise EditError(f"{', '.join(sorted(bad))} cannot be set this way (use move_segment to change the layer)")
    if "color" in fields:
        fields["color"] = tuple(int(c) for c in fields["color"])
    try:
        after = replace(before, **fields)
    except TypeError as exc:
        raise EditError(f"unknown segment field ({exc})") from None
    txn = _Transaction(segmentation)
    txn.set_row(after, segment_id)
    return txn.finish(
        DiffKind.SEGMENT_UPDATED,
        _update_label(before, after),
        "segment",
        {k: _jsonable(v) for k, v in fields.items()},
        segment_id,
        _NONE,
    )


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, tuple):
        return list(value)
    return value


def delete_segment(segmentation: Segmentation, segment_id: int) -> EditDiff:
    """Remove a segment and its voxels (a locked segment raises `LockedSegmentError`).

    A trailing extra layer that no segment uses any more is dropped (and comes back on undo).
    """
    segment = _segment(segmentation, segment_id)
    if segment.locked:
        raise LockedSegmentError(
            f"segment '{segment.name}' is locked and cannot be deleted", fix="unlock it in the segment list first"
        )
    txn = _Transaction(segmentation)
    try:
        own = np.flatnonzero(_flat(segmentation, segment.layer) == segment.label_value).astype(np.int64)
        txn.write(segment.layer, own, 0)
        txn.set_row(None, segment_id)
        _drop_unused_layers(segmentation)
        diff = txn.finish(
            DiffKind.SEGMENT_DELETED,
            f"Delete segment {segment.name}",
            "segment",
            {"name": segment.name},
            segment_id,
            VoxelsChanged(0, int(own.size)),
        )
    except BaseException:
        txn.rollback()
        raise
    assert diff is not None
    return diff


def _drop_unused_layers(segmentation: Segmentation) -> None:
    used = {s.layer for s in segmentation.segments.values()}
    while len(segmentation.layers) > 1 and len(segmentation.layers) - 1 not in used:
        if np.any(segmentation.layers[-1]):
            break
        segmentation.layers.pop()


def move_segment(segmentation: Segmentation, segment_id: int, layer: int | None = None) -> EditDiff | None:
    """Move a segment to ``layer`` (``None``: a new layer); its voxels keep their place. Raises `EditError` when
    the segment would overlap a segment already in that layer. Returns ``None`` when it is already there."""
    segment = _segment(segmentation, segment_id)
    if layer is not None and not 0 <= layer <= len(segmentation.layers):
        raise EditError(f"there is no layer {layer} (the segmentation has {len(segmentation.layers)})")
    if layer == segment.layer:
        return None
    if segment.locked:
        raise LockedSegmentError(
            f"segment '{segment.name}' is locked and cannot be moved", fix="unlock it in the segment list first"
        )
    txn = _Transaction(segmentation)
    try:
        moved, _ = _move(txn, segment, np.zeros(0, dtype=np.int64), layer)
        _drop_unused_layers(segmentation)
        return txn.finish(
            DiffKind.SEGMENT_MOVED,
            f"Move segment {segment.name} to layer {moved.layer}",
            "segment",
            {"layer": layer},
            segment_id,
            _NONE,
        )
    except BaseException:
        txn.rollback()
        raise


__all__ = [
    "Box",
    "DiffKind",
    "EditDiff",
    "LayerDelta",
    "SegmentChange",
    "VoxelsChanged",
    "add_segment",
    "apply_region",
    "delete_segment",
    "move_segment",
    "reapply",
    "revert",
    "update_segment",
]


# --------------------------------------------------------------------------------------------------------------
# Several edits as one step


def combine(diffs: Sequence[EditDiff], label: str, tool: str, parameters: Mapping[str, Any]) -> EditDiff:
    """One undo step for edits applied one after another (e.g. grow-from-seeds writing several segments).

    For every voxel, the combined diff keeps the value before the first edit that touched it and the value
    after the last one, so `revert` / `reapply` of the result equal reverting / reapplying them all in turn.
    """
    if not diffs:
        raise EditError("nothing to combine")
    if len(diffs) == 1:
        only = diffs[0]
        return replace(only, label=label, tool=tool, parameters=dict(parameters))
    per_layer: dict[int, list[LayerDelta]] = {}
    for diff in diffs:
        for delta in diff.layer_deltas:
            per_layer.setdefault(delta.layer, []).append(delta)
    deltas = []
    for layer, parts in sorted(per_layer.items()):
        dtype = np.result_type(*[np.dtype(part.dtype) for part in parts])
        indices = np.concatenate([part.flat_indices() for part in parts])
        old = np.concatenate([part.old_values().astype(dtype) for part in parts])
        new = np.concatenate([part.new_values().astype(dtype) for part in parts])
        # np.unique keeps the first occurrence: the oldest value; on the reversed arrays, the newest.
        unique, first = np.unique(indices, return_index=True)
        _, last_reversed = np.unique(indices[::-1], return_index=True)
        last = indices.size - 1 - last_reversed
        deltas.append(LayerDelta.encode(layer, unique, old[first], new[last]))
    rows: dict[int, SegmentChange] = {}
    for diff in diffs:
        for change in diff.segment_changes:
            earlier = rows.get(change.segment_id)
            before = earlier.before if earlier is not None else change.before
            rows[change.segment_id] = SegmentChange(change.segment_id, before, change.after)
    boxes = [diff.box for diff in diffs if diff.box is not None]
    box: Box | None = None
    if boxes:
        low = tuple(int(min(b[0][n] for b in boxes)) for n in range(3))
        high = tuple(int(max(b[1][n] for b in boxes)) for n in range(3))
        box = ((low[0], low[1], low[2]), (high[0], high[1], high[2]))
    segments = {diff.segment_id for diff in diffs}
    return EditDiff(
        kind=DiffKind.EDIT,
        label=label,
        tool=tool,
        parameters=dict(parameters),
        segment_id=segments.pop() if len(segments) == 1 else None,
        voxels_changed=VoxelsChanged(
            sum(d.voxels_changed.added for d in diffs), sum(d.voxels_changed.removed for d in diffs)
        ),
        box=box,
        layer_deltas=tuple(deltas),
        segment_changes=tuple(rows.values()),
        layers_before=diffs[0].layers_before,
        layers_after=diffs[-1].layers_after,
    )
