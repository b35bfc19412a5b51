"""Decoded films kept for a moment: the next worklist film decoded ahead, cine frames decoded once.

Thread-safe: a film asked for while another thread decodes it waits for that decode instead of starting
a second one. Entries are (ImageRecord, display array at the file's default window).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from xrayviewer.core.reading.display import to_display
from xrayviewer.core.reading.record import ImageRecord

# The readers (pydicom and its decoder plug-ins, ~0.5 s to import) load on first use, so the viewer's window
# shows before them (`xrayviewer bench`: cold_start_ms); gui.app loads them in a thread once it is up.

Film = tuple[ImageRecord, np.ndarray]


def load_film(path: str | Path, frame: int = 0) -> Film:
    """Read a film and make the display array the model sees (its default window)."""
    from xrayviewer.core.reading.reader import read_image

    record = read_image(path, frame)
    return record, to_display(record)


def load_frames(path: str | Path) -> list[ImageRecord]:
    """Every frame of a file, reading the file once and decoding each frame once."""
    from xrayviewer.core.reading.reader import read_frames

    return read_frames(path)


class FilmCache:
    """The last `size` films by (path, frame)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._films: OrderedDict[tuple[str, int], Film] = OrderedDict()
        self._loading: dict[tuple[str, int], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, path: str | Path, frame: int = 0) -> Film:
        """The film from the cache, else decoded now (once, whichever thread asks first)."""
        key = (str(Path(path)), frame)
        with self._lock:
            if key in self._films:
                self._films.move_to_end(key)
                return self._films[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._films:
                    return self._films[key]
            film = load_film(path, frame)
            self.put(film)
            with self._lock:
                self._loading.pop(key, None)
            return film

    def put(self, film: Film) -> None:
        record = film[0]
        with self._lock:
            self._films[(record.path, record.frame)] = film
            self._films.move_to_end((record.path, record.frame))
            while len(self._films) > self.size:
                self._films.popitem(last=False)

    def holds(self, path: str | Path, frame: int = 0) -> bool:
        with self._lock:
            return (str(Path(path)), frame) in self._films
