"""Do the heatmaps show where the model's evidence is? Faithfulness of each method on validation pneumonia films.

    python -m converters.split_folder --side val --out /tmp/kermany-val
    PYTHONPATH=. python benchmarks/faithfulness.py --folder /tmp/kermany-val [--model mobilenetv2]
        [--methods gradcam,scorecam,occlusion@7,occlusion] [--limit 60] [--seed 0] [--write-card]

On the PNEUMONIA films of a folder holding NORMAL/ and PNEUMONIA/ (224-px films; the NORMAL films are the
donors), for each method's pneumonia map, and for a random 7 x 7 map upsampled, on the same film and donor:
- `pointing_game`: share of films whose map peak lies inside the lung boxes of converters.validate (an empty map
  counts as a miss);
- `lung_box_share`: share of the positive map mass inside the boxes (empty maps left out);
- `deletion_auc`: the interior pixels (the card's border left out), most salient first, replaced in 10 steps by the
  same pixels of a random normal donor; the mean pneumonia logit over the 11 films (lower: the map found the
  evidence). `insertion_auc`: the other way, the film's pixels put into the donor (higher is better);
- `*_vs_random`: the mean per-film difference (method - random map) with a 95 % bootstrap interval (1000
  resamples, seeded): deletion below 0 and insertion above 0 mean better than random;
- `ms_per_film`: median time of the forward pass and the map; `plain_inference_ms`: median time of one forward
  pass of one film, measured in the same run, and `inferences_of_time` = ms_per_film / plain_inference_ms;
- `cam_reference`: the 95th percentile of each method's raw peak on these films (the colour scale's top).
`occlusion@7` is occlusion on a 7 x 7 grid (64-px patches); `occlusion` is on the card's grid.
`--write-card` stores the figures (card keys `faithfulness` and `cam_reference`) in the model file, which must be
a file path or a shipped model's file.
Pointing and mass use the map's positive part (what is drawn); deletion and insertion rank pixels by the signed
map (evidence against the target last), ties in a random order. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from converters.validate import logit, lung_mask
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.perturbation import interior

MapFn = Callable[[np.ndarray], np.ndarray]  # gray film [H, W] -> signed saliency [H, W] (higher: more evidence)
SIZE = 224
STEPS = 10
RANDOM_CELLS = 7
RESAMPLES = 1000


def load_films(folder: Path, limit: int | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """The films of `folder` as uint8 gray [N, 224, 224] (INTER_AREA, as the app resizes); `limit` of them drawn
    at random (in file order) when given."""
    paths = sorted(p for p in folder.iterdir() if p.is_file())
    if limit and limit < len(paths):
        paths = [paths[i] for i in sorted((rng or np.random.default_rng(0)).choice(len(paths), limit, replace=False))]
    films = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]
    return np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in films])


def method_map(engine: Engine, model, method: str, peaks: list[float] | None = None) -> MapFn:
    """The method's raw signed pneumonia map, bilinear at the film's size (not clipped to the card's scale);
    `method@cells` sets a perturbation method's grid. Each map's raw peak is appended to `peaks` when given."""
    name, _, cells = method.partition("@")

    def saliency(film: np.ndarray) -> np.ndarray:
        engine.maps.clear()  # time the method, not the cache
        (inference,) = engine.infer(model, [film])
        cam = engine.cam(model, inference, name, "pneumonia", film.shape[:2], int(cells) if cells else None)
        if peaks is not None:
            peaks.append(cam.peak)
        return cv2.resize(cam.signed.astype(np.float32), (film.shape[1], film.shape[0]),
                          interpolation=cv2.INTER_LINEAR)

    return saliency


def plain_inference_ms(engine: Engine, model, films: np.ndarray, repeat: int = 20) -> float:
    """Median time of one forward pass of one film (the unit of the time budget)."""
    times = []
    for k in range(repeat):
        start = time.perf_counter()
        engine.infer(model, [films[k % len(films)]])
        times.append(1000 * (time.perf_counter() - start))
    return round(float(np.median(times)), 1)


def references(peaks: dict[str, list[float]], cells: int) -> dict[str, float]:
    """Each method's colour-scale top: the 95th percentile of its raw peak (`occlusion` named by its grid)."""
    return {(f"occlusion@{cells}" if m == "occlusion" else m): float(np.percentile(v, 95))
            for m, v in peaks.items() if v}


def card_keys(output: dict) -> dict:
    """What --write-card (or --card-from) stores from the benchmark's printed object: the figures per method and
    each method's colour-scale reference."""
    return {"faithfulness": {"pneumonia_films": output["pneumonia_films"], "seed": output["seed"],
                             "occlusion_cells": output["occlusion_cells"],
                             "plain_inference_ms": output["plain_inference_ms"],
                             "benchmark": "benchmarks/faithfulness.py (validation split)",
                             "methods": {m: {k: v for k, v in f.items() if k != "empty_maps"}
                                         for m, f in output["methods"].items() if m != "random"}},
            "cam_reference": output["cam_reference"]}


def pneumonia_logits(engine: Engine, model, films: np.ndarray) -> np.ndarray:
    return logit(np.array([r.probability for r in engine.infer(model, list(films))]))


def curves(engine: Engine, model, film: np.ndarray, donor: np.ndarray, order: np.ndarray) -> tuple[float, float]:
    """(deletion, insertion) areas: mean pneumonia logit over STEPS + 1 films as `order`'s pixels move over."""
    n = len(order)
    steps = []
    for source, target in ((film, donor), (donor, film)):
        for k in range(STEPS + 1):
            moved = source.copy().ravel()
            take = order[:round(n * k / STEPS)]
            moved[take] = target.ravel()[take]
            steps.append(moved.reshape(film.shape))
    values = pneumonia_logits(engine, model, np.stack(steps))
    return float(values[:STEPS + 1].mean()), float(values[STEPS + 1:].mean())


def versus(diffs: np.ndarray, rng: np.random.Generator) -> dict:
    """Mean paired difference and its 95 % bootstrap interval."""
    means = diffs[rng.integers(0, len(diffs), (RESAMPLES, len(diffs)))].mean(axis=1)
    return {"mean_difference": round(float(diffs.mean()), 4),
            "ci95": [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]}


def faithfulness(engine: Engine, model, films: np.ndarray, normals: np.ndarray, maps: dict[str, MapFn],
                 seed: int = 0) -> dict:
    """The figures of the module docstring for `maps` (and a random map) on pneumonia `films` [N, H, W],
    each with a donor drawn from `normals`."""
    rng = np.random.default_rng(seed)
    shape = films.shape[1:]
    y0, y1, x0, x1 = interior(shape, model.card.border)
    inside = np.zeros(shape, bool)
    inside[y0:y1, x0:x1] = True
    pixels = np.flatnonzero(inside)
    lungs = lung_mask(shape[0])
    names = [*maps, "random"]
    rows: dict[str, dict[str, list]] = {m: {"pointing": [], "share": [], "deletion": [], "insertion": [], "ms": []}
                                        for m in names}
    for film in films:
        donor = normals[rng.integers(len(normals))]
        random_map = cv2.resize(rng.random((RANDOM_CELLS, RANDOM_CELLS)).astype(np.float32), shape[::-1],
                                interpolation=cv2.INTER_LINEAR)
        ties = rng.random(len(pixels))
        for name in names:
            start = time.perf_counter()
            saliency = random_map if name == "random" else maps[name](film)
            rows[name]["ms"].append(1000 * (time.perf_counter() - start))
            positive = np.maximum(saliency, 0)
            rows[name]["pointing"].append(bool(positive.max() > 0 and lungs.flat[positive.argmax()]))
            if positive.sum() > 0:
                rows[name]["share"].append(float(positive[lungs].sum() / positive.sum()))
            order = pixels[np.lexsort((ties, -saliency.flat[pixels]))]
            deletion, insertion = curves(engine, model, film, donor, order)
            rows[name]["deletion"].append(deletion)
            rows[name]["insertion"].append(insertion)
    base = {k: np.array(rows["random"][k]) for k in ("deletion", "insertion")}
    result = {}
    for name in names:
        r = rows[name]
        figures = {"pointing_game": round(float(np.mean(r["pointing"])), 4),
                   "lung_box_share": round(float(np.mean(r["share"])), 4) if r["share"] else None,
                   "empty_maps": len(films) - len(r["share"]),
                   "deletion_auc": round(float(np.mean(r["deletion"])), 4),
                   "insertion_auc": round(float(np.mean(r["insertion"])), 4)}
        if name != "random":
            figures["deletion_vs_random"] = versus(np.array(r["deletion"]) - base["deletion"], rng)
            figures["insertion_vs_random"] = versus(np.array(r["insertion"]) - base["insertion"], rng)
            figures["ms_per_film"] = round(float(np.median(r["ms"])), 1)
        result[name] = figures
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="NORMAL/ and PNEUMONIA/ validation films (required to measure)")
    parser.add_argument("--model", default="mobilenetv2")
    parser.add_argument("--methods", default="gradcam,scorecam,occlusion")
    parser.add_argument("--limit", type=int, default=None, help="pneumonia films drawn at random (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-card", action="store_true", help="store the figures in the model file's card")
    parser.add_argument("--card-from", type=Path, metavar="JSON",
                        help="only store the figures of an earlier run's printed object in the model's card")
    args = parser.parse_args()
    engine = Engine("cpu")
    model = engine.model(args.model)
    if args.card_from:
        from converters.validate import update_card_keys

        update_card_keys(model.path, card_keys(json.loads(args.card_from.read_text())))
        return
    if args.folder is None:
        parser.error("--folder is required to measure")
    rng = np.random.default_rng(args.seed)
    films = load_films(args.folder / "PNEUMONIA", args.limit, rng)
    normals = load_films(args.folder / "NORMAL")
    methods = args.methods.split(",")
    peaks: dict[str, list[float]] = {m: [] for m in methods}
    plain = plain_inference_ms(engine, model, films)
    figures = faithfulness(engine, model, films, normals,
                           {m: method_map(engine, model, m, peaks[m]) for m in methods}, args.seed)
    for name, f in figures.items():
        if "ms_per_film" in f:
            f["inferences_of_time"] = round(f["ms_per_film"] / plain, 1)
    cells = engine.refined_cells(model, "occlusion")
    output = {"model": model.card.name, "provider": model.provider, "folder": str(args.folder),
              "pneumonia_films": len(films), "donor_films": len(normals), "seed": args.seed, "steps": STEPS,
              "border": model.card.border, "plain_inference_ms": plain, "occlusion_cells": cells,
              "cam_reference": references(peaks, cells), "methods": figures}
    if args.write_card:
        from converters.validate import update_card_keys

        update_card_keys(model.path, card_keys(output))
    print(json.dumps(output))


if __name__ == "__main__":
    main()
