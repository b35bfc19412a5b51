"""Outputs that cannot be written, on a read-only file system (EROFS) or without permission: every result is printed,
each failure is one line naming the file, never a traceback. `analyze`, `evaluate --roc` and `report` as real
processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_batch_outputs import films, read_only_folder
from tiny_models import build, quadrant_film

from xrayviewer.core.review.store import FilmInfo, ModelResult, ReviewStore

MOUNT = 'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"'


def read_only_file_system(folder: Path) -> list[str]:
    """The prefix of a command that then sees `folder` as an empty read-only file system: a tmpfs mounted read-only
    in the command's own mount namespace (unshare), which no other process sees. Skips where that is not allowed."""
    folder.mkdir(exist_ok=True)
    prefix = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", MOUNT, str(folder)]
    if shutil.which("unshare") is None or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare with user and mount namespaces to make a read-only file system")
    return prefix


def xrayviewer(*args: str, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True,
                          timeout=300)


def unwritable(tmp_path: Path, where: str) -> tuple[Path, list[str]]:
    """A folder where nothing can be written, and the command prefix that makes it so."""
    if where == "read-only file system":
        folder = tmp_path / "ro"
        return folder, read_only_file_system(folder)
    return read_only_folder(tmp_path), []


@pytest.mark.parametrize("sub", ["", "overlays"])
def test_analyze_on_a_read_only_file_system_prints_every_row_and_each_error_once(tmp_path, sub):
    inputs = films(tmp_path / "films", 2)
    model = build(tmp_path / "tiny.onnx")
    ro, prefix = unwritable(tmp_path, "read-only file system")
    out = ro / sub if sub else ro
    result = xrayviewer("analyze", *map(str, inputs), "--model", str(model), "--provider", "cpu", "--force",
                        "--out", str(out), prefix=prefix)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == list(map(str, inputs))
    for row in rows:
        assert 0 <= row["probability"] <= 1 and row["overlay"] is None
        assert str(out) in row["error"] and "Read-only file system" in row["error"]
    assert result.stderr.count("error: ") == len(inputs)  # once per image, not once more for the folder


def labelled_set(folder: Path) -> Path:
    for cls, quadrant in (("NORMAL", None), ("PNEUMONIA", (0, 0))):
        (folder / cls).mkdir(parents=True)
        for i in range(3):
            film = np.full((64, 64), 10 + i, np.uint8) if quadrant is None else quadrant_film(64, quadrant)
            cv2.imwrite(str(folder / cls / f"{i}.png"), film)
    return folder


@pytest.mark.parametrize("where", ["read-only file system", "no permission"])
def test_evaluate_with_an_unwritable_roc_prints_the_figures_then_the_error(tmp_path, where):
    folder, prefix = unwritable(tmp_path, where)
    roc = folder / "roc.png"
    result = xrayviewer("evaluate", str(labelled_set(tmp_path / "set")), "--model", str(build(tmp_path / "t.onnx")),
                        "--provider", "cpu", "--roc", str(roc), prefix=prefix)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert json.loads(result.stdout)["n"] == 6
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {roc}: cannot write PNG: ")


@pytest.mark.parametrize("where", ["read-only file system", "no permission"])
def test_report_to_an_unwritable_folder_is_one_error_line(tmp_path, where):
    db = tmp_path / "review.sqlite"
    with ReviewStore(db) as store:
        store.put_film(FilmInfo(str(tmp_path / "film.png"), 10, 1, "ab"),
                       [ModelResult("tiny", "cd", "cpu", 0.5, 0.9, "PNEUMONIA")])
    folder, prefix = unwritable(tmp_path, where)
    out = folder / "r.csv"
    result = xrayviewer("report", "--db", str(db), "--csv", str(out), prefix=prefix)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert json.loads(result.stdout)["films"] == 1  # the summary is kept
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {out}: cannot write the report: ")
    assert not list(folder.glob(".r.csv*"))


@pytest.mark.parametrize("where", ["read-only file system", "no permission", "under a file"])
def test_export_to_an_unwritable_or_impossible_folder_is_one_error_line(tmp_path, kermany, where):
    from test_review_store import copy_films

    (film,) = copy_films(kermany, tmp_path / "films", 1)
    db = tmp_path / "review.sqlite"
    assert xrayviewer("worklist", str(film), "--db", str(db)).returncode == 0
    if where == "under a file":
        (tmp_path / "taken").write_text("a file, not a folder")
        folder, prefix = tmp_path / "taken", []
    else:
        folder, prefix = unwritable(tmp_path, where)
    out = folder / "exports" if where != "no permission" else folder
    result = xrayviewer("export", str(film), "--db", str(db), "--out", str(out), "--patient-id", "P-1",
                        prefix=prefix)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and str(folder) in line and "cannot write the DICOM export" in line
    assert result.stdout == ""
