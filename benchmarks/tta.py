"""Test-time augmentation (issue 25 item 2): does the mean logit over a few views of each film pay?

    XRAYVIEWER_SCORE_CACHE=/tmp/tta-scores PYTHONPATH=. python benchmarks/tta.py [--model mobilenetv2] \
        [--variants none,shift,zoom,gamma,geometry] [--consensus] [--boot 2000] [--timing-films 40]

Scores the patient-level validation films (224 px, `converters.dataset`'s split), the shifted validation (every
fixed perturbation of `converters.augment.PERTURBATIONS`, as `converters.validate` makes it) and issue 25's exposure
shifts (`EXPOSURE_SHIFTS`) through every view of `VIEWS`, each view scored exactly as `converters.validate` scores a
film set (`film_scores`: the app's `model_input`, the card's stretch and border, the calibrated probability; cached
where $XRAYVIEWER_SCORE_CACHE says). A TTA variant (`VARIANTS`) is the sigmoid of the mean logit over its views
(`consensus.combine`). A view moves the 224-px gray film before the card's preprocessing, as the app would: small
shifts and zooms (the training geometry is zoom 0.95-1.3 and shift +-6 %), and mild gammas. No horizontal flip: the
models never saw mirrored films (`converters.augment.augment`).

For each variant, side by side with none (the identity view alone), one JSON object:

- validation AUC, and specificity at the highest threshold with validation sensitivity >= 0.95;
- pooled shifted AUC (n = 13 x films), the worst perturbation's AUC, and shifted specificity at the highest threshold
  with pooled shifted sensitivity >= 0.95 (`converters.operating_point`'s chosen rule: the threshold the variant's
  card would get);
- the exposure shifts: false-positive rate and sensitivity (and AUC) at that threshold, clean films first;
- paired bootstrap 95 % intervals of each figure's difference against none (patients resampled, the same resamples
  for every variant; thresholds chosen again in each resample);
- ms per film (median over `--timing-films` films, one film's views in one run, no cache), on this machine as loaded.

`--consensus` adds the consensus card (`models/consensus.json`) on the clean validation films only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

import cv2
import numpy as np

from converters import dataset
from converters import operating_point as op
from converters.augment import EXPOSURE_SHIFTS, _levels, shifted
from converters.validate import CACHE_ENV, film_scores
from xrayviewer.core.analysis.consensus import combine
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.metrics import roc_auc


@dataclass(frozen=True)
class View:
    """One test-time view of a gray film: shift (fractions of the side, + right / down), zoom about the centre
    (> 1 magnifies), then gamma (as `converters.augment`'s gamma perturbations)."""

    dx: float = 0.0
    dy: float = 0.0
    zoom: float = 1.0
    gamma: float = 1.0


VIEWS: dict[str, View] = {
    "identity": View(),
    "shift_+": View(dx=0.035, dy=0.035),  # 8 px at 224, inside the 20-px blanked border
    "shift_-": View(dx=-0.035, dy=-0.035),
    "zoom_in": View(zoom=1.08),
    "zoom_out": View(zoom=0.93),
    "gamma_0.8": View(gamma=0.8),
    "gamma_1.25": View(gamma=1.25),
}
VARIANTS: dict[str, tuple[str, ...]] = {
    "none": ("identity",),
    "shift": ("identity", "shift_+", "shift_-"),
    "zoom": ("identity", "zoom_in", "zoom_out"),
    "gamma": ("identity", "gamma_0.8", "gamma_1.25"),
    "geometry": ("identity", "shift_+", "shift_-", "zoom_in", "zoom_out"),
}
FIGURES = ("auc", "specificity", "shifted_auc", "shifted_specificity")


def apply(view: View, gray: np.ndarray) -> np.ndarray:
    """uint8 gray `[H, W]` or `[N, H, W]` seen through `view`, same shape and dtype (the identity: an exact copy).
    Geometry as the training affine (bilinear, black outside the film)."""
    if gray.ndim == 3:
        return np.stack([apply(view, g) for g in gray])
    out = np.array(gray, copy=True)
    h, w = out.shape
    if (view.dx, view.dy, view.zoom) != (0.0, 0.0, 1.0):
        m = np.float32([[view.zoom, 0, (1 - view.zoom) * w / 2 + view.dx * w],
                        [0, view.zoom, (1 - view.zoom) * h / 2 + view.dy * h]])
        out = cv2.warpAffine(out, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if view.gamma != 1.0:
        out = _levels(out, 1.0, 0.0, view.gamma)
    return out


def variant_scores(per_view: dict[str, np.ndarray], variant: str) -> np.ndarray:
    """The variant's probability per film: sigmoid of the mean logit over its views."""
    return combine([per_view[v] for v in VARIANTS[variant]])


def specificity(labels: np.ndarray, p: np.ndarray, threshold: float) -> float:
    return float(np.mean(p[labels == 0] < threshold))


def headline(s: op.Scores) -> dict:
    """The four compared figures: validation AUC and specificity at validation sensitivity >= 0.95; pooled shifted
    AUC and specificity at the card rule's threshold (pooled shifted sensitivity >= 0.95)."""
    pooled = s.pooled() if s.shifted else None
    return {"auc": roc_auc(s.labels, s.plain),
            "specificity": specificity(s.labels, s.plain, op.highest_with_sensitivity(s.labels, s.plain)),
            "shifted_auc": roc_auc(*pooled) if pooled else None,
            "shifted_specificity": specificity(*pooled, op.RULES[op.CHOSEN][1](s)) if pooled else None}


def resample(s: op.Scores, idx: np.ndarray) -> op.Scores:
    return op.Scores(s.labels[idx], s.plain[idx], {k: p[idx] for k, p in s.shifted.items()})


def patient_draws(patients: list[str], n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` bootstrap resamples of the films, whole patients drawn with replacement (film indices)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        groups.setdefault(p, []).append(i)
    members = list(groups.values())
    rng = np.random.default_rng(seed)
    return [np.concatenate([members[j] for j in rng.integers(0, len(members), len(members))]) for _ in range(n)]


def paired_intervals(scores: dict[str, op.Scores], draws: list[np.ndarray]) -> dict:
    """variant -> figure -> 95 % interval of (variant - none) over the resamples (same resamples for all)."""
    rows = {name: [] for name in scores}
    for idx in draws:
        for name, s in scores.items():
            rows[name].append(headline(resample(s, idx)))
    out = {}
    for name in scores:
        if name == "none":
            continue
        out[name] = {}
        for f in FIGURES:
            if rows[name][0][f] is None:
                continue
            d = np.array([a[f] - b[f] for a, b in zip(rows[name], rows["none"])])
            out[name][f] = [round(float(v), 4) for v in np.percentile(d, [2.5, 97.5])]
    return out


def rounded(figures: dict) -> dict:
    return {k: None if v is None else round(v, 4) for k, v in figures.items()}


def exposure_rows(labels: np.ndarray, sets: dict[str, np.ndarray], threshold: float) -> dict:
    """kind -> false-positive rate, sensitivity and AUC at `threshold`."""
    normal, pneumonia = labels == 0, labels == 1
    return {k: {"fpr": round(float((p[normal] >= threshold).mean()), 3),
                "sensitivity": round(float((p[pneumonia] >= threshold).mean()), 3),
                "auc": round(roc_auc(labels, p), 4)} for k, p in sets.items()}


def ms_per_film(engine: Engine, model, films: np.ndarray, variant: str) -> float:
    """Median ms to score one film through the variant's views (one run of all its views, no score cache)."""
    cache = os.environ.pop(CACHE_ENV, None)
    try:
        times = []
        for f in films:
            start = time.perf_counter()
            views = np.stack([apply(VIEWS[v], f) for v in VARIANTS[variant]])
            combine(film_scores(engine, model, views)[0][:, None])
            times.append(time.perf_counter() - start)
    finally:
        if cache is not None:
            os.environ[CACHE_ENV] = cache
    return round(1000 * float(np.median(times)), 1)


def score_views(engine: Engine, model, films: np.ndarray, views: list[str], label: str) -> dict[str, np.ndarray]:
    out = {}
    for v in views:
        print(f"{time.strftime('%H:%M:%S')} {label} {v}", file=sys.stderr, flush=True)
        out[v] = film_scores(engine, model, apply(VIEWS[v], films))[0]
    return out


def compare(engine: Engine, model, films: np.ndarray, labels: np.ndarray, patients: list[str], variants: list[str],
            boot: int, timing_films: int, clean_only: bool = False) -> dict:
    """Every figure of the module docstring for one model (`clean_only`: validation films only)."""
    views = sorted({v for name in variants for v in VARIANTS[name]}, key=list(VIEWS).index)
    sets = {"clean": films}
    if not clean_only:
        sets |= shifted(films)
        sets |= {f"exposure:{k}": v for k, v in shifted(films, table=EXPOSURE_SHIFTS).items()}
    per_set = {k: score_views(engine, model, moved, views, k) for k, moved in sets.items()}
    kinds = [k for k in sets if k != "clean" and not k.startswith("exposure:")]
    scores = {name: op.Scores(labels, variant_scores(per_set["clean"], name),
                              {k: variant_scores(per_set[k], name) for k in kinds}) for name in variants}
    draws = patient_draws(patients, boot)
    result = {"films": len(labels), "normal": int((labels == 0).sum()), "pneumonia": int((labels == 1).sum()),
              "card_threshold": round(model.card.threshold, 4), "variants": {}}
    timing = films[::max(1, len(films) // timing_films)][:timing_films]
    for name, s in scores.items():
        row = {"views": list(VARIANTS[name]), **rounded(headline(s)),
               "validation_threshold": round(op.highest_with_sensitivity(s.labels, s.plain), 4)}
        if s.shifted:
            threshold = op.RULES[op.CHOSEN][1](s)
            per_kind = {k: roc_auc(labels, p) for k, p in s.shifted.items()}
            worst = min(per_kind, key=per_kind.get)
            row |= {"worst_auc": round(per_kind[worst], 4), "worst_kind": worst,
                    "shifted_threshold": round(threshold, 4),
                    "exposure_at_shifted_threshold": exposure_rows(labels, {
                        "clean": s.plain, **{k.split(":", 1)[1]: variant_scores(per_set[k], name)
                                             for k in sets if k.startswith("exposure:")}}, threshold)}
        row["ms_per_film"] = ms_per_film(engine, model, timing, name)
        result["variants"][name] = row
    if "none" in scores:
        result["paired_bootstrap_95ci_vs_none"] = {"resamples": boot, "unit": "patients",
                                                   **paired_intervals(scores, draws)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenetv2")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--consensus", action="store_true", help="also the consensus card, clean validation only")
    parser.add_argument("--boot", type=int, default=2000, help="paired bootstrap resamples")
    parser.add_argument("--timing-films", type=int, default=40)
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    engine = Engine("cpu")
    samples = dataset.split_samples(dataset.list_samples())["val"]
    films, labels = dataset.load_gray(samples, 224)
    patients = [s.patient for s in samples]
    result = {"views": {k: vars(v) for k, v in VIEWS.items()},
              args.model: compare(engine, engine.model(args.model), films, labels, patients, variants, args.boot,
                                  args.timing_films)}
    if args.consensus:
        result["consensus"] = compare(engine, engine.model("consensus"), films, labels, patients, variants,
                                      args.boot, args.timing_films, clean_only=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
