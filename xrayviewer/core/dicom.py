"""DICOM files via pydicom and its decoder plug-ins (gdcm, pylibjpeg, openjpeg, RLE)."""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder

from xrayviewer.core.decoders import decode_pixels
from xrayviewer.core.display import percentile_window
from xrayviewer.core.errors import (
    CorruptFileError,
    FrameIndexError,
    MissingDecoderError,
    NoPixelDataError,
    UnsupportedFileError,
)
from xrayviewer.core.record import ImageRecord, Metadata, Window

# A viewer reads what hospitals really send: odd values are shown, not reported as problems.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

# Transfer syntax UID prefix -> what to install when no plug-in decodes it.
DECODER_HINTS = {
    "1.2.840.10008.1.2.4.5": "pylibjpeg with pylibjpeg-libjpeg (GPL-3, also 12-bit), or python-gdcm (BSD)",
    "1.2.840.10008.1.2.4.7": "python-gdcm (BSD), or pylibjpeg with pylibjpeg-libjpeg (GPL-3)",
    "1.2.840.10008.1.2.4.8": "python-gdcm (BSD), or pyjpegls",
    "1.2.840.10008.1.2.4.9": "pylibjpeg with pylibjpeg-openjpeg, or python-gdcm",
    "1.2.840.10008.1.2.4.20": "pylibjpeg with pylibjpeg-openjpeg (HTJ2K)",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle (pydicom's own RLE decoder normally suffices)",
}
_NO_PIXELS_FIX = "Open an image instance (CR, DX, CT...) of the study instead."


def parse(path: Path, data: bytes | None = None, force: bool = False, headers_only: bool = False) -> Dataset:
    """Parse `data` (or the file itself when None) as DICOM; `force` accepts files without a preamble."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path if data is None else BytesIO(data), force=force,
                                 stop_before_pixels=headers_only)
    except InvalidDicomError as exc:
        raise UnsupportedFileError(path, "not a DICOM file", str(exc).rstrip("."),
                                   "Open a DICOM, PNG, JPEG, TIFF or BMP file.") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken headers
        raise CorruptFileError(path, "broken DICOM header", _reason(exc),
                               "The file is damaged or truncated; export it again from the PACS.") from None
    ended = next((str(w.message) for w in caught if "End of file" in str(w.message)), None)
    if ended and (len(ds) == 0 or not headers_only and "PixelData" not in ds):
        raise CorruptFileError(path, "truncated DICOM", _reason(Exception(ended)),
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


def read_dicom(path: Path, data: bytes, frame: int = 0, force: bool = False) -> ImageRecord:
    """Decode one frame of a DICOM file into an `ImageRecord`."""
    ds = parse(path, data, force)
    if "PixelData" not in ds:
        what = "DICOMDIR holds no image" if "DirectoryRecordSequence" in ds else "no pixel data"
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedFileError(path, "floating-point pixel data", "only integer pixels are supported",
                                       _NO_PIXELS_FIX)
        raise NoPixelDataError(path, what, f"its SOP class is {sop_class_name(ds)}", _NO_PIXELS_FIX)
    frames = as_int(ds.get("NumberOfFrames"), 1) or 1
    if not 0 <= frame < frames:
        raise FrameIndexError(path, f"no frame {frame}", f"the file has {frames} frame(s)",
                              f"Choose a frame from 0 to {frames - 1}.")
    ts = ds.file_meta.TransferSyntaxUID
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's remarks on odd but readable files are not the user's concern
        raw = _decode(path, ds, ts, frame, frames)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    pixels, window, invert = _present(ds, raw, photometric)
    return ImageRecord(
        pixels=np.ascontiguousarray(pixels),
        window=window,
        path=str(path),
        frame=frame,
        frames=frames,
        format="dicom",
        photometric=photometric,
        bits_stored=as_int(ds.get("BitsStored"), 8),
        transfer_syntax=f"{ts} ({ts.name})" if ts.name != ts else str(ts),
        invert_default=invert,
        metadata=metadata_of(ds),
    )


def _decode(path: Path, ds: Dataset, ts: pydicom.uid.UID, frame: int, frames: int) -> np.ndarray:
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise UnsupportedFileError(path, "unknown transfer syntax", f"{ts} is not one pydicom can decode",
                                   "Convert the file to an uncompressed or JPEG 2000 transfer syntax.") from None
    hint = next((h for prefix, h in DECODER_HINTS.items() if ts.startswith(prefix)), "a pydicom plug-in")
    if not decoder.is_available:
        raise MissingDecoderError(path, f"no decoder for {ts.name}", f"transfer syntax {ts} needs a plug-in "
                                  "that is not installed", f"Install {hint}.")
    try:
        return decode_pixels(ds, index=frame if frames > 1 else None)  # the measured decoder order
    except Exception as exc:  # noqa: BLE001 - decoders raise ValueError, RuntimeError, OSError...
        if "does not support" in str(exc):
            raise MissingDecoderError(path, f"no decoder for this {ts.name} variant", _reason(exc),
                                      f"Install {hint}.") from None
        raise CorruptFileError(path, f"cannot decode pixels ({ts.name})", _reason(exc),
                               "The pixel data is damaged or truncated; export the image again.") from None


def _present(ds: Dataset, arr: np.ndarray, photometric: str) -> tuple[np.ndarray, Window, bool]:
    """Native pixels in display units, their default window, and whether low values are bright."""
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        top = float(np.iinfo(rgb.dtype).max) if rgb.dtype.kind in "iu" else float(rgb.max() or 1)
        return rgb, Window.from_range(0, top if rgb.max() > 255 else 255), False
    if arr.ndim == 3:  # RGB; pydicom already converted YBR to RGB
        top = 255.0 if arr.dtype == np.uint8 else float(2 ** as_int(ds.get("BitsStored"), 16) - 1)
        return arr, Window.from_range(0, top), False
    values = apply_modality_lut(arr, ds)
    if values.dtype.kind == "f":
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        integral = slope.is_integer() and intercept.is_integer() and arr.dtype.kind in "iu"
        values = values.astype(np.int32 if integral else np.float32)  # integers keep the fast LUT path
    if "VOILUTSequence" in ds:
        values = apply_voi_lut(values, ds, index=0, prefer_lut=True)
        bits = as_int(ds.VOILUTSequence[0].LUTDescriptor[2], 16)
        window = Window.from_range(0, float(2 ** bits - 1))
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        window = Window(_first(ds.WindowCenter), max(_first(ds.WindowWidth), 1.0))
    else:
        window = percentile_window(values)
    return values, window, photometric == "MONOCHROME1"


def metadata_of(ds: Dataset) -> Metadata:
    """The fields the viewer's corner text, the study browser and `info` use."""
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    return Metadata(
        patient_name=str(ds.get("PatientName", "") or ""),
        patient_id=str(ds.get("PatientID", "") or ""),
        patient_age=str(ds.get("PatientAge", "") or "").strip(),
        patient_birth_date=str(ds.get("PatientBirthDate", "") or "").strip(),
        study_date=str(ds.get("StudyDate", "") or ""),
        study_description=str(ds.get("StudyDescription", "") or ""),
        series_description=str(ds.get("SeriesDescription", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
        body_part=str(ds.get("BodyPartExamined", "") or ""),
        view_position=str(ds.get("ViewPosition", "") or ""),
        pixel_spacing=_spacing(spacing),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        instance_number=as_int(ds.get("InstanceNumber")),
    )


def _spacing(value) -> tuple[float, float] | None:
    """Row and column spacing in mm, or None when absent or zero."""
    try:
        row, col = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (row, col) if row > 0 and col > 0 else None


def sop_class_name(ds: Dataset) -> str:
    uid = ds.get("SOPClassUID") or ds.get("MediaStorageSOPClassUID")
    return getattr(uid, "name", None) or str(uid or "unknown")


def _first(value) -> float:
    """First of a multi-valued window attribute."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def as_int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300].rstrip(".")
