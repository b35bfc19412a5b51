"""The operating point: candidate threshold rules compared on the plain and the shifted validation.

    python -m converters.operating_point MODEL [MODEL ...] [--json OUT] [--write-card]

Scores the patient-level validation films as they are and through every fixed perturbation of
`converters.augment.PERTURBATIONS` (the shifted validation of `converters.validate`), then, for each
candidate rule in `RULES`, prints its threshold and the figures there: plain and pooled-shifted
accuracy / sensitivity / specificity, the worst perturbation's sensitivity, and `unseen_kinds` (the rule
chosen without one perturbation and measured on it, each in turn: does what it promises hold on a shift
it did not see?). `logit_shift` says which class the perturbations move. With two models it also scores
their consensus (the mean of the two logits, as a probability) under the same rules; a consensus card
(`models/consensus.json`) is a MODEL like any other, scored from its members' (cached) scores. `--write-card`
stores the chosen rule (`CHOSEN`, for the reason `WHY`), its threshold and its figures in each model
file's card, and moves the card's validation, shifted and internal-test figures to that threshold.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters import dataset
from converters.augment import shifted
from converters.validate import card_of, emit, film_scores, logit, store_card
from xrayviewer.core.analysis.metrics import binary_figures, pick_threshold

MIN_SENSITIVITY = 0.95


@dataclass(frozen=True)
class Scores:
    """Validation labels `[N]`, the plain films' probabilities `[N]`, and kind -> `[N]` for the shifted films."""

    labels: np.ndarray
    plain: np.ndarray
    shifted: dict[str, np.ndarray]

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels, probabilities) of every shifted film together."""
        return np.tile(self.labels, len(self.shifted)), np.concatenate(list(self.shifted.values()))


def highest_with_sensitivity(labels: np.ndarray, scores: np.ndarray) -> float:
    return pick_threshold(labels, scores, MIN_SENSITIVITY)


def best_accuracy_with_sensitivity(labels: np.ndarray, scores: np.ndarray) -> float:
    """Among thresholds (the pneumonia films' scores) keeping sensitivity >= MIN_SENSITIVITY, the most accurate
    (the highest of equals)."""
    ceiling = highest_with_sensitivity(labels, scores)
    candidates = np.unique(scores[(labels == 1) & (scores <= ceiling)])
    correct = [np.sum((scores >= t) == (labels == 1)) for t in candidates]
    return float(candidates[len(correct) - 1 - int(np.argmax(correct[::-1]))])


def youden(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold with the largest sensitivity + specificity - 1 (the highest of equals)."""
    candidates = np.unique(scores[labels == 1])
    pos, neg = scores[labels == 1], scores[labels == 0]
    j = [np.mean(pos >= t) + np.mean(neg < t) for t in candidates]
    return float(candidates[len(j) - 1 - int(np.argmax(j[::-1]))])


Rule = Callable[[Scores], float]

# name -> (the rule in words, as the card states it; the rule)
RULES: dict[str, tuple[str, Rule]] = {
    "validation_sensitivity": (
        "highest threshold with validation sensitivity >= 0.95 (calibrated probability)",
        lambda s: highest_with_sensitivity(s.labels, s.plain)),
    "shifted_sensitivity": (
        "highest threshold with pooled shifted-validation sensitivity >= 0.95 (validation films through "
        "13 fixed acquisition perturbations; calibrated probability)",
        lambda s: highest_with_sensitivity(*s.pooled())),
    "shifted_accuracy": (
        "most accurate threshold on the pooled shifted validation among those with shifted sensitivity >= 0.95 "
        "(calibrated probability)",
        lambda s: best_accuracy_with_sensitivity(*s.pooled())),
    "worst_case": (
        "highest threshold at which the plain validation and every one of the 13 shifted-validation "
        "perturbations keep sensitivity >= 0.95 (calibrated probability)",
        lambda s: min(highest_with_sensitivity(s.labels, p) for p in [s.plain, *s.shifted.values()])),
    "shifted_youden": (
        "threshold with the largest sensitivity + specificity on the pooled shifted validation (Youden; "
        "calibrated probability)",
        lambda s: youden(*s.pooled())),
}
CHOSEN = "shifted_sensitivity"
WHY = ("the perturbations raise normal films' logits more than pneumonia films' (logit_shift), so what a shift "
       "costs is specificity while sensitivity holds: the rule keeps the 0.95 sensitivity floor on the shifted "
       "films and spends everything above it on specificity; the rules that lower the threshold (shifted_accuracy, "
       "worst_case) buy sensitivity the shift does not take and pay in specificity, which it does, and "
       "shifted_youden breaks the floor on plain and shifted validation")


def collect(model_path: str | Path, data: Path = dataset.DEFAULT_DATA, seed: int = 1234,
            limit: int | None = None, samples: list[dataset.Sample] | None = None) -> Scores:
    """Plain and shifted validation scores of one model or consensus (`converters.validate.film_scores`, cached
    where $XRAYVIEWER_SCORE_CACHE says); `limit` takes every n-th film for a quick look. `samples`: the films to
    use instead of the validation side of `data`'s split (the tests' handful)."""
    from xrayviewer.core.analysis.engine import Engine

    engine = Engine("cpu")
    model = engine.model(model_path)
    if samples is None:
        samples = dataset.split_samples(dataset.list_samples(data), seed)["val"]
    if limit:
        samples = samples[::max(1, len(samples) // limit)]
    films, labels = dataset.load_gray(samples, 224)
    return Scores(labels, film_scores(engine, model, films)[0],
                  {kind: film_scores(engine, model, moved)[0] for kind, moved in shifted(films).items()})


def consensus(a: Scores, b: Scores) -> Scores:
    """The two models' mean logit, as a probability."""
    def mean(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(logit(p) + logit(q)) / 2))

    return Scores(a.labels, mean(a.plain, b.plain), {k: mean(a.shifted[k], b.shifted[k]) for k in a.shifted})


def _short(f: dict) -> dict:
    return {k: f[k] for k in ("auc", "accuracy", "sensitivity", "specificity")}


def figures(scores: Scores, threshold: float) -> dict:
    """Plain and pooled-shifted figures at `threshold`, and the worst perturbation's sensitivity."""
    per_kind = {k: binary_figures(scores.labels, p, threshold) for k, p in scores.shifted.items()}
    worst = min(per_kind, key=lambda k: per_kind[k]["sensitivity"])
    return {"threshold": round(threshold, 6),
            "validation": _short(binary_figures(scores.labels, scores.plain, threshold)),
            "shifted": {**_short(binary_figures(*scores.pooled(), threshold)), "n": len(scores.shifted) * len(
                scores.labels), "worst_sensitivity": per_kind[worst]["sensitivity"], "worst_kind": worst},
            "shifted_sensitivity_per_kind": {k: f["sensitivity"] for k, f in per_kind.items()}}


def unseen_kinds(scores: Scores, rule: Rule) -> dict:
    """The rule chosen without one perturbation and measured on it, for each perturbation in turn: mean accuracy,
    sensitivity and specificity, the lowest sensitivity and how many kinds keep it >= MIN_SENSITIVITY."""
    rows = []
    for kind, p in scores.shifted.items():
        rest = Scores(scores.labels, scores.plain, {k: q for k, q in scores.shifted.items() if k != kind})
        f = binary_figures(scores.labels, p, rule(rest))
        rows.append((f["accuracy"], f["sensitivity"], f["specificity"]))
    r = np.array(rows)
    return {"accuracy": round(float(r[:, 0].mean()), 4), "sensitivity": round(float(r[:, 1].mean()), 4),
            "specificity": round(float(r[:, 2].mean()), 4), "worst_sensitivity": round(float(r[:, 1].min()), 4),
            "kinds_with_sensitivity_ok": f"{int((r[:, 1] >= MIN_SENSITIVITY).sum())}/{len(r)}"}


def logit_shift(scores: Scores) -> dict:
    """Mean change of the pneumonia logit from the plain film to its perturbed copies, per class."""
    change = np.concatenate([logit(p) - logit(scores.plain) for p in scores.shifted.values()])
    labels = np.tile(scores.labels, len(scores.shifted))
    return {"normal": round(float(change[labels == 0].mean()), 3),
            "pneumonia": round(float(change[labels == 1].mean()), 3)}


def compare(scores: Scores) -> dict:
    """rule name -> its figures, with `unseen_kinds`; and the shift's `logit_shift`."""
    return {"rules": {name: {**figures(scores, rule(scores)), "unseen_kinds": unseen_kinds(scores, rule)}
                      for name, (_, rule) in RULES.items()},
            "logit_shift": logit_shift(scores)}


def card_threshold(scores: Scores, name: str = CHOSEN) -> dict:
    """The card's `threshold` entry for rule `name`: value, rule text and the figures it was chosen on."""
    text, rule = RULES[name]
    value = rule(scores)
    f = figures(scores, value)
    return {"value": value, "rule": text, "rule_name": name, "reason": WHY, "validation": f["validation"],
            "shifted": f["shifted"]}


def update_card(path: Path, scores: Scores, test: tuple[np.ndarray, np.ndarray] | None = None,
                name: str = CHOSEN) -> dict:
    """Write rule `name`'s threshold into the card of the model file at `path` and move the card's figures that
    depend on it (`validation`, pooled `shifted`, and `internal_test` from `test` = (labels, probabilities)) to
    the new threshold; returns the new `threshold` entry."""
    card = card_of(path)
    entry = card_threshold(scores, name)
    t = entry["value"]
    card["threshold"] = entry
    card["validation"] = {**card.get("validation", {}), **binary_figures(scores.labels, scores.plain, t)}
    if "shifted" in card:
        card["shifted"] = {**card["shifted"], **binary_figures(*scores.pooled(), t)}
    if test is not None:
        card["internal_test"] = {**card.get("internal_test", {}), **binary_figures(*test, t)}
    store_card(path, card)
    return entry


def internal_test(model_path: str | Path, data: Path = dataset.DEFAULT_DATA,
                  seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of the patient-level internal test films, for the card's figures only."""
    from xrayviewer.core.analysis.engine import Engine

    films, labels = dataset.load_gray(dataset.split_samples(dataset.list_samples(data), seed)["test"], 224)
    engine = Engine("cpu")
    return labels, film_scores(engine, engine.model(model_path), films)[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="ONNX model files or shipped model names")
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--json", type=Path, help="also write the result here")
    p.add_argument("--write-card", action="store_true",
                   help=f"store rule '{CHOSEN}' in each model file's card (file paths, not shipped names)")
    args = p.parse_args(argv)
    named = [m for m in args.models if not Path(m).is_file()]
    if args.write_card and named:  # checked first: the cards are written after minutes of scoring
        p.error(f"--write-card needs model files, not names: {', '.join(named)} "
                "(give the path, e.g. models/consensus.json)")
    collected = {m: collect(m, args.data, args.seed) for m in args.models}
    result: dict = {"chosen": CHOSEN, "why": WHY, "rules": {k: text for k, (text, _) in RULES.items()},
                    "models": {m: compare(s) for m, s in collected.items()}}
    if len(collected) == 2:
        both = consensus(*collected.values())
        result["consensus_logit_mean"] = compare(both)
    if args.write_card:
        result["written"] = {m: update_card(Path(m), s, internal_test(m, args.data, args.seed))
                             for m, s in collected.items()}
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
