"""`xrayviewer info`, run as a user runs it: a real process, JSON on stdout, errors on stderr."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, timeout=120)


def test_info_on_chest_cr(dicom_data):
    result = run("info", str(dicom_data / "RG1_J2KR.dcm"))
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    info = json.loads(line)
    assert info["modality"] == "CR" and info["rows"] == 1955 and info["columns"] == 1841
    assert info["bits_stored"] == 15 and info["photometric_interpretation"] == "MONOCHROME1"
    assert info["transfer_syntax"].startswith("1.2.840.10008.1.2.4.90")
    assert info["default_window"] == {"center": 15000.0, "width": 30000.0}
    assert info["frames"] == 1 and info["frame"] == 0
    assert info["patient_id"] == "9RG1" and info["study_description"] == "THORAX"
    assert result.stderr == ""


def test_info_demo_and_version():
    assert json.loads(run("info", "--demo").stdout)["body_part"] == "CHEST"
    assert run("--version").stdout.startswith("xrayviewer ")


def test_info_goes_on_after_a_bad_file(tmp_path, dicom_data):
    shutil.copy(dicom_data / "US1_UNCR.dcm", tmp_path / "a.dcm")
    (tmp_path / "b.dcm").write_bytes((dicom_data / "RG1_UNCR.dcm").read_bytes()[:5000])
    shutil.copy(dicom_data / "OBXXXX1A.dcm", tmp_path / "c.dcm")
    result = run("info", str(tmp_path))
    assert result.returncode == 1
    rows = {json.loads(x)["path"].rsplit("/", 1)[-1]: json.loads(x) for x in result.stdout.splitlines()}
    assert sorted(rows) == ["a.dcm", "b.dcm", "c.dcm"]  # one line per file: the bad one says why
    assert "b.dcm" in rows["b.dcm"]["error"] and "rows" not in rows["b.dcm"]
    assert rows["a.dcm"]["rows"] and rows["c.dcm"]["rows"]
    (err,) = result.stderr.splitlines()
    assert "b.dcm" in err and "Traceback" not in result.stderr


def test_info_usage_error():
    assert run("info").returncode == 2
