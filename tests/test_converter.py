"""Keras -> ONNX converter on tiny Keras models built here (needs the `convert` extra: TensorFlow, tf2onnx)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from xrayviewer.core.analysis.contract import META_CARD, ModelContractError
from xrayviewer.core.analysis.session import open_model

keras = pytest.importorskip("keras", reason="the converter tests need the convert extra (tensorflow, tf2onnx)")
export = pytest.importorskip("converters.export")

SIZE = 48


def tiny_base() -> "keras.Model":
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv2")(x)
    x = keras.layers.Activation("relu", name="out_relu")(x)
    return keras.Model(inputs, x, name="tiny_base")


def nested_model() -> "keras.Model":
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), tiny_base(), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dropout(0.3), keras.layers.Dense(1, activation="sigmoid")])


def flat_model() -> "keras.Model":
    """A functional model with no nested base: every layer at the top level."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(12, 3, strides=2, activation="relu", name="top_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dropout(0.2)(x)))


def functional_nested_model() -> "keras.Model":
    """The functional equivalent of the recipe: base called as a layer inside a functional model."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(tiny_base()(inputs))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


@pytest.fixture(scope="module")
def films(kermany) -> np.ndarray:
    """Twelve real chest films at the tiny models' input size, scaled as the recipe scales them."""
    from converters import dataset
    from converters.train import to_input

    samples = dataset.list_samples(kermany)
    picked = samples[:6] + samples[-6:]
    return to_input(dataset.load_gray(picked, SIZE)[0])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_nested_model_round_trip_parity(tmp_path, films, suffix):
    path = tmp_path / f"tiny{suffix}"
    nested_model().save(path)
    model = keras.saving.load_model(path, compile=False)
    split = export.split_model(model)
    assert split.cam_layer == "out_relu"
    session = ort.InferenceSession(export.to_onnx(split, (SIZE, SIZE)).SerializeToString())
    figures = export.verify(session, model, split, films)
    assert figures["passed"], figures
    assert figures["probability_spread"] > 1e-3  # the films really give different answers
    assert figures["batch_equals_single"]


@pytest.mark.parametrize(("build", "cam_layer", "expected"), [
    (flat_model, None, "top_conv"),
    (functional_nested_model, None, "out_relu"),
    (nested_model, "conv2", "conv2"),  # conv2 -> out_relu -> head: gradients through an activation
])
def test_flat_functional_and_explicit_cam_layers(films, build, cam_layer, expected):
    model = build()
    split = export.split_model(model, cam_layer)
    assert split.cam_layer == expected
    session = ort.InferenceSession(export.to_onnx(split, (SIZE, SIZE)).SerializeToString())
    assert export.verify(session, model, split, films)["passed"]


def test_gradients_match_numpy_reference(films):
    """Grad-CAM from the exported gradients equals the analytic gradient of GAP + Dense: w / (h * w)."""
    model = nested_model()
    split = export.split_model(model)
    session = ort.InferenceSession(export.to_onnx(split, (SIZE, SIZE)).SerializeToString())
    out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": films})))
    kernel = np.asarray(split.head[-1].kernel)[:, 0]
    h, w = out["features"].shape[1:3]
    assert np.allclose(out["gradients"], np.broadcast_to(kernel / (h * w), out["gradients"].shape), atol=1e-7)
    assert np.allclose(out["pooled"], out["features"].mean(axis=(1, 2)), atol=1e-6)


def test_planted_mismatch_is_refused(films):
    model = nested_model()
    split = export.split_model(model)
    proto = export.to_onnx(split, (SIZE, SIZE))
    biggest = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    raw = bytearray(biggest.raw_data)
    raw[0:4] = np.float32(3.0).tobytes()  # one weight changed
    biggest.raw_data = bytes(raw)
    figures = export.verify(ort.InferenceSession(proto.SerializeToString()), model, split, films)
    assert not figures["passed"]
    assert figures["gradcam_max_abs_diff"] > export.CAM_TOLERANCE or \
        figures["probability_max_abs_diff"] > export.PROB_TOLERANCE


def test_cam_layer_behind_a_convolution_is_refused_with_the_ops_named():
    split = export.split_model(flat_model(), "conv1")
    with pytest.raises(export.ConversionError, match="conv1.*ShapeN"):
        export.to_onnx(split, (SIZE, SIZE))


def test_wrong_head_is_refused():
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), tiny_base(), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(export.ConversionError, match="Dense\\(1, sigmoid\\)"):
        export.split_model(model)
    with pytest.raises(export.ConversionError, match="no layer named"):
        export.split_model(nested_model(), "nope")


def test_main_writes_a_contract_model(tmp_path, kermany):
    from converters import dataset

    validation = len(dataset.split_samples(dataset.list_samples(kermany))["val"])  # 505, or 2 of the 16 test films
    source = tmp_path / "tiny.keras"
    nested_model().save(source)
    out = tmp_path / "tiny.onnx"
    assert export.main([str(source), "--out", str(out), "--data", str(kermany),
                        "--verify-films", str(min(8, validation))]) == 0
    model = open_model(out, "cpu")
    session, card = model.session, model.card
    assert card.input_size == (SIZE, SIZE) and card.classes == ["NORMAL", "PNEUMONIA"]
    assert card.data["cam_layer"] == "out_relu" and "Kermany" in card.data["training_data"]["attribution"]
    assert card.data["verification"]["passed"] and card.data["validation"]["n"] == validation
    assert 0 <= card.threshold <= 1
    # the same file without its card breaks the contract, and says so
    import onnx

    proto = onnx.load(out)
    kept = [p for p in proto.metadata_props if p.key != META_CARD]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    broken = tmp_path / "nocard.onnx"
    onnx.save(proto, broken)
    with pytest.raises(ModelContractError, match="nocard.onnx.*model card"):
        open_model(broken, "cpu")
    assert json.loads(session.get_modelmeta().custom_metadata_map[META_CARD])["name"] == "tiny"


def mobilenet_like_model() -> "keras.Model":
    """MobileNetV2's parts between a 2x finer layer and the last one: pad, stride-2 depthwise, BatchNorm, ReLU6,
    a residual block; BatchNorm statistics made non-trivial so that their folding shows."""
    keras.utils.set_random_seed(4)
    layers = keras.layers
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.ReLU(6.0, name="stem_relu")(layers.BatchNormalization()(layers.Conv2D(8, 3, strides=2,
                                                                                     padding="same")(inputs)))
    x = layers.ReLU(6.0, name="expand_relu")(layers.BatchNormalization()(layers.Conv2D(16, 1)(x)))
    x = layers.DepthwiseConv2D(3, strides=2, padding="valid")(layers.ZeroPadding2D(((0, 1), (0, 1)))(x))
    x = layers.Conv2D(12, 1)(layers.ReLU(6.0)(layers.BatchNormalization()(x)))
    y = layers.ReLU(6.0)(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same")(
        layers.ReLU(6.0)(layers.Conv2D(24, 1)(x)))))
    x = layers.Add()([x, layers.Conv2D(12, 1)(y)])
    x = layers.ReLU(6.0, name="out_relu")(layers.Conv2D(20, 1)(x))
    base = keras.Model(inputs, x, name="mnv2_like")
    for layer in base.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            rng = np.random.default_rng(len(gamma))
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), base, keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(1, activation="sigmoid")])


def test_finer_cam_layer_moved_inside_the_onnx_file_equals_tensorflow(films):
    """converters.finer_cam carries the gradient back from out_relu (12 x 12) to expand_relu (24 x 24) in ONNX ops;
    Keras' GradientTape at expand_relu is the reference, as for any exported CAM layer."""
    from converters.finer_cam import add_finer_cam, finite_difference_error

    model = mobilenet_like_model()
    last = export.to_onnx(export.split_model(model), (SIZE, SIZE))
    finer = add_finer_cam(last, "expand_relu")
    session = ort.InferenceSession(finer.SerializeToString())
    assert session.get_outputs()[1].shape[1:] == [24, 24, 16]
    figures = export.verify(session, model, export.split_model(model, "expand_relu"), films)
    assert figures["passed"] and figures["probability_spread"] > 1e-3, figures
    # the central difference's own error (ReLU6 kinks within eps, float32) is <= 5e-4 on the whole set's films and
    # 1.04e-3 on one of the 16 kept with the tests; a wrong gradient (a BatchNorm not folded) is off by far more
    assert finite_difference_error(finer, films, "expand_relu") < 2e-3
    original = ort.InferenceSession(last.SerializeToString())
    for name in ("probability", "pooled"):  # the head and the OOD statistics still read the last layer
        assert np.array_equal(session.run([name], {"image": films})[0], original.run([name], {"image": films})[0])
