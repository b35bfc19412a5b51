"""The heatmaps already computed, so a film seen again (back in the worklist, another pane, an export) costs no
second perturbation run: keyed by the model file's digest, the method, its grid, the target and the model input."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from xrayviewer.core.analysis.cam import CamResult

CAPACITY = 256  # maps at feature size (a 14 x 14 occlusion map is 1 KB): the memory is the films', not these


def input_digest(image: np.ndarray) -> str:
    """A short digest of a model input (224 x 224 x 3 float32: ~0.3 ms)."""
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest()


class MapCache:
    """A bounded, thread-safe least-recently-used store of CAM results (and of occlusion's patch scores, a dict)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._maps: OrderedDict[tuple, CamResult | dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> CamResult | dict | None:
        with self._lock:
            result = self._maps.get(key)
            if result is not None:
                self._maps.move_to_end(key)
            return result

    def put(self, key: tuple, result: CamResult | dict) -> None:
        with self._lock:
            self._maps[key] = result
            self._maps.move_to_end(key)
            while len(self._maps) > self.capacity:
                self._maps.popitem(last=False)

    def __len__(self) -> int:
        return len(self._maps)

    def clear(self) -> None:
        with self._lock:
            self._maps.clear()
