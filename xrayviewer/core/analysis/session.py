"""ONNX Runtime sessions: provider choice that never falls back silently, a cache of loaded models, and runs that
are checked (a time limit, finite outputs, probabilities in [0, 1]) before anything downstream sees their numbers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import onnxruntime as ort

from xrayviewer.core.analysis.contract import FIX, ModelCard, ModelContractError, validate_session
from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.reading.digest import file_sha256

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "dml": "DmlExecutionProvider"}
AUTO_ORDER = ("cuda", "dml", "cpu")
TIME_LIMIT_BASE_S = 20.0  # a run may take this long, plus the per-image part (first runs on a GPU warm up)
TIME_LIMIT_PER_IMAGE_S = 5.0  # ~15x what the slowest shipped model needs per image on 2 busy CPU cores
QUIET = 4  # ONNX Runtime log severity: fatal only; its errors reach the user as XRayViewerError messages


class ModelOutputError(XRayViewerError):
    """A model run that failed, took too long, or gave numbers the app cannot use."""


def output_problem(name: str, value: np.ndarray) -> str | None:
    """Why output `name` of a run is unusable (not finite; a probability outside [0, 1]), or None."""
    if not np.issubdtype(value.dtype, np.number):
        return None
    finite = np.isfinite(value)
    if not finite.all():
        bad = value[~finite]
        kinds = sorted({"NaN" if np.isnan(v) else "infinite" for v in bad[:1000]})
        return f"'{name}' holds {' and '.join(kinds)} values ({bad.size} of {value.size})"
    if name == "probability" and value.size and (value.min() < 0 or value.max() > 1):
        return f"'probability' is outside [0, 1] (from {value.min():.4g} to {value.max():.4g})"
    return None
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
    lock: threading.Lock = field(default_factory=threading.Lock)
    limit_base_s: float = TIME_LIMIT_BASE_S
    limit_per_image_s: float = TIME_LIMIT_PER_IMAGE_S
    stopped: str = ""  # why the model is no longer run, once a run outlasted its time limit
    fallback: str = ""  # with provider 'auto': why a GPU provider of this build did not run it ("" when none failed)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the model file (read once): what a cached heatmap or a stored result was computed with."""
        return file_sha256(self.path)

    @property
    def outputs(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def time_limit(self, images: int) -> float:
        """Seconds a run of `images` images may take before it is stopped."""
        return self.limit_base_s + self.limit_per_image_s * images

    def run(self, images: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run a batch `[N, H, W, 3]`; returns the named outputs (all by default), each checked.

        A run that outlasts `time_limit` is stopped (ONNX Runtime's terminate flag, checked between nodes, so a
        model that loops for ever ends too) and the model is not run again: it is marked `stopped`.
        """
        names = outputs or self.outputs
        if self.stopped:
            raise ModelOutputError(self.path, "model stopped", self.stopped,
                                   "Check the model file (a loop without an end?) or choose another model.")
        limit = self.time_limit(len(images))
        options = ort.RunOptions()
        options.log_severity_level = QUIET
        timer = threading.Timer(limit, lambda: setattr(options, "terminate", True))
        with self.lock:  # one run at a time per session keeps the thread pool from oversubscribing cores
            timer.start()
            try:
                values = self.session.run(names, {"image": images}, options)
            except Exception as exc:  # noqa: BLE001 - ORT raises Fail, RuntimeException, InvalidArgument...
                if options.terminate:
                    self.stopped = f"a run of {len(images)} image(s) took longer than {limit:.0f} s and was stopped"
                    raise ModelOutputError(self.path, "model too slow", self.stopped,
                                           "Check the model file (a loop without an end?) or choose another "
                                           "model.") from None
                raise ModelOutputError(self.path, "model run failed", " ".join(str(exc).split())[:300],
                                       "Check that the model follows the contract (models/README.md).") from None
            finally:
                timer.cancel()
        result = dict(zip(names, values))
        for name, value in result.items():
            problem = output_problem(name, value)
            if problem:
                raise ModelOutputError(self.path, "model gave an unusable answer", problem,
                                       "The model file is damaged or broken; export it again or choose another.")
        return result


def session_options(threads: int = 0) -> ort.SessionOptions:
    """Options shared by every session: no busy-waiting threads, so several live sessions do not slow each other."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = QUIET  # no native log lines on stderr
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
    return Model(path, session, validate_session(session, path), running)


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

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
