"""Keep what native decoders print (libpng, libjpeg, libtiff, gdcm) off the user's terminal.

Those libraries write warnings such as "libpng error: IDAT: incorrect data check" straight to file
descriptor 2; the reader reports the problem in its own words instead. Descriptor 2 points at the null
device while at least one decode runs (a count, so that overlapping decodes in worker threads restore it once).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_active = 0
_saved: int | None = None


@contextmanager
def native_output_silenced() -> Iterator[None]:
    """Send file descriptor 2 to the null device for the duration (no-op where it cannot be redirected)."""
    global _active, _saved
    with _lock:
        if _active == 0:
            try:
                sys.stderr.flush()
                _saved = os.dup(2)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)
                os.close(null)
            except OSError:
                _saved = None
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                os.dup2(_saved, 2)
                os.close(_saved)
                _saved = None
