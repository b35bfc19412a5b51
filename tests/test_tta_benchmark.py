"""benchmarks/tta.py's own logic: the views of a real chest film, the mean-logit variants on the real default model,
and the paired bootstrap (whole patients, a variant equal to none differs by exactly 0)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from converters import dataset
from converters import operating_point as op
from converters.augment import EXPOSURE_SHIFTS
from converters.validate import film_scores, logit
from xrayviewer.core.analysis.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tta


def films(kermany, n: int = 4) -> tuple[np.ndarray, np.ndarray, list[dataset.Sample]]:
    samples = dataset.list_samples(kermany)
    samples = samples[:n // 2] + samples[-(n // 2):]  # both classes
    gray, labels = dataset.load_gray(samples, 224)
    return gray, labels, samples


def test_views_keep_shape_and_dtype_and_the_identity_is_an_exact_copy(kermany):
    gray, _, _ = films(kermany)
    for name, view in tta.VIEWS.items():
        out = tta.apply(view, gray)
        assert out.shape == gray.shape and out.dtype == np.uint8, name
        assert (name == "identity") == np.array_equal(out, gray), name
    same = tta.apply(tta.VIEWS["identity"], gray[0])
    assert np.array_equal(same, gray[0]) and not np.shares_memory(same, gray[0])


def test_a_shift_moves_the_film_and_a_zoom_keeps_its_centre():
    dot = np.zeros((224, 224), np.uint8)
    dot[100, 60] = 255
    moved = tta.apply(tta.View(dx=8 / 224, dy=-4 / 224), dot)
    assert np.unravel_index(np.argmax(moved), moved.shape) == (96, 68)
    centre = np.zeros((224, 224), np.uint8)
    centre[112, 112] = 255
    zoomed = tta.apply(tta.View(zoom=1.08), centre)
    assert np.unravel_index(np.argmax(zoomed), zoomed.shape) == (112, 112)


def test_a_gamma_view_is_the_gamma_perturbation():
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rng = np.random.default_rng(0)
    assert np.array_equal(tta.apply(tta.View(gamma=1.5), gray), EXPOSURE_SHIFTS["gamma_1.5"](gray, rng))


def test_variants_are_the_mean_logit_over_views_on_the_default_model(kermany):
    gray, _, _ = films(kermany)
    engine = Engine("cpu")
    model = engine.model("mobilenetv2")
    per_view = {v: film_scores(engine, model, tta.apply(tta.VIEWS[v], gray))[0] for v in tta.VARIANTS["shift"]}
    plain = film_scores(engine, model, gray)[0]
    assert np.allclose(tta.variant_scores(per_view, "none"), plain, atol=1e-6)
    mean = np.mean([logit(per_view[v]) for v in tta.VARIANTS["shift"]], axis=0)
    assert np.allclose(logit(tta.variant_scores(per_view, "shift")), mean, atol=1e-6)
    assert not np.allclose(per_view["shift_+"], plain, atol=1e-4)  # the views really differ for the model


def test_bootstrap_draws_whole_patients_and_an_equal_variant_differs_by_zero():
    patients = ["a", "a", "b", "b", "c", "c", "c"]  # every patient has both classes, so every resample has both
    for idx in tta.patient_draws(patients, 50, seed=1):
        drawn = [patients[i] for i in idx]
        for p in set(drawn):
            assert drawn.count(p) % patients.count(p) == 0  # a patient comes with all of their films
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 0, 1, 1, 0, 1], float)
    scores = op.Scores(labels, rng.random(7), {"blur": rng.random(7), "noise": rng.random(7)})
    intervals = tta.paired_intervals({"none": scores, "shift": scores}, tta.patient_draws(patients, 30, seed=2))
    assert intervals == {"shift": {f: [0.0, 0.0] for f in tta.FIGURES}}
