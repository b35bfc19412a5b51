"""The analysis engine: display array -> model input -> gate -> (probability, CAM), batched where it can be.

file -> ImageRecord -> display array (core.display) -> model input (core.preprocess)
-> one forward pass (probability, features, gradients, OOD score) -> the gate (core.gate: header,
image and model checks) -> unless it refused, the CAM for a method and target.
A new CAM method or target reuses the forward pass; only Score-CAM and occlusion run the model again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from xrayviewer.core.analysis.cam import DEFAULT_METHOD, METHODS, CamInput, CamResult
from xrayviewer.core.analysis.consensus import Consensus, combine, is_consensus_card, merged, read_card
from xrayviewer.core.analysis.findings import Note, Refusal, Subject
from xrayviewer.core.analysis.gate import Gate, Verdict
from xrayviewer.core.analysis.map_cache import MapCache, input_digest
from xrayviewer.core.analysis.perturbation import CELLS
from xrayviewer.core.analysis.preprocess import model_input
from xrayviewer.core.analysis.wording import faithfulness
from xrayviewer.core.reading.record import ImageRecord
from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.analysis.session import PROVIDER_NAMES, PROVIDERS, Model, ModelCache, ModelOutputError, resolve_provider

TARGETS = ("pneumonia", "normal")
SCORE_BATCH = 8  # inputs per run (Score-CAM, occlusion): a run of 32 raised the peak RSS by ~400 MB, 8 by ~125 MB


@dataclass(frozen=True)
class Inference:
    """One image's forward pass."""

    probability: float  # P(PNEUMONIA)
    features: np.ndarray  # [h, w, C]
    gradients: np.ndarray  # [h, w, C], of the PNEUMONIA logit
    image: np.ndarray  # [1, H, W, 3] model input ([1, H, W, 3 x members] for a consensus)
    ood_score: float | None = None
    members: tuple[Inference, ...] = ()  # a consensus's: each member's own forward pass, for its gate


@dataclass(frozen=True)
class Analysis:
    """What the app may show for one image, one model, one CAM method and target.

    When the gate refused the image, `probability`, `label` and `cam` are None and `refused` says
    why; a forced analysis has them all and `out_of_scope` set. `notes` are shown either way.
    """

    model: str
    provider: str
    threshold: float
    threshold_rule: str = ""
    method: str = DEFAULT_METHOD
    target: str = "pneumonia"
    probability: float | None = None  # P(PNEUMONIA)
    label: str | None = None
    cam: CamResult | None = None
    refused: list[Refusal] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    out_of_scope: bool = False  # refused, and shown anyway because the user asked
    ood_score: float | None = None  # the model file's own out-of-distribution score, when it has a gate
    provider_note: str = ""  # why the provider is not the GPU one that 'auto' tried first ("" when none failed)
    faithfulness: str = ""  # how far the method's maps can be trusted for this model, from its card, in words


class Engine:
    """Loads models once and analyses display arrays with them, behind one gate for every model."""

    def __init__(self, provider: str = "auto", gate: Gate | None = None, note: str = "") -> None:
        """`note`: why this engine does not run on the provider the user chose (see `engine_for`)."""
        self.provider, self.note = provider, note
        self.models = ModelCache()
        self.consensuses: dict[Path, Consensus] = {}
        self.maps = MapCache()
        self.gate = gate if gate is not None else Gate()

    def close(self) -> None:
        """Let go of the loaded models (their ONNX Runtime sessions are freed once no analysis holds them)."""
        self.models.clear()
        self.consensuses.clear()
        self.maps.clear()

    def model(self, name_or_path: str | Path) -> Model | Consensus:
        """A loaded model: a contract `.onnx` file, or a consensus card (`.json`) over shipped models."""
        from xrayviewer.models import resolve

        path = resolve(name_or_path)
        if not is_consensus_card(path):
            return self.models.get(path, self.provider)
        key = path.resolve()
        if key not in self.consensuses:
            members = [resolve(name) for name in read_card(path)["members"]]
            if any(is_consensus_card(m) for m in members):
                raise XRayViewerError(path, "consensus of a consensus", "each member must be a model file")
            self.consensuses[key] = Consensus.of(path, [self.models.get(m, self.provider) for m in members])
        return self.consensuses[key]

    def infer(self, model: Model | Consensus, displays: list[np.ndarray]) -> list[Inference]:
        """Forward passes for several display arrays in one batch (a consensus: one batch per member)."""
        if isinstance(model, Consensus):
            runs = [self.infer(m, displays) for m in model.members]
            k = np.float32(len(runs))
            return [Inference(float(combine([i.probability for i in own])),
                              np.concatenate([i.features for i in own], axis=-1),
                              np.concatenate([i.gradients for i in own], axis=-1) / k,
                              model.stack([i.image for i in own]), None, tuple(own))
                    for own in zip(*runs)]
        images = np.concatenate([model_input(d, model.card) for d in displays])
        wanted = ["probability", "features", "gradients"] + (["ood_score"] if "ood_score" in model.outputs else [])
        out = model.run(images, wanted)
        scores = out.get("ood_score", [None] * len(displays))
        return [
            Inference(float(out["probability"][i, 0]), out["features"][i], out["gradients"][i], images[i:i + 1],
                      None if scores[i] is None else float(np.ravel(scores[i])[0]))
            for i in range(len(displays))
        ]

    def cam(self, model: Model, inference: Inference, method: str, target: str, size: tuple[int, int],
            cells: int | None = None, cancelled: Callable[[], bool] | None = None, every: int = 1) -> CamResult:
        """The CAM of `method` for `target` at `size` (rows, cols), on the card's reference scale when it has one.

        `cells`: a perturbation method's grid (default: the card's, else CELLS); `every` = FIRST_EVERY: occlusion's
        first picture, a quarter of the grid's patches, whose scores the final map then reuses.
        `cancelled`: a long method stops with core.errors.Cancelled once it returns True. Maps of costly methods
        are cached by model file, method, grid, target and model input, so a film seen again costs nothing.
        """
        if method not in METHODS:
            raise ValueError(f"unknown CAM method '{method}'; choose one of {', '.join(METHODS)}")
        if target not in TARGETS:
            raise ValueError(f"unknown target '{target}'; choose pneumonia or normal")
        sign = 1.0 if target == "pneumonia" else -1.0  # binary logit: d(normal logit) = -d(pneumonia logit)

        def score(batch: np.ndarray) -> np.ndarray:
            p = np.concatenate([model.run(batch[i:i + SCORE_BATCH], ["probability"])["probability"][:, 0]
                                for i in range(0, len(batch), SCORE_BATCH)])
            return p if target == "pneumonia" else 1 - p

        kind = METHODS[method]
        cells = cells or self.refined_cells(model, method)
        key = self._map_key(model, inference, method, target, cells) + (every,) if kind.costly else None
        result = None if key is None else self.maps.get(key)
        if result is None:
            fill = known = None
            if method == "occlusion":  # the patch scores of this input, shared by its first picture and final map
                known = self.maps.get(key[:-1] + ("drops",)) or {}
                self.maps.put(key[:-1] + ("drops",), known)
                normal = model.card.occlusion_fill
                fill = model.fill() if isinstance(model, Consensus) else \
                    None if normal is None else model_input(normal, model.card)[0]
            x = CamInput(inference.features, sign * inference.gradients, inference.image, score, model.card.border,
                         cancelled, fill, known)
            with np.errstate(over="ignore", invalid="ignore"):  # an overflowing map is refused just below
                result = (kind(cells, every) if method == "occlusion" else kind()).compute(x, size)
            if not (np.isfinite(result.peak) and np.isfinite(result.small).all()):
                raise ModelOutputError(model.path, f"unusable {method} heatmap", "the map is not finite (its "
                                       "features or gradients overflow)", "Choose another CAM method, or check the "
                                       "model file.")
            if key is not None:
                self.maps.put(key, result)
        result = replace(result, size=size)  # a new object: the cached one never holds a full-size heat
        reference = model.card.cam_reference(method, result.cells)
        return result if reference is None else result.against(reference)

    def refined_cells(self, model: Model, method: str) -> int | None:
        """The grid a perturbation map ends on for `model`: the one its card's figures were measured at, else the
        method's default; None for a method computed from the CAM layer."""
        return (model.card.occlusion_cells or CELLS) if method == "occlusion" else None

    def has_map(self, model: Model, inference: Inference, method: str, target: str, cells: int | None) -> bool:
        """Whether this final map is already in the cache (a film seen again skips the first picture)."""
        return self.maps.get(self._map_key(model, inference, method, target, cells) + (1,)) is not None

    @staticmethod
    def _map_key(model: Model, inference: Inference, method: str, target: str, cells: int | None) -> tuple:
        return model.digest, method, cells, target, input_digest(inference.image)

    def analysis(self, model: Model, inference: Inference, display: np.ndarray, method: str | None = DEFAULT_METHOD,
                 target: str = "pneumonia", record: ImageRecord | None = None, force: bool = False,
                 cells: int | None = None, cancelled: Callable[[], bool] | None = None, every: int = 1) -> Analysis:
        """The gate's verdict on one forward pass and, unless it refused (or `force`), the result and CAM.

        `record` gives the gate the file's header; without one only the image and model checks run. `cells`,
        `cancelled` and `every` go to `cam`. `method` None: no heatmap (a worklist needs the result only).
        """
        score = inference.ood_score if model.card.data.get("ood") else None
        verdict = self.verdict(model, inference, display, record)
        card = model.card
        gated = Analysis(model=card.name, provider=model.provider, threshold=card.threshold,
                         threshold_rule=card.threshold_rule, method=method or "", target=target,
                         refused=verdict.refused,
                         notes=verdict.notes, ood_score=None if score is None else round(score, 4),
                         provider_note="; ".join(filter(None, (self.note, model.fallback))),
                         faithfulness=faithfulness(METHODS[method].label, card.faithfulness(method),
                                                   card.faithfulness_films) if method else "")
        if verdict.refused and not force:
            return gated
        p = inference.probability
        return replace(gated, probability=p, label="PNEUMONIA" if p >= card.threshold else "NORMAL",
                       cam=self.cam(model, inference, method, target, display.shape[:2], cells, cancelled, every)
                       if method else None,
                       out_of_scope=bool(verdict.refused))

    def verdict(self, model: Model | Consensus, inference: Inference, display: np.ndarray,
                record: ImageRecord | None = None) -> Verdict:
        """The gate's verdict; a consensus's is every member's (a film any member refuses is refused)."""
        if isinstance(model, Consensus):
            return merged([(m.card.name, self.verdict(m, i, display, record))
                           for m, i in zip(model.members, inference.members)])
        score = inference.ood_score if model.card.data.get("ood") else None
        return self.gate(Subject(display, record, model.card, score))

    def analyze(self, model: Model, display: np.ndarray, method: str = DEFAULT_METHOD, target: str = "pneumonia",
                record: ImageRecord | None = None, force: bool = False) -> Analysis:
        """One display array, start to end."""
        (inference,) = self.infer(model, [display])
        return self.analysis(model, inference, display, method, target, record, force)


def engine_for(choice: str, gate: Gate | None = None) -> Engine:
    """An engine on `choice`; a provider this machine cannot run becomes 'auto' once, with the reason as the
    engine's note (shown beside every result), instead of failing every later film. The command line does not
    use this: there an explicit provider that cannot run is an error."""
    try:
        resolve_provider(choice)
    except XRayViewerError as exc:
        return Engine("auto", gate, note=f"{PROVIDER_NAMES.get(PROVIDERS.get(choice, choice), choice)} was chosen "
                                         f"but is unavailable ({exc.why})")
    return Engine(choice, gate)
