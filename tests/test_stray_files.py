"""A folder of films with the files desktops leave beside them (notes.txt, Thumbs.db, .DS_Store): `analyze`, `info`
and `worklist` skip what is not an image with one note, and exit 0 when every film was done; a file named on the
command line that is not an image is still an error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_batch_outputs import films
from tiny_models import build

STRAYS = {
    "notes.txt": b"films of ward 3, read on Monday\n",
    "Thumbs.db": bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504),  # an OLE compound file, as Windows writes it
    ".DS_Store": bytes.fromhex("0000000142756431") + bytes(2040),  # macOS Finder's "Bud1" store
}


def xrayviewer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def folder(tmp_path) -> Path:
    films(tmp_path / "films", 2)
    for name, data in STRAYS.items():
        (tmp_path / "films" / name).write_bytes(data)
    return tmp_path / "films"


@pytest.mark.parametrize("command", ["analyze", "info", "worklist"])
def test_files_that_are_not_images_are_skipped_with_one_note(tmp_path, folder, command):
    options = {"analyze": ["--model", str(build(tmp_path / "tiny.onnx")), "--provider", "cpu", "--force"],
               "info": [],
               "worklist": ["--model", str(build(tmp_path / "tiny.onnx")), "--provider", "cpu",
                            "--db", str(tmp_path / "review.sqlite")]}[command]
    result = xrayviewer(command, str(folder), *options)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(Path(r["path"]).name for r in rows) == ["film0.png", "film1.png"]
    assert all(r["error"] is None for r in rows if "error" in r)
    assert "error" not in result.stderr
    assert result.stderr.count(f"note: {folder}: skipped 3 files that are not images") == 1


def test_a_named_file_that_is_not_an_image_is_still_an_error(folder):
    result = xrayviewer("info", str(folder / "notes.txt"))
    assert result.returncode == 1
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert "notes.txt: unsupported file" in row["error"] and "skipped" not in result.stderr
