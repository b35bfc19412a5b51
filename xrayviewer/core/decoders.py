"""Which pydicom decoder plug-in decodes a compressed frame: the order measured by `xrayviewer bench`.

On the demo chest CR compressed as JPEG 2000 lossless (RG1_J2KR, 1955 x 1841), imagecodecs' OpenJPEG with one
thread per core decodes about twice as fast as gdcm, which is faster than pylibjpeg-openjpeg (figures in the
README's Benchmarks). imagecodecs is not one of pydicom's own plug-ins: this module is one, registered for
JPEG 2000 when imagecodecs is installed. A frame the preferred plug-in fails on is tried with the others.
"""

from __future__ import annotations

import os

import numpy as np
from pydicom import uid
from pydicom.pixels import get_decoder, pixel_array
from pydicom.pixels.common import PhotometricInterpretation
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import DecodeRunner

try:
    import imagecodecs
except ImportError:  # optional: the other plug-ins decode the same files, only slower
    imagecodecs = None

PLUGIN = "imagecodecs"
DECODER_ORDER = (PLUGIN, "gdcm", "pylibjpeg")  # fastest first, as measured on RG1_J2KR
J2K_SYNTAXES = (uid.JPEG2000Lossless, uid.JPEG2000)
DECODER_DEPENDENCIES = {syntax: ("imagecodecs>=2024.1",) for syntax in J2K_SYNTAXES}
THREADS = os.cpu_count() or 1


def is_available(syntax: str) -> bool:
    """pydicom's plug-in interface: imagecodecs is installed and has its JPEG 2000 codec."""
    return imagecodecs is not None and syntax in J2K_SYNTAXES and bool(imagecodecs.JPEG2K.available)


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """pydicom's plug-in interface: one JPEG 2000 frame decoded by OpenJPEG on every core, as pixel bytes."""
    frame = imagecodecs.jpeg2k_decode(src, numthreads=THREADS)
    if runner.photometric_interpretation in (PhotometricInterpretation.YBR_ICT, PhotometricInterpretation.YBR_RCT):
        runner.set_option("photometric_interpretation", PhotometricInterpretation.RGB)  # OpenJPEG undid the MCT
    runner.set_option("planar_configuration", 0)  # samples come interleaved, [rows, cols, samples]
    runner.set_option("bits_allocated", frame.dtype.itemsize * 8)  # the container follows the J2K precision
    return np.ascontiguousarray(frame).tobytes()


def register() -> None:
    """Add the imagecodecs plug-in to pydicom's JPEG 2000 decoders (once)."""
    for syntax in J2K_SYNTAXES:
        try:
            get_decoder(syntax).add_plugin(PLUGIN, (__name__, "_decode_frame"))
        except ValueError:  # already registered
            pass


def installed(syntax: str) -> list[str]:
    """The plug-ins that can decode `syntax` here, in the measured order (others after them)."""
    available = get_decoder(syntax).available_plugins
    return [p for p in DECODER_ORDER if p in available] + [p for p in available if p not in DECODER_ORDER]


def decode_pixels(ds: Dataset, index: int | None, plugin: str = "") -> np.ndarray:
    """The frame's pixels by `plugin`, else the fastest installed plug-in, else whichever of the others can."""
    syntax = ds.file_meta.TransferSyntaxUID
    if not syntax.is_compressed:
        return pixel_array(ds, index=index)
    chosen = plugin or next(iter(installed(syntax)), "")
    try:
        return pixel_array(ds, index=index, decoding_plugin=chosen)
    except Exception:  # noqa: BLE001 - a variant this plug-in does not support: let the others try
        if plugin or not chosen:
            raise
        return pixel_array(ds, index=index)


register()
