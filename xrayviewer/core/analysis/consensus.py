"""Several contract models as one scoring function: the mean of their calibrated logits (issue 25).

A consensus card (a small JSON file beside the shipped models, e.g. `consensus.json`) names its `members` (shipped
model names), its `rule` (`mean-logit`) and its own `threshold`; the rest of the card (input size, border,
training data) is taken from the members. Each member prepares the film by its own card (MobileNetV2 with its
percentile stretch, Xception without), so the consensus's model input is the members' inputs side by side on the
channel axis, `[N, H, W, 3 x members]`: a perturbation map (occlusion) covers the same patch of every member's
input with that member's own fill, and the drop it measures is the drop of the mean logit.

Its `features` and `gradients` are the members' CAM layers side by side, the gradients divided by the number of
members: the gradient of the mean logit. Grad-CAM of the consensus is then the mean of the members' signed
Grad-CAMs (their CAM layers must share a grid). The gate is each member's gate: a film either member refuses is
refused, with that member's reason (`merged`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from xrayviewer.core.analysis.contract import ModelCard, ModelContractError, card_problem, consensus_problem
from xrayviewer.core.analysis.findings import Finding
from xrayviewer.core.analysis.gate import Verdict
from xrayviewer.core.analysis.preprocess import model_input
from xrayviewer.core.analysis.session import Model
from xrayviewer.core.reading.digest import file_sha256

EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] before the logit: float32 sigmoids saturate near 17
MEMBER_CODES = ("ood_score", "ood_population")  # findings that belong to one member's own gate
FIX = "Give the consensus card its members (shipped model names), rule 'mean-logit' and a threshold."


def logits(p: np.ndarray) -> np.ndarray:
    """The logit of calibrated probabilities, in float64, clipped at +-log((1 - EPS) / EPS) (about 16.1)."""
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def combine(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """The consensus probability: sigmoid of the mean of the members' logits (one array per member)."""
    mean = np.mean([logits(p) for p in probabilities], axis=0)
    return 1 / (1 + np.exp(-mean))


def is_consensus_card(path: str | Path) -> bool:
    """Whether `path` names a consensus card (a `.json` file) rather than an ONNX model."""
    return Path(path).suffix.lower() == ".json"


def read_card(path: Path) -> dict:
    """The consensus card at `path`, checked; a bad one is a ModelContractError naming the file."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelContractError(path, "cannot read consensus card", exc.strerror or str(exc), FIX) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelContractError(path, "unreadable consensus card", f"not valid JSON ({exc})", FIX) from None
    problem = consensus_problem(card)
    if problem:
        raise ModelContractError(path, f"breaks the consensus card: {problem[0]}", problem[1], FIX)
    return card


@dataclass
class Consensus:
    """The members' mean calibrated logit, with the interface the engine uses of a single `session.Model`."""

    path: Path  # the consensus card
    members: tuple[Model, ...]
    card: ModelCard

    @classmethod
    def of(cls, path: Path, members: Sequence[Model]) -> Consensus:
        """The consensus of card `path` over the loaded `members` (in the card's order)."""
        own = read_card(path)
        cards = [m.card for m in members]
        grids = {tuple(o.shape[1:3]) for m in members for o in m.session.get_outputs() if o.name == "features"}
        if len({c.input_size for c in cards}) > 1 or len({c.border for c in cards}) > 1 or len(grids) > 1:
            raise ModelContractError(path, "members cannot be combined", "their input sizes, borders or CAM grids "
                                     f"differ ({', '.join(c.name for c in cards)})", FIX)
        first = cards[0].data
        data = {"architecture": f"mean calibrated logit of {' + '.join(c.name for c in cards)}",
                "classes": first["classes"], "positive_class": first["positive_class"], "output": "sigmoid",
                "input_size": list(cards[0].input_size),
                "preprocessing": {"scale": 1.0, "offset": 0.0, "border": cards[0].border,
                                  "members": "each member prepares the film by its own card"},
                "cam_layer": " + ".join(f"{c.name}:{c.data['cam_layer']}" for c in cards),
                "training_data": first["training_data"], "recipe_version": "consensus",
                "converter_version": "none (no file of its own)", "validation": {},
                "members_cards": {c.name: {"recipe_version": c.data.get("recipe_version"),
                                           "threshold": c.threshold} for c in cards},
                **own}
        problem = card_problem(data)
        if problem:
            raise ModelContractError(path, f"breaks the model contract: {problem[0]}", problem[1], FIX)
        return cls(path, tuple(members), ModelCard(data))

    @property
    def provider(self) -> str:
        return ", ".join(dict.fromkeys(m.provider for m in self.members))

    @property
    def fallback(self) -> str:
        return "; ".join(dict.fromkeys(m.fallback for m in self.members if m.fallback))

    @property
    def outputs(self) -> list[str]:
        return ["probability", "features", "gradients"]

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the card file and every member's file digest: what a stored result was computed with."""
        text = file_sha256(self.path) + "".join(m.digest for m in self.members)
        return hashlib.sha256(text.encode()).hexdigest()

    def split(self, images: np.ndarray) -> list[np.ndarray]:
        """The members' inputs `[N, H, W, 3]` from the consensus input `[N, H, W, 3 x members]`."""
        return [np.ascontiguousarray(images[..., 3 * k:3 * k + 3]) for k in range(len(self.members))]

    def stack(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """The consensus input from the members' inputs (the inverse of `split`)."""
        return np.concatenate(list(inputs), axis=-1)

    def model_input(self, display: np.ndarray) -> np.ndarray:
        """`[1, H, W, 3 x members]`: the display array prepared by each member's own card."""
        return self.stack([model_input(display, m.card) for m in self.members])

    def fill(self) -> np.ndarray | None:
        """What covers an occluded patch, `[H, W, 3 x members]`: each member's own mean normal film, prepared by its
        card; None (the film's local mean, for every member) when a member's card has none."""
        fills = [m.card.occlusion_fill for m in self.members]
        if any(f is None for f in fills):
            return None
        return self.stack([model_input(f, m.card) for f, m in zip(fills, self.members)])[0]

    def run(self, images: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Each member on its part of `images`: `probability` = sigmoid(mean logit), `features` the members' CAM
        layers side by side, `gradients` theirs / members (the gradient of the mean logit)."""
        names = outputs or self.outputs
        wanted = ["probability"] + [n for n in ("features", "gradients") if n in names]
        runs = [m.run(x, wanted) for m, x in zip(self.members, self.split(images))]
        out = {"probability": combine([r["probability"] for r in runs]).astype(np.float32)}
        if "features" in names:
            out["features"] = np.concatenate([r["features"] for r in runs], axis=-1)
        if "gradients" in names:
            out["gradients"] = np.concatenate([r["gradients"] for r in runs], axis=-1) / np.float32(len(runs))
        return {n: out[n] for n in names}


def merged(verdicts: Sequence[tuple[str, Verdict]]) -> Verdict:
    """One verdict from the members' (name, verdict): a refusal or note of any member counts, each once; those of a
    member's own gate (its OOD score) are prefixed with the member's name."""
    refused: list[Finding] = []
    notes: list[Finding] = []
    for name, verdict in verdicts:
        for found, into in ((verdict.refused, refused), (verdict.notes, notes)):
            for f in found:
                f = replace(f, sentence=f"{name}: {f.sentence}") if f.code in MEMBER_CODES else f
                if f not in into:
                    into.append(f)
    return Verdict(refused, notes)
