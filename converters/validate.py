"""The validation that chooses between recipes: plain, shifted, and shortcut figures of an ONNX model.

    python -m converters.validate models/mobilenetv2-pneumonia.onnx [--json OUT]
    python -m converters.validate mobilenetv2 /work/train-runs/mnv2-v3/v3.onnx --exposure   # issue 25's goals
    python -m converters.validate consensus --scores-only       # a consensus card: scored from its members

MODEL is an ONNX file, a shipped name or a consensus card (core.analysis.consensus: the members' mean logit,
refused where a member's gate refuses). $XRAYVIEWER_SCORE_CACHE=DIR keeps each model's scores of a film set, so
that a consensus, --exposure and converters.operating_point reuse its members' scores (`film_scores`).

Runs the shipped engine (the app's preprocessing, border and CAM) on the patient-level validation
films (224 x 224) and prints one JSON object:

- `plain`: figures at the model's own threshold on the validation films as they are;
- `shifted`: the same films through every fixed perturbation of `converters.augment.PERTURBATIONS`
  (pooled, and per perturbation);
- `shortcut`: mean |change of the pneumonia logit| when the outer ring (20 px) or a corner square
  (24 or 40 px) of the 224-px film is blanked to black; a model that reads the film's anatomy
  barely moves;
- `lung_reliance`: validation AUC with only the lung boxes visible (the rest black) and with the lung
  boxes blanked;
- `cam_reference`: the 95th percentile of each CAM method's raw peak on validation pneumonia films,
  the fixed scale that heatmap colours are drawn against;
- `cam_lung_share`: share of the Grad-CAM (pneumonia target) mass inside the two lung boxes
  (x 25-105 and 120-200, y 30-190 of the 224-px frame, 51 % of its area) on validation
  pneumonia films.

`--exposure` prints instead, for each model given and each of issue 25's acquisition shifts
(`converters.augment.EXPOSURE_SHIFTS`: contrast 50 % and 30 %, gamma 0.7 and 1.5, noise sd 12, blur
sd 1.5) on the validation films only: the share of normal films called pneumonia (false-positive
rate) and of pneumonia films called pneumonia (sensitivity) at the card's threshold, their change
against the clean films, the share the app's gate refuses (every shipped check, the detector and the
model's own OOD gate, as the engine runs it), the AUC, and whether the issue's goals hold (false
positives up by <= 0.10, sensitivity down by <= 0.05, <= 10 % refused except at 30 % contrast).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from converters import dataset
from converters.augment import EXPOSURE_SHIFTS, shifted
from xrayviewer.core.analysis.consensus import combine
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.findings import Subject
from xrayviewer.core.analysis.metrics import binary_figures, roc_auc
from xrayviewer.core.analysis.preprocess import model_input

LUNG_BOXES = ((25, 105, 30, 190), (120, 200, 30, 190))  # (x0, x1, y0, y1) in the 224-px frame
RING = 20
CORNERS = (24, 40)
BATCH = 32
CACHE_ENV = "XRAYVIEWER_SCORE_CACHE"
REFERENCE_METHODS = ("gradcam", "gradcampp", "xgradcam", "layercam", "eigencam", "scorecam")


def lung_mask(size: int = 224) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    k = size / 224
    for x0, x1, y0, y1 in LUNG_BOXES:
        mask[int(y0 * k):int(y1 * k), int(x0 * k):int(x1 * k)] = True
    return mask


def probabilities(engine: Engine, model, films: np.ndarray) -> np.ndarray:
    return film_scores(engine, model, films)[0]


def film_scores(engine: Engine, model, films: np.ndarray, gated: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Per film: the probability and, when `gated`, whether the engine's gate refuses it (the same checks and OOD
    score as an analysis in the app; else None). A consensus (core.analysis.consensus) is scored from its members:
    the mean of their logits, refused where any member's gate refuses. With $XRAYVIEWER_SCORE_CACHE set to a
    folder, each single model's scores are kept there by model digest and films, so that validate, --exposure and
    operating_point score a film set once per model (clear it after changing the gate)."""
    members = getattr(model, "members", ())
    if members:
        parts = [film_scores(engine, m, films, gated) for m in members]
        return combine([p for p, _ in parts]), np.logical_or.reduce([r for _, r in parts]) if gated else None
    folder = os.environ.get(CACHE_ENV)
    key = hashlib.sha256(f"{model.digest} {gated} {films.shape}".encode() + films.tobytes()).hexdigest()[:32]
    path = Path(folder) / f"{model.card.name}-{key}.npz" if folder else None
    if path is not None and path.is_file():
        with np.load(path) as saved:
            return saved["p"], saved["refused"] if gated else None
    p, refused = [], []
    wanted = ["probability"] + (["ood_score"] if gated and "ood_score" in model.outputs else [])
    for i in range(0, len(films), BATCH):
        batch = films[i:i + BATCH]
        out = model.run(np.concatenate([model_input(f, model.card) for f in batch]), wanted)
        p += out["probability"][:, 0].tolist()
        ood = out.get("ood_score")
        refused += [bool(engine.gate(Subject(d, None, model.card, None if ood is None else float(np.ravel(ood[j])[0])))
                         .refused) for j, d in enumerate(batch)] if gated else []
    p, refused = np.array(p), np.array(refused, bool)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, p=p, refused=refused)
    return p, refused if gated else None


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def blanked(films: np.ndarray, where: str, k: int) -> np.ndarray:
    out = films.copy()
    if where == "ring":
        out[:, :k], out[:, -k:], out[:, :, :k], out[:, :, -k:] = 0, 0, 0, 0
    else:
        ys = slice(0, k) if where[0] == "t" else slice(-k, None)
        xs = slice(0, k) if where[1] == "l" else slice(-k, None)
        out[:, ys, xs] = 0
    return out


def cam_figures(engine: Engine, model, films: np.ndarray) -> tuple[list[float], dict[str, list[float]]]:
    """Per film: lung-box share of the positive Grad-CAM mass at 224 x 224 (films with an empty map
    skipped), and the raw peak of every CAM method for the pneumonia target (Score-CAM on 16 films)."""
    mask = lung_mask(films.shape[1])
    shares, peaks = [], {m: [] for m in REFERENCE_METHODS}
    for i in range(0, len(films), BATCH):
        for j, inference in enumerate(engine.infer(model, list(films[i:i + BATCH]))):
            for method in REFERENCE_METHODS:
                if method == "scorecam" and i + j >= 16:
                    continue
                cam = engine.cam(model, inference, method, "pneumonia", films.shape[1:3])
                peaks[method].append(cam.peak)
                if method == "gradcam" and cam.map.sum() > 0:
                    shares.append(float((cam.map * mask).sum() / cam.map.sum()))
    return shares, peaks


def validate(model_path: str | Path, data: Path = dataset.DEFAULT_DATA, seed: int = 1234,
             limit: int | None = None, samples: list[dataset.Sample] | None = None, scores_only: bool = False) -> dict:
    """All figures of the module docstring for one model; `limit` takes every n-th film for a quick look.
    `samples`: the films to use instead of the validation side of `data`'s split (the tests' handful);
    `scores_only`: the plain and shifted figures only."""
    engine = Engine("cpu")
    model = engine.model(model_path)
    if samples is None:
        samples = dataset.split_samples(dataset.list_samples(data), seed)["val"]
    if limit:
        samples = samples[::max(1, len(samples) // limit)]
    films, labels = dataset.load_gray(samples, 224)
    threshold = model.card.threshold
    p = probabilities(engine, model, films)
    result: dict = {"model": str(model_path), "threshold": threshold, "plain": binary_figures(labels, p, threshold)}

    per_kind, pooled_p = {}, []
    for kind, moved in shifted(films).items():
        q = probabilities(engine, model, moved)
        pooled_p.append(q)
        f = binary_figures(labels, q, threshold)
        per_kind[kind] = {"auc": f["auc"], "accuracy": f["accuracy"], "sensitivity": f["sensitivity"],
                          "specificity": f["specificity"]}
    pooled = binary_figures(np.tile(labels, len(pooled_p)), np.concatenate(pooled_p), threshold)
    result["shifted"] = {**pooled, "worst_auc": min(v["auc"] for v in per_kind.values()), "per_kind": per_kind}
    if scores_only:
        return result

    base = logit(p)
    shortcut = {f"ring_{RING}px": float(np.mean(np.abs(logit(probabilities(
        engine, model, blanked(films, "ring", RING))) - base)))}
    for k in CORNERS:
        moves = {c: float(np.mean(np.abs(logit(probabilities(engine, model, blanked(films, c, k))) - base)))
                 for c in ("tl", "tr", "bl", "br")}
        shortcut[f"corner_{k}px_mean"] = round(float(np.mean(list(moves.values()))), 4)
        shortcut[f"corner_{k}px_max"] = round(max(moves.values()), 4)
    shortcut[f"ring_{RING}px"] = round(shortcut[f"ring_{RING}px"], 4)
    result["shortcut"] = {**shortcut, "unit": "mean |change of the pneumonia logit| on validation films"}
    lungs = lung_mask(films.shape[1])
    result["lung_reliance"] = {
        "auc_only_lung_boxes": binary_figures(labels, probabilities(engine, model, films * lungs), threshold)["auc"],
        "auc_lung_boxes_blanked": binary_figures(labels, probabilities(engine, model, films * ~lungs),
                                                 threshold)["auc"],
        "meaning": "AUC with everything outside the two lung boxes set to black, and with the boxes themselves "
                   "set to black: a model that reads the lungs keeps the first and loses the second"}

    shares, peaks = cam_figures(engine, model, films[labels == 1])
    result["cam_lung_share"] = {"mean": round(float(np.mean(shares)), 4), "median": round(float(np.median(shares)), 4),
                                "n": len(shares), "uniform_map": round(float(lung_mask().mean()), 4)}
    result["cam_reference"] = {**{m: float(np.percentile(v, 95)) for m, v in peaks.items()},
                               "rule": "95th percentile of the raw CAM peak (pneumonia target) on validation "
                                       "pneumonia films; Score-CAM on 16 of them"}
    return result


FPR_RISE, SENSITIVITY_DROP, REFUSED = 0.10, 0.05, 0.10  # issue 25's exposure goals
REFUSAL_EXEMPT = ("contrast_0.3",)  # a film this faint may be refused as unreadable


def called_and_refused(engine: Engine, model, films: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per film: the probability, whether the model calls it pneumonia at its threshold, and whether the engine's
    gate refuses it (the same checks and the same OOD score as an analysis in the app)."""
    p, refused = film_scores(engine, model, films, gated=True)
    return p, p >= model.card.threshold, refused


def exposure(model_path: str | Path, data: Path = dataset.DEFAULT_DATA, seed: int = 1234,
             limit: int | None = None) -> dict:
    """Issue 25's exposure figures of one model on the validation films (module docstring, `--exposure`)."""
    engine = Engine("cpu")
    model = engine.model(model_path)
    samples = dataset.split_samples(dataset.list_samples(data), seed)["val"]
    if limit:
        samples = samples[::max(1, len(samples) // limit)]
    films, labels = dataset.load_gray(samples, 224)
    normal, pneumonia = labels == 0, labels == 1
    rows, clean = {}, None
    for kind, moved in {"clean": films, **shifted(films, table=EXPOSURE_SHIFTS)}.items():
        p, called, refused = called_and_refused(engine, model, moved)
        row = {"fpr": round(float(called[normal].mean()), 3), "sensitivity": round(float(called[pneumonia].mean()), 3),
               "refused": round(float(refused.mean()), 3), "auc": round(roc_auc(labels, p), 4)}
        if clean is None:
            clean = row
        else:
            row["fpr_rise"] = round(row["fpr"] - clean["fpr"], 3)
            row["sensitivity_drop"] = round(clean["sensitivity"] - row["sensitivity"], 3)
            row["goals_met"] = bool(row["fpr_rise"] <= FPR_RISE and row["sensitivity_drop"] <= SENSITIVITY_DROP
                                    and (kind in REFUSAL_EXEMPT or row["refused"] <= REFUSED))
        rows[kind] = row
    return {"model": str(model_path), "threshold": model.card.threshold, "films": len(labels),
            "normal": int(normal.sum()), "pneumonia": int(pneumonia.sum()), "shifts": rows,
            "all_goals_met": all(r.get("goals_met", True) for r in rows.values())}


CARD_FIGURES = ("shifted", "shortcut", "lung_reliance", "cam_lung_share", "cam_reference")


def write_card(proto, card: dict) -> None:
    """Replace the model file's contract metadata with `card`."""
    from xrayviewer.core.analysis.contract import card_metadata

    del proto.metadata_props[:]
    for key, value in card_metadata(card).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def card_of(path: Path) -> dict:
    """The card of the model file, or the consensus card, at `path`."""
    import onnx

    from xrayviewer.core.analysis.consensus import is_consensus_card
    from xrayviewer.core.analysis.contract import META_CARD

    if is_consensus_card(path):
        return json.loads(path.read_text())
    return json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[META_CARD])


def store_card(path: Path, card: dict) -> None:
    """Replace the card of the model file, or the consensus card, at `path` with `card`."""
    import onnx

    from xrayviewer.core.analysis.consensus import is_consensus_card

    if is_consensus_card(path):
        path.write_text(json.dumps(card, indent=1) + "\n")
        return
    proto = onnx.load(str(path))
    write_card(proto, card)
    path.write_bytes(proto.SerializeToString())


def update_card_keys(path: Path, keys: dict) -> None:
    """Merge `keys` into the card at `path` (`card_of`; a dict value is merged one level deep)."""
    card = card_of(path)
    for key, value in keys.items():
        card[key] = {**card.get(key, {}), **value} if isinstance(value, dict) and isinstance(card.get(key), dict) \
            else value
    store_card(path, card)


def update_card(path: Path, result: dict) -> None:
    """Store the figures of `validate` (per-perturbation detail left out) in the card of the file at `path`."""
    keys = {k: result[k] for k in CARD_FIGURES}
    keys["shifted"] = {k: v for k, v in result["shifted"].items() if k != "per_kind"}
    update_card_keys(path, keys)


def emit(result: dict, path: Path | None = None) -> None:
    """Print `result` as indented JSON, and write it to `path` too when given."""
    text = json.dumps(result, indent=1)
    if path:
        path.write_text(text)
    sys.stdout.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="+", help="ONNX model file or shipped model name (several with --exposure)")
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--json", type=Path, help="also write the result here")
    p.add_argument("--write-card", action="store_true",
                   help="also store these figures in the model file's card (a file path, not a shipped name)")
    p.add_argument("--exposure", action="store_true", help="only issue 25's exposure figures, for every model")
    p.add_argument("--limit", type=int, help="about this many validation films (every n-th), for a quick look")
    p.add_argument("--scores-only", action="store_true",
                   help="plain and shifted figures only (no shortcut, lung-reliance or CAM figures)")
    args = p.parse_args(argv)
    if args.exposure:
        emit({"exposure": [exposure(m, args.data, args.seed, args.limit) for m in args.model]}, args.json)
        return 0
    if len(args.model) > 1:
        p.error("one model at a time (several only with --exposure)")
    result = validate(args.model[0], args.data, args.seed, args.limit, scores_only=args.scores_only)
    if args.write_card and not args.scores_only:
        update_card(Path(args.model[0]), result)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
