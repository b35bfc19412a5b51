"""Issue 11, items 4 and 5 (reading side): DICOMDIRs with loops and bad records, and a study folder with bad
files, on pydicom's real DICOMDIR test set. The scan always ends; each bad record or file is one problem and
everything else is listed.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from xrayviewer.core import scan

LOWER = b"\x04\x00\x20\x14UL\x04\x00"  # (0004,1420) Offset of Referenced Lower-Level Directory Entity, explicit LE
NEXT = b"\x04\x00\x00\x14UL\x04\x00"  # (0004,1400) Offset of the Next Directory Record


@pytest.fixture
def media(pydicom_test_files, tmp_path) -> Path:
    """A copy of pydicom's DICOMDIR test media (2 patients, 31 images)."""
    folder = tmp_path / "media"
    shutil.copytree(pydicom_test_files / "dicomdirtests", folder)
    return folder


def _offset_fields(data: bytes, tag: bytes) -> list[int]:
    """Byte positions of the 4-byte values of every `tag` element."""
    positions, start = [], 0
    while (at := data.find(tag, start)) >= 0:
        positions.append(at + len(tag))
        start = at + 1
    return positions


def _record_start(data: bytes, position: int) -> int:
    """The offset (as DICOMDIR offsets count) of the item that holds the byte at `position`."""
    return data.rfind(b"\xfe\xff\x00\xe0", 0, position)


def _patch(path: Path, position: int, value: int) -> None:
    data = bytearray(path.read_bytes())
    data[position:position + 4] = struct.pack("<I", value)
    path.write_bytes(bytes(data))


def _scan_in_subprocess(path: Path) -> list[str]:
    """scan() in its own process, so that a loop fails this test instead of hanging the suite."""
    code = (f"from xrayviewer.core import scan\nt = scan({str(path)!r})\nprint(len(t.instances()))\n"
            "for p in t.problems: print(p.reason)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-1000:]
    return out.stdout.splitlines()


def test_record_pointing_at_itself_ends_with_a_problem_and_the_other_images(media):
    dicomdir = media / "DICOMDIR"
    data = dicomdir.read_bytes()
    position = [p for p in _offset_fields(data, LOWER) if struct.unpack("<I", data[p:p + 4])[0]][3]  # a parent's
    _patch(dicomdir, position, _record_start(data, position))
    count, *problems = _scan_in_subprocess(dicomdir)
    assert 0 < int(count) < 31
    assert problems and all(p.startswith("broken DICOMDIR: its records loop back to the record at byte")
                            for p in problems)
    result = subprocess.run([sys.executable, "-m", "xrayviewer", "info", str(media)], capture_output=True,
                            text=True, timeout=120)
    read = [line for line in result.stdout.splitlines() if '"error"' not in line]
    assert result.returncode == 1 and len(read) == int(count)
    assert "loop back" in result.stderr and "Traceback" not in result.stderr


def test_two_records_pointing_at_each_other(media):
    dicomdir = media / "DICOMDIR"
    data = dicomdir.read_bytes()
    nexts = [p for p in _offset_fields(data, NEXT) if struct.unpack("<I", data[p:p + 4])[0]]
    _patch(dicomdir, nexts[-1], _record_start(data, nexts[-3]))
    count, *problems = _scan_in_subprocess(dicomdir)
    assert int(count) > 0 and any("loop back" in p for p in problems)


def test_offset_to_nowhere_is_said_in_words(media):
    dicomdir = media / "DICOMDIR"
    data = dicomdir.read_bytes()
    _patch(dicomdir, [p for p in _offset_fields(data, NEXT) if struct.unpack("<I", data[p:p + 4])[0]][5], 2147483647)
    tree = scan(dicomdir)
    reasons = [p.reason for p in tree.problems]
    assert reasons == ["broken DICOMDIR: a record points to byte 2147483647, where no record starts; the records "
                       "it leads to are skipped"]
    assert 0 < len(tree.instances()) < 31


def test_record_naming_a_file_outside_the_folder(media):
    import pydicom

    ds = pydicom.dcmread(media / "DICOMDIR")
    image = next(r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r)
    image.ReferencedFileID = ["..", "..", "etc", "passwd"]
    ds.save_as(media / "DICOMDIR", enforce_file_format=False)
    tree = scan(media / "DICOMDIR")
    assert any("'../../etc/passwd', which is not a file name inside its folder" in p.reason for p in tree.problems)


def test_one_bad_file_is_one_problem_and_the_folder_goes_on(pydicom_test_files, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(pydicom_test_files / "dicomdirtests" / "77654033", study / "77654033")
    good = len(scan(study).instances())
    data = (pydicom_test_files / "CT_small.dcm").read_bytes()
    at = data.find(b"\x10\x00\x20\x00LO")
    (study / "unknown-vr.dcm").write_bytes(data[:at + 4] + b"XX" + data[at + 6:])  # PatientID with VR 'XX'
    (study / "cut.dcm").write_bytes(data[:400])
    (study / "junk.dcm").write_bytes(b"\x08\x00" + os.urandom(3000))
    if hasattr(os, "mkfifo"):
        os.mkfifo(study / "pipe.dcm")
    tree = scan(study)
    listed = {i.path.name for i in tree.instances()}
    problems = {p.path.name: p.reason for p in tree.problems}
    assert len(tree.instances()) >= good and "unknown-vr.dcm" in listed | set(problems)
    assert {"cut.dcm", "junk.dcm"} <= set(problems)
    if hasattr(os, "mkfifo"):
        assert problems["pipe.dcm"].startswith("not a regular file")
    assert len(listed) + len(problems) == good + (4 if hasattr(os, "mkfifo") else 3)
