"""The operating-point rules: each picks what its text says (small arrays and real validation films through the
shipped model), and the card written with the chosen rule states it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from converters import operating_point as op
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.models import resolve


def sensitivity(labels: np.ndarray, scores: np.ndarray, t: float) -> float:
    return float(np.mean(scores[labels == 1] >= t))


def correct(labels: np.ndarray, scores: np.ndarray, t: float) -> int:
    return int(np.sum((scores >= t) == (labels == 1)))


def youden_j(labels: np.ndarray, scores: np.ndarray, t: float) -> float:
    return sensitivity(labels, scores, t) + float(np.mean(scores[labels == 0] < t))


def holds(name: str, s: op.Scores, t: float) -> bool:
    """Brute force over every distinct score: does threshold `t` do what rule `name`'s text says?"""
    pooled = s.pooled()
    candidates = np.unique(np.concatenate([s.plain, pooled[1]]))
    higher = candidates[candidates > t]
    if name == "validation_sensitivity":
        return sensitivity(s.labels, s.plain, t) >= 0.95 and all(
            sensitivity(s.labels, s.plain, u) < 0.95 for u in higher)
    if name == "shifted_sensitivity":
        return sensitivity(*pooled, t) >= 0.95 and all(sensitivity(*pooled, u) < 0.95 for u in higher)
    if name == "worst_case":
        sets = [s.plain, *s.shifted.values()]
        return all(sensitivity(s.labels, p, t) >= 0.95 for p in sets) and all(
            min(sensitivity(s.labels, p, u) for p in sets) < 0.95 for u in higher)
    if name == "shifted_accuracy":
        allowed = [u for u in candidates if sensitivity(*pooled, u) >= 0.95]
        return sensitivity(*pooled, t) >= 0.95 and correct(*pooled, t) == max(correct(*pooled, u) for u in allowed)
    if name == "shifted_youden":
        return np.isclose(youden_j(*pooled, t), max(youden_j(*pooled, u) for u in candidates))
    raise AssertionError(f"no check for rule {name}")


def test_rules_on_a_small_array_pick_what_they_say():
    # 20 pneumonia films: one low outlier at 0.1, one at 0.2, the rest 0.6-0.99; 4 normals at 0.2-0.4 and 0.95
    labels = np.r_[np.ones(20), np.zeros(4)]
    scores = np.r_[0.1, 0.2, np.linspace(0.6, 0.99, 18), 0.2, 0.3, 0.4, 0.95]
    assert op.highest_with_sensitivity(labels, scores) == 0.2  # one miss of 20 is 95 %
    # at 0.2: 19 + 0 correct (the normal at 0.2 is called); at 0.1: 20 + 0: the lower one is more accurate
    assert op.best_accuracy_with_sensitivity(labels, scores) == 0.1
    # Youden: at 0.6, 18/20 + 3/4 beats 0.2 (19/20 + 0/4) and every other cut
    assert np.isclose(op.youden(labels, scores), 0.6)
    plain = scores
    moved = {"up": scores + 0.05, "down": np.r_[0.1, 0.15, scores[2:]]}
    s = op.Scores(labels, plain, moved)
    _, worst = op.RULES["worst_case"]
    assert worst(s) == 0.15  # 'down' moved the second-lowest pneumonia film to 0.15: the lowest of the ceilings
    for name, (_, rule) in op.RULES.items():
        assert holds(name, s, rule(s)), name


def test_rules_on_random_scores_match_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = (rng.random(60) < 0.7).astype(float)
        plain = np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0, 1)
        s = op.Scores(labels, plain, {k: np.clip(plain + rng.normal(0, 0.1, 60), 0, 1) for k in ("a", "b", "c")})
        for name, (_, rule) in op.RULES.items():
            assert holds(name, s, rule(s)), name


@pytest.fixture(scope="module")
def scores(validation_films) -> op.Scores:
    """A handful of real validation films (plain and through the 13 perturbations), scored by MobileNetV2."""
    return op.collect("mobilenetv2", samples=validation_films, limit=10)


def test_rules_on_real_validation_films_pick_what_they_say(scores):
    assert len(scores.labels) >= 10 and 0 < scores.labels.mean() < 1 and len(scores.shifted) == 13
    compared = op.compare(scores)["rules"]
    assert set(compared) == set(op.RULES)
    for name, (_, rule) in op.RULES.items():
        t = rule(scores)
        assert holds(name, scores, t), name
        assert compared[name]["threshold"] == round(t, 6)
        assert compared[name]["shifted"]["n"] == 13 * len(scores.labels)
        per_kind = compared[name]["shifted_sensitivity_per_kind"]
        assert compared[name]["shifted"]["worst_sensitivity"] == min(per_kind.values()) and len(per_kind) == 13
        assert compared[name]["unseen_kinds"]["kinds_with_sensitivity_ok"].endswith("/13")


def test_the_card_written_with_the_chosen_rule_names_it(scores, tmp_path):
    path = tmp_path / "m.onnx"
    shutil.copy(resolve("mobilenetv2"), path)
    test = (scores.labels[::-1].copy(), scores.plain[::-1].copy())  # any labelled scores will do
    entry = op.update_card(path, scores, test)
    card = Engine("cpu").model(path).card
    text, rule = op.RULES[op.CHOSEN]
    assert card.threshold == entry["value"] == rule(scores)
    assert card.threshold_rule == text and card.data["threshold"]["rule_name"] == op.CHOSEN
    for figures in (card.data["validation"], card.data["shifted"], card.data["internal_test"]):
        assert figures["threshold"] == round(card.threshold, 6)
    assert card.data["threshold"]["shifted"]["sensitivity"] == compared_sensitivity(scores, card.threshold)


def compared_sensitivity(s: op.Scores, t: float) -> float:
    return round(sensitivity(*s.pooled(), t), 4)


@pytest.mark.parametrize("name", ["mobilenetv2", "xception"])
def test_the_shipped_cards_state_the_chosen_rule(name):
    card = Engine("cpu").model(name).card
    assert card.threshold_rule == op.RULES[op.CHOSEN][0]
    assert card.data["threshold"]["rule_name"] == op.CHOSEN
    shifted = card.data["threshold"]["shifted"]
    assert shifted["n"] == 13 * card.data["validation"]["n"] and 0 < card.threshold < 1


def test_write_card_with_a_shipped_name_is_refused_before_any_scoring(capsys):
    """The cards are written by path after minutes of scoring: a name is refused at once, saying what to give."""
    with pytest.raises(SystemExit) as stop:
        op.main(["consensus", "--write-card", "--data", "/nonexistent-films"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "needs model files, not names: consensus" in err and "models/consensus.json" in err
