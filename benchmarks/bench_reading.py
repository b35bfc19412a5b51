"""Reading speed: study scan (files/s, headers only) and full decode of the demo chest CR.

    python benchmarks/bench_reading.py [--repeat 7]

Prints one JSON object of medians measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from xrayviewer.commands.bench import median_ms
from xrayviewer.core import read_image, scan, to_display
from xrayviewer.demo import data_store_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    data = data_store_folder()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for copy in range(10):  # 10 copies of every pydicom-data file: ~700 real DICOM files, ~560 MB
            sub = folder / f"copy{copy}"
            sub.mkdir()
            for f in data.glob("*.dcm"):
                os.link(f, sub / f.name) if f.stat().st_dev == folder.stat().st_dev else shutil.copy(f, sub)
        n_files = sum(1 for _ in folder.rglob("*.dcm"))
        scan_ms = median_ms(lambda: scan(folder), args.repeat)
    film = read_image(data / "RG1_UNCR.dcm")
    results = {
        "scan_files": n_files,
        "scan_ms": scan_ms,
        "scan_files_per_s": round(n_files / (scan_ms / 1000)),
        "decode_ms": {
            name: median_ms(lambda name=name: read_image(data / name), args.repeat)
            for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm")
        },
        "display_ms_RG1": median_ms(lambda: to_display(film), args.repeat),
        "cores": os.cpu_count(),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
