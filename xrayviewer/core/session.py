"""ONNX Runtime sessions: provider choice that never falls back silently, and a cache of loaded models."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from xrayviewer.core.contract import FIX, ModelCard, ModelContractError, validate_session
from xrayviewer.core.errors import XRayViewerError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "dml": "DmlExecutionProvider"}
AUTO_ORDER = ("cuda", "dml", "cpu")
PROVIDER_NAMES = {"CPUExecutionProvider": "CPU", "CUDAExecutionProvider": "CUDA", "DmlExecutionProvider": "DirectML"}


def resolve_provider(choice: str = "auto") -> str:
    """The ONNX Runtime provider for `choice` (auto, cpu, cuda, dml); an unavailable explicit choice is an error."""
    available = ort.get_available_providers()
    if choice == "auto":
        return next(PROVIDERS[c] for c in AUTO_ORDER if PROVIDERS[c] in available)
    if choice not in PROVIDERS:
        raise XRayViewerError(None, f"unknown provider '{choice}'", f"choose one of auto, {', '.join(PROVIDERS)}")
    if PROVIDERS[choice] not in available:
        raise XRayViewerError(None, f"provider '{choice}' is not available",
                              f"this onnxruntime build offers {', '.join(available)}",
                              "Choose 'cpu', or install onnxruntime-gpu (CUDA) or onnxruntime-directml.")
    return PROVIDERS[choice]


@dataclass
class Model:
    """A loaded, validated model: its session, card and the provider that actually runs it."""

    path: Path
    session: ort.InferenceSession
    card: ModelCard
    provider: str
    lock: threading.Lock
    fallback: str = ""  # with provider 'auto': why a GPU provider of this build did not run it ("" when none failed)

    @property
    def outputs(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def run(self, images: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run a batch `[N, H, W, 3]`; returns the named outputs (all by default)."""
        names = outputs or self.outputs
        with self.lock:  # one run at a time per session keeps the thread pool from oversubscribing cores
            values = self.session.run(names, {"image": images})
        return dict(zip(names, values))


def session_options(threads: int = 0) -> ort.SessionOptions:
    """Options shared by every session: no busy-waiting threads, so several live sessions do not slow each other."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def open_model(path: str | Path, provider: str = "auto") -> Model:
    """Load and validate `path` on the chosen provider, and check that the provider really runs it.

    'auto' tries the GPU providers this onnxruntime build offers, then the CPU; the model's `fallback` says why
    a GPU provider did not run it. An explicit choice that cannot run the model is an error, never a fall-back.
    """
    if provider != "auto":
        return _open(Path(path), resolve_provider(provider))
    available = ort.get_available_providers()
    return open_first(path, [PROVIDERS[c] for c in AUTO_ORDER if PROVIDERS[c] in available])


def open_first(path: str | Path, providers: list[str]) -> Model:
    """The model on the first of `providers` that runs it; the CPU, when it is the last, is never skipped."""
    reasons = []
    for wanted in providers[:-1]:
        try:
            model = _open(Path(path), wanted)
        except Exception as exc:  # noqa: BLE001 - a GPU that cannot start (no device, driver, DLL) is a reason
            reasons.append(f"{PROVIDER_NAMES.get(wanted, wanted)} unavailable ({_why(exc)})")
            continue
        model.fallback = "; ".join(reasons)
        return model
    model = _open(Path(path), providers[-1])
    model.fallback = "; ".join(reasons)
    return model


def _why(exc: Exception) -> str:
    return getattr(exc, "why", None) or " ".join(str(exc).split())[:200]


def _open(path: Path, wanted: str) -> Model:
    providers = [wanted] if wanted == PROVIDERS["cpu"] else [wanted, PROVIDERS["cpu"]]
    try:
        data = path.read_bytes()  # bytes, so that any path (non-ASCII on Windows) works
        session = ort.InferenceSession(data, sess_options=session_options(), providers=providers)
    except OSError as exc:
        raise XRayViewerError(path, "cannot read model", exc.strerror or str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - ORT raises Fail, InvalidGraph, InvalidProtobuf...
        raise ModelContractError(path, "not a loadable ONNX model", " ".join(str(exc).split())[:300], FIX) from None
    running = session.get_providers()[0]
    if running != wanted:
        raise XRayViewerError(path, f"{wanted} could not run this model", f"ONNX Runtime fell back to {running}",
                              "Choose the CPU provider, or check the GPU driver and runtime libraries.")
    return Model(path, session, validate_session(session, path), running, threading.Lock())


class ModelCache:
    """Loaded models by (path, provider), so switching back and forth does not reload them."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], Model] = {}
        self._lock = threading.Lock()

    def get(self, path: str | Path, provider: str = "auto") -> Model:
        key = (str(Path(path).resolve()), provider)
        with self._lock:
            if key not in self._models:
                self._models[key] = open_model(path, provider)
            return self._models[key]
