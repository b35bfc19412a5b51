"""Issue 11: a seeded fuzz run in the suite. A few hundred mutations of pydicom's own test files (header values,
LUTs, frame counts, transfer syntaxes, compressed streams, unknown VRs, truncation), of its DICOMDIR test set (loops,
dangling offsets, bad records) and of small PNG/JPEG/TIFF/BMP files, plus a FIFO, /dev/zero and sparse 8 GB files,
go through the calls `info`, the study scan and the viewer's loader make (and `analyze` on some that read), each
in a worker process so that an abort or a hang is caught. The longer run is `benchmarks/fuzz.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import fuzz  # noqa: E402


def test_seeded_fuzz_has_no_traceback_abort_hang_or_unclear_message(tmp_path):
    cases = fuzz.make_corpus(tmp_path, seed=2024, n_dicom=240, n_dicomdir=20, n_raster=60, real=False)
    results = fuzz.run_cases(cases, workers=2, timeout=20, analyze=8)
    summary = fuzz.summarise(results, 0.0)
    failed = [(r["case"], r["mutation"], r["problems"][-1][-600:]) for r in results if r["outcome"] != "ok"]
    assert failed == []
    assert summary["tracebacks"] == summary["aborts"] == summary["hangs"] == summary["memory_kills"] == 0
    assert summary["files_over_1_5_gb"] == 0
    unclear = [(r["case"], m) for r in results for m in r.get("leaks", [])]
    assert unclear == [] and summary["messages_not_naming_file"] == 0
    assert [(r["case"], c) for r in results for c in r.get("chatter", [])] == []
    refused = sum(bool(r.get("messages")) and not r.get("read") for r in results)
    assert summary["read"] > 40 and refused > 100  # both the reading and the refusing paths were exercised
    assert summary["analysed"] > 0
