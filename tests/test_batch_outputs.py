"""Batches isolate each file, and outputs never lose results: `info` and `analyze` as real processes.

One bad file is one JSON line with `path` and `error`, the rest go on, the exit code says some failed; an overlay
that cannot be written (a file where the folder should be, no permission, a full disk) is an error naming the path,
the row keeps its result, no partial PNG is left, and nothing is written over an input or into an analysed folder
unless asked.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from pydicom.data import get_testdata_file
from tiny_models import build, quadrant_film


def xrayviewer(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, timeout=300,
                          **kwargs)


def rows_of(result: subprocess.CompletedProcess) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}


def films(folder: Path, n: int, bright: bool = True) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        paths.append(folder / f"film{i}.png")
        cv2.imwrite(str(paths[-1]), quadrant_film(64, (i % 2, 0)) if bright else np.full((64, 64), 10, np.uint8))
    return paths


def test_info_one_bad_file_is_one_error_line(tmp_path):
    inputs = films(tmp_path / "study", 2)
    broken = tmp_path / "study" / "broken.dcm"
    broken.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:3000])
    too_long = tmp_path / ("x" * 300 + ".dcm")  # the file system refuses the name itself (ENAMETOOLONG)
    result = xrayviewer("info", str(inputs[0]), str(broken), str(too_long), str(inputs[1]))
    assert result.returncode == 2 and "Traceback" not in result.stderr  # 2: an argument cannot be reached, as `ls`
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in lines] == ["film0.png", "broken.dcm", too_long.name, "film1.png"]
    assert "broken.dcm" in lines[1]["error"] and "rows" not in lines[1]
    assert "File name too long" in lines[2]["error"] and "Check the path" in lines[2]["error"]
    assert lines[0]["rows"] == 64 and lines[3]["columns"] == 64
    assert result.stderr.count("error: ") == 2


def nan_for_dark_films(path: Path) -> Path:
    """The tiny model, plus 0 x sqrt(mean pixel - 0.2) on the logit: NaN for dark films, the same answer otherwise."""
    model = onnx.load(build(path))
    graph = model.graph
    graph.initializer.extend([numpy_helper.from_array(np.array([0.2], np.float32), "dark_limit"),
                              numpy_helper.from_array(np.array([0.0], np.float32), "nought")])
    for node in graph.node:
        if node.op_type == "Add" and list(node.output) == ["logit"]:
            node.input[0] = "logit_checked"
    graph.node.extend([
        helper.make_node("ReduceMean", ["image"], ["brightness"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["brightness", "dark_limit"], ["margin"]),
        helper.make_node("Sqrt", ["margin"], ["root"]),
        helper.make_node("Mul", ["root", "nought"], ["nan_if_dark"]),
        helper.make_node("Reshape", ["nan_if_dark", "shape_n1"], ["nan_if_dark_n1"]),
        helper.make_node("Add", ["logit0", "nan_if_dark_n1"], ["logit_checked"]),
    ])
    onnx.save(model, path)
    return path


def test_analyze_a_failing_batch_keeps_the_other_results(tmp_path):
    """A model that gives NaN for one film of the batch: that film is one error line, the others have results."""
    inputs = films(tmp_path / "films", 3)
    cv2.imwrite(str(inputs[1]), np.full((64, 64), 10, np.uint8))  # the dark one
    odd = tmp_path / "films" / "odd.dcm"
    odd.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:3000])
    model = nan_for_dark_films(tmp_path / "picky.onnx")
    result = xrayviewer("analyze", *map(str, inputs), str(odd), "--model", str(model), "--provider", "cpu",
                        "--force", "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rows = rows_of(result)
    assert sorted(rows) == ["film0.png", "film1.png", "film2.png", "odd.dcm"]
    assert "picky.onnx" in rows["film1.png"]["error"] and "NaN" in rows["film1.png"]["error"]
    assert rows["film1.png"]["probability"] is None
    assert "odd.dcm" in rows["odd.dcm"]["error"]
    for name in ("film0.png", "film2.png"):
        assert rows[name]["error"] is None and 0 <= rows[name]["probability"] <= 1
        assert cv2.imread(rows[name]["overlay"]) is not None


def test_analyze_an_exception_in_one_analysis_keeps_the_batch(tmp_path):
    """Score-CAM of a uniform film masks it dark, where the model gives NaN: that film's own error line; the
    other film of the same batch keeps its result."""
    uniform = tmp_path / "uniform.png"
    cv2.imwrite(str(uniform), np.full((64, 64), 250, np.uint8))
    (quadrant,) = films(tmp_path / "films", 1)
    model = nan_for_dark_films(tmp_path / "picky.onnx")
    result = xrayviewer("analyze", str(uniform), str(quadrant), "--model", str(model), "--provider", "cpu",
                        "--force", "--method", "scorecam", "--out", str(tmp_path / "overlays"))  # a map is made to be drawn
    assert result.returncode == 1 and "Traceback" not in result.stderr
    first, second = map(json.loads, result.stdout.splitlines())
    assert first["path"] == str(uniform) and "picky.onnx" in first["error"] and "NaN" in first["error"]
    assert second["path"] == str(quadrant) and second["error"] is None and 0 <= second["probability"] <= 1


def read_only_folder(tmp_path: Path) -> Path:
    """A folder where no file can be created: a chmod 555 folder, or for root (whom permissions do not stop) one
    of the kernel's."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    return Path("/sys/kernel")


@pytest.mark.parametrize("where", ["a file", "under a file", "read-only"])
def test_analyze_with_an_unwritable_out_still_prints_every_result(tmp_path, where):
    inputs = films(tmp_path / "films", 2)
    model = build(tmp_path / "tiny.onnx")
    (tmp_path / "taken.txt").write_text("not a folder")
    out = {"a file": tmp_path / "taken.txt", "under a file": tmp_path / "taken.txt" / "overlays",
           "read-only": read_only_folder(tmp_path)}[where]
    result = xrayviewer("analyze", *map(str, inputs), "--model", str(model), "--provider", "cpu", "--force",
                        "--out", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == list(map(str, inputs))
    for row in rows:
        assert 0 <= row["probability"] <= 1 and row["overlay"] is None  # the result is kept
        assert str(out) in row["error"] and ("cannot make the overlay folder" in row["error"]
                                             or "cannot write PNG" in row["error"])
    assert (tmp_path / "taken.txt").read_text() == "not a folder"


def test_analyze_on_a_full_disk_leaves_no_partial_png_and_goes_on(tmp_path):
    """A file-size limit stands in for a full disk: every write past 16 KB fails as it would with ENOSPC (a 64-px
    film's overlay is at most 12 KB, the 400-px one's far more)."""
    inputs = films(tmp_path / "films", 2)
    big = tmp_path / "films" / "big.png"
    cv2.imwrite(str(big), (np.random.default_rng(0).random((400, 400)) * 255).astype(np.uint8))
    out = tmp_path / "out"
    model = build(tmp_path / "tiny.onnx")

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    result = xrayviewer("analyze", str(big), *map(str, inputs), "--model", str(model), "--provider", "cpu",
                        "--force", "--method", "gradcam", "--out", str(out), preexec_fn=limit_file_size)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["big.png", "film0.png", "film1.png"]
    assert "big.gradcam.png: cannot write PNG: File too large" in rows[0]["error"]
    assert rows[0]["probability"] is not None and rows[0]["overlay"] is None
    for row in rows[1:]:
        assert row["error"] is None and cv2.imread(row["overlay"]) is not None
    assert sorted(p.name for p in out.iterdir()) == ["film0.gradcam.png", "film1.gradcam.png"]  # no partial file


def test_analyze_never_writes_into_the_analysed_folder_unless_asked(tmp_path):
    folder = tmp_path / "films"
    films(folder, 2)
    model = build(tmp_path / "tiny.onnx")
    before = sorted(p.name for p in folder.iterdir())
    refused = xrayviewer("analyze", str(folder), "--model", str(model), "--provider", "cpu", "--force",
                         "--out", str(folder / "overlays"))
    assert refused.returncode == 2 and refused.stdout == ""
    assert "inside the folder being analysed" in refused.stderr and "--out-inside" in refused.stderr
    assert sorted(p.name for p in folder.iterdir()) == before
    dicomdir = tmp_path / "cd" / "DICOMDIR"  # a DICOMDIR stands for its folder
    dicomdir.parent.mkdir()
    dicomdir.write_bytes(b"")
    refused = xrayviewer("analyze", str(dicomdir), "--model", str(model), "--out", str(dicomdir.parent / "out"))
    assert refused.returncode == 2 and "inside the folder being analysed" in refused.stderr

    for _ in range(2):  # asked twice: the second run skips the first run's overlays and overwrites no film
        result = xrayviewer("analyze", str(folder), "--model", str(model), "--provider", "cpu", "--force",
                            "--out", str(folder), "--out-inside")
        assert result.returncode == 0, result.stderr
        assert sorted(rows_of(result)) == ["film0.png", "film1.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["film0.occlusion.png", "film0.png", "film1.occlusion.png",
                                                        "film1.png"]
    assert "skipped, an overlay written by `xrayviewer analyze`" in result.stderr


def test_analyze_never_overwrites_an_input(tmp_path):
    """An input named like an overlay, given by name next to the out folder's target name: it is not touched."""
    folder = tmp_path / "films"
    film, = films(folder, 1)
    lookalike = folder / "film0.occlusion.png"
    cv2.imwrite(str(lookalike), quadrant_film(32))
    before = lookalike.read_bytes()
    model = build(tmp_path / "tiny.onnx")
    result = xrayviewer("analyze", str(film), str(lookalike), "--model", str(model), "--provider", "cpu",
                        "--force", "--out", str(folder))
    assert result.returncode == 0, result.stderr
    (row,) = map(json.loads, result.stdout.splitlines())
    assert Path(row["overlay"]).name == "film0.occlusion-2.png" and lookalike.read_bytes() == before
