"""Build what the window shows from what the core gives: the demo case with its lesion segment, and label maps
opened with ``--segment`` or File > Open label map (read by `radlabel.core.segmentation.labelmap_io`). Qt-free.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from radlabel.core.segmentation.model import ABNORMAL, CodedConcept, Grid, Segment, Segmentation
from radlabel.core.volume import Volume

NEOPLASM = CodedConcept("108369006", "SCT", "Neoplasm")
DEMO_LESION_COLOR = (240, 170, 40)


_prefetched: Future[tuple[Volume, Segmentation]] | None = None
_prefetch_lock = threading.Lock()


def prefetch_demo() -> None:
    """Start making the demo case on a thread now; the next `demo_case` call takes it.

    `radlabel demo` calls this first thing, so the phantom (numpy work that releases the GIL) is made while
    Qt, VTK and the window load instead of after them.
    """
    global _prefetched
    with _prefetch_lock:
        if _prefetched is not None:
            return
        future: Future[tuple[Volume, Segmentation]] = Future()
        _prefetched = future

    def work() -> None:
        try:
            future.set_result(_make_demo_case())
        except BaseException as exc:  # the caller of demo_case gets it
            future.set_exception(exc)

    threading.Thread(target=work, name="radlabel-demo-phantom", daemon=True).start()


def demo_case() -> tuple[Volume, Segmentation]:
    """The synthetic CT phantom and a segmentation holding its lesion as the segment "Liver lesion".

    Each call gives a new case (its arrays get edited); one made by `prefetch_demo` is used once.
    """
    global _prefetched
    with _prefetch_lock:
        future, _prefetched = _prefetched, None
    if future is not None:
        return future.result()
    return _make_demo_case()


def _make_demo_case() -> tuple[Volume, Segmentation]:
    from radlabel.core.demo import DEMO_LESION_NAME, make_demo_ct

    volume, lesion = make_demo_ct()
    layer = lesion.astype(np.uint8)
    segment = Segment(
        id=1,
        name=DEMO_LESION_NAME,
        color=DEMO_LESION_COLOR,
        category=ABNORMAL,
        type=NEOPLASM,
        notes="exact mask of the phantom's lesion",
    )
    return volume, Segmentation(Grid.of(volume), [layer], {1: segment})


def load_labelmap(path: str | Path, reference: Volume) -> tuple[Segmentation, list[str]]:
    """A label-map file (NIfTI, NRRD, ``.seg.nrrd``, MHA) placed on ``reference``'s grid, and the reader's
    warnings (resampled onto the image, segments with no voxel left). Names, colours and codes come from the
    file, its JSON sidecar or the terminology list (see `radlabel.core.segmentation.labelmap_io`)."""
    from radlabel.core.segmentation.labelmap_io import read_labelmap

    result = read_labelmap(path, reference)
    return result.segmentation, list(result.warnings)
