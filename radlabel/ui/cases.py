"""Build what the window shows from what the core gives: the demo case with its lesion segment, and label maps
opened with ``--segment`` or File > Open label map (read by `radlabel.core.segmentation.labelmap_io`). Qt-free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radlabel.core.segmentation.model import ABNORMAL, CodedConcept, Grid, Segment, Segmentation
from radlabel.core.volume import Volume

NEOPLASM = CodedConcept("108369006", "SCT", "Neoplasm")
DEMO_LESION_COLOR = (240, 170, 40)


def demo_case() -> tuple[Volume, Segmentation]:
    """The synthetic CT phantom and a segmentation holding its lesion as the segment "Liver lesion"."""
    from radlabel.core.demo import DEMO_LESION_NAME, make_demo_ct  # scipy: not needed to show the window

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
