"""Keras -> ONNX converter that exports the Grad-CAM gradient graph (contract version 1).

    python -m converters.export MODEL.keras|MODEL.h5 --out models/NAME.onnx [--cam-layer L] [--name NAME]

The exported graph takes `image` [N, H, W, 3] and returns `probability` [N, 1],
`features` and `gradients` [N, h, w, C] (d pneumonia-logit / d features) and
`pooled` [N, C]. It verifies the ONNX file against Keras on real chest films and
refuses to write a model whose figures are off. TensorFlow is needed here only.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters import dataset, ood, operating_point
from converters.augment import shifted
from converters.float16 import max_differences, store_weights_float16
from converters.train import SCALING, to_input
from converters.normal_fill import write_fill
from converters.validate import update_card, validate, write_card
from xrayviewer.core.analysis.cam import CamInput, GradCAM
from xrayviewer.core.analysis.contract import validate_session
from xrayviewer.core.analysis.metrics import binary_figures
from xrayviewer.core.analysis.preprocess import model_gray

CONVERTER_VERSION = "1"
PROB_TOLERANCE = 1e-4
CAM_TOLERANCE = 1e-3
CAM_SIZE = (224, 224)
ATTRIBUTION = "Trained on data from Kermany et al., Mendeley Data v2 (2018), CC BY 4.0."
POPULATION = ("children aged 1-5, Guangzhou Women and Children's Medical Center (one hospital), frontal (AP/PA) "
              "chest films, bacterial and viral pneumonia vs normal")
LIMITATIONS = [
    "Research use only, not a diagnosis.",
    "Trained on one hospital's pediatric films: adults, other hospitals, lateral views and other body parts "
    "are outside what it has seen.",
    "Two classes only (pneumonia vs normal): other findings (effusion, nodules, tubes, fractures) are not assessed.",
    "Validation figures come from a patient-level split of the training folder; expect lower figures on films "
    "from other sources.",
]


class ConversionError(Exception):
    """The model cannot be exported, or its export does not match Keras."""


@dataclass
class Split:
    """A Keras model cut where the Grad-CAM needs it: trunk (input -> CAM features and head input) and head."""

    features_model: object  # keras.Model: image -> [cam features, trunk output]
    head: list  # layers after the trunk, the last one Dense(1, sigmoid)
    cam_layer: str


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def split_model(model, cam_layer: str | None = None) -> Split:
    """Find the convolutional trunk (nested base or flat) and the classification head of `model`.

    A nested base cannot be reached from the outer model's graph ("Graph disconnected",
    tf-keras-vis#63), so the trunk is rebuilt from the base's own inputs.
    """
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    nested = [i for i, layer in enumerate(layers) if _is_model(layer)]
    if nested:
        i = nested[-1]
        trunk, head = layers[i], layers[i + 1:]
        trunk_inputs, trunk_output = trunk.inputs, trunk.output
        candidates = trunk.layers
    else:
        rank4 = [i for i, layer in enumerate(layers) if len(layer.output.shape) == 4]
        if not rank4:
            raise ConversionError("the model has no layer with a [N, h, w, C] output to take a CAM from")
        i = rank4[-1]
        trunk_inputs, trunk_output, head = model.inputs, layers[i].output, layers[i + 1:]
        candidates = layers[: i + 1]
    if not head or not isinstance(head[-1], keras.layers.Dense) or head[-1].units != 1:
        raise ConversionError("the model must end in Dense(1, sigmoid) (contract version 1 is binary)")
    if head[-1].activation.__name__ != "sigmoid":
        raise ConversionError(f"the last Dense uses '{head[-1].activation.__name__}', expected sigmoid")
    if cam_layer is None:
        rank4 = [layer for layer in candidates if len(layer.output.shape) == 4
                 and not isinstance(layer, keras.layers.InputLayer)]
        cam = rank4[-1]
    else:
        matches = [layer for layer in candidates if layer.name == cam_layer]
        if not matches:
            raise ConversionError(f"no layer named '{cam_layer}' in the convolutional part of the model")
        cam = matches[0]
        if len(cam.output.shape) != 4:
            raise ConversionError(f"layer '{cam_layer}' has output shape {cam.output.shape}, expected [N, h, w, C]")
    features_model = keras.Model(trunk_inputs, [cam.output, trunk_output], name="cam_trunk")
    return Split(features_model, head, cam.name)


def _pool(x):
    """Global average pooling as Transpose -> Reshape -> MatMul, whose gradient converts with a dynamic batch.

    (TensorFlow's Mean gradient uses DynamicStitch, which tf2onnx mis-converts for an unknown batch size.)
    """
    import tensorflow as tf

    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    flat = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [-1, h * w])
    return tf.reshape(tf.matmul(flat, tf.fill([h * w, 1], 1.0 / (h * w))), [-1, c])


def apply_head(split: Split, x):
    """(logit [N, 1], pooled [N, C]) from the trunk output, the final sigmoid left out."""
    import keras
    import tensorflow as tf

    pooled = None
    for layer in split.head[:-1]:
        if isinstance(layer, keras.layers.GlobalAveragePooling2D):
            x = pooled = _pool(x)
        elif isinstance(layer, (keras.layers.GlobalMaxPooling2D, keras.layers.Flatten)) and pooled is None:
            raise ConversionError(f"head layer '{layer.name}' ({type(layer).__name__}) is not supported; "
                                  "use GlobalAveragePooling2D")
        else:
            x = layer(x, training=False)
    if pooled is None:
        raise ConversionError("the head has no GlobalAveragePooling2D")
    dense = split.head[-1]
    logit = tf.matmul(x, dense.kernel) + dense.bias
    return logit, pooled


def gradient_function(split: Split, size: tuple[int, int]):
    """The tf.function that tf2onnx converts: image -> probability, features, gradients, pooled."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, size[0], size[1], 3], tf.float32, name="image")])
    def cam_graph(image):
        with tf.GradientTape() as tape:
            features, trunk_out = split.features_model(image, training=False)
            logit, pooled = apply_head(split, trunk_out)
        # d logit_n / d features_n for every n at once: ones as the upstream gradient, no Sum over the batch.
        gradients = tape.gradient(logit, features, output_gradients=tf.ones_like(logit))
        return {"probability": tf.sigmoid(logit), "features": features, "gradients": gradients, "pooled": pooled}

    return cam_graph


def tf_features_and_gradients(split: Split, x):
    """TensorFlow eager GradientTape through the real Keras head layers: (features, d logit / d features)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        features, trunk_out = split.features_model(x, training=False)
        y = trunk_out
        for layer in split.head[:-1]:
            y = layer(y, training=False)
        logit = tf.reduce_sum(tf.matmul(y, split.head[-1].kernel) + split.head[-1].bias)
    return features, tape.gradient(logit, features)


def reference_gradcam(model, split: Split, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras' own probabilities and eager GradientTape features/gradients, one film at a time."""
    import tensorflow as tf

    probabilities = np.asarray(model(batch, training=False))
    pairs = [tf_features_and_gradients(split, tf.constant(image[None])) for image in batch]
    return probabilities, np.stack([f.numpy()[0] for f, _ in pairs]), np.stack([g.numpy()[0] for _, g in pairs])


def verify(session, model, split: Split, films: np.ndarray) -> dict:
    """Probability and Grad-CAM parity of the ONNX session against Keras on `films` [N, H, W, 3]."""
    out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": films})))
    ref_prob, ref_feats, ref_grads = reference_gradcam(model, split, films)
    cam = GradCAM()
    cam_diffs = [
        float(np.abs(cam.compute(CamInput(f, g), CAM_SIZE).map
                     - cam.compute(CamInput(rf, rg), CAM_SIZE).map).max())
        for f, g, rf, rg in zip(out["features"], out["gradients"], ref_feats, ref_grads)
    ]
    figures = {
        "films": int(len(films)),
        "probability_max_abs_diff": float(np.abs(out["probability"] - ref_prob).max()),
        "gradcam_max_abs_diff": max(cam_diffs),
        "probability_spread": float(np.ptp(ref_prob)),
        "batch_equals_single": bool(np.allclose(
            session.run(["probability"], {"image": films[:1]})[0], out["probability"][:1], atol=1e-6)),
    }
    figures["passed"] = (figures["probability_max_abs_diff"] <= PROB_TOLERANCE
                         and figures["gradcam_max_abs_diff"] <= CAM_TOLERANCE and figures["batch_equals_single"])
    return figures


def to_onnx(split: Split, size: tuple[int, int], opset: int = 17):
    """Convert the gradient graph; refuse when tf2onnx left TensorFlow ops that ONNX cannot run."""
    import logging

    import onnx
    import tf2onnx

    import converters.tf2onnx_grads  # noqa: F401 - registers ReluGrad / Relu6Grad

    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)  # unconverted ops are reported below instead
    fn = gradient_function(split, size)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset)
    left = sorted({n.op_type for n in proto.graph.node if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
    if left:
        raise ConversionError(f"the gradient from CAM layer '{split.cam_layer}' needs TensorFlow ops that tf2onnx "
                              f"cannot convert ({', '.join(left)}); use a layer nearer the head, such as the "
                              "base's last activation (the default)")
    return proto


def run_batches(session, images: np.ndarray, output: str | list[str], batch: int = 64):
    """One output (or a list of outputs, one pass) of the session over `images`, in batches."""
    names = [output] if isinstance(output, str) else output
    parts = [session.run(names, {"image": images[i:i + batch]}) for i in range(0, len(images), batch)]
    joined = [np.concatenate([p[k] for p in parts]) for k in range(len(names))]
    return joined[0] if isinstance(output, str) else joined


def score(session, images: np.ndarray) -> np.ndarray:
    return run_batches(session, images, "probability")[:, 0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="trained Keras model (.keras or legacy .h5)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", help="model name in the card (default: the output file's stem)")
    p.add_argument("--cam-layer", help="layer whose activations the CAM uses (default: the last 4-D one)")
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA, help="NORMAL/ and PNEUMONIA/ chest films")
    p.add_argument("--seed", type=int, default=1234, help="seed of the patient-level split used in training")
    p.add_argument("--recipe", type=Path, help="recipe.json written by converters.train")
    p.add_argument("--verify-films", type=int, default=16)
    p.add_argument("--float16", action="store_true",
                   help="store the weights as float16 when probability and Grad-CAM stay within 1e-3")
    p.add_argument("--skip-validation", action="store_true",
                   help="do not add the shifted-validation and shortcut figures to the card")
    args = p.parse_args(argv)

    import keras
    import onnxruntime as ort

    model = keras.saving.load_model(args.model, compile=False)
    size = tuple(int(d) for d in model.inputs[0].shape[1:3])
    try:
        split = split_model(model, args.cam_layer)
        print(f"{args.model}: input {size}, CAM layer '{split.cam_layer}'", flush=True)
        proto = to_onnx(split, size)
    except ConversionError as exc:
        print(f"{args.model}: cannot export: {exc}", file=sys.stderr)
        return 2

    recipe = json.loads(args.recipe.read_text()) if args.recipe else {}
    border = float(recipe.get("border", 0.0))
    intensity = recipe.get("intensity")  # recipe v3: the percentile stretch (preprocess.model_gray)
    parts = dataset.split_samples(dataset.list_samples(args.data), args.seed)
    val_films, val_y = dataset.load_gray(parts["val"], size[0])
    val_gray = model_gray(val_films, border, intensity)
    pick = np.random.default_rng(0).choice(len(val_y), args.verify_films, replace=False)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    figures = verify(session, model, split, to_input(val_gray[pick]))
    print(json.dumps({"verification": figures}), flush=True)
    if not figures["passed"]:
        print(f"refusing to write {args.out}: ONNX does not match Keras within tolerance "
              f"(probability {PROB_TOLERANCE}, Grad-CAM {CAM_TOLERANCE})", file=sys.stderr)
        return 1

    val_scores = score(session, to_input(val_gray))
    moved = {k: score(session, to_input(model_gray(v, border, intensity))) for k, v in shifted(val_films).items()}
    threshold_entry = operating_point.card_threshold(operating_point.Scores(val_y, val_scores, moved))
    threshold = threshold_entry["value"]
    test_gray, test_y = dataset.load_gray(parts["test"], size[0])
    test_gray = model_gray(test_gray, border, intensity)
    test_scores = score(session, to_input(test_gray))
    train_gray = model_gray(dataset.load_gray(parts["train"], size[0])[0], border, intensity)
    pixels = ood.add_pixel_vector(proto, size)
    ood.add_output(proto, pixels, ["N", "P"])
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    pixel_vectors, pooled = run_batches(session, to_input(train_gray), [pixels, "pooled"])
    pixel_gate = ood.fit(pixel_vectors, components=16)
    feature_gate = ood.fit(pooled)
    del train_gray
    ood.remove_output(proto, pixels)
    ratios = [ood.add_gate(proto, pixel_gate, pixels, "ood_px"), ood.add_gate(proto, feature_gate, "pooled", "ood_ft")]
    ood.add_combined_score(proto, ratios)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ood_val = run_batches(session, to_input(val_gray), "ood_score")[:, 0]
    ood_card = {**ood.card_entry(pixel_gate, feature_gate),
                "validation_films_flagged": round(float((ood_val > 1.0).mean()), 4)}
    arch = recipe.get("architecture") or model.name
    card = {
        "name": args.name or args.out.stem,
        "architecture": arch,
        "classes": list(dataset.CLASSES),
        "positive_class": "PNEUMONIA",
        "output": "sigmoid",
        "input_size": list(size),
        "preprocessing": {
            "source": "8-bit display array (after window/level), converted to gray (BT.601 luma if colour)",
            "resize": "whole image to input_size, cv2.INTER_AREA, aspect ratio not kept",
            "gray_to_rgb": "the gray channel repeated three times",
            "border": border,
            "border_rule": "after the resize, an outer ring of border x side pixels is set to 0 (black)",
            "scale": SCALING["scale"],
            "offset": SCALING["offset"],
            "formula": "x = pixel * scale + offset",
            **({"intensity": intensity,
                "intensity_rule": "after the resize and before the border is blanked, the gray levels between the "
                                  "given percentiles of the interior (inside the border ring) are stretched "
                                  "linearly to 0-255, clipped and rounded"} if intensity else {}),
        },
        "cam_layer": split.cam_layer,
        "threshold": threshold_entry,
        "validation": {**binary_figures(val_y, val_scores, threshold), "split": "val (patient-level, 10 %)",
                       "note": "used for early stopping and the threshold (plain and shifted)"},
        "internal_test": {**binary_figures(test_y, test_scores, threshold),
                          "split": "test (patient-level, 10 %), used for nothing else"},
        "training_data": {"name": "Kermany pediatric chest X-ray, training folder, 224 x 224",
                          "population": POPULATION,
                          "split_seed": args.seed, "split_sizes": {k: len(v) for k, v in parts.items()},
                          "attribution": ATTRIBUTION},
        "limitations": LIMITATIONS,
        "recipe_version": recipe.get("recipe_version", "unknown"),
        "recipe": {k: recipe[k] for k in ("hyper", "epochs_run", "train_seconds", "hardware") if k in recipe},
        "ood": ood_card,
        "converter_version": CONVERTER_VERSION,
        "verification": figures,
    }
    if "temperature" in recipe:
        card["calibration"] = {"method": "temperature scaling on validation, folded into the last layer",
                               "temperature": recipe["temperature"]}
    write_card(proto, card)
    proto.producer_name = "xrayviewer-converter"
    final = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    validate_session(final, args.out)
    if args.float16:
        half = store_weights_float16(proto)
        diffs = max_differences(final, ort.InferenceSession(half.SerializeToString(),
                                                            providers=["CPUExecutionProvider"]),
                                to_input(val_gray[pick]))
        kept = diffs["probability_max_abs_diff"] <= CAM_TOLERANCE and diffs["gradcam_max_abs_diff"] <= CAM_TOLERANCE
        print(json.dumps({"float16_weights": diffs, "kept": kept}), flush=True)
        card["weight_storage"] = {"float16": kept, **diffs, "tolerance": CAM_TOLERANCE}
        if kept:
            proto = half
        write_card(proto, card)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(proto.SerializeToString())
    write_fill(args.out, args.data, args.seed)  # before the validation: occlusion maps are measured with it
    if not args.skip_validation:
        update_card(args.out, validate(args.out, args.data, args.seed))
    print(json.dumps({"written": str(args.out), "bytes": args.out.stat().st_size,
                      "validation": card["validation"], "internal_test": card["internal_test"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
