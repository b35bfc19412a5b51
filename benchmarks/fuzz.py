"""Fuzz the reading side: mutated DICOM files, DICOMDIRs, raster files and special files, each through the calls
`xrayviewer info`, `xrayviewer analyze`, the study scan and the viewer's loader make, in worker processes so that
an abort, a hang or a memory blow-up is caught and counted.

    python benchmarks/fuzz.py [--seed 11] [--dicom 1600] [--dicomdir 70] [--raster 584] [--workers 2]
                              [--timeout 10] [--analyze 400] [--json results.json]

Prints one JSON object: files, tracebacks, aborts, hangs, peak RSS (median and max), files over 1.5 GB,
messages that do not name their file or leak internal text, and lines libraries printed on stderr.
Mutations come from pydicom's test files and pydicom-data's real files (DICOM), pydicom's DICOMDIR test set,
and small PNG/JPEG/TIFF/BMP files made here; the same seed makes the same corpus.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OVER_MB = 1536  # the limit for one file: 1.5 GB
KILL_MB = 6144  # a worker over this is stopped and its file counted as a memory blow-up
LEAK = re.compile(r"Traceback|NoneType|object has no attribute|not subscriptable|unsupported operand|invalid literal"
                  r"|\b[A-Z]\w+Error\(|<class |0x[0-9a-f]{8,}|\bself\b|\bargs\b|numpy\.|\bndarray\b")
BASE_CALLS = ("info", "scan", "load")


@dataclass(frozen=True)
class Case:
    """One fuzz input: `path` is what the calls are given; `family` is dicom, dicomdir, raster or special."""

    name: str
    family: str
    path: str
    mutation: str


# ---------------------------------------------------------------- DICOM mutations (with pydicom)

def dicom_seeds(real: bool) -> list[Path]:
    """pydicom's small test files that hold pixels, plus (with `real`) pydicom-data's 16 RG/693/US/... files."""
    import pydicom

    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    names = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm",
             "JPEG-lossy.dcm", "JPGExtended.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_gdcm.dcm",
             "SC_rgb.dcm" if (folder / "SC_rgb.dcm").exists() else "SC_rgb_rle.dcm", "SC_rgb_small_odd_jpeg.dcm",
             "examples_palette.dcm", "SC_ybr_full_422_uncompressed.dcm", "MR_small_bigendian.dcm", "no_meta.dcm",
             "rtdose.dcm", "emri_small.dcm" if (folder / "emri_small.dcm").exists() else "liver_1frame.dcm",
             "image_dfl.dcm", "J2K_pixelrep_mismatch.dcm", "SC_rgb_jpeg_dcmtk.dcm"]
    seeds = [folder / n for n in names if (folder / n).exists()]
    if real:
        from xrayviewer.demo import data_store_folder

        data = data_store_folder()
        seeds += sorted(p for p in data.glob("*.dcm") if p.stat().st_size < 12_000_000
                        and any(p.name.startswith(s) for s in ("RG1", "RG3", "693", "US1", "MR2", "OBXX",
                                                                "SC_rgb", "emri", "color3d", "CT1", "MR-SIEMENS")))
    return seeds


def _raw(ds, keyword: str, vr: str, value: bytes) -> None:
    """Put `value` into `keyword` as raw bytes, so that text which is not a number is written as it is."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    if len(value) % 2:
        value += b" "
    tag = Tag(tag_for_keyword(keyword))
    ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, ds.is_implicit_VR, ds.is_little_endian)


def lut_item(descriptor: list[int] | None, data: list[int] | None):
    """A LUT sequence item with the given descriptor and data (None: the element is left out)."""
    from pydicom.dataset import Dataset

    item = Dataset()
    if descriptor is not None:
        item.add_new("LUTDescriptor", "US", descriptor)
    if data is not None:
        item.add_new("LUTData", "US", data)
    return item


def _m_photometric(ds, rng):
    value = rng.choice(["YBR_FULL_422", "HSV", "YBR_PARTIAL_420", "RGB", "MONOCHROME1", "MONOCHROME2",
                        "PALETTE COLOR", "ARGB", "CMYK", "YBR_FULL", "YBR_RCT", "YBR_ICT", "", "XYZ"])
    ds.PhotometricInterpretation = value
    return f"PhotometricInterpretation={value!r}"


def _m_bits(ds, rng):
    keyword = rng.choice(["BitsStored", "BitsAllocated", "HighBit", "PixelRepresentation", "SamplesPerPixel",
                          "PlanarConfiguration"])
    value = rng.choice([0, 1, 2, 3, 4, 7, 8, 12, 15, 16, 17, 31, 32, 33, 64, 255, 65535])
    setattr(ds, keyword, value)
    return f"{keyword}={value}"


def _m_size(ds, rng):
    keyword = rng.choice(["Rows", "Columns"])
    value = rng.choice([0, 1, 2, int(ds.get(keyword, 64)) // 2, int(ds.get(keyword, 64)) * 2, 30000, 65535])
    setattr(ds, keyword, value)
    if rng.random() < 0.3:
        ds.Rows = ds.Columns = 30000
        return "Rows=Columns=30000"
    return f"{keyword}={value}"


def _m_frames(ds, rng):
    choice = rng.choice(["delete", b"0", b"-1", b"abc", b"", b"2", b"10", b"2147483647", b"1.5"])
    if choice == "delete":
        if "NumberOfFrames" in ds:
            del ds.NumberOfFrames
    else:
        _raw(ds, "NumberOfFrames", "IS", choice)
    return f"NumberOfFrames={choice!r}"


def _m_stack(ds, rng):
    """A native 10-frame 64 x 64 stack whose NumberOfFrames is missing, 0, text or wrong."""
    from pydicom.uid import ExplicitVRLittleEndian

    frames = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 4096, (10, 64, 64), dtype=np.uint16)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for keyword in ("PlanarConfiguration", "NumberOfFrames"):
        if keyword in ds:
            del ds[keyword]
    ds.PixelData = frames.tobytes()
    choice = rng.choice(["delete", b"0", b"abc", b"3", b"11", b"-10"])
    if choice != "delete":
        _raw(ds, "NumberOfFrames", "IS", choice)
    return f"10-frame stack, NumberOfFrames={choice!r}"


def _m_window(ds, rng):
    keyword = rng.choice(["WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"])
    value = rng.choice([b"abc", b"", b"nan", b"1e400", b"-5", b"0", b"40\\abc", b"inf", b"None", b"1e38"])
    _raw(ds, keyword, "DS", value)
    if keyword.startswith("Window") and "WindowWidth" not in ds:
        ds.WindowWidth = 400
    return f"{keyword}={value!r}"


def _m_voi_lut(ds, rng):
    from pydicom.sequence import Sequence

    kind = rng.choice(["empty", "no descriptor", "64-bit", "short data", "no data", "zero entries", "huge first"])
    item = {"empty": None, "no descriptor": lut_item(None, list(range(256))),
            "64-bit": lut_item([256, 0, 64], list(range(256))), "short data": lut_item([4096, 0, 12], [1, 2, 3]),
            "no data": lut_item([256, 0, 8], None), "zero entries": lut_item([0, 0, 16], list(range(10))),
            "huge first": lut_item([16, 65535, 16], list(range(16)))}[kind]
    ds.VOILUTSequence = Sequence([] if item is None else [item])
    return f"VOILUTSequence {kind}"


def _m_modality_lut(ds, rng):
    from pydicom.sequence import Sequence

    kind = rng.choice(["empty", "no data", "short data", "bad descriptor"])
    item = {"empty": None, "no data": lut_item([256, 0, 16], None), "short data": lut_item([4096, 0, 16], [1]),
            "bad descriptor": lut_item([1], list(range(10)))}[kind]
    ds.ModalityLUTSequence = Sequence([] if item is None else [item])
    return f"ModalityLUTSequence {kind}"


def _m_palette(ds, rng):
    ds.PhotometricInterpretation = "PALETTE COLOR"
    kind = rng.choice(["no tables", "short table", "bad descriptor", "one missing"])
    for colour in ("Red", "Green", "Blue"):
        for part in ("Descriptor", "Data"):
            keyword = f"{colour}PaletteColorLookupTable{part}"
            if kind == "no tables" and keyword in ds:
                del ds[keyword]
    if kind != "no tables":
        for colour in ("Red", "Green", "Blue"):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16] if kind != "bad descriptor"
                    else [256, 0, 99])
            setattr(ds, f"{colour}PaletteColorLookupTableData", bytes(512 if kind != "short table" else 6))
        if kind == "one missing":
            del ds.GreenPaletteColorLookupTableData
    return f"palette {kind}"


def _m_pixel_data(ds, rng):
    data = bytes(ds.PixelData)
    kind = rng.choice(["truncate", "empty", "delete", "append", "flip", "flip-head"])
    if kind == "truncate":
        ds.PixelData = data[:rng.randrange(0, max(len(data), 1)) & ~1]
    elif kind == "empty":
        ds.PixelData = b""
    elif kind == "delete":
        del ds.PixelData
    elif kind == "append":
        ds.PixelData = data + bytes(rng.randrange(2, 4096) & ~1)
    else:
        buf = bytearray(data)
        span = min(len(buf), 256) if kind == "flip-head" else len(buf)
        for _ in range(rng.randrange(1, 16)):
            if span:
                buf[rng.randrange(span)] = rng.randrange(256)
        ds.PixelData = bytes(buf)
    return f"PixelData {kind}"


def _m_transfer_syntax(ds, rng):
    value = rng.choice(["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.70",
                        "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1",
                        "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.3.4", "1.2.840.10008.1.2.4.201"])
    ds.file_meta.TransferSyntaxUID = value
    return f"TransferSyntaxUID={value}"


def _m_codestream(ds, rng):
    """Patch the size, component count or precision in the compressed stream's own header."""
    from pydicom.encaps import encapsulate, generate_fragments

    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        return None
    try:
        fragments = list(generate_fragments(ds.PixelData))[1:]  # after the basic offset table item
    except Exception:  # noqa: BLE001
        return None
    if not fragments:
        return None
    frame = bytearray(fragments[0])
    size = rng.choice([30000, 65535, 0, 1])
    field = rng.choice(["size", "components", "precision"])
    sof = next((i for i in range(len(frame) - 10) if frame[i] == 0xFF and frame[i + 1] in
                (0xC0, 0xC1, 0xC2, 0xC3, 0xF7)), None)
    siz = frame.find(b"\xff\x51")
    if sof is not None and (siz < 0 or sof < siz):
        if field == "size":
            frame[sof + 5:sof + 9] = struct.pack(">HH", size, size)
        elif field == "components":
            frame[sof + 9] = rng.choice([0, 1, 2, 3, 4, 255])
        else:
            frame[sof + 4] = rng.choice([0, 1, 2, 7, 12, 16, 17, 255])
    elif siz >= 0:
        if field == "size":
            frame[siz + 6:siz + 14] = struct.pack(">II", size, size)
        elif field == "components":
            frame[siz + 38:siz + 40] = struct.pack(">H", rng.choice([0, 1, 2, 3, 4, 16384]))
        else:
            frame[siz + 40] = rng.choice([0, 1, 7, 15, 37, 127])
    else:
        return None
    ds.PixelData = encapsulate([bytes(frame)] + fragments[1:])
    return f"codestream {field}" + (f"={size}" if field == "size" else "")


def _m_no_pixels(ds, rng):
    del ds.PixelData
    return "PixelData removed (image header kept)"


def _m_text(ds, rng):
    keyword = rng.choice(["PatientName", "PatientID", "StudyDate", "PixelSpacing", "InstanceNumber", "SeriesNumber"])
    value = rng.choice([b"\xff\xfe\x00abc", b"a\\b\\c", b"1e999", b"\x00\x00", b"-", b"abc\\def"])
    vr = {"PatientName": "PN", "PatientID": "LO", "StudyDate": "DA", "PixelSpacing": "DS", "InstanceNumber": "IS",
          "SeriesNumber": "IS"}[keyword]
    _raw(ds, keyword, vr, value)
    if rng.random() < 0.3:
        ds.SpecificCharacterSet = rng.choice(["ISO_IR 999", "\\", "GB18030"])
    return f"{keyword}={value!r}"


DATASET_MUTATIONS = [_m_photometric, _m_bits, _m_size, _m_frames, _m_stack, _m_window, _m_voi_lut, _m_modality_lut,
                     _m_palette, _m_pixel_data, _m_transfer_syntax, _m_codestream, _m_no_pixels, _m_text]


def _b_unknown_vr(data: bytes, rng) -> tuple[bytes, str] | None:
    """Give an explicit-VR element the VR 'XX' (pydicom cannot decode it)."""
    tags = [b"\x10\x00\x20\x00LO", b"\x10\x00\x10\x00PN", b"\x08\x00\x60\x00CS", b"\x28\x00\x30\x00DS",
            b"\x28\x00\x10\x00US", b"\x08\x00\x20\x00DA"]
    tag = rng.choice(tags)
    at = data.find(tag, 132)
    if at < 0:
        return None
    return data[:at + 4] + rng.choice([b"XX", b"\x00\x00", b"SQ", b"UN"]) + data[at + 6:], f"VR of {tag[:4].hex()}"


def _b_flip(data: bytes, rng) -> tuple[bytes, str]:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 24)):
        buf[rng.randrange(min(len(buf), 132 + 2048))] = rng.randrange(256)
    return bytes(buf), "header bytes flipped"


def _b_truncate(data: bytes, rng) -> tuple[bytes, str]:
    cut = rng.randrange(1, len(data))
    return data[:cut], f"cut at byte {cut}"


def mutate_dicom(seed: Path, rng: random.Random) -> tuple[bytes, str]:
    import pydicom

    ds = pydicom.dcmread(seed, force=True)
    ds.get("PixelData")  # read now, while the file is open
    applied = []
    for mutation in rng.sample(DATASET_MUTATIONS, rng.choice([1, 1, 1, 2, 2, 3])):
        try:
            if "PixelData" in ds or mutation in (_m_stack, _m_photometric, _m_bits, _m_size, _m_text):
                described = mutation(ds, rng)
                if described:
                    applied.append(described)
        except Exception:  # noqa: BLE001 - a mutation that does not apply to this seed
            continue
    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=False)
        data = out.getvalue()
    except Exception:  # noqa: BLE001 - pydicom refuses to write some combinations: byte mutations only
        data, applied = seed.read_bytes(), []
    if not applied or rng.random() < 0.25:
        byte_mutation = rng.choice([_b_unknown_vr, _b_flip, _b_truncate])
        result = byte_mutation(data, rng)
        if result:
            data, described = result
            applied.append(described)
    return data, "; ".join(applied) or "unchanged"


# ---------------------------------------------------------------- DICOMDIR mutations (bytes of a real one)

def _dicomdir_offsets(data: bytes) -> list[int]:
    """Byte positions of the 4-byte values of the DICOMDIR's offset elements (explicit VR little endian)."""
    positions = []
    for tag in (b"\x04\x00\x00\x12UL\x04\x00", b"\x04\x00\x00\x14UL\x04\x00", b"\x04\x00\x20\x14UL\x04\x00"):
        start = 0
        while (at := data.find(tag, start)) >= 0:
            positions.append(at + 8)
            start = at + 1
    return sorted(positions)


def mutate_dicomdir(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    buf = bytearray(data)
    positions = _dicomdir_offsets(data)
    values = [struct.unpack("<I", data[p:p + 4])[0] for p in positions]
    records = sorted({v for v in values if v})
    kind = rng.choice(["self", "loop", "dangling", "max", "zero", "flip", "truncate", "file-id", "record-type"])
    pos = rng.choice(positions)
    if kind == "self":  # a record's offset pointing at the record that holds it
        holder = max((r for r in records if r < pos), default=records[0])
        buf[pos:pos + 4] = struct.pack("<I", holder)
    elif kind == "loop":
        buf[pos:pos + 4] = struct.pack("<I", rng.choice(records[: max(1, len(records) // 3)]))
    elif kind == "dangling":
        buf[pos:pos + 4] = struct.pack("<I", rng.randrange(1, len(data)))
    elif kind == "max":
        buf[pos:pos + 4] = struct.pack("<I", rng.choice([2147483647, 0xFFFFFFFF]))
    elif kind == "zero":
        buf[pos:pos + 4] = bytes(4)
    elif kind == "flip":
        for _ in range(rng.randrange(1, 32)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif kind == "truncate":
        buf = buf[:rng.randrange(132, len(buf))]
    elif kind == "file-id":
        at = data.find(b"\x04\x00\x00\x15CS", rng.randrange(len(data) // 2))
        if at >= 0:
            length = struct.unpack("<H", data[at + 6:at + 8])[0]
            name = rng.choice([b"..\\..\\..\\etc\\passwd", b"\\", b"", b"/etc/passwd", b"C:\\x", b"A\\B"])
            buf[at + 8:at + 8 + length] = name[:length].ljust(length, b" ")
    else:
        at = data.find(b"\x04\x00\x30\x14CS", rng.randrange(len(data) // 2))
        if at >= 0:
            buf[at + 8:at + 12] = rng.choice([b"XXXX", b"\x00\x00\x00\x00", b"ROOT"])
    return bytes(buf), f"DICOMDIR {kind}"


# ---------------------------------------------------------------- raster mutations

def raster_seeds() -> list[tuple[str, bytes]]:
    import cv2

    rng = np.random.default_rng(0)
    gray = (rng.random((48, 40)) * 255).astype(np.uint8)
    seeds = []
    for ext, image in ((".png", gray), (".png", (gray.astype(np.uint16) * 257)), (".png", np.dstack([gray] * 3)),
                       (".png", np.dstack([gray, gray // 2, gray, gray])), (".jpg", gray),
                       (".jpg", np.dstack([gray, gray // 2, gray])), (".tif", gray.astype(np.uint16) * 64),
                       (".bmp", np.dstack([gray] * 3))):
        ok, encoded = cv2.imencode(ext, image)
        seeds.append((ext, encoded.tobytes()))
    ok, pages = cv2.imencodemulti(".tif", [gray, gray[::-1]]) if hasattr(cv2, "imencodemulti") else (False, None)
    if ok:
        seeds.append((".tif", pages.tobytes()))
    return seeds


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def mutate_raster(ext: str, data: bytes, rng: random.Random) -> tuple[bytes, str]:
    buf = bytearray(data)
    size = rng.choice([30000, 65535, 0, 2**31 - 1, 100000])
    kinds = ["truncate", "flip", "append", "size"] + {".png": ["chunk-length", "ihdr-crc"], ".tif": ["ifd-loop"],
                                                       ".jpg": ["components"]}.get(ext, [])
    kind = rng.choice(kinds)
    if kind == "truncate":
        return bytes(buf[:rng.randrange(8, len(buf))]), "truncated"
    if kind == "flip":
        for _ in range(rng.randrange(1, 16)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf), "bytes flipped"
    if kind == "append":
        return bytes(buf) + os.urandom(rng.randrange(1, 4096)), "junk appended"
    if ext == ".png":
        if kind == "chunk-length":
            return bytes(buf[:33]) + struct.pack(">I", 0xFFFFFFFF) + bytes(buf[37:]), "chunk length 0xFFFFFFFF"
        body = bytearray(buf[16:29])
        body[0:8] = struct.pack(">II", size, size)
        crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(body))) if kind == "size" else bytes(buf[29:33])
        return bytes(buf[:16]) + bytes(body) + crc + bytes(buf[33:]), f"IHDR {size} x {size}"
    if ext == ".jpg":
        sof = next(i for i in range(2, len(buf) - 9) if buf[i] == 0xFF and buf[i + 1] in (0xC0, 0xC1, 0xC2))
        if kind == "components":
            buf[sof + 9] = rng.choice([0, 2, 4, 255])
            return bytes(buf), "SOF components"
        buf[sof + 5:sof + 9] = struct.pack(">HH", min(size, 65535), min(size, 65535))
        return bytes(buf), f"SOF {min(size, 65535)} x {min(size, 65535)}"
    if ext == ".bmp":
        buf[18:26] = struct.pack("<ii", min(size, 2**31 - 1), -min(size, 2**31 - 1))
        return bytes(buf), f"BMP {size} x {size}"
    if ext == ".tif":
        ifd = struct.unpack("<I", buf[4:8])[0]
        count = struct.unpack("<H", buf[ifd:ifd + 2])[0]
        if kind == "ifd-loop":
            end = ifd + 2 + 12 * count
            buf[end:end + 4] = struct.pack("<I", ifd)
            return bytes(buf), "IFD points at itself"
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag = struct.unpack("<H", buf[entry:entry + 2])[0]
            if tag in (256, 257):
                buf[entry + 2:entry + 12] = struct.pack("<HII", 4, 1, size)
        return bytes(buf), f"TIFF {size} x {size}"
    return bytes(buf), "unchanged"


# ---------------------------------------------------------------- corpus

def make_corpus(root: Path, seed: int, n_dicom: int, n_dicomdir: int, n_raster: int, real: bool) -> list[Case]:
    """Write the mutated files under `root` (one folder each, so a folder scan sees only that file)."""
    import pydicom

    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    rng = random.Random(seed)
    cases: list[Case] = []

    def add(family: str, name: str, data: bytes, mutation: str) -> None:
        folder = root / f"{len(cases):05d}"
        folder.mkdir()
        (folder / name).write_bytes(data)
        cases.append(Case(f"{len(cases):05d}/{name}", family, str(folder / name), mutation))

    seeds = dicom_seeds(real)
    for i in range(n_dicom):
        seed_path = seeds[i % len(seeds)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's remarks on the mutations it is asked to write
            data, mutation = mutate_dicom(seed_path, rng)
        add("dicom", f"{seed_path.stem}.m{i}.dcm", data, f"{seed_path.name}: {mutation}")
    tests = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests"
    original = (tests / "DICOMDIR").read_bytes()
    for i in range(n_dicomdir):
        data, mutation = mutate_dicomdir(original, rng)
        folder = root / f"{len(cases):05d}"
        folder.mkdir()
        for sub in ("77654033", "98892001", "98892003"):
            os.symlink(tests / sub, folder / sub)
        (folder / "DICOMDIR").write_bytes(data)
        cases.append(Case(f"{len(cases):05d}/DICOMDIR", "dicomdir", str(folder / "DICOMDIR"), mutation))
    rasters = raster_seeds()
    for i in range(n_raster):
        ext, data = rasters[i % len(rasters)]
        data, mutation = mutate_raster(ext, data, rng)
        add("raster", f"r{i}{ext}", data, mutation)
    cases += special_cases(root, len(cases))
    return cases


def special_cases(root: Path, start: int) -> list[Case]:
    """A FIFO, /dev/zero, a folder named like an image and sparse 8 GB files: refused without being read."""
    cases = []

    def folder() -> Path:
        path = root / f"{start + len(cases):05d}"
        path.mkdir()
        return path

    fifo = folder() / "pipe.dcm"
    os.mkfifo(fifo)
    cases.append(Case(f"{fifo.parent.name}/pipe.dcm", "special", str(fifo), "named pipe"))
    zero = folder() / "zero.dcm"
    os.symlink("/dev/zero", zero)
    cases.append(Case(f"{zero.parent.name}/zero.dcm", "special", str(zero), "link to /dev/zero"))
    cases.append(Case("/dev/zero", "special", "/dev/zero", "/dev/zero itself"))
    for name, head in (("big.bin", b"just text, not an image\n"), ("big.dcm", bytes(128) + b"DICM")):
        big = folder() / name
        with big.open("wb") as f:
            f.write(head)
            f.truncate(8 << 30)  # sparse: no disk space used
        cases.append(Case(f"{big.parent.name}/{name}", "special", str(big), f"8 GB sparse file ({name})"))
    odd = folder() / "folder.png"
    odd.mkdir()
    cases.append(Case(f"{odd.parent.name}/folder.png", "special", str(odd), "folder named like an image"))
    return cases


# ---------------------------------------------------------------- worker side

def _peak_reset() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _calls():
    from xrayviewer import cli
    from xrayviewer.core import XRayViewerError, scan
    from xrayviewer.core.reading.film_cache import FilmCache, load_frames
    from xrayviewer.gui.browser import thumbnail

    def load(path: str) -> None:
        """What the viewer does with a film: the browser's thumbnail, its film cache, every frame for cine."""
        thumbnail(Path(path))
        try:
            record, _ = FilmCache(size=1).get(path, 0)
            if 1 < record.frames <= 20:
                load_frames(path)
        except XRayViewerError as exc:  # the viewer shows this in its banner
            print(f"error: {exc}", file=sys.stderr)

    def scanned(path: str) -> None:
        for tree in (scan(path), scan(Path(path).parent) if not path.startswith("/dev/") else None):
            for problem in tree.problems if tree else []:
                print(f"problem: {problem.path}: {problem.reason}", file=sys.stderr)

    return {"info": lambda p: cli.main(["info", p]), "scan": scanned, "load": load,
            "analyze": lambda p: cli.main(["analyze", p])}


def worker() -> None:
    """Read one JSON request a line from stdin, run its calls, answer one JSON line on the protocol pipe."""
    protocol = os.fdopen(os.dup(1), "w")
    capture = tempfile.TemporaryFile()
    os.dup2(capture.fileno(), 1)  # native libraries' output to fd 1 and 2 is captured and counted
    os.dup2(capture.fileno(), 2)
    calls = _calls()
    capture.truncate(0)  # what the imports printed is no file's doing
    protocol.write("ready\n")
    protocol.flush()
    for line in sys.stdin:
        request = json.loads(line)
        out, err, tracebacks = io.StringIO(), io.StringIO(), []
        _peak_reset()
        for call in request["calls"]:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    calls[call](request["path"])
                except BaseException:  # noqa: BLE001 - the point: count every escape
                    tracebacks.append(f"{call}: {traceback.format_exc()}")
        capture.seek(0)
        native = capture.read().decode("utf-8", "replace")
        capture.seek(0)
        capture.truncate()
        protocol.write(json.dumps({"stdout": out.getvalue(), "stderr": err.getvalue(), "native": native,
                                   "tracebacks": tracebacks, "peak_mb": round(_peak_mb(), 1)}) + "\n")
        protocol.flush()


# ---------------------------------------------------------------- parent side

class _Worker:
    def __init__(self) -> None:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONFAULTHANDLER": ""}
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
                                     text=True, bufsize=1)
        self.case: Case | None = None
        self.calls: list[str] = []
        self.started = 0.0
        self.peak_rss = 0.0
        if self.proc.stdout.readline().strip() != "ready":
            self.errors.seek(0)
            raise RuntimeError(f"fuzz worker did not start: {self.errors.read().decode(errors='replace')[-2000:]}")

    def send(self, case: Case, calls: list[str]) -> None:
        self.case, self.calls, self.started, self.peak_rss = case, calls, time.monotonic(), 0.0
        self.proc.stdin.write(json.dumps({"path": case.path, "calls": calls}) + "\n")
        self.proc.stdin.flush()

    def rss_mb(self) -> float:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0.0
        return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0.0)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()


def run_cases(cases: list[Case], workers: int = 2, timeout: float = 10.0, analyze: int = 0) -> list[dict]:
    """Run every case in a pool of worker processes; one result dict per case, in case order.

    `analyze` runs `xrayviewer analyze` too on up to that many single files that `info` read.
    """
    pending = list(cases)
    results: dict[str, dict] = {}
    follow_up: list[Case] = []
    pool = [_Worker() for _ in range(workers)]
    analysed = 0
    while pending or follow_up or any(w.case for w in pool):
        for w in pool:
            if w.case is None and (follow_up or pending):
                case = follow_up.pop() if follow_up else pending.pop(0)
                calls = ["analyze"] if case.name in results else list(BASE_CALLS)
                w.send(case, calls)
        readable = {w.proc.stdout.fileno(): w for w in pool if w.case}
        ready, _, _ = select.select(list(readable), [], [], 0.05)
        for fd in ready:
            w = readable[fd]
            line = w.proc.stdout.readline()
            case, calls = w.case, w.calls
            if line:
                answer = json.loads(line)
                answer["peak_mb"] = max(answer["peak_mb"], w.peak_rss)
                outcome = _merge(results, case, calls, answer)
                first = calls == list(BASE_CALLS)
                if first and outcome == "ok" and analysed < analyze and case.family in ("dicom", "raster"):
                    analysed += 1
                    follow_up.append(case)
                w.case = None
            else:
                code = w.proc.wait()
                _merge(results, case, calls, {"abort": code, "peak_mb": w.peak_rss})
                pool[pool.index(w)] = _Worker()
        for i, w in enumerate(pool):
            if w.case is None:
                continue
            w.peak_rss = max(w.peak_rss, w.rss_mb())
            over_time = time.monotonic() - w.started > timeout * len(w.calls)
            if over_time or w.peak_rss > KILL_MB:
                w.kill()
                _merge(results, w.case, w.calls, {"hang" if over_time else "memory": True, "peak_mb": w.peak_rss})
                pool[i] = _Worker()
    for w in pool:
        w.kill()
    return [results[c.name] for c in cases]


def _merge(results: dict[str, dict], case: Case, calls: list[str], answer: dict) -> str:
    """Fold one answer into the case's result; return the case's outcome so far."""
    result = results.setdefault(case.name, {"case": case.name, "family": case.family, "mutation": case.mutation,
                                            "outcome": "ok", "peak_mb": 0.0, "problems": []})
    result["peak_mb"] = max(result["peak_mb"], answer.get("peak_mb", 0.0))
    label = "+".join(calls)
    result.setdefault("calls", []).append(label)
    if "abort" in answer:
        result["outcome"] = "abort"
        result["problems"].append(f"{label}: worker ended with {answer['abort']}")
    elif answer.get("hang"):
        result["outcome"] = "hang"
        result["problems"].append(f"{label}: no answer in time")
    elif answer.get("memory"):
        result["outcome"] = "memory"
        result["problems"].append(f"{label}: over {KILL_MB} MB")
    else:
        if answer["tracebacks"]:
            result["outcome"] = "traceback"
            result["problems"] += answer["tracebacks"]
        messages = [line for line in answer["stderr"].splitlines() if line.startswith(("error:", "problem:"))]
        other = [line for line in answer["stderr"].splitlines() if not line.startswith(("error:", "problem:"))]
        base = Path(case.path).name
        result.setdefault("messages", []).extend(messages)
        result["unnamed"] = result.get("unnamed", 0) + sum(base not in m and case.family != "dicomdir"
                                                           for m in messages if m.startswith("error:"))
        result["leaks"] = result.get("leaks", []) + [m for m in messages if LEAK.search(m)]
        chatter = [line for line in other + answer["native"].splitlines() if line.strip()]
        result["chatter"] = result.get("chatter", []) + chatter
        if calls == list(BASE_CALLS) and result["outcome"] == "ok":
            result["read"] = any(line.startswith("{") and '"error"' not in line
                                 for line in answer["stdout"].splitlines())
    return result["outcome"] if result["outcome"] != "ok" or result.get("read") else "refused"


def summarise(results: list[dict], seconds: float) -> dict:
    peaks = [r["peak_mb"] for r in results]
    count = {f: sum(r["family"] == f for r in results) for f in ("dicom", "dicomdir", "raster", "special")}
    return {
        "files": len(results), **{f"files_{k}": v for k, v in count.items()},
        "read": sum(bool(r.get("read")) for r in results),
        "tracebacks": sum(r["outcome"] == "traceback" for r in results),
        "aborts": sum(r["outcome"] == "abort" for r in results),
        "hangs": sum(r["outcome"] == "hang" for r in results),
        "memory_kills": sum(r["outcome"] == "memory" for r in results),
        "peak_rss_mb_median": round(statistics.median(peaks), 1) if peaks else 0,
        "peak_rss_mb_max": round(max(peaks), 1) if peaks else 0,
        "files_over_1_5_gb": sum(p > OVER_MB for p in peaks),
        "messages_not_naming_file": sum(r.get("unnamed", 0) for r in results),
        "messages_with_internal_text": sum(len(r.get("leaks", [])) for r in results),
        "stderr_chatter_lines": sum(len(r.get("chatter", [])) for r in results),
        "analysed": sum(any("analyze" in m for m in r.get("calls", [])) for r in results),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--dicom", type=int, default=1600)
    parser.add_argument("--dicomdir", type=int, default=70)
    parser.add_argument("--raster", type=int, default=584)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per file and call")
    parser.add_argument("--analyze", type=int, default=400, help="files that read cleanly also go through analyze")
    parser.add_argument("--json", type=Path, help="also write every case's result here")
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    with tempfile.TemporaryDirectory(prefix="xrayviewer-fuzz-") as tmp:
        cases = make_corpus(Path(tmp), args.seed, args.dicom, args.dicomdir, args.raster, real=True)
        started = time.monotonic()
        results = run_cases(cases, args.workers, args.timeout, args.analyze)
        summary = summarise(results, time.monotonic() - started)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "cases": results}, indent=1))
    bad = [r for r in results if r["outcome"] not in ("ok",) or r.get("leaks") or r.get("chatter")]
    for r in bad[:40]:
        print(f"{r['outcome']:9} {r['case']} [{r['mutation']}] {(r['problems'] or r.get('leaks') or r['chatter'])[0][-300:]}",
              file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
