"""`xrayviewer bench`: median milliseconds of each step, file to overlay, measured side by side in one run."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from xrayviewer.commands import add_model_options
from xrayviewer.core import XRayViewerError, read_image, to_display
from xrayviewer.core.cam import METHODS
from xrayviewer.core.engine import Engine, Inference
from xrayviewer.core.overlay import OverlayStyle, composite
from xrayviewer.core.preprocess import model_input


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time decode, preprocess, inference, each CAM method, overlay, end to end")
    add_model_options(p)
    p.add_argument("--image", type=Path, help="film to time (default: the demo chest CR, RG1_UNCR 1955 x 1841)")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--folder", type=Path, help="also time `analyze` over this folder (images/s, batched)")
    p.add_argument("--reference-tf", type=Path, metavar="KERAS_FILE",
                   help="also time TensorFlow eager GradientTape Grad-CAM of this Keras model (needs tensorflow)")
    p.set_defaults(func=run)


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
    x = model_input(display, model.card)

    def cam_after_inference(method: str) -> Callable[[], object]:
        """A forward pass with gradients on the prepared input, then the method's 8-bit map at source size."""
        def step() -> object:
            out = model.run(x)
            fresh = Inference(float(out["probability"][0, 0]), out["features"][0], out["gradients"][0], x)
            return engine.cam(model, fresh, method, "pneumonia", size).heat
        return step

    def end_to_end() -> object:
        shown = to_display(read_image(args.image))
        result = engine.analyze(model, shown, force=True)  # time the whole path, whatever the gate says
        return composite(shown, result.cam.heat, style)

    r = args.repeat
    timings = {
        "decode": median_ms(lambda: read_image(args.image), r),
        "preprocess": median_ms(lambda: model_input(display, model.card), r),
        "inference": median_ms(lambda: model.run(x, ["probability"]), r),
        "inference_with_gradients": median_ms(lambda: model.run(x), r),
        "cam_only": median_ms(lambda: engine.cam(model, inference, "gradcam", "pneumonia", size).heat, r),
    }
    for method in METHODS:
        timings[method] = median_ms(cam_after_inference(method), max(3, r // 4) if method == "scorecam" else r)
    timings["overlay"] = median_ms(lambda: composite(display, heat, style), r)
    timings["end_to_end"] = median_ms(end_to_end, max(3, r // 2))
    result = {
        "model": model.card.name, "provider": model.provider, "cores": os.cpu_count(),
        "image": str(args.image), "image_size": list(size), "input_size": list(model.card.input_size),
        "median_ms": timings,
        "gradcam_over_inference": round(timings["gradcam"] / timings["inference"], 2),
    }
    if args.folder:
        result["analyze_folder"] = folder_throughput(engine, model, args.folder)
    if args.reference_tf:
        ref = reference_tf_gradcam_ms(args.reference_tf, x, r)
        timings["reference_tf_gradcam"] = ref
        result["speedup_vs_reference_tf"] = round(ref / timings["gradcam"], 1)
    print(json.dumps(result))
    return 0


def folder_throughput(engine: Engine, model, folder: Path, batch: int = 32) -> dict:
    """Images/s of read + display + batched inference + Grad-CAM over every image in `folder` (no PNGs)."""
    from xrayviewer.core.study import image_paths

    paths = [p for p, problem in image_paths([folder]) if problem is None]
    start = time.perf_counter()
    for i in range(0, len(paths), batch):
        displays = [to_display(read_image(p)) for p in paths[i:i + batch]]
        for display, inference in zip(displays, engine.infer(model, displays)):
            engine.analysis(model, inference, display, force=True)
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
