"""A model card as readable sections: intended use, population, data, validation, limitations, licence.

Newer cards carry `training_data.population`, `limitations`, `shifted`, `shortcut`, `calibration`
and `cam_reference`; older ones lack them, and what they lack is said, not invented.
"""

from __future__ import annotations

from typing import Any

INTENDED_USE = ("Research use only, not a diagnosis: a second opinion on frontal chest radiographs, "
                "pneumonia vs normal, for a reader who makes the decision.")
KERMANY_POPULATION = ("children aged 1-5, one hospital (Guangzhou Women and Children's Medical Center), frontal "
                      "chest films (from the data set's description; this card predates its population field)")
KERMANY_LIMITATIONS = [
    "Trained on one hospital's pediatric films: adults, other hospitals, lateral views and other body parts "
    "are outside what it has seen.",
    "Two classes only (pneumonia vs normal): other findings are not assessed.",
    "Validation figures come from a split of the same data set; expect lower figures on other films.",
]
FIGURES = ("n", "auc", "sensitivity", "specificity", "accuracy", "precision", "f1", "worst_auc")

Section = tuple[str, list[str]]


def number(value: Any) -> str:
    """Fractions to 3 decimals, other floats to 4 significant digits, everything else as it is."""
    if isinstance(value, float):
        return f"{value:.3f}" if 0.01 <= abs(value) <= 1 else f"{value:.4g}"
    return str(value)


def flat_lines(data: Any, skip: tuple[str, ...] = ()) -> list[str]:
    """A dict as "key: value" lines (nested dicts inline), a list item by item."""
    if isinstance(data, dict):
        lines = []
        for key, value in data.items():
            if key in skip:
                continue
            if isinstance(value, dict):
                value = ", ".join(f"{k} {number(v)}" for k, v in value.items() if not isinstance(v, (dict, list)))
            lines.append(f"{key.replace('_', ' ')}: {number(value)}")
        return lines
    if isinstance(data, list):
        return [str(x) for x in data]
    return [number(data)]


def figures(data: dict) -> list[str]:
    """Validation-style figures: the headline numbers on one line, then the confusion, split and notes."""
    head = ", ".join(f"{'AUC' if k == 'auc' else k.replace('_', ' ')} {number(data[k])}" for k in FIGURES if k in data)
    lines = [head] if head else []
    confusion = data.get("confusion")
    if isinstance(confusion, dict):
        lines.append("confusion: " + ", ".join(f"{k.upper()} {v}" for k, v in confusion.items()))
    return lines + flat_lines(data, skip=(*FIGURES, "confusion"))


def sections(card: dict) -> list[Section]:
    """The card in the order a reader needs it."""
    data = card.get("training_data") or {}
    kermany = "kermany" in f"{data.get('name', '')} {data.get('attribution', '')}".lower()
    population = data.get("population") or (KERMANY_POPULATION if kermany else "not stated in this card")
    size = card.get("input_size") or ["?", "?"]
    model = [f"{card.get('name')}: {card.get('architecture')}, input {size[0]} x {size[1]}, "
             f"CAM layer {card.get('cam_layer')}",
             f"recipe version {card.get('recipe_version')}, converter version {card.get('converter_version')}"]
    epochs = (card.get("recipe") or {}).get("epochs_run")
    if epochs is not None:
        model.append(f"epochs run: {epochs}")
    training = [f"population: {population}"] + flat_lines(data, skip=("population", "attribution"))
    threshold = card.get("threshold") or {}
    out: list[Section] = [
        ("Intended use", [INTENDED_USE]),
        ("Model", model),
        ("Training population and data", training),
        ("Operating threshold", [f"{number(threshold.get('value'))}: {threshold.get('rule', 'rule not stated')}"]),
    ]
    for key, title in (("validation", "Validation"), ("internal_test", "Internal test"),
                       ("shifted", "Shifted validation (perturbed films)")):
        if isinstance(card.get(key), dict) and card[key]:
            out.append((title, figures(card[key])))
    for key, title in (("shortcut", "Shortcut check"), ("calibration", "Calibration"),
                       ("cam_lung_share", "Heatmap mass inside the lungs")):
        if card.get(key):
            out.append((title, flat_lines(card[key])))
    reference = card.get("cam_reference")
    out.append(("Heatmap scale", flat_lines(reference) if reference else
                ["none: heatmap colours are stretched per image, so even weak evidence shows as a hot spot"]))
    if card.get("ood"):
        out.append(("Out-of-distribution gate", flat_lines(card["ood"], skip=("output",))))
    limitations = card.get("limitations") or (KERMANY_LIMITATIONS if kermany else ["not stated in this card"])
    out.append(("Limitations", flat_lines(limitations)))
    out.append(("Licence and attribution", [data.get("attribution") or "the card names no data source or licence",
                                            "XRay Viewer itself: MIT licence."]))
    return out
