"""DICOM files via pydicom and its decoder plug-ins (pylibjpeg/openjpeg, pydicom's own, gdcm).

Untrusted files never reach a codec unchecked: `pixel_layout` validates the image pixel description against
itself, against the pixel data's length and against the compressed stream's own header, because gdcm turns
an inconsistency into a C++ exception that ends the process. What the display steps read (rescale, windows,
LUTs, palettes) is checked by `presentation`; a value that is not usable is dropped with a note, not an error.
"""

from __future__ import annotations

import math
import re
import warnings
import zlib
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame, parse_basic_offsets, parse_fragments
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder, pixel_array

from xrayviewer.core.errors import (
    CorruptFileError,
    FrameIndexError,
    MissingDecoderError,
    NoPixelDataError,
    UnsupportedFileError,
)
from xrayviewer.core.reading import decoders, headers
from xrayviewer.core.reading.display import percentile_window
from xrayviewer.core.reading.isolation import run_isolated
from xrayviewer.core.reading.limits import check_declared, open_regular
from xrayviewer.core.reading.quiet import native_output_silenced
from xrayviewer.core.reading.record import ImageRecord, Metadata, Window

# A viewer reads what hospitals really send: odd values are shown, not reported as problems, and pydicom's
# remarks on them (charsets, odd lengths) are not printed on the user's terminal.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")

# Transfer syntax UID prefix -> what to install when no plug-in decodes it.
DECODER_HINTS = {
    "1.2.840.10008.1.2.4.5": "pylibjpeg with pylibjpeg-libjpeg (GPL-3, also 12-bit), or python-gdcm (BSD)",
    "1.2.840.10008.1.2.4.7": "python-gdcm (BSD), or pylibjpeg with pylibjpeg-libjpeg (GPL-3)",
    "1.2.840.10008.1.2.4.8": "python-gdcm (BSD), or pyjpegls",
    "1.2.840.10008.1.2.4.9": "pylibjpeg with pylibjpeg-openjpeg, or python-gdcm",
    "1.2.840.10008.1.2.4.20": "pylibjpeg with pylibjpeg-openjpeg (HTJ2K)",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle (pydicom's own RLE decoder normally suffices)",
}
# Plug-ins that report a broken stream as a Python exception come first; gdcm, whose C++ exceptions abort the
# process, only decodes what no other installed plug-in can, and only after `pixel_layout` has passed.
# imagecodecs (JPEG 2000 on every core, registered by core.decoders) leads: the fastest measured (`xrayviewer bench`).
PLUGIN_PREFERENCE = (decoders.PLUGIN, "pydicom", "pylibjpeg", "pillow", "pyjpegls", "gdcm")
_NO_PIXELS_FIX = "Open an image instance (CR, DX, CT...) of the study instead."
_DAMAGED_FIX = "The file is damaged; export it again from the PACS or the modality."
# Photometric interpretation -> samples per pixel it requires.
_PHOTOMETRIC_SAMPLES = {"MONOCHROME1": 1, "MONOCHROME2": 1, "PALETTE COLOR": 1, "RGB": 3, "YBR_FULL": 3,
                        "YBR_FULL_422": 3, "YBR_ICT": 3, "YBR_RCT": 3}
_CODESTREAM = {"1.2.840.10008.1.2.4.5": headers.jpeg, "1.2.840.10008.1.2.4.7": headers.jpeg,
               "1.2.840.10008.1.2.4.8": headers.jpeg, "1.2.840.10008.1.2.4.9": headers.jpeg2000,
               "1.2.840.10008.1.2.4.20": headers.jpeg2000}


def parse(path: Path, source: BinaryIO | None = None, force: bool = False, headers_only: bool = False) -> Dataset:
    """Parse `source` (or the file itself when None) as DICOM; `force` accepts files without a preamble."""
    if source is None:
        file, _ = open_regular(path)
        with file:
            return parse(path, file, force, headers_only)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(source, force=force, stop_before_pixels=headers_only)
    except InvalidDicomError as exc:
        raise UnsupportedFileError(path, "not a DICOM file", str(exc).rstrip("."),
                                   "Open a DICOM, PNG, JPEG, TIFF or BMP file.") from None
    except zlib.error:
        raise CorruptFileError(path, "broken DICOM file", "its deflate-compressed data set is damaged",
                               "The file is damaged or truncated; export it again from the PACS.") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken headers
        raise CorruptFileError(path, "broken DICOM header", reason(exc),
                               "The file is damaged or truncated; export it again from the PACS.") from None
    ended = next((str(w.message) for w in caught if "End of file" in str(w.message)), None)
    if ended and (len(ds) == 0 or not headers_only and "PixelData" not in ds):
        raise CorruptFileError(path, "truncated DICOM", reason(Exception(ended)),
                               "The file was cut short; copy or export it again.")
    _ensure_transfer_syntax(ds)
    return ds


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Files without file meta (no preamble) get the transfer syntax their encoding implies."""
    if "TransferSyntaxUID" in ds.file_meta:
        return
    implicit, little = ds.original_encoding
    ds.file_meta.TransferSyntaxUID = (
        pydicom.uid.ImplicitVRLittleEndian if implicit
        else pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian
    )


def read_dicom(path: Path, source: BinaryIO, frame: int = 0, force: bool = False) -> ImageRecord:
    """Decode one frame of a DICOM file into an `ImageRecord`."""
    ds = parse(path, source, force)
    if not value(ds, "PixelData"):  # absent, empty, or unreadable
        _refuse_without_pixels(path, ds)
    layout = pixel_layout(path, ds)
    if not 0 <= frame < layout.frames:
        raise FrameIndexError(path, f"no frame {frame}", f"the file has {layout.frames} frame(s)",
                              f"Choose a frame from 0 to {layout.frames - 1}.")
    check_codestream(path, ds, layout, frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's remarks on odd but readable files are not the user's concern
        raw = _decode(path, ds, layout, frame)
        pixels, window, notes = _present(path, ds, raw, layout)
    ts = layout.transfer_syntax
    return ImageRecord(
        pixels=np.ascontiguousarray(pixels),
        window=window,
        path=str(path),
        frame=frame,
        frames=layout.frames,
        format="dicom",
        photometric=layout.photometric,
        bits_stored=layout.bits_stored,
        transfer_syntax=f"{ts} ({ts.name})" if ts.name != ts else str(ts),
        invert_default=layout.photometric == "MONOCHROME1",
        metadata=metadata_of(ds),
        notes=tuple(layout.notes + notes),
    )


def _refuse_without_pixels(path: Path, ds: Dataset) -> None:
    if "DirectoryRecordSequence" in ds:
        raise NoPixelDataError(path, "DICOMDIR holds no image", "it is the index of a DICOM media folder",
                               "Open the DICOMDIR's folder as a study instead.")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise UnsupportedFileError(path, "floating-point pixel data", "only integer pixels are supported",
                                   _NO_PIXELS_FIX)
    if "PixelData" in ds or "Rows" in ds or "Image Storage" in sop_class_name(ds):
        raise CorruptFileError(path, "pixel data missing", f"the header describes a {sop_class_name(ds)} but the "
                               "file holds no pixels (it was damaged or cut short)", _DAMAGED_FIX)
    raise NoPixelDataError(path, "no pixel data", f"it is a {sop_class_name(ds)}, which holds no image",
                           _NO_PIXELS_FIX)


@dataclass
class PixelLayout:
    """The image pixel description of a data set, checked for consistency."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    photometric: str
    frames: int
    transfer_syntax: pydicom.uid.UID
    notes: list[str] = field(default_factory=list)


def pixel_layout(path: Path, ds: Dataset) -> PixelLayout:
    """Check the pixel description before any decoder sees the data; repair only what is unambiguous.

    Refused: photometric interpretations that contradict SamplesPerPixel, bits stored over bits allocated,
    sizes over the limit, pixel data shorter than declared. Repaired with a note: a missing photometric
    interpretation, a missing or impossible NumberOfFrames (taken from the pixel data's length).
    """
    notes: list[str] = []
    ts = ds.file_meta.TransferSyntaxUID
    try:
        encapsulated = ts.is_encapsulated
    except ValueError:  # not a transfer syntax UID at all
        raise UnsupportedFileError(path, "unknown transfer syntax", f"{str(ts)[:64]!r} is not a DICOM transfer "
                                   "syntax", "The file is damaged, or was written by a program that does not "
                                   "follow DICOM; export it again.") from None
    rows, columns = number(ds, "Rows"), number(ds, "Columns")
    samples = number(ds, "SamplesPerPixel", 1)
    allocated = number(ds, "BitsAllocated")
    if None in (rows, columns, samples, allocated):
        raise CorruptFileError(path, "broken image header", "Rows, Columns, SamplesPerPixel or BitsAllocated is "
                               "missing or not a number", _DAMAGED_FIX)
    check_declared(path, int(rows), int(columns), int(samples) if samples in (1, 3) else 1, "its DICOM header")
    photometric = text(ds, "PhotometricInterpretation").upper()
    if not photometric:
        photometric = "MONOCHROME2" if samples == 1 else "RGB"
        notes.append(f"PhotometricInterpretation is missing; shown as {photometric}")
        ds.PhotometricInterpretation = photometric
    needed = _PHOTOMETRIC_SAMPLES.get(photometric)
    if needed is None:
        raise UnsupportedFileError(path, f"colour model {photometric!r} not supported", "the viewer shows "
                                   "MONOCHROME1/2, PALETTE COLOR, RGB and YBR images", "Convert the image to RGB or "
                                   "grayscale, or check that the file is not damaged.")
    if samples != needed:
        raise CorruptFileError(path, "contradictory image header", f"PhotometricInterpretation {photometric} needs "
                               f"{needed} sample(s) per pixel but SamplesPerPixel is {samples:g}", _DAMAGED_FIX)
    if photometric.startswith("YBR") and allocated != 8 and not encapsulated:
        raise UnsupportedFileError(path, f"{photometric} colour with {allocated:g}-bit samples not supported",
                                   "uncompressed YBR colour is converted from 8-bit samples only", "Convert the "
                                   "image to RGB, or check that the file is not damaged.")
    stored = number(ds, "BitsStored", allocated)
    if allocated not in (1, 8, 16, 32) or not 1 <= (stored or 0) <= allocated:
        raise CorruptFileError(path, "contradictory image header", f"BitsAllocated {allocated:g} with BitsStored "
                               f"{stored:g} is not a valid pixel size", _DAMAGED_FIX)
    if number(ds, "PixelRepresentation", 0) not in (0, 1) or number(ds, "PlanarConfiguration", 0) not in (0, 1):
        raise CorruptFileError(path, "broken image header", "PixelRepresentation or PlanarConfiguration has a "
                               "value other than 0 or 1", _DAMAGED_FIX)
    layout = PixelLayout(int(rows), int(columns), int(samples), int(allocated), int(stored), photometric, 1, ts,
                         notes)
    if encapsulated:
        layout.frames = _encapsulated_frames(path, ds, notes)
    else:
        layout.frames = _native_frames(path, ds, layout, notes)
    if layout.frames > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = layout.frames
    return layout


def _declared_frames(ds: Dataset) -> int | None:
    """NumberOfFrames when present and a positive whole number, else None."""
    frames = number(ds, "NumberOfFrames")
    return int(frames) if frames is not None and frames >= 1 and float(frames).is_integer() else None


def _native_frames(path: Path, ds: Dataset, layout: PixelLayout, notes: list[str]) -> int:
    values = layout.rows * layout.columns * layout.samples
    if layout.photometric == "YBR_FULL_422":
        values = values * 2 // 3
    frame_bytes = math.ceil(values * layout.bits_allocated / 8)
    length = len(ds.PixelData)
    declared, held = _declared_frames(ds), length // frame_bytes
    if declared is None:
        frames = max(held, 1)
        if "NumberOfFrames" in ds or frames > 1:
            given = repr(_raw_text(ds, "NumberOfFrames")) if "NumberOfFrames" in ds else "missing"
            notes.append(f"NumberOfFrames is {given}; the pixel data holds {frames} frame(s) of "
                         f"{layout.rows} x {layout.columns}")
    else:
        frames = declared
    if length < frames * frame_bytes:
        raise CorruptFileError(path, "truncated pixel data", f"the header declares {frames} frame(s) of "
                               f"{layout.rows} x {layout.columns} ({frames * frame_bytes:,} bytes) but the pixel "
                               f"data holds {length:,} bytes", "The file was cut short; copy or export it again.")
    return frames


def _encapsulated_frames(path: Path, ds: Dataset, notes: list[str]) -> int:
    try:
        buffer = BytesIO(ds.PixelData)
        offsets = parse_basic_offsets(buffer)
        fragments, _ = parse_fragments(buffer)
    except Exception as exc:  # noqa: BLE001 - item tags and lengths of a damaged file
        raise CorruptFileError(path, "damaged compressed pixel data", f"its fragment items are broken "
                               f"({reason(exc)})", _DAMAGED_FIX) from None
    if fragments == 0:
        raise CorruptFileError(path, "damaged compressed pixel data", "it holds no image fragment", _DAMAGED_FIX)
    declared = _declared_frames(ds)
    if declared is None:
        if "NumberOfFrames" in ds:
            notes.append(f"NumberOfFrames {_raw_text(ds, 'NumberOfFrames')!r} is not a frame count; "
                         f"{len(offsets) or 1} frame(s) are read")
        return len(offsets) or 1
    if declared > fragments:
        raise CorruptFileError(path, "truncated pixel data", f"the header declares {declared} frames but the "
                               f"compressed data holds {fragments} fragment(s)", _DAMAGED_FIX)
    return declared


def check_codestream(path: Path, ds: Dataset, layout: PixelLayout, frame: int) -> None:
    """The compressed frame's own header (JPEG SOF, JPEG 2000 SIZ) must agree with the DICOM header.

    A JPEG 2000 precision other than BitsStored is noted: the decoder uses the data's own precision.
    """
    parse_header = next((p for prefix, p in _CODESTREAM.items() if layout.transfer_syntax.startswith(prefix)), None)
    if parse_header is None:
        return
    try:
        stream = get_frame(ds.PixelData, frame, number_of_frames=layout.frames)
        declared = parse_header(stream[:65536])
    except Exception as exc:  # noqa: BLE001 - HeaderError, or pydicom's errors on broken fragment items
        raise CorruptFileError(path, "damaged compressed pixel data", reason(exc), _DAMAGED_FIX) from None
    source = f"its {layout.transfer_syntax.name} data"
    check_declared(path, declared.rows, declared.columns, declared.samples if declared.samples in (1, 3) else 1,
                   source)
    if (declared.rows, declared.columns) != (layout.rows, layout.columns) or declared.samples != layout.samples:
        raise CorruptFileError(path, "contradictory image header", f"{source} hold {declared.rows} x "
                               f"{declared.columns} pixels of {declared.samples} sample(s), the DICOM header says "
                               f"{layout.rows} x {layout.columns} of {layout.samples}", _DAMAGED_FIX)
    if declared.bits > layout.bits_allocated:
        raise CorruptFileError(path, "contradictory image header", f"{source} hold {declared.bits}-bit samples, "
                               f"more than BitsAllocated {layout.bits_allocated}", _DAMAGED_FIX)
    # JPEG holds 8- to 16-bit samples in 8- or 16-bit words; gdcm aborts on an 8-bit stream with BitsStored under 8
    jpeg_misfit = layout.bits_allocated not in (8, 16) or (declared.bits == 8 and layout.bits_stored != 8)
    if parse_header is headers.jpeg and jpeg_misfit:
        raise CorruptFileError(path, "contradictory image header", f"{source} hold {declared.bits}-bit samples, "
                               f"which do not fit BitsAllocated {layout.bits_allocated} with BitsStored "
                               f"{layout.bits_stored}", _DAMAGED_FIX)
    if parse_header is headers.jpeg2000 and declared.bits != layout.bits_stored:
        layout.notes.append(f"BitsStored is {layout.bits_stored} but {source} hold {declared.bits}-bit samples; "
                            "the data's own precision is used")


def decoding_plugins(ts: pydicom.uid.UID) -> list[str]:
    """The installed plug-ins that decode `ts`, in `PLUGIN_PREFERENCE` order (the first one is used).

    Uncompressed data needs none: [""] (pydicom's own reader).
    """
    decoder = get_decoder(ts)
    if not ts.is_compressed:
        return [""]
    available = decoder.available_plugins
    rank = {name: i for i, name in enumerate(PLUGIN_PREFERENCE)}
    return sorted(available, key=lambda name: rank.get(name, len(rank)))


def _decode(path: Path, ds: Dataset, layout: PixelLayout, frame: int) -> np.ndarray:
    ts = layout.transfer_syntax
    try:
        plugins = decoding_plugins(ts)
    except NotImplementedError:
        raise UnsupportedFileError(path, "unknown transfer syntax", f"{ts} is not one pydicom can decode",
                                   "Convert the file to an uncompressed or JPEG 2000 transfer syntax.") from None
    hint = next((h for prefix, h in DECODER_HINTS.items() if ts.startswith(prefix)), "a pydicom plug-in")
    if not plugins:
        raise MissingDecoderError(path, f"no decoder for {ts.name}", f"transfer syntax {ts} needs a plug-in "
                                  "that is not installed", f"Install {hint}.")
    index = frame if layout.frames > 1 else None
    try:
        if plugins[0] == "gdcm":  # its C++ exceptions abort: decoded in a child process where one can be forked
            arr = run_isolated(lambda: pixel_array(ds, index=index, decoding_plugin="gdcm"))
        else:
            with native_output_silenced():
                arr = pixel_array(ds, index=index, decoding_plugin=plugins[0])
    except Exception as exc:  # noqa: BLE001 - decoders raise ValueError, RuntimeError, OSError...
        if "does not support" in str(exc):
            raise MissingDecoderError(path, f"no decoder for this {ts.name} variant", reason(exc),
                                      f"Install {hint}.") from None
        raise CorruptFileError(path, f"cannot decode pixels ({ts.name})", reason(exc),
                               "The pixel data is damaged or truncated; export the image again.") from None
    expected = (layout.rows, layout.columns) + ((3,) if layout.samples == 3 else ())
    if arr.shape != expected:
        raise CorruptFileError(path, "cannot decode pixels", f"the decoder returned an array of shape {arr.shape}, "
                               f"not the {' x '.join(map(str, expected))} the header declares", _DAMAGED_FIX)
    return arr


def _present(path: Path, ds: Dataset, arr: np.ndarray, layout: PixelLayout) -> tuple[np.ndarray, Window, list[str]]:
    """Native pixels in display units, their default window, and notes on header values that were not usable.

    Each LUT step that fails on the file's values is skipped with a note; the image is still shown.
    """
    notes = presentation(ds)

    def step(apply, values: np.ndarray, what: str, instead: str) -> np.ndarray | None:
        try:
            out = apply(values, ds)
        except Exception as exc:  # noqa: BLE001 - pydicom's LUT code on damaged tables raises many types
            notes.append(f"the {what} could not be applied ({reason(exc)}); {instead}")
            return None
        return out if out.shape[:2] == values.shape[:2] else None

    if layout.photometric == "PALETTE COLOR":
        rgb = step(apply_color_lut, arr, "colour palette", "the stored values are shown in gray")
        if rgb is not None:
            top = float(np.iinfo(rgb.dtype).max) if rgb.dtype.kind in "iu" else float(rgb.max() or 1)
            return rgb, Window.from_range(0, top if rgb.max() > 255 else 255), notes
        return arr, percentile_window(arr), notes
    if arr.ndim == 3:  # RGB; pydicom already converted YBR to RGB
        top = 255.0 if arr.dtype == np.uint8 else float(2 ** layout.bits_stored - 1)
        return arr, Window.from_range(0, top), notes
    values = step(apply_modality_lut, arr, "modality LUT", "the stored values are shown")
    if values is None:
        values = arr
    elif values.dtype.kind == "f":
        slope, intercept = number(ds, "RescaleSlope", 1.0), number(ds, "RescaleIntercept", 0.0)
        integral = float(slope).is_integer() and float(intercept).is_integer() and arr.dtype.kind in "iu"
        values = values.astype(np.int32 if integral else np.float32)  # integers keep the fast LUT path
    if "VOILUTSequence" in ds and _voi_lut_bits(ds) is None:
        notes.append("the VOI LUT has no usable descriptor; the window is set from the file's window or the pixels")
        del ds.VOILUTSequence
    if "VOILUTSequence" in ds:
        voi = step(lambda v, d: apply_voi_lut(v, d, index=0, prefer_lut=True), values, "VOI LUT",
                   "the window is set from the pixels")
        if voi is not None:
            return voi, Window.from_range(0, float(2 ** _voi_lut_bits(ds) - 1)), notes
    if "WindowCenter" in ds and "WindowWidth" in ds:
        return values, Window(first_number(ds, "WindowCenter"), max(first_number(ds, "WindowWidth"), 1.0)), notes
    return values, percentile_window(values), notes


def _voi_lut_bits(ds: Dataset) -> int | None:
    """Output bits of the first VOI LUT (its descriptor's third value), or None when unusable."""
    try:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
    except Exception:  # noqa: BLE001 - empty sequence, item without descriptor, undecodable values
        return None
    return bits if 1 <= bits <= 16 else None


def presentation(ds: Dataset) -> list[str]:
    """Drop rescale and window values that are not usable numbers, one note for each; the image is still shown."""
    notes: list[str] = []

    def drop(pair: tuple[str, str], bad: str, instead: str) -> None:
        notes.append(f"{bad} {_raw_text(ds, bad)!r} is not a usable number; {instead}")
        for keyword in pair:
            if keyword in ds:
                del ds[keyword]

    rescale, window = ("RescaleSlope", "RescaleIntercept"), ("WindowCenter", "WindowWidth")
    for pair, instead in ((rescale, "the stored values are shown without rescaling"),
                          (window, "the window is set from the pixels instead")):
        bad = next((k for k in pair if k in ds and first_number(ds, k) is None), None)
        if bad:
            drop(pair, bad, instead)
    if number(ds, "RescaleSlope") == 0:
        drop(rescale, "RescaleSlope", "the stored values are shown without rescaling")
    return notes


def metadata_of(ds: Dataset) -> Metadata:
    """The fields the viewer's corner text, the study browser and `info` use; unreadable ones are empty."""
    return Metadata(
        patient_name=text(ds, "PatientName"),
        patient_id=text(ds, "PatientID"),
        patient_age=text(ds, "PatientAge"),
        patient_birth_date=text(ds, "PatientBirthDate"),
        patient_sex=text(ds, "PatientSex"),
        accession=text(ds, "AccessionNumber"),
        study_date=text(ds, "StudyDate"),
        acquisition_date=text(ds, "AcquisitionDate") or text(ds, "ContentDate"),
        study_description=text(ds, "StudyDescription"),
        series_description=text(ds, "SeriesDescription"),
        modality=text(ds, "Modality"),
        body_part=text(ds, "BodyPartExamined"),
        view_position=text(ds, "ViewPosition"),
        pixel_spacing=_spacing(value(ds, "PixelSpacing")) or _spacing(value(ds, "ImagerPixelSpacing")),
        study_uid=text(ds, "StudyInstanceUID"),
        series_uid=text(ds, "SeriesInstanceUID"),
        instance_number=as_int(number(ds, "InstanceNumber")),
    )


def value(ds, keyword: str, default=None):
    """An element's value, or `default` when it is absent or cannot be decoded (unknown VR, bad bytes)."""
    try:
        got = ds.get(keyword, default)
    except Exception:  # noqa: BLE001 - pydicom converts raw values on access and raises many types
        return default
    return default if got is None else got


def text(ds, keyword: str) -> str:
    """An element as stripped text; "" when absent or undecodable."""
    try:
        return str(value(ds, keyword, "")).strip()
    except Exception:  # noqa: BLE001 - str() of a damaged person name or multi-value
        return ""


def number(ds, keyword: str, default: float | None = None) -> float | None:
    """An element as a finite float (the first of several); `default` when absent, None when not a number."""
    return first_number(ds, keyword) if keyword in ds else default


def first_number(ds, keyword: str) -> float | None:
    """The first value of an element as a finite float, or None."""
    got = value(ds, keyword)
    try:
        got = float(got[0]) if isinstance(got, (list, tuple, pydicom.multival.MultiValue)) else float(got)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return got if math.isfinite(got) else None


def _raw_text(ds: Dataset, keyword: str) -> str:
    try:
        raw = ds[keyword].value
        return raw.decode("latin-1", "replace").strip() if isinstance(raw, bytes) else str(raw).strip()
    except Exception:  # noqa: BLE001
        return "?"


def _spacing(spacing) -> tuple[float, float] | None:
    """Row and column spacing in mm, or None when absent or zero."""
    try:
        row, col = float(spacing[0]), float(spacing[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (row, col) if row > 0 and col > 0 and math.isfinite(row + col) else None


def sop_class_name(ds) -> str:
    """The SOP class in words ("MR Image Storage"), or "unknown object" when absent or unreadable."""
    uid = value(ds, "SOPClassUID") or value(ds, "MediaStorageSOPClassUID")
    name = str(getattr(uid, "name", None) or uid or "")
    return name if name and name.isprintable() and len(name) <= 64 else "unknown object"


def as_int(raw, default=None):
    try:
        return int(raw)
    except (TypeError, ValueError, OverflowError):
        return default


_INTERNAL = re.compile(r"NoneType|object has no attribute|not subscriptable|unsupported operand|invalid literal|"
                       r"\b[A-Z]\w+Error\b|<class |index \d+ is out of bounds|\bself\b|0x[0-9a-f]{6,}")
_PLUGIN_WRAPPER = re.compile(r"^Unable to decode as exceptions were raised by all available plugins:\s*|^\w+:\s+")


def reason(exc: Exception) -> str:
    """An exception as a short reason for a user; Python's own internal wording is not shown."""
    said = " ".join(str(exc).split())
    while (shorter := _PLUGIN_WRAPPER.sub("", said, count=1)) != said:  # "Unable to decode...: gdcm: why"
        said = shorter
    if not said or _INTERNAL.search(said) or isinstance(exc, (AttributeError, TypeError, KeyError, IndexError)):
        return "its content is not what the header announces"
    return said[:300].rstrip(".")
