"""`xrayviewer analyze`, `evaluate` and `bench` as real processes, on a tiny contract model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from tiny_models import build, quadrant_film


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def tiny(tmp_path):
    return build(tmp_path / "tiny.onnx", bias=-2.0, ood_threshold=0.9)


def test_analyze_folder_with_a_corrupt_file(tmp_path, tiny, dicom_data, kermany):
    from converters import dataset

    films = tmp_path / "films"
    films.mkdir()
    for i, sample in enumerate(dataset.split_samples(dataset.list_samples(kermany))["val"][:2]):
        cv2.imwrite(str(films / f"film{i}.png"), cv2.imread(str(sample.path), cv2.IMREAD_GRAYSCALE))
    shutil.copy(dicom_data / "RG1_J2KI.dcm", films / "chest.dcm")
    (films / "broken.dcm").write_bytes((dicom_data / "RG1_UNCR.dcm").read_bytes()[:4000])
    out = tmp_path / "overlays"
    result = run("analyze", str(films), "--model", str(tiny), "--provider", "cpu", "--out", str(out),
                 "--method", "gradcampp", "--colormap", "viridis")
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert "broken.dcm" in by_name["broken.dcm"]["error"] and by_name["broken.dcm"]["probability"] is None
    for name in ("film0.png", "film1.png", "chest.dcm"):
        row = by_name[name]
        assert row["error"] is None and 0 <= row["probability"] <= 1
        assert row["label"] in ("NORMAL", "PNEUMONIA") and row["threshold"] == 0.5
        assert row["model"] == "tiny" and row["provider"] == "CPUExecutionProvider" and row["method"] == "gradcampp"
        assert row["refused"] == [] and row["out_of_scope"] is False and row["ood_score"] is not None
        overlay = cv2.imread(row["overlay"])
        assert overlay is not None
    assert by_name["film0.png"]["notes"] == []  # no header, no age
    assert by_name["chest.dcm"]["notes"][0].startswith("outside the training population (children aged 1-5)")
    chest_overlay = cv2.imread(by_name["chest.dcm"]["overlay"])
    assert chest_overlay.shape[:2] == (1955, 1841)  # full resolution of the source film


def refused_set(folder, dicom_data) -> list[str]:
    """A colour photo, a flat grey PNG, the tibia CR, an MR, a 2-frame ultrasound: none is a chest film."""
    folder.mkdir()
    photo = np.zeros((200, 260, 3), np.uint8)
    photo[..., 0] = np.linspace(0, 255, 260, dtype=np.uint8)[None, :]
    photo[..., 1] = np.linspace(255, 0, 200, dtype=np.uint8)[:, None]
    cv2.imwrite(str(folder / "photo.png"), photo)
    cv2.imwrite(str(folder / "grey.png"), np.full((256, 256), 128, np.uint8))
    names = ["RG3_UNCR.dcm", "MR2_UNCR.dcm", "OBXXXX1A_2frame.dcm"]
    for name in names:
        shutil.copy(dicom_data / name, folder / name)
    return ["photo.png", "grey.png", *names]


def test_analyze_refuses_what_is_not_a_chest_film_unless_forced(tmp_path, dicom_data):
    names = refused_set(tmp_path / "in", dicom_data)
    out = tmp_path / "out"
    result = run("analyze", str(tmp_path / "in"), "--model", "mobilenetv2", "--provider", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, result.stdout.splitlines())}
    assert sorted(rows) == sorted(names)
    for row in rows.values():
        assert row["label"] is None and row["probability"] is None and row["overlay"] is None
        assert row["refused"] and all(isinstance(r, str) for r in row["refused"]) and row["out_of_scope"] is False
    assert list(out.iterdir()) == []  # no heatmap for a refused image
    assert any(r.startswith("a colour image: colour score") for r in rows["photo.png"]["refused"])
    assert any(r.startswith("a flat image") for r in rows["grey.png"]["refused"])
    assert "BodyPartExamined EXTREMITY: not a chest film" in rows["RG3_UNCR.dcm"]["refused"]
    assert any(r.startswith("Modality MR") for r in rows["MR2_UNCR.dcm"]["refused"])
    assert any(r.startswith("NumberOfFrames 2") for r in rows["OBXXXX1A_2frame.dcm"]["refused"])

    forced = run("analyze", str(tmp_path / "in"), "--model", "mobilenetv2", "--provider", "cpu", "--out", str(out),
                 "--force", "--method", "xgradcam")
    assert forced.returncode == 0, forced.stderr
    for row in map(json.loads, forced.stdout.splitlines()):
        name = row["path"].rsplit("/", 1)[-1]
        assert row["out_of_scope"] is True and row["refused"] == rows[name]["refused"]
        assert row["label"] in ("NORMAL", "PNEUMONIA") and 0 <= row["probability"] <= 1
        assert row["method"] == "xgradcam" and cv2.imread(row["overlay"]) is not None


def test_analyze_usage_errors(tiny):
    assert run("analyze", "x.png", "--method", "nope").returncode == 2
    missing = run("analyze", "x.png", "--model", "no-such-model.onnx")
    assert missing.returncode == 1 and "no-such-model.onnx" in missing.stderr and "Traceback" not in missing.stderr


def test_evaluate_on_a_labelled_folder(tmp_path, tiny):
    for cls, q in (("NORMAL", None), ("PNEUMONIA", (0, 0))):
        (tmp_path / "set" / cls).mkdir(parents=True)
        for i in range(4):
            film = np.full((64, 64), 10 + i, np.uint8) if q is None else quadrant_film(64, q)
            cv2.imwrite(str(tmp_path / "set" / cls / f"{i}.png"), film)
    roc = tmp_path / "roc.png"
    result = run("evaluate", str(tmp_path / "set"), "--model", str(tiny), "--roc", str(roc))
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("n", "accuracy", "sensitivity", "specificity", "precision", "f1", "auc", "threshold", "confusion"):
        assert key in figures
    assert figures["n"] == 8 and figures["auc"] == 1.0  # bright quadrant -> higher logit for every pair
    assert cv2.imread(str(roc)).shape == (560, 560, 3)


def test_bench_prints_every_step(tiny):
    result = run("bench", "--model", str(tiny), "--provider", "cpu", "--repeat", "3")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("decode", "preprocess", "inference", "gradcam", "gradcampp", "xgradcam", "layercam", "eigencam",
                "scorecam", "overlay", "end_to_end_gradcam", "end_to_end_occlusion"):
        assert figures["median_ms"][key] > 0
    assert figures["methods"] == {"end_to_end_gradcam": "gradcam", "end_to_end_occlusion": "occlusion",
                                  "open_to_overlay_ms": "gradcam", "window_level_ms": "gradcam"}
    assert figures["provider"] == "CPUExecutionProvider" and figures["cores"] >= 1
    assert set(figures["open_to_overlay_ms"]) == {"RG1_UNCR", "RG1_J2KR"}
    assert set(figures["decode_ms"]) == set(figures["decoder_order"]) >= {"gdcm", "pylibjpeg"}
    for value in (*figures["open_to_overlay_ms"].values(), *figures["decode_ms"].values(),
                  figures["window_level_ms"], figures["cold_start_ms"]):
        assert value > 0
