"""Label maps onto a reference grid by world geometry; names from headers and sidecars; round trips."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from numpy.typing import NDArray

from radlabel.core import geometry
from radlabel.core.errors import InputError, OutputError
from radlabel.core.io.loader import load
from radlabel.core.io.writers import save_volume
from radlabel.core.segmentation.labelmap_io import (
    parse_label_names,
    read_labelmap,
    sidecar_path,
    write_labelmap,
)
from radlabel.core.segmentation.model import AlgorithmInfo, AlgorithmType, CodedConcept, Segmentation
from radlabel.core.segmentation.terminology import find
from radlabel.core.volume import Volume
from tests.core.synthetic import oblique_volume

# --------------------------------------------------------------------------------------------------------
# Synthetic helpers
# --------------------------------------------------------------------------------------------------------


def reference() -> Volume:
    """An oblique, anisotropic 7 x 24 x 20 grid (values irrelevant)."""
    return oblique_volume()


def blobs(volume: Volume) -> NDArray[np.uint8]:
    """Three non-overlapping boxes labelled 1, 2, 5."""
    labels = np.zeros(volume.array.shape, np.uint8)
    labels[1:4, 2:8, 3:9] = 1
    labels[2:6, 12:20, 10:16] = 2
    labels[5:7, 3:6, 14:18] = 5
    return labels


def world_of_labels(labels: NDArray[np.integer], affine: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """World positions (LPS) and values of every labelled voxel of a [k, j, i] array."""
    k, j, i = np.nonzero(labels)
    return geometry.index_to_world(affine, np.column_stack([i, j, k])), labels[k, j, i]


def labels_at(segmentation: Segmentation, volume: Volume, world: NDArray) -> NDArray:
    """Segment id at world points (each must be a voxel centre of ``volume``)."""
    ijk = volume.world_to_index(world)
    rounded = np.rint(ijk).astype(int)
    assert np.abs(ijk - rounded).max() < 1e-3
    ids = segmentation.label_map()
    return ids[rounded[:, 2], rounded[:, 1], rounded[:, 0]]


def write_nifti_lps(path: Path, labels_kji: NDArray, affine_lps: NDArray) -> None:
    """A NIfTI written with nibabel directly (independent of radlabel's writer)."""
    image = nib.Nifti1Image(labels_kji.transpose(2, 1, 0), geometry.lps_to_ras_affine(affine_lps))
    image.header.set_sform(geometry.lps_to_ras_affine(affine_lps), code=1)
    nib.save(image, str(path))


# --------------------------------------------------------------------------------------------------------
# Geometry matching
# --------------------------------------------------------------------------------------------------------


def test_same_grid_nifti_opens_as_one_layer_with_label_values_as_ids(tmp_path: Path) -> None:
    volume = reference()
    labels = blobs(volume)
    write_nifti_lps(tmp_path / "seg.nii.gz", labels, volume.affine)
    result = read_labelmap(tmp_path / "seg.nii.gz", volume)
    segmentation = result.segmentation
    assert result.match == "exact" and result.warnings == []
    assert len(segmentation.layers) == 1
    assert np.array_equal(segmentation.layers[0], labels)
    assert sorted(segmentation.segments) == [1, 2, 5]
    assert [s.name for s in segmentation.segments.values()] == ["Segment 1", "Segment 2", "Segment 5"]


def test_permuted_and_flipped_axes_are_placed_exactly(tmp_path: Path) -> None:
    volume = reference()
    labels = blobs(volume)
    # the same voxels stored with i and k swapped and j running backwards
    stored = labels.transpose(2, 1, 0)[:, ::-1, :]  # [i, j', k] as a [k', j', i'] array
    ni, nj = volume.size[0], volume.size[1]
    index_to_old = np.array([[0, 0, 1, 0], [0, -1, 0, nj - 1], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    assert ni == stored.shape[0]
    write_nifti_lps(tmp_path / "seg.nii", np.ascontiguousarray(stored), volume.affine @ index_to_old)
    result = read_labelmap(tmp_path / "seg.nii", volume)
    assert result.match == "exact"
    assert np.array_equal(result.segmentation.layers[0], labels)


def test_cropped_label_map_lands_at_its_world_position_and_spill_is_reported(tmp_path: Path) -> None:
    volume = reference()
    crop = np.zeros((4, 6, 5), np.uint8)  # a sub-grid starting at voxel (i, j, k) = (17, 20, 5): spills out
    crop[:2, :2, :2] = 3
    crop[3, 5, 4] = 3  # (21, 25, 8): outside the 20 x 24 x 7 reference
    shift = np.eye(4)
    shift[:3, 3] = [17, 20, 5]
    write_nifti_lps(tmp_path / "crop.nii.gz", crop, volume.affine @ shift)
    result = read_labelmap(tmp_path / "crop.nii.gz", volume)
    assert result.match == "exact"
    expected = np.zeros(volume.array.shape, np.uint8)
    expected[5:7, 20:22, 17:19] = 3
    assert np.array_equal(result.segmentation.layers[0], expected)
    assert any("1 labelled voxel(s) lie outside" in w for w in result.warnings)


def test_different_grid_is_resampled_nearest_neighbour_with_a_warning(tmp_path: Path) -> None:
    fine = Volume(np.zeros((40, 60, 60), np.int16), (-30.0, -30.0, -40.0), (1.0, 1.0, 2.0), np.eye(3))
    coarse = Volume(np.zeros((20, 30, 30), np.int16), (-29.5, -29.5, -39.0), (2.0, 2.0, 4.0), np.eye(3))
    centres = coarse.index_to_world(np.indices(coarse.size).reshape(3, -1).T)
    ball = (np.linalg.norm(centres - [0.0, 0.0, 0.0], axis=1) <= 15.0).reshape(coarse.size).transpose(2, 1, 0)
    write_nifti_lps(tmp_path / "coarse.nii.gz", ball.astype(np.uint8), coarse.affine)
    result = read_labelmap(tmp_path / "coarse.nii.gz", fine)
    assert result.match == "resampled"
    assert any("resampled" in w and "nearest neighbour" in w for w in result.warnings)
    mask = result.segmentation.mask(1)
    assert abs(mask.sum() * 2.0 - ball.sum() * 16.0) / (ball.sum() * 16.0) < 0.01  # same volume in mm^3
    k, j, i = np.nonzero(mask)
    centroid = fine.index_to_world(np.array([[i.mean(), j.mean(), k.mean()]]))[0]
    assert np.allclose(centroid, [0.0, 0.0, 0.0], atol=0.6)


def test_no_overlap_is_refused_naming_both_files(tmp_path: Path) -> None:
    volume = reference()
    far = np.eye(4)
    far[:3, 3] = [500.0, 0.0, 0.0]
    write_nifti_lps(tmp_path / "elsewhere.nii.gz", blobs(volume), far @ volume.affine)
    with pytest.raises(InputError, match=r"does not overlap the image my-image\.nii") as info:
        read_labelmap(tmp_path / "elsewhere.nii.gz", volume, reference_name="my-image.nii")
    assert "elsewhere.nii.gz" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.full((7, 24, 20), 0.5, np.float32), "fractional"),
        (np.full((7, 24, 20), -1, np.int16), "negative"),
        (np.full((7, 24, 20), 70000, np.int32), "up to 70000"),
    ],
)
def test_values_that_are_not_labels_are_refused(tmp_path: Path, array: NDArray, message: str) -> None:
    volume = reference()
    write_nifti_lps(tmp_path / "bad.nii.gz", array, volume.affine)
    with pytest.raises(InputError, match=message):
        read_labelmap(tmp_path / "bad.nii.gz", volume)


def test_unknown_file_kinds_are_refused(tmp_path: Path) -> None:
    (tmp_path / "labels.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match="not a label-map file"):
        read_labelmap(tmp_path / "labels.png", reference())
    with pytest.raises(InputError, match="no such file"):
        read_labelmap(tmp_path / "missing.nii.gz", reference())


# --------------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------------


def test_names_from_sidecar_argument_and_terminology(tmp_path: Path) -> None:
    volume = reference()
    write_nifti_lps(tmp_path / "seg.nii.gz", blobs(volume), volume.affine)
    (tmp_path / "seg.json").write_text(json.dumps({"1": "liver", "2": "kidney_left", "5": "spleen"}))
    segments = read_labelmap(tmp_path / "seg.nii.gz", volume).segmentation.segments
    assert [segments[n].name for n in (1, 2, 5)] == ["liver", "kidney_left", "spleen"]
    kidney = find("Left kidney")
    assert kidney is not None
    assert segments[2].type == kidney.type and segments[2].type_modifier == kidney.type_modifier
    assert segments[2].color == kidney.color
    # the argument wins over the sidecar; labels it does not name keep the sidecar's name
    segments = read_labelmap(tmp_path / "seg.nii.gz", volume, label_names={1: "tumour"}).segmentation.segments
    assert segments[1].name == "tumour" and segments[2].name == "kidney_left"
    tumour = find("tumour")
    assert tumour is not None and segments[1].type == tumour.type


def test_label_name_formats() -> None:
    (simple,) = parse_label_names({"0": "background", "1": "liver", "2": {"name": "lesion", "color": [1, 2, 3]}})
    assert simple[(None, 1)].name == "liver" and simple[(None, 2)].color == (1, 2, 3) and (None, 0) not in simple
    (nnunet,) = parse_label_names({"labels": {"background": 0, "liver": 1, "tumour": 2}})
    assert nnunet[(None, 2)].name == "tumour"
    (nnunet_v1,) = parse_label_names({"labels": {"0": "background", "1": "liver"}})
    assert nnunet_v1[(None, 1)].name == "liver"
    with pytest.raises(InputError, match="not a label value"):
        parse_label_names({"liver": 1})
    with pytest.raises(InputError, match="JSON object"):
        parse_label_names(["liver"])


# --------------------------------------------------------------------------------------------------------
# Round trips and 3D Slicer files
# --------------------------------------------------------------------------------------------------------


def segmentation_with_overlap(volume: Volume) -> Segmentation:
    segmentation = Segmentation.empty(volume)
    tumour = find("Tumour")
    oedema = find("Oedema")
    assert tumour is not None and oedema is not None
    a = segmentation.add_segment("tumour", **tumour.to_segment_fields())
    b = segmentation.add_segment(
        "oedema",
        **oedema.to_segment_fields(),
        algorithm_type=AlgorithmType.AUTOMATIC,
        algorithm=AlgorithmInfo("nnU-Net", "2.1", "ab" * 32),
    )
    c = segmentation.add_segment("empty one", color=(1, 2, 3))
    segmentation.layers[0][1:4, 2:8, 3:9] = a.label_value
    overlap = np.zeros(volume.array.shape, bool)
    overlap[2:5, 5:10, 6:12] = True  # overlaps the tumour
    segmentation.layers.append(np.zeros(volume.array.shape, np.uint8))
    segmentation.update_segment(b.id, layer=1)
    segmentation.layers[1][overlap] = b.label_value
    assert c.layer == 0
    return segmentation


@pytest.mark.parametrize("name", ["seg.nii.gz", "seg.nrrd", "seg.seg.nrrd", "seg.mha"])
def test_round_trip_keeps_voxels_layers_and_the_segment_table(tmp_path: Path, name: str) -> None:
    volume = reference()
    original = segmentation_with_overlap(volume)
    path = write_labelmap(original, tmp_path / name)
    assert sidecar_path(path).is_file()
    result = read_labelmap(path, volume)
    assert result.match == "exact" and result.warnings == []
    back = result.segmentation
    assert len(back.layers) == 2
    assert back.segments.keys() == original.segments.keys()
    for segment_id, segment in original.segments.items():
        assert np.array_equal(back.mask(segment_id), original.mask(segment_id))
        again = back.segments[segment_id]
        for attribute in ("name", "color", "category", "type", "algorithm_type", "algorithm", "type_modifier"):
            assert getattr(again, attribute) == getattr(segment, attribute), attribute


def test_non_overlapping_segments_are_written_as_one_layer(tmp_path: Path) -> None:
    volume = reference()
    segmentation = Segmentation.empty(volume)
    for n in range(3):
        segmentation.add_segment(f"s{n}")
    labels = blobs(volume)
    segmentation.layers[0][labels == 1] = 1
    segmentation.layers[0][labels == 2] = 2
    segmentation.layers.append(np.zeros(volume.array.shape, np.uint8))  # an edit put s2 in its own layer
    segmentation.update_segment(3, layer=1, label_value=1)
    segmentation.layers[1][labels == 5] = 1
    path = write_labelmap(segmentation, tmp_path / "flat.nii.gz")
    stored = np.asarray(nib.load(str(path)).dataobj)
    assert stored.ndim == 3 and sorted(np.unique(stored)) == [0, 1, 2, 3]
    back = read_labelmap(path, volume).segmentation
    assert len(back.layers) == 1
    for segment_id in (1, 2, 3):
        assert np.array_equal(back.mask(segment_id), segmentation.mask(segment_id))


def test_seg_nrrd_header_is_what_slicer_reads(tmp_path: Path) -> None:
    volume = reference()
    path = write_labelmap(segmentation_with_overlap(volume), tmp_path / "case.seg.nrrd", sidecar=False)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    keys = {k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()}
    assert reader.GetNumberOfComponents() == 2  # two layers
    assert keys["Segment0_Name"] == "tumour" and keys["Segment1_Layer"] == "1"
    assert "SCT^108369006^Neoplasm" in keys["Segment0_Tags"]
    assert keys["Segment2_Extent"] == "0 -1 0 -1 0 -1"  # the empty segment
    assert np.allclose(reader.GetOrigin(), volume.origin) and np.allclose(reader.GetSpacing(), volume.spacing)
    assert np.allclose(np.reshape(reader.GetDirection(), (3, 3)), volume.direction)
    back = read_labelmap(path, volume).segmentation  # no sidecar: the header alone
    assert [s.name for s in back.segments.values()] == ["tumour", "oedema", "empty one"]
    assert back.segments[2].type.value == "79654002"


def slicer_file(path: Path, header_keys: list[str], layers: list[NDArray], origin_lps: tuple[float, ...]) -> None:
    """A .seg.nrrd as 3D Slicer writes it (cropped to the segments, multi-layer as a 'list' axis)."""
    k, j, i = layers[0].shape
    data = np.stack(layers, axis=-1) if len(layers) > 1 else layers[0]
    many = len(layers) > 1
    header = [
        "NRRD0004",
        "type: unsigned char",
        f"dimension: {4 if many else 3}",
        "space: left-posterior-superior",
        f"sizes: {f'{len(layers)} ' if many else ''}{i} {j} {k}",
        f"space directions: {'none ' if many else ''}(0.5,0,0) (0,0.5,0) (0,0,2)",
        f"kinds: {'list ' if many else ''}domain domain domain",
        "encoding: gzip",
        "space origin: (" + ",".join(map(str, origin_lps)) + ")",
        "Segmentation_MasterRepresentation:=Binary labelmap",
        *header_keys,
    ]
    path.write_bytes(("\n".join(header) + "\n\n").encode() + gzip.compress(data.astype(np.uint8).tobytes()))


def test_slicer_multi_layer_file_with_terminology_tags(tmp_path: Path) -> None:
    image = Volume(np.zeros((10, 40, 40), np.int16), (-10.0, -10.0, 0.0), (0.5, 0.5, 2.0), np.eye(3))
    first = np.zeros((3, 4, 5), np.uint8)
    second = np.zeros((3, 4, 5), np.uint8)
    first[0, 0, 0] = 1
    first[1, 1, 1] = 2
    second[0, 0, 0] = 1  # same voxel as "Tumor": overlapping segments
    tags = "Segmentation.Status:inprogress|TerminologyEntry:Segmentation category and type - 3D Slicer General Anatomy list~SCT^49755003^Morphologically Altered Structure~SCT^108369006^Neoplasm~^^~Anatomic codes - DICOM master list~^^~^^|"  # noqa: E501
    keys = [
        "Segment0_Name:=Tumor",
        "Segment0_Color:=1 0 0",
        "Segment0_LabelValue:=1",
        "Segment0_Layer:=0",
        f"Segment0_Tags:={tags}",
        "Segment1_Name:=Necrosis",
        "Segment1_LabelValue:=2",
        "Segment1_Layer:=0",
        "Segment2_Name:=Edema",
        "Segment2_Color:=0 0.5 1",
        "Segment2_LabelValue:=1",
        "Segment2_Layer:=1",
        "Segment3_Name:=Never drawn",
        "Segment3_LabelValue:=3",
        "Segment3_Layer:=0",
    ]
    slicer_file(tmp_path / "s.seg.nrrd", keys, [first, second], (-5.0, -3.0, 4.0))  # voxel (10, 14, 2)
    result = read_labelmap(tmp_path / "s.seg.nrrd", image)
    segmentation = result.segmentation
    assert result.match == "exact" and len(segmentation.layers) == 2
    names = {s.name: s for s in segmentation.segments.values()}
    assert list(names) == ["Tumor", "Necrosis", "Edema", "Never drawn"]
    assert names["Tumor"].color == (255, 0, 0) and names["Edema"].color == (0, 128, 255)
    assert names["Tumor"].category == CodedConcept("49755003", "SCT", "Morphologically Altered Structure")
    assert names["Tumor"].type.value == "108369006"
    assert np.argwhere(segmentation.mask(names["Tumor"].id)).tolist() == [[2, 14, 10]]
    assert np.argwhere(segmentation.mask(names["Edema"].id)).tolist() == [[2, 14, 10]]
    assert np.argwhere(segmentation.mask(names["Necrosis"].id)).tolist() == [[3, 15, 11]]
    assert not segmentation.mask(names["Never drawn"].id).any()


def test_old_slicer_file_with_one_binary_layer_per_segment(tmp_path: Path) -> None:
    image = Volume(np.zeros((3, 4, 5), np.int16), (0.0, 0.0, 0.0), (0.5, 0.5, 2.0), np.eye(3))
    a, b = np.zeros((3, 4, 5), np.uint8), np.zeros((3, 4, 5), np.uint8)
    a[0, 0, :] = 1
    b[0, :, 0] = 1
    keys = ["Segment0_Name:=left", "Segment1_Name:=right"]
    slicer_file(tmp_path / "old.seg.nrrd", keys, [a, b], (0.0, 0.0, 0.0))
    segmentation = read_labelmap(tmp_path / "old.seg.nrrd", image).segmentation
    assert [(s.name, s.layer, s.label_value) for s in segmentation.segments.values()] == [
        ("left", 0, 1),
        ("right", 1, 1),
    ]
    assert np.array_equal(segmentation.mask(1), a.astype(bool))
    assert np.array_equal(segmentation.mask(2), b.astype(bool))


def test_write_refuses_unknown_extensions_and_missing_folders(tmp_path: Path) -> None:
    segmentation = Segmentation.empty(reference())
    with pytest.raises(OutputError, match="file name"):
        write_labelmap(segmentation, tmp_path / "seg.png")
    with pytest.raises(OutputError, match="does not exist"):
        write_labelmap(segmentation, tmp_path / "no" / "seg.nii.gz")


def test_writer_output_reads_back_in_nibabel_at_the_same_world_positions(tmp_path: Path) -> None:
    volume = reference()
    segmentation = Segmentation.empty(volume)
    segmentation.add_segment("a")
    segmentation.layers[0][:] = blobs(volume) == 2
    path = write_labelmap(segmentation, tmp_path / "a.nii.gz")
    image = nib.load(str(path))
    data = np.asarray(image.dataobj)
    i, j, k = np.nonzero(data)
    world = geometry.lps_to_ras_affine(image.affine)  # RAS -> LPS
    points = np.column_stack([i, j, k, np.ones(len(i))]) @ world.T
    assert np.all(labels_at(segmentation, volume, points[:, :3]) == 1)
    assert len(i) == segmentation.mask(1).sum()


def test_save_volume_label_map_and_nrrd_header_path(tmp_path: Path) -> None:
    """A plain NRRD label map written by radlabel's volume writer reads back through the ITK path."""
    volume = reference()
    labels = Volume(blobs(volume), volume.origin, volume.spacing, volume.direction)
    save_volume(labels, tmp_path / "plain.nrrd")
    result = read_labelmap(tmp_path / "plain.nrrd", volume)
    assert np.array_equal(result.segmentation.layers[0], labels.array)


# --------------------------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------------------------


def test_pyradiomics_brain_tumour_label(shared_data: Path) -> None:
    folder = shared_data / "pyradiomics" / "brain1_gbm_t1gd_tumour_label"
    image = load(folder / "brain1_image.nrrd").volume
    result = read_labelmap(folder / "brain1_label.nrrd", image)
    assert result.match == "exact" and len(result.segmentation.layers) == 1
    (segment,) = result.segmentation.segments.values()
    assert segment.name == "Segment 1" and result.segmentation.mask(segment.id).sum() == 4137  # MANIFEST
    # the SimpleITK NIfTI conversion (RAS on disk) lands on the same voxels
    nifti = read_labelmap(folder / "nifti_converted_by_SimpleITK" / "brain1_label.nii.gz", image)
    assert nifti.match == "exact"
    assert np.array_equal(nifti.segmentation.layers[0], result.segmentation.layers[0])


def test_totalsegmentator_41_labels_with_names_match_nibabel_counts(shared_data: Path) -> None:
    folder = shared_data / "totalsegmentator" / "ct_nifti_with_multilabel_seg"
    image = load(folder / "example_ct_sm.nii.gz").volume
    result = read_labelmap(folder / "example_seg.nii.gz", image, label_names=folder / "label_names_total.json")
    segmentation = result.segmentation
    direct = np.asarray(nib.load(str(folder / "example_seg.nii.gz")).dataobj)
    values, counts = np.unique(direct[direct > 0], return_counts=True)
    assert len(values) == 41 and len(segmentation.layers) == 1
    assert sorted(segmentation.segments) == values.tolist()
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        assert segmentation.mask(value).sum() == count
    names = json.loads((folder / "label_names_total.json").read_text())
    assert all(segmentation.segments[v].name == names[str(v)] for v in values.tolist())
    assert segmentation.segments[5].name == "liver" and segmentation.segments[5].type.value == "10200004"


def test_totalsegmentator_nifti_seg_onto_the_dicom_ct_by_world_position(shared_data: Path) -> None:
    case = shared_data / "totalsegmentator" / "ct_dicom_with_multilabel_seg"
    ct = load(case / "image_dicom").volume
    seg_path = case / "seg_nifti" / "example_seg_dicom.nii.gz"
    result = read_labelmap(seg_path, ct, label_names=case / "seg_nifti" / "label_names_total.json")
    assert result.match == "exact" and result.warnings == []
    segmentation = result.segmentation
    nifti = nib.load(str(seg_path))
    data = np.asarray(nifti.dataobj)
    assert not np.allclose(geometry.lps_to_ras_affine(nifti.affine), ct.affine)  # rows are stored flipped
    i, j, k = np.nonzero(data)
    world = geometry.index_to_world(geometry.lps_to_ras_affine(nifti.affine), np.column_stack([i, j, k]))
    assert np.array_equal(labels_at(segmentation, ct, world), data[i, j, k])
    assert segmentation.label_map().astype(bool).sum() == len(i)
    assert len(segmentation.segments) == 31 and segmentation.segments[5].name == "liver"
    # the 41-label seg belongs to another scan: refused with both names
    other = shared_data / "totalsegmentator" / "ct_nifti_with_multilabel_seg" / "example_seg.nii.gz"
    with pytest.raises(InputError, match="does not overlap") as info:
        read_labelmap(other, ct, reference_name=str(case / "image_dicom"))
    assert "example_seg.nii.gz" in str(info.value) and "image_dicom" in str(info.value)


def dcmqi_masks(path: Path, ct: Volume) -> dict[str, NDArray[np.bool_]]:
    """Masks of a dcmqi DICOM SEG per segment label, decoded by highdicom per source slice (the reference)."""
    seg = hd.seg.segread(str(path))
    numbers = [d.segment_number for d in seg.SegmentSequence]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=ct.metadata["sop_instance_uids"],
        segment_numbers=numbers,
        combine_segments=False,
        skip_overlap_checks=True,
        ignore_spatial_locations=True,
    )
    return {d.segment_label: pixels[..., n].astype(bool) for n, d in enumerate(seg.SegmentSequence)}


def test_dcmqi_liver_nrrd_onto_the_ct_equals_the_dcmqi_seg(shared_data: Path) -> None:
    case = shared_data / "dcmqi" / "ct_3slice_with_seg"
    ct = load(case / "image_dicom").volume
    result = read_labelmap(
        case / "labels_nrrd" / "liver_seg.nrrd", ct, label_names=case / "seg_meta_json" / "seg-example.json"
    )
    assert result.match == "exact"
    (liver,) = result.segmentation.segments.values()
    assert liver.name == "Liver" and liver.color == (221, 130, 101) and liver.type.value == "10200004"
    reference_mask = dcmqi_masks(case / "seg_dicom" / "liver.dcm", ct)["Liver"]
    assert reference_mask.sum() == 107098
    assert np.array_equal(result.segmentation.mask(liver.id), reference_mask)


def test_dcmqi_partial_overlaps_become_layers_equal_to_the_dcmqi_seg(shared_data: Path) -> None:
    case = shared_data / "dcmqi" / "ct_3slice_with_seg"
    ct = load(case / "image_dicom").volume
    files = [case / "labels_nrrd" / f"partial_overlaps-{n}.nrrd" for n in (1, 2, 3)]
    result = read_labelmap(files, ct, label_names=case / "seg_meta_json" / "seg-example_partial_overlaps.json")
    segmentation = result.segmentation
    assert result.match == "exact"
    assert len(segmentation.layers) == 3  # files 2 and 3 overlap what came before them
    by_name = {s.name: s for s in segmentation.segments.values()}
    assert set(by_name) == {"GREEN", "LIGHT_BLUE", "DARK_BLUE", "ORANGE", "PURPLE"}
    assert by_name["LIGHT_BLUE"].type == CodedConcept("79654002", "SCT", "Edema")
    assert by_name["ORANGE"].color == (216, 101, 79)
    reference_masks = dcmqi_masks(case / "seg_dicom" / "partial_overlaps.dcm", ct)
    for name, segment in by_name.items():
        assert np.array_equal(segmentation.mask(segment.id), reference_masks[name]), name
    overlap = segmentation.mask(by_name["ORANGE"].id) & segmentation.mask(by_name["GREEN"].id)
    assert overlap.any()
