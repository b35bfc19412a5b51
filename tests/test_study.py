"""Study scan over real DICOM studies, a DICOMDIR, and a folder mixing DICOM, JPEG and junk."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from xrayviewer.core import scan
from xrayviewer.core.reading.study import NO_PATIENT


def test_dicomdir_groups_patients_studies_series(pydicom_test_files):
    tree = scan(pydicom_test_files / "dicomdirtests" / "DICOMDIR")
    assert set(tree.patients) == {"77654033", "98890234"}
    assert len(tree.patients["77654033"].studies) == 2
    assert len(tree.patients["98890234"].studies) == 4
    assert len(tree.instances()) == 31 and tree.problems == []
    for series in tree.series():
        numbers = [i.instance_number for i in series.instances]
        assert numbers == sorted(numbers)


def test_mixed_folder(tmp_path, pydicom_test_files, dicom_data):
    study = tmp_path / "incoming"
    shutil.copytree(pydicom_test_files / "dicomdirtests" / "77654033", study / "77654033")
    shutil.copy(dicom_data / "RG1_J2KR.dcm", study / "chest.dcm")
    photos = study / "photos"
    photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(photos / f"img{i}.jpg"), np.full((16, 16), 40 * i, np.uint8))
    (study / "notes.txt").write_text("not an image")
    (study / "empty.dcm").write_bytes(b"")
    shutil.copy(pydicom_test_files / "reportsi.dcm", study / "report.dcm")

    tree = scan(study)

    assert set(tree.patients) == {"77654033", "9RG1", NO_PATIENT}
    plain = tree.patients[NO_PATIENT]
    (plain_study,) = plain.studies.values()
    (plain_series,) = plain_study.series.values()
    assert [i.path.name for i in plain_series.instances] == ["img0.jpg", "img1.jpg", "img2.jpg"]
    ct = [se for se in tree.series() if se.modality == "CT"]
    assert ct and [i.instance_number for i in ct[0].instances] == sorted(i.instance_number for i in ct[0].instances)
    reasons = {p.path.name: p.reason for p in tree.problems}
    assert set(reasons) == {"notes.txt", "empty.dcm", "report.dcm"}  # the viewer's browser lists each reason
    assert "no pixel data" in reasons["report.dcm"] and "empty" in reasons["empty.dcm"]
    # the patients with the real names come first, plain images last
    assert list(tree.patients)[-1] == NO_PATIENT


def test_a_walk_for_images_skips_what_is_not_an_image(tmp_path):
    cv2.imwrite(str(tmp_path / "film.png"), np.full((16, 16), 90, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.dcm").write_bytes(b"")
    tree = scan(tmp_path, skip_non_images=True)
    assert [i.path.name for i in tree.instances()] == ["film.png"]
    assert tree.skipped == [tmp_path / "notes.txt"]  # left out, not a problem
    assert [p.path.name for p in tree.problems] == ["empty.dcm"]  # an empty file may be a broken copy: said
    named = scan(tmp_path / "notes.txt", skip_non_images=True)  # a file given by name is never skipped
    assert named.skipped == [] and named.problems[0].reason.startswith("unsupported file: its content is not DICOM")


def test_the_scan_and_the_reader_word_a_bad_file_the_same(tmp_path):
    """The browser's reason for a file is the viewer's message for it, without the name shown beside it."""
    from xrayviewer.core import read_image
    from xrayviewer.core.errors import XRayViewerError

    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    reasons = {p.path.name: p.reason for p in scan(tmp_path).problems}
    for name in ("empty.dcm", "notes.txt"):
        with pytest.raises(XRayViewerError) as raised:
            read_image(tmp_path / name)
        assert str(raised.value) == f"{tmp_path / name}: {reasons[name]}"
    assert reasons["empty.dcm"] == "empty file: it holds 0 bytes. Copy or export the file again."


def test_missing_path_is_a_problem_not_an_exception(tmp_path):
    tree = scan(tmp_path / "nowhere")
    assert tree.instances() == [] and tree.problems[0].reason == "no such file or folder"


def test_the_first_image_of_a_folder_is_found_without_scanning_the_rest(tmp_path):
    from xrayviewer.core.reading.study import first_image

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "0notes.txt").write_text("not an image")
    cv2.imwrite(str(tmp_path / "a" / "film.png"), np.full((16, 16), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.full((16, 16), 90, np.uint8))
    assert first_image([tmp_path]) == tmp_path / "a" / "film.png"
    assert first_image([tmp_path / "nothing-here"]) is None
