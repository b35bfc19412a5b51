"""Lay one side of the patient-level split out as DIR/NORMAL and DIR/PNEUMONIA (symbolic links), for evaluate.

    python -m converters.split_folder --side test --out /tmp/kermany-test
    xrayviewer evaluate /tmp/kermany-test --model mobilenetv2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from converters import dataset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", choices=["train", "val", "test"], default="test")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args(argv)
    samples = dataset.split_samples(dataset.list_samples(args.data), args.seed)[args.side]
    for cls in dataset.CLASSES:
        (args.out / cls).mkdir(parents=True, exist_ok=True)
    for s in samples:
        link = args.out / dataset.CLASSES[s.label] / s.path.name
        if not link.exists():
            link.symlink_to(s.path.resolve())
    print(f"{len(samples)} films of the '{args.side}' side in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
