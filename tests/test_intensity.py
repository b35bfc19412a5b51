"""Exposure normalisation (card `preprocessing.intensity`) and the faint-film refusal, on real chest films and the
real shipped model: every caller prepares a film the same way, a card without the key behaves as before, and a film
too faint to read is refused with that reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from converters import dataset
from converters.train import PERCENTILE_STRETCH, to_input
from converters.validate import update_card_keys
from xrayviewer.core.analysis import checks
from xrayviewer.core.analysis.contract import ModelCard, card_problem
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.findings import Subject
from xrayviewer.core.analysis.preprocess import blank_border, model_input


def flattened(gray: np.ndarray, gain: float) -> np.ndarray:
    """The film's contrast about its mean times `gain`: an under- or over-exposed copy."""
    mean = gray.astype(np.float32).mean()
    return np.clip((gray - mean) * gain + mean + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def films(validation_films):
    """Every 25th validation film (patients no model was trained on; all 16 kept with the tests where the whole set
    is not there), 224 px, with labels."""
    return dataset.load_gray(validation_films[::max(1, len(validation_films) // 20)], 224)


@pytest.fixture(scope="module")
def stretched_model(tmp_path_factory):
    """The shipped MobileNetV2 file with the percentile stretch in its card (same weights): a real model whose
    card carries the key, for the callers' paths."""
    from xrayviewer.models import resolve

    path = tmp_path_factory.mktemp("models") / "stretched.onnx"
    path.write_bytes(resolve("mobilenetv2").read_bytes())
    update_card_keys(path, {"preprocessing": {"intensity": PERCENTILE_STRETCH}})
    engine = Engine("cpu")
    return engine, engine.model(path)


def card(intensity: dict | None = None) -> dict:
    data = {"name": "m", "architecture": "a", "classes": ["NORMAL", "PNEUMONIA"], "positive_class": "PNEUMONIA",
            "input_size": [224, 224], "preprocessing": {"scale": 1 / 127.5, "offset": -1.0, "border": 0.09},
            "cam_layer": "c", "threshold": {"value": 0.5}, "validation": {}, "training_data": {},
            "recipe_version": "3", "converter_version": "1"}
    if intensity is not None:
        data["preprocessing"]["intensity"] = intensity
    return data


def test_a_card_without_the_key_prepares_films_exactly_as_before(films):
    grays, _ = films
    plain = ModelCard(card())
    assert plain.intensity is None and card_problem(plain.data) is None
    for gray in grays[:4]:
        before = blank_border(gray, 0.09).astype(np.float32) * np.float32(1 / 127.5) + np.float32(-1.0)
        assert np.array_equal(model_input(gray, plain)[0, ..., 0], before)


def test_the_card_names_the_stretch_and_an_unknown_method_is_refused():
    assert card_problem(card(PERCENTILE_STRETCH)) is None
    assert ModelCard(card(PERCENTILE_STRETCH)).intensity == PERCENTILE_STRETCH
    what, why = card_problem(card({"method": "clahe"}))
    assert what == "invalid model card key 'preprocessing.intensity'" and "percentile-stretch" in why
    assert card_problem(card({"method": "percentile-stretch", "percentiles": [99, 1]})) is not None


def test_the_stretch_undoes_a_change_of_exposure(films):
    grays, _ = films
    stretched, plain = ModelCard(card(PERCENTILE_STRETCH)), ModelCard(card())
    for gray in grays:
        x = model_input(gray, stretched)
        for gain in (0.5, 0.3):
            faint = flattened(gray, gain)
            moved = np.abs(model_input(faint, stretched) - x).mean() * 127.5  # in gray levels
            unstretched = np.abs(model_input(faint, plain) - model_input(gray, plain)).mean() * 127.5
            assert moved < 3 and moved < 0.3 * unstretched, (gain, moved, unstretched)
        x = x[0, ..., 0]
        interior = x[20:-20, 20:-20]
        assert np.isclose(np.percentile(interior, 99), 1, atol=0.02) and np.isclose(np.percentile(interior, 1), -1,
                                                                                     atol=0.02)
        assert (x[:20] == -1).all() and (x[:, -20:] == -1).all()  # the border is blanked after the stretch


def test_training_export_and_every_engine_path_see_the_same_input(films, stretched_model):
    engine, model = stretched_model
    grays, _ = films
    assert model.card.intensity == PERCENTILE_STRETCH
    trained = to_input(grays[:4], 0.09, PERCENTILE_STRETCH)  # converters.train and converters.export
    for i, inference in enumerate(engine.infer(model, list(grays[:4]))):  # viewer, analyze, evaluate, worklist
        assert np.array_equal(inference.image[0], trained[i])
        assert np.array_equal(model_input(grays[i], model.card)[0], trained[i])  # bench, operating point
    result = engine.analyze(model, grays[0], "occlusion", force=True)  # perturbation maps score inputs made the same way
    assert result.probability == pytest.approx(engine.infer(model, [grays[0]])[0].probability, abs=1e-6)
    assert result.cam is not None and np.isfinite(result.cam.heat).all()


def test_with_the_stretch_a_faint_film_gets_nearly_the_clean_films_answer(films, stretched_model, tmp_path):
    engine, model = stretched_model
    import onnx

    from xrayviewer.core.analysis.contract import META_CARD
    from converters.validate import write_card

    proto = onnx.load(str(model.path))  # the same weights with no stretch in the card
    data = json.loads({p.key: p.value for p in proto.metadata_props}[META_CARD])
    del data["preprocessing"]["intensity"]
    write_card(proto, data)
    (tmp_path / "plain.onnx").write_bytes(proto.SerializeToString())
    plain = engine.model(tmp_path / "plain.onnx")
    assert plain.card.intensity is None
    grays, _ = films
    faint = [flattened(g, 0.5) for g in grays]

    def moved(m) -> float:
        clean = np.array([i.probability for i in engine.infer(m, list(grays))])
        return float(np.abs(np.array([i.probability for i in engine.infer(m, faint)]) - clean).mean())

    assert moved(model) < 0.5 * moved(plain)


def test_training_films_pass_and_films_too_faint_to_read_are_refused_with_that_reason(films):
    grays, _ = films
    for gray in grays:
        assert checks.faint(Subject(gray)) == []
        assert checks.faint(Subject(flattened(gray, 48 / checks.dynamic_range(gray)))) == []  # 48 levels are read
        (refusal,) = checks.faint(Subject(flattened(gray, 34 / checks.dynamic_range(gray))))  # 34 gray levels left
        assert refusal.code == "faint" and refusal.score < refusal.limit == checks.FAINT_LIMIT
        assert str(refusal).startswith("too faint to read: the film spans ")
    assert checks.faint(Subject(np.full((224, 224), 128, np.uint8))) == []  # a uniform image is `flat`'s


def test_the_engine_refuses_a_faint_film_instead_of_calling_it(films):
    engine = Engine("cpu")
    model = engine.model("mobilenetv2")
    gray = films[0][0]
    result = engine.analyze(model, flattened(gray, 34 / checks.dynamic_range(gray)))
    assert "faint" in [r.code for r in result.refused]
    assert result.label is None and result.probability is None
