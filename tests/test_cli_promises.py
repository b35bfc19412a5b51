"""What the command line promises beyond its options (issue 24, item 5): `analyze` computes a heatmap only to draw
it, overlay options out of range are refused, `worklist` on nothing makes no database, messages end in one full
stop, and a gate reason's comparison holds as printed."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from tiny_models import SIZE, build, build_detector, quadrant_film

from xrayviewer.cli import build_parser
from xrayviewer.core.analysis.checks import model_ood
from xrayviewer.core.analysis.detector import ChestDetector
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.findings import Subject, compared
from xrayviewer.core.analysis.gate import Gate
from xrayviewer.core.errors import XRayViewerError


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, timeout=300,
                          **kwargs)


def test_analyze_makes_the_heatmap_only_when_it_draws_it(tmp_path):
    """A model whose Grad-CAM overflows: with --out the map is made and fails; without --out no map is made, so the
    result comes with no error, and the row says no method was used."""
    model = build(tmp_path / "overflowing.onnx", weights=np.full((4, 4, 3), 3e38, np.float32))
    film = tmp_path / "film.png"
    cv2.imwrite(str(film), quadrant_film())
    common = ["analyze", str(film), "--model", str(model), "--provider", "cpu", "--method", "gradcam", "--force"]

    result = run(*common)
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, result.stderr
    assert row["error"] is None and row["probability"] == 1.0 and row["method"] is None and row["overlay"] is None

    drawn = run(*common, "--out", str(tmp_path / "overlays"))
    (row,) = [json.loads(line) for line in drawn.stdout.splitlines()]
    assert drawn.returncode == 1 and row["method"] == "gradcam" and "unusable gradcam heatmap" in row["error"]


@pytest.mark.parametrize("option", ["--opacity", "--heat-floor"])
@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan", "inf", "half"])
def test_an_overlay_option_out_of_range_is_refused_with_the_range(tmp_path, option, value):
    result = run("analyze", str(tmp_path), option, value)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    (said,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert f"argument {option}: " in said and value in said and "from 0 to 1" in said


def test_every_command_with_overlay_options_checks_their_range():
    """Whichever command takes --opacity or --heat-floor (today `analyze`) refuses values outside 0 to 1 and takes
    the ends of the range."""
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    checked = []
    for name, parser in commands.items():
        for action in parser._actions:
            if {"--opacity", "--heat-floor"} & set(action.option_strings):
                checked.append((name, action.dest))
                assert action.type("0") == 0.0 and action.type("1") == 1.0
                for bad in ("1.0001", "-1e-9", "nan"):
                    with pytest.raises(argparse.ArgumentTypeError):
                        action.type(bad)
    assert ("analyze", "opacity") in checked and ("analyze", "heat_floor") in checked


def test_worklist_on_missing_paths_makes_no_database(tmp_path):
    data = tmp_path / "data"
    db = tmp_path / "asked" / "review.sqlite"
    for extra in ([], ["--db", str(db)]):
        result = run("worklist", str(tmp_path / "missing"), str(tmp_path / "gone"), *extra,
                     env={**os.environ, "XDG_DATA_HOME": str(data)})
        assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
        assert result.stderr.splitlines() == [f"error: {tmp_path / 'missing'}: no such file or folder",
                                              f"error: {tmp_path / 'gone'}: no such file or folder"]
    assert not data.exists() and not db.parent.exists()


def test_a_wrapped_message_keeps_one_full_stop(tmp_path):
    """A reason that already ends a sentence (the reader's "... copy or export the file again.") is not given a
    second full stop when a command wraps it ("skipped: ..."), in `analyze` and `info` alike."""
    assert str(XRayViewerError("f", "cannot read", "it ended.", "Try again.")) == "f: cannot read: it ended. Try again."
    assert str(XRayViewerError("f", "cannot read", "it ended", "Try again.")) == "f: cannot read: it ended. Try again."
    (tmp_path / "empty.jpg").write_bytes(b"")
    for command in (["analyze", "--provider", "cpu"], ["info"]):
        result = run(*command, str(tmp_path))
        (row,) = [json.loads(line) for line in result.stdout.splitlines()]
        assert result.returncode == 1 and "empty file" in row["error"], command
        for said in (row["error"], result.stderr):
            assert said.strip().endswith("again.") and ".." not in said, said


def test_a_comparison_shown_holds_as_printed():
    assert compared(0.9962, "<", 0.9984) == "0.996 < limit 0.998"  # 2 places would read "1.00 < limit 1.00"
    assert compared(0.31, ">", 0.25) == "0.31 > limit 0.25"  # 2 places where they do
    assert compared(5.9999999, "<", 6.0, 1) == "5.9999999 < limit 6.0000000"  # as many as it takes
    for score, relation, limit in [(0.50003, ">", 0.5), (2.999999, "<", 3.0), (1e-12, ">", 0.0)]:
        left, right = re.fullmatch(r"(\S+) [<>] limit (\S+)", compared(score, relation, limit)).groups()
        assert (float(left) < float(right)) == (relation == "<") and float(left) != float(right)


def test_the_gates_reasons_never_read_equal_numbers(tmp_path):
    """The real checks on films whose scores sit just beside their limits: the chest detector's score 0.9969 against
    a limit of 0.999 (which two places print as 1.00 against 1.00), and the model's own OOD score 0.502 against 0.5,
    both in the sentence and in the finding's evidence."""
    film = np.full((4 * SIZE, 4 * SIZE), 150, np.uint8)  # detector: sigmoid(20 (150 / 255 - 0.3)) = 0.99686
    (refusal,) = ChestDetector(build_detector(tmp_path / "detector.onnx", threshold=0.999))(Subject(film))
    assert "detector score 0.997 < limit 0.999" in str(refusal) and refusal.score < refusal.limit

    bright = np.full((4 * SIZE, 4 * SIZE), 128, np.uint8)  # the tiny model's OOD score: 128 / 255 = 0.50196
    engine = Engine("cpu", Gate([model_ood, ChestDetector(build_detector(tmp_path / "passes.onnx"))]))
    model = engine.model(build(tmp_path / "tiny.onnx", ood_threshold=0.5019))
    analysis = engine.analyze(model, bright, method=None)
    (note,) = analysis.notes  # recognised as a chest film: the OOD refusal became a population note
    assert "out-of-distribution score 0.5020 > limit 0.5019" in str(note) and note.score > note.limit
    (refusal,) = model_ood(Subject(bright, card=model.card, ood_score=0.50194))
    assert "0.50194 > limit 0.50190" in str(refusal) and refusal.score > refusal.limit
