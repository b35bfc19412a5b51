"""The image-quality check on real films: validation chest films and the large demo CR pass; films blurred or
flattened past what the model can read (which it calls pneumonia) are refused with the measure and the limit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from xrayviewer.core import read_image, to_display
from xrayviewer.core.analysis import checks
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.findings import Subject


@pytest.fixture(scope="module")
def films(validation_films):
    """Every 20th validation film (patients the models were not trained on; all 16 kept with the tests where the whole
    set is not there), 224 px, with labels."""
    from converters import dataset

    return dataset.load_gray(validation_films[::max(1, len(validation_films) // 25)], 224)


@pytest.fixture(scope="module")
def shipped():
    engine = Engine("cpu")
    return engine, engine.model("mobilenetv2")


def test_validation_films_pass_and_their_blurred_copies_are_refused(films):
    grays, _ = films
    assert len(grays) >= 16
    for gray in grays:
        assert checks.detail(Subject(gray)) == []
        (refusal,) = checks.detail(Subject(cv2.GaussianBlur(gray, (0, 0), 4)))
        assert refusal.code == "detail" and refusal.score < refusal.limit == checks.DETAIL_LIMIT
        assert str(refusal).startswith("too blurred or too flat to read: fine detail ")
        assert f"< limit {checks.DETAIL_LIMIT:.2f} gray levels at 224 x 224 px" in str(refusal)


def test_the_model_calls_blurred_normal_films_pneumonia_and_the_engine_refuses_them(films, shipped):
    engine, model = shipped
    grays, labels = films
    normals = [g for g, y in zip(grays, labels) if y == 0]
    blurred = [cv2.GaussianBlur(g, (0, 0), 4) for g in normals]
    plain_calls = [i.probability >= model.card.threshold for i in engine.infer(model, normals)]
    blurred_calls = [i.probability >= model.card.threshold for i in engine.infer(model, blurred)]
    assert sum(blurred_calls) > sum(plain_calls) and sum(blurred_calls) >= 0.8 * len(normals)  # why the check exists
    for display in blurred:
        result = engine.analyze(model, display)
        assert "detail" in [r.code for r in result.refused]
        assert result.label is None and result.probability is None


def test_films_flattened_to_a_tenth_of_their_contrast_are_refused(films):
    grays, _ = films
    flattened = [np.clip((g - g.mean()) * 0.1 + g.mean() + 0.5, 0, 255).astype(np.uint8) for g in grays]
    codes = [{r.code for r in checks.detail(Subject(f)) + checks.flat(Subject(f))} for f in flattened]
    assert all(codes)  # each one refused, by the detail check or (the flattest) by the flat one


def test_the_large_demo_cr_passes_at_its_own_size_and_a_blurred_copy_does_not(dicom_data):
    display = to_display(read_image(dicom_data / "RG1_UNCR.dcm"))
    assert min(display.shape) > 1500  # smooth at its own size: the check measures it at 224 px
    assert checks.quality_measures(display)[0] > 2 * checks.DETAIL_LIMIT
    assert checks.detail(Subject(display)) == []
    sigma = 4 * max(display.shape) / checks.QUALITY_SIZE  # 4 px at 224
    (refusal,) = checks.detail(Subject(cv2.GaussianBlur(display, (0, 0), sigma)))
    assert refusal.code == "detail"


def test_a_uniform_image_gets_one_reason_the_flat_one():
    subject = Subject(np.full((300, 300), 128, np.uint8))
    assert checks.detail(subject) == [] and [r.code for r in checks.flat(subject)] == ["flat"]
    assert checks.detail in checks.IMAGE


def test_colour_displays_are_measured_as_gray(films):
    gray = films[0][0]
    rgb = np.repeat(gray[..., None], 3, axis=2)
    assert checks.quality_measures(rgb) == pytest.approx(checks.quality_measures(gray), abs=1e-3)
