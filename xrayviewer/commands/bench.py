"""`xrayviewer bench`: median milliseconds of each step, file to overlay, measured side by side in one run.

Besides the steps it prints the figures users feel: `end_to_end_METHOD` (file to overlay with Grad-CAM, the fast
map, and with the default method, occlusion), `open_to_overlay_ms` (file to the film with its Grad-CAM heatmap, for
the demo chest CR uncompressed and as JPEG 2000 lossless), `decode_ms` of every installed JPEG 2000 decoder on that
file, `window_level_ms` (one window/level step of the viewer on the 2k film with the overlay on, repaint included)
and `cold_start_ms` (process start to the viewer's window shown, offscreen). `methods` says which heatmap method
each end-to-end figure times. Figures that are compared with each other are timed in turns, so that the load of a
shared machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from xrayviewer.commands import add_model_options, command_parser
from xrayviewer.core import XRayViewerError, read_image, to_display
from xrayviewer.core.analysis.cam import DEFAULT_METHOD, METHODS
from xrayviewer.core.analysis.engine import Engine, Inference
from xrayviewer.core.analysis.overlay import OverlayStyle, composite
from xrayviewer.core.analysis.preprocess import model_input


FAST_METHOD = "gradcam"  # the map the speed figures are taken with (one forward pass); the default is timed too


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "bench", "time decode, preprocess, inference, each CAM method, overlay, end to end; print one JSON",
        "Time every step from file to overlay on this machine and print one JSON object of medians (ms): the steps "
        f"on --image and end to end with {FAST_METHOD} and with the default method ({DEFAULT_METHOD}), "
        f"open_to_overlay_ms ({FAST_METHOD}) for the demo chest CR (RG1_UNCR and RG1_J2KR of pydicom-data), "
        "decode_ms for each installed JPEG 2000 decoder, window_level_ms (one W/L step of the viewer with the overlay "
        "on) and cold_start_ms (process start to the window shown, offscreen); `methods` names the heatmap method "
        "of each end-to-end figure. Needs the demo extra (pydicom-data).",
        "  xrayviewer bench\n  xrayviewer bench --model xception --repeat 30\n"
        "  xrayviewer bench --folder films/ --provider cpu")
    add_model_options(p)
    p.add_argument("--image", type=Path, help="film to time (default: the demo chest CR, RG1_UNCR 1955 x 1841)")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--folder", type=Path,
                   help=f"also time reading and analysing this folder with {FAST_METHOD} (images/s, batched)")
    p.add_argument("--reference-tf", type=Path, metavar="KERAS_FILE",
                   help="also time TensorFlow eager GradientTape Grad-CAM of this Keras model (needs tensorflow)")
    p.set_defaults(func=run)


def times_in_turns(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Times (ms) of each function, called in turns (one call of each per round) after one warm-up call each."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def run(args: argparse.Namespace) -> int:
    if args.image is None:
        from xrayviewer.demo import data_store_folder

        args.image = data_store_folder() / "RG1_UNCR.dcm"
    engine = Engine(args.provider)
    model = engine.model(args.model)
    record = read_image(args.image)
    display = to_display(record)
    size = display.shape[:2]
    (inference,) = engine.infer(model, [display])
    heat = engine.cam(model, inference, "gradcam", "pneumonia", size).heat
    style = OverlayStyle()
    x = inference.image  # the prepared input (a consensus: its members' inputs side by side)
    prepare = getattr(model, "model_input", None) or (lambda d: model_input(d, model.card))

    def cam_after_inference(method: str) -> Callable[[], object]:
        """A forward pass with gradients on the prepared input, then the method's 8-bit map at source size."""
        def step() -> object:
            engine.maps.clear()  # time the method, not the map cache
            out = model.run(x)
            fresh = Inference(float(out["probability"][0, 0]), out["features"][0], out["gradients"][0], x)
            return engine.cam(model, fresh, method, "pneumonia", size).heat
        return step

    def end_to_end(method: str) -> Callable[[], object]:
        """File to overlay with `method`'s map: decode, window, model, gate, CAM (empty map cache), composite."""
        def step() -> object:
            engine.maps.clear()  # time the method, not the map cache
            shown = to_display(read_image(args.image))
            result = engine.analyze(model, shown, method, force=True)  # the whole path, whatever the gate says
            return composite(shown, result.cam.heat, style)
        return step

    r = args.repeat
    timings = {
        "decode": median_ms(lambda: read_image(args.image), r),
        "preprocess": median_ms(lambda: prepare(display), r),
        "inference": median_ms(lambda: model.run(x, ["probability"]), r),
        "inference_with_gradients": median_ms(lambda: model.run(x), r),
        "cam_only": median_ms(lambda: engine.cam(model, inference, "gradcam", "pneumonia", size).heat, r),
    }
    slow = ("scorecam", "occlusion")  # they run the model again, 32 and ~145 times
    for method in METHODS:
        timings[method] = median_ms(cam_after_inference(method), max(3, r // 4) if method in slow else r)
    timings["overlay"] = median_ms(lambda: composite(display, heat, style), r)
    ends = {f"end_to_end_{m}": m for m in (FAST_METHOD, DEFAULT_METHOD)}  # one key where they are the same
    for key, method in ends.items():
        timings[key] = median_ms(end_to_end(method), max(3, r // (4 if method in slow else 2)))
    result = {
        "model": model.card.name, "provider": model.provider, "cores": os.cpu_count(),
        "image": str(args.image), "image_size": list(size), "input_size": list(model.card.input_size),
        "methods": {**ends, "open_to_overlay_ms": FAST_METHOD, "window_level_ms": FAST_METHOD,
                    **({"analyze_folder": FAST_METHOD} if args.folder else {})},
        "median_ms": timings,
        "gradcam_over_inference": round(timings["gradcam"] / timings["inference"], 2),
    }
    result.update(user_figures(engine, model, max(3, r // 2)))
    if args.folder:
        result["analyze_folder"] = folder_throughput(engine, model, args.folder)
    if args.reference_tf:
        ref = reference_tf_gradcam_ms(args.reference_tf, x, r)
        timings["reference_tf_gradcam"] = ref
        result["speedup_vs_reference_tf"] = round(ref / timings["gradcam"], 1)
    print(json.dumps(result))
    return 0


def user_figures(engine: Engine, model, repeat: int) -> dict:
    """open_to_overlay_ms, decode_ms, window_level_ms and cold_start_ms on the demo chest CR, with the load."""
    import pydicom
    from pydicom.pixels import pixel_array

    from xrayviewer.core.reading.decoders import THREADS
    from xrayviewer.core.reading.dicom import decoding_plugins
    from xrayviewer.demo import data_store_folder

    folder = data_store_folder()
    films = {name: folder / f"{name}.dcm" for name in ("RG1_UNCR", "RG1_J2KR")}
    j2kr = films["RG1_J2KR"]
    decoders = decoding_plugins(pydicom.dcmread(j2kr, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    # each decoder from the file, as opening it does (reading and parsing the header add a few ms)
    decode = {f"decode {name}": (lambda name=name: pixel_array(pydicom.dcmread(j2kr), decoding_plugin=name))
              for name in decoders}
    opens = {name: (lambda path=path: open_to_overlay(engine, model, path)) for name, path in films.items()}
    load_before = os.getloadavg()
    times = times_in_turns({**decode, **opens}, repeat)
    timed = {name: round(statistics.median(t), 1) for name, t in times.items()}
    decode_ms = {name: timed[f"decode {name}"] for name in decoders}
    fastest = min(decode_ms, key=decode_ms.get)
    # the ratio in each round (both timed seconds apart), then its median: steadier than a ratio of medians
    # when the load of a shared machine changes during the run
    ratios = [o / d for o, d in zip(times["RG1_J2KR"], times[f"decode {fastest}"])]
    return {
        "open_to_overlay_ms": {name: timed[name] for name in films},
        "decode_ms": decode_ms,
        "decoder_order": decoders,
        "imagecodecs_threads": THREADS,
        "j2kr_open_to_overlay_over_fastest_decode": round(statistics.median(ratios), 2),
        "window_level_ms": window_level_ms(films["RG1_UNCR"], engine, model, repeat * 4),
        **cold_start(repeat),
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
    }


def open_to_overlay(engine: Engine, model, path: Path):
    """What opening a film costs until its heatmap is on it: decode, window, model, gate, CAM, composite."""
    record = read_image(path)
    display = to_display(record)
    analysis = engine.analyze(model, display, FAST_METHOD, record=record, force=True)  # the whole path, always
    return composite(display, analysis.cam.heat, OverlayStyle())


def window_level_ms(path: Path, engine: Engine, model, repeat: int) -> float:
    """One left-drag step of the viewer's window/level on `path` with the overlay on: re-window, composite, paint."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from xrayviewer.gui.app import application
    from xrayviewer.gui.viewport import Viewport

    application()
    record = read_image(path)
    display = to_display(record)
    view = Viewport()
    view.resize(1100, 950)
    view.show()
    view.set_record(record)
    view.set_heat(engine.analyze(model, display, FAST_METHOD, record=record, force=True).cam.heat)
    times: list[float] = []
    for i in range(repeat + 1):
        sign = 1 if i % 2 else -1  # back and forth, so that the window stays near the default
        start = time.perf_counter()
        view.drag_window(4 * sign, 3 * sign)
        view.repaint()
        times.append((time.perf_counter() - start) * 1000)
    times = times[1:]  # the first step warms up
    return round(statistics.median(times), 1)


def cold_start(repeat: int) -> dict:
    """`cold_start_ms`: the median ms from starting `python -m xrayviewer` to its window shown (offscreen), over
    `repeat` processes; null with `cold_start_problem` when a start fails, so that the other figures are kept.

    The child runs this very package whatever the working folder: the folder is not put on its import path
    (`-P`), where a clone's `xrayviewer/` would shadow an installed one (and lack its `xrayviewer.models`)."""
    import xrayviewer

    package_root = str(Path(xrayviewer.__file__).resolve().parent.parent)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    times = []
    for _ in range(repeat):
        start = time.time()
        shown, problem = _window_shown(env)
        if shown is None:
            return {"cold_start_ms": None, "cold_start_problem": f"the viewer's start-up probe failed: {problem}"}
        times.append((shown - start) * 1000)
    return {"cold_start_ms": round(statistics.median(times), 1)}


def _window_shown(env: dict[str, str]) -> tuple[float | None, str]:
    """Start the viewer's start-up probe once: the time its window was shown, or None and the reason."""
    try:
        child = subprocess.run([sys.executable, "-P", "-m", "xrayviewer", "--startup-probe"], capture_output=True,
                               text=True, env=env, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    try:
        return float(json.loads(child.stdout.splitlines()[-1])["window_shown"]), ""
    except (ValueError, IndexError, KeyError, TypeError):
        said = child.stderr.strip().splitlines()
        return None, said[-1][:300] if said else f"exit status {child.returncode} and no output"


def folder_throughput(engine: Engine, model, folder: Path, batch: int = 32) -> dict:
    """Images/s of read + display + batched inference + Grad-CAM over every image in `folder` (no PNGs; `analyze`
    without --out makes no map, with --out and --method gradcam it also writes the PNGs)."""
    from xrayviewer.core.reading.study import image_paths

    paths = [p for p, problem in image_paths([folder]) if problem is None]
    start = time.perf_counter()
    for i in range(0, len(paths), batch):
        displays = [to_display(read_image(p)) for p in paths[i:i + batch]]
        for display, inference in zip(displays, engine.infer(model, displays)):
            engine.analysis(model, inference, display, FAST_METHOD, force=True)
    seconds = time.perf_counter() - start
    return {"images": len(paths), "seconds": round(seconds, 2), "images_per_s": round(len(paths) / seconds, 1)}


def reference_tf_gradcam_ms(keras_file: Path, x, repeat: int) -> float:
    """TensorFlow eager GradientTape Grad-CAM of the Keras model (the converter's reference), median ms."""
    import numpy as np

    try:
        import keras
        import tensorflow as tf

        from converters.export import split_model, tf_features_and_gradients  # the repository's converter
    except ImportError as exc:
        raise XRayViewerError(keras_file, "cannot time the TensorFlow reference", str(exc),
                              "Install the convert extra and run `python -m xrayviewer bench --reference-tf ...` "
                              "from the repository root.") from None

    model = keras.saving.load_model(keras_file, compile=False)
    split = split_model(model)

    def gradcam() -> np.ndarray:
        features, grads = tf_features_and_gradients(split, tf.constant(x))
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(features * weights, axis=-1)).numpy()

    return median_ms(gradcam, repeat)
