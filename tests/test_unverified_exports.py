"""A film sent or exported with no reader decision carries the AI's result alone, and every exported object says so:
the SR is UNVERIFIED with a comment and series description saying the AI result is not verified by a reader, the SC's
comments and burned-in block say it too; once a reader decides, the SR is VERIFIED with the reader as its verifying
observer. On pydicom-data's chest CR, analysed by the shipped model; dciodvfy finds no error and dsrdump reads the
flags."""

from __future__ import annotations

from dataclasses import replace

import pydicom
import pytest
from test_derived_objects import DECISION, analysed, dsrdump, saved
from test_dicom_export_valid import texts, validate

from xrayviewer.core import to_display
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.review.dicom_export import UNVERIFIED, derived_objects, export_dicom
from xrayviewer.core.review.report_image import reading_picture, result_lines

NOT_VERIFIED = "AI result, not verified by a reader"


@pytest.fixture(scope="module")
def film(dicom_data):
    return analysed(Engine("cpu"), dicom_data / "RG1_UNCR.dcm")


def test_without_a_reader_decision_every_object_says_the_ai_result_is_unverified(film, tmp_path):
    assert film.decision is None and film.analysis.label is not None
    sr_path, pm_path, sc_path = saved(derived_objects(film), tmp_path / "node")
    out = export_dicom(film, reading_picture(to_display(film.record), film), tmp_path / "viewer")
    for path in (sr_path, pm_path, sc_path, out.sr, out.sc):
        validate(path)
    for sr_file, sc_file in ((sr_path, sc_path), (out.sr, out.sc)):
        sr, sc = pydicom.dcmread(sr_file), pydicom.dcmread(sc_file)
        assert sr.VerificationFlag == "UNVERIFIED" and "VerifyingObserverSequence" not in sr
        assert UNVERIFIED in texts(sr, "Comment")
        assert sr.SeriesDescription.startswith(NOT_VERIFIED)
        assert NOT_VERIFIED in sc.ImageComments
        dump = dsrdump(sr_file)  # it shortens long texts
        assert "Verification Flag   : UNVERIFIED" in dump and f'"Comment")="{UNVERIFIED[:26]}' in dump
    assert any(NOT_VERIFIED in line for line in result_lines(film))  # the SC's burned-in block


def test_a_reader_decision_verifies_the_sr_in_the_readers_name(film, tmp_path):
    decided = replace(film, decision=DECISION)
    sr_path, _, sc_path = saved(derived_objects(decided), tmp_path / "node")
    for path in (sr_path, sc_path):
        validate(path)
    sr, sc = pydicom.dcmread(sr_path), pydicom.dcmread(sc_path)
    assert sr.VerificationFlag == "VERIFIED"
    (observer,) = sr.VerifyingObserverSequence
    assert str(observer.VerifyingObserverName) == "Dr Test^" and observer.VerifyingOrganization
    assert observer.VerificationDateTime.startswith("20261123")  # the decision's time, not the export's
    assert UNVERIFIED not in texts(sr, "Comment") and NOT_VERIFIED not in sr.SeriesDescription
    assert NOT_VERIFIED not in sc.ImageComments
    assert not any(NOT_VERIFIED in line for line in result_lines(decided))
    dump = dsrdump(sr_path)
    assert "Verification Flag   : VERIFIED" in dump and "Dr Test" in dump, dump[:800]
