"""Train the recipe on a lent GPU machine (no network there) and bring the weights back.

Three steps, the middle one on the GPU machine:

    python -m converters.gpu_train pack                  # here: films, Keras wheels, the device command
    <device run>  carry [".gpu"], command printed by `pack`, e.g. for Xception at 224:
        bash .gpu/remote.sh --arch xception --size 224 --epochs 30
    python -m converters.gpu_train unpack DIR --out runs/xception-gpu   # DIR: where the run's files landed

`pack` writes `.gpu/` (ignored by git through .git/info/exclude): the training folder as one tar
of its JPEG files (42 MB), the wheels of Keras and the two of its requirements the GPU image
lacks, and `remote.sh`. The device tool sends the tracked files too and takes 64 MiB in all, so
the shipped models must not travel: `pack` prints the two git commands that untrack
`models/*.onnx` for the call and track them again afterwards.

On the machine, `remote.sh` installs the wheels, unpacks the films and runs `converters.train`
with `KERAS_BACKEND=jax`, then `python -m converters.gpu_train send RUN $OUT` stores the chosen,
calibrated weights as float16 in chunks under 16 MiB with `recipe.json`, `history.csv` and the log,
which is what the device tool brings back. `unpack` rebuilds the model from the recipe, loads
the weights (back to float32) and writes `final.keras` for `converters.export`.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from converters import dataset

PACK = Path(".gpu")
CHUNK = 15 * 2**20
WHEELS = ("keras==3.15.1", "namex", "optree")  # what the GPU image lacks (it has absl-py, h5py, ml-dtypes, rich)
PIP_PLATFORM = ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                "--platform", "manylinux2014_x86_64", "--python-version", "3.12", "--implementation", "cp"]
REMOTE = """#!/usr/bin/env bash
# Runs on the GPU machine from the repository root: bash .gpu/remote.sh [converters.train arguments]
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false
mkdir -p /tmp/films && tar -xf .gpu/films.tar -C /tmp/films
python3 -m converters.train --data /tmp/films/train --out /tmp/run --workers 12 "$@" 2>&1 \\
  | grep -v -e '^I0000' -e 'oneDNN' | tee /tmp/run.log
python3 -m converters.gpu_train send /tmp/run "$OUT" --log /tmp/run.log
"""


def pack(out: Path, data: Path) -> None:
    out.mkdir(exist_ok=True)
    with tarfile.open(out / "films.tar", "w") as tar:
        for cls in dataset.CLASSES:
            tar.add(data / cls, arcname=f"train/{cls}")
    wheels = out / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    *PIP_PLATFORM, "-d", str(wheels), *WHEELS], check=True)
    (out / "remote.sh").write_text(REMOTE)
    exclude = Path(".git/info/exclude")
    exclude.parent.mkdir(parents=True, exist_ok=True)
    if f"/{out}/" not in (exclude.read_text().split() if exclude.exists() else []):
        with exclude.open("a") as f:
            f.write(f"/{out}/\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB to carry\n"
          "Before the device call:  git rm -q --cached models/*.onnx\n"
          f"Device run:              carry ['{out}'], command 'bash {out}/remote.sh --arch xception --size 224 "
          "--epochs 30'\n"
          "After it:                git reset -q -- models/*.onnx")


def send(run: Path, dest: Path, log: Path | None) -> None:
    """The chosen, calibrated weights as float16 chunks plus the run's records, into `dest`."""
    import keras

    model = keras.saving.load_model(run / "final.keras", compile=False)
    buf = io.BytesIO()
    np.savez(buf, *[w.astype(np.float16) for w in model.get_weights()])
    blob = buf.getvalue()
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(blob), CHUNK):
        (dest / f"weights.f16.{i // CHUNK:02d}").write_bytes(blob[i:i + CHUNK])
    for name in ("recipe.json", "history.csv"):
        shutil.copy(run / name, dest / name)
    if log:
        shutil.copy(log, dest / "train.log")


def unpack(src: Path, out: Path) -> Path:
    """Rebuild the recipe's model from `src` (what `send` wrote) and save `out/final.keras`."""
    from converters.train import build_model

    recipe = json.loads((src / "recipe.json").read_text())
    blob = b"".join(p.read_bytes() for p in sorted(src.glob("weights.f16.*")))
    arrays = np.load(io.BytesIO(blob))
    model = build_model(recipe["architecture"], int(recipe["input_size"]), dropout=recipe["hyper"]["dropout"])
    model.set_weights([arrays[f"arr_{i}"].astype(np.float32) for i in range(len(arrays.files))])
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "final.keras")
    for name in ("recipe.json", "history.csv", "train.log"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    return out / "final.keras"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    a = sub.add_parser("pack", help="here: films, wheels and remote.sh into .gpu/")
    a.add_argument("--out", type=Path, default=PACK)
    a.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    b = sub.add_parser("send", help="on the GPU machine: float16 weight chunks and records into a folder")
    b.add_argument("run", type=Path)
    b.add_argument("dest", type=Path)
    b.add_argument("--log", type=Path)
    c = sub.add_parser("unpack", help="here: rebuild final.keras from what came back")
    c.add_argument("src", type=Path)
    c.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.step == "pack":
        pack(args.out, args.data)
    elif args.step == "send":
        send(args.run, args.dest, args.log)
    else:
        print(unpack(args.src, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
