"""Teacher scores for distillation: a model's calibrated logits on the patient-level training films.

    python -m converters.teacher consensus --out /work/train-runs/teacher-consensus.json
    python -m converters.train ... --teacher /work/train-runs/teacher-consensus.json --distill 0.5

MODEL is a shipped name, an ONNX file or a consensus card, read through the app's own engine and
preprocessing (`converters.validate.film_scores`: each member of a consensus prepares the film by its own
card). Writes JSON: the model's name, its digest (SHA-256 of the file, or of a consensus card and its members'
files), its members, the split seed, and per training film its path relative to the data folder, label and
calibrated logit (the members' mean logit for a consensus). Prints the teacher's AUC and mean |logit| on those
films, per member too: the teacher saw these films in training, so its figures there are optimistic and its
targets near hard.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from converters import dataset
from converters.validate import film_scores
from xrayviewer.core.analysis.consensus import logits
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.metrics import roc_auc
from xrayviewer.core.errors import XRayViewerError


def describe(name: str, labels: np.ndarray, z: np.ndarray) -> dict:
    """AUC, mean |logit| and the share of films the logit puts on the wrong side of 0."""
    return {"model": name, "auc": round(roc_auc(labels, z), 4), "mean_abs_logit": round(float(np.abs(z).mean()), 3),
            "wrong_side_of_0": round(float(np.mean((z > 0) != (labels > 0.5))), 4)}


def score(model_name: str, data: Path = dataset.DEFAULT_DATA, split_seed: int = 1234,
          samples: list[dataset.Sample] | None = None) -> dict:
    """The teacher record (module docstring) for `model_name` on the training side of `data`'s split, or on
    `samples` (the tests' handful)."""
    engine = Engine("cpu")
    model = engine.model(model_name)
    if samples is None:
        samples = dataset.split_samples(dataset.list_samples(data), split_seed)["train"]
    films, labels = dataset.load_gray(samples, model.card.input_size[0])
    members = getattr(model, "members", ())
    figures = []
    if members:
        parts = [logits(film_scores(engine, m, films)[0]) for m in members]
        figures = [describe(m.card.name, labels, z) for m, z in zip(members, parts)]
        z = np.mean(parts, axis=0)
    else:
        z = logits(film_scores(engine, model, films)[0])
    figures.append(describe(model.card.name, labels, z))
    root = Path(data).resolve()
    return {
        "model": model.card.name,
        "digest": model.digest,
        "members": [m.card.name for m in members],
        "split_seed": split_seed,
        "logit": "calibrated logit (a consensus: the mean of its members' calibrated logits)",
        "figures": figures,
        "films": [{"path": rel(s.path, root), "label": int(s.label), "logit": round(float(v), 5)}
                  for s, v in zip(samples, z)],
    }


def rel(path: Path, root: Path) -> str:
    """`path` relative to the data folder `root` where it lies inside it, else as given (POSIX separators)."""
    path = Path(path).resolve()
    return (path.relative_to(root) if path.is_relative_to(root) else path).as_posix()


def load(path: Path) -> dict:
    """A teacher record written by `score`; a bad file is a ValueError naming it."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        films = [(str(f["path"]), float(f["logit"])) for f in record["films"]]
        if not films or not all(isinstance(record[k], str) for k in ("model", "digest")):
            raise ValueError("no films, or no model name and digest")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a teacher file of converters.teacher ({exc})") from None
    return record


def targets(record: dict, samples: list[dataset.Sample], data: Path) -> np.ndarray:
    """The teacher's logit of each of `samples` (in their order); a film it did not score is a ValueError."""
    by_path = {f["path"]: float(f["logit"]) for f in record["films"]}
    root = Path(data).resolve()
    missing = [rel(s.path, root) for s in samples if rel(s.path, root) not in by_path]
    if missing:
        raise ValueError(f"teacher {record['model']}: {len(missing)} training films not scored "
                         f"(first {missing[0]}); score them with converters.teacher on the same data and split")
    return np.array([by_path[rel(s.path, root)] for s in samples], np.float64)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="shipped name, ONNX file or consensus card (e.g. consensus)")
    p.add_argument("--out", type=Path, required=True, help="the teacher file to write (.json)")
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    p.add_argument("--split-seed", type=int, default=1234)
    args = p.parse_args(argv)
    try:
        record = score(args.model, args.data, args.split_seed)
    except (XRayViewerError, FileNotFoundError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    for f in record["figures"]:
        print(f"{f['model']} on {len(record['films'])} training films (seen in training, so optimistic): "
              f"AUC {f['auc']:.4f}, mean |logit| {f['mean_abs_logit']:.3f}, wrong side of 0 {f['wrong_side_of_0']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
