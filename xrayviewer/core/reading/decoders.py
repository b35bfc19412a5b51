"""imagecodecs as a pydicom decoder plug-in for JPEG 2000: OpenJPEG with one thread per core.

On the demo chest CR compressed as JPEG 2000 lossless (RG1_J2KR, 1955 x 1841) it decodes about twice as fast as
gdcm or pylibjpeg-openjpeg (`xrayviewer bench`, figures in the README), so `core.dicom.PLUGIN_PREFERENCE` puts it
first. It reports a broken stream as a Python exception. Registered on import when imagecodecs is installed.
"""

from __future__ import annotations

import os

import numpy as np
from pydicom import uid
from pydicom.pixels import get_decoder
from pydicom.pixels.common import PhotometricInterpretation
from pydicom.pixels.decoders.base import DecodeRunner

try:
    import imagecodecs
except ImportError:  # optional: the other plug-ins decode the same files, only slower
    imagecodecs = None

PLUGIN = "imagecodecs"
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


register()
