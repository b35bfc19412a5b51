"""The command line as a user meets it: typos and missing paths, closed pipes, help texts, option names."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import build

from xrayviewer.cli import COMMANDS, build_parser


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, timeout=120,
                          **kwargs)


def test_misspelt_command_is_an_error_that_suggests_the_command(tmp_path):
    result = run("anlyze", "x.jpg", cwd=tmp_path)
    assert result.returncode == 2
    assert "did you mean analyze?" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_missing_path_is_an_error_and_never_opens_the_viewer(tmp_path, dicom_data):
    missing = tmp_path / "nothere.dcm"
    result = run(str(dicom_data / "RG1_J2KR.dcm"), str(missing), "--screenshot", str(tmp_path / "shot.png"))
    assert result.returncode == 2
    assert f"no such file or folder: {missing}" in result.stderr
    assert not (tmp_path / "shot.png").exists()  # the window never opened


def test_missing_path_in_a_command_is_exit_2_and_the_others_still_run(tmp_path, dicom_data):
    """As `ls a missing`: the existing path gets its line, the missing one an error line, and the exit code is 2."""
    missing = tmp_path / "nothere.dcm"
    for command in (["info"], ["analyze", "--provider", "cpu"]):
        result = run(*command, str(dicom_data / "RG1_UNCR.dcm"), str(missing))
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert result.returncode == 2, command
        assert [r.get("error") is None for r in rows] == [True, False]
        assert f"{missing}: file not found" in rows[1]["error"] and "Traceback" not in result.stderr


def test_closed_pipe_ends_quietly(dicom_data):
    """`xrayviewer info DIR | head -1`: the reader stops after one line; no BrokenPipeError traceback."""
    info = subprocess.Popen([sys.executable, "-m", "xrayviewer", "info", str(dicom_data)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = info.stdout.readline()
    info.stdout.close()  # what `head -1` does once it has its line
    _, err = info.communicate(timeout=300)
    assert json.loads(first)["path"]
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
    assert info.returncode == 141  # as a shell reports a program that a closed pipe stopped


@pytest.mark.parametrize("command", ["analyze", "worklist"])
def test_ctrl_c_ends_with_one_line_and_exit_130(tmp_path, kermany, command):
    """Ctrl-C once rows are coming: the rows printed stand, stderr ends with one line, no KeyboardInterrupt trace."""
    from test_review_store import copy_films

    films = copy_films(kermany, tmp_path / "films", 1000)  # more rows than a pipe holds: the command cannot finish first
    model = build(tmp_path / "tiny.onnx")
    extra = ["--db", str(tmp_path / "review.sqlite")] if command == "worklist" else []
    process = subprocess.Popen([sys.executable, "-m", "xrayviewer", command, str(tmp_path / "films"), "--model",
                                str(model), "--provider", "cpu", *extra], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    rest, err = process.communicate(timeout=120)
    assert json.loads(first)["path"] and 1 + len(rest.splitlines()) < len(films)  # stopped half-way
    assert process.returncode == 130
    assert "Traceback" not in err and err.splitlines()[-1] == "xrayviewer: interrupted"


def test_the_readme_command_table_has_a_row_per_command():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert [c for c in COMMANDS if f"\n| `xrayviewer {c} " not in readme] == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_a_description_and_an_example(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    assert len(sub.description) > 60
    assert sub.epilog.startswith("examples:\n") and f"xrayviewer {command}" in sub.epilog


def test_evaluate_help_says_what_dir_must_hold():
    text = run("evaluate", "--help").stdout
    assert "NORMAL/" in text and "PNEUMONIA/" in text and "DIR must hold both" in " ".join(text.split())


def test_heat_floor_is_the_overlay_option_and_threshold_is_gone():
    text = " ".join(run("analyze", "--help").stdout.split())
    assert "--heat-floor F" in text and "not the decision threshold" in text
    assert "--threshold" not in text
    result = run("analyze", "x.png", "--threshold", "0.3")
    assert result.returncode == 2 and "unrecognized arguments: --threshold" in result.stderr


def test_roc_plot_has_axes_ticks_legend_and_a_title_clear_of_the_labels():
    import numpy as np

    from xrayviewer.commands.evaluate import roc_image
    from xrayviewer.core.analysis.metrics import binary_figures

    labels = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.3, 0.9, 0.6, 0.7])
    figures = {**binary_figures(labels, scores, 0.5), "model": "tiny"}
    img = roc_image(labels, scores, figures)
    dark = img.max(axis=2) < 100
    size, left, top, bottom = img.shape[0], 78, 46, 64
    frame_bottom = size - bottom
    assert dark[frame_bottom, left + 8:size - 24].all() and dark[top + 4:frame_bottom, size - 24].all()  # the frame
    ticks = [x for x in range(left - 2, size - 20) if dark[frame_bottom + 4, x]]
    assert len(ticks) >= 6  # a tick under the x axis at 0, 0.2, ..., 1
    assert dark[frame_bottom + 12:frame_bottom + 30, :].any()  # their values
    assert dark[:top - 8, :].any() and not dark[:top - 8, :left - 30].any()  # a title above, clear of the y label
    label_rows = np.flatnonzero(dark[:, 8:36].any(axis=1))
    assert label_rows.min() >= top and label_rows.max() <= frame_bottom  # the y label stays beside the axis
    legend = img[frame_bottom - 90:frame_bottom - 10, left + 180:size - 30]
    assert (np.abs(legend.astype(int) - (200, 30, 30)).sum(axis=2) < 60).any()  # the ROC colour in the legend box
