"""What the gate's checks look at and what they find: a `Subject` (one image and one model) and `Finding`s,
each a `Refusal` (the model must not judge the image) or a `Note` (shown beside the result)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from xrayviewer.core.analysis.contract import ModelCard
from xrayviewer.core.reading.record import ImageRecord


@dataclass(frozen=True)
class Finding:
    """One thing a check found: a machine code, a sentence for people, and its evidence."""

    code: str
    sentence: str
    tag: str | None = None  # DICOM keyword the evidence comes from
    value: str | None = None  # ... and its value
    score: float | None = None  # a measured score
    limit: float | None = None  # ... and the limit it was held against

    def __str__(self) -> str:
        return self.sentence

    def as_dict(self) -> dict:
        """The non-empty fields, for JSON."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def places(score: float, relation: str, limit: float, least: int = 2) -> int:
    """The fewest decimals, `least` at least, at which `score` and `limit` rounded still stand in `relation` ("<" or
    ">"): a detector score of 0.9962 against 0.9984 needs 3, where 2 would read "1.00 < limit 1.00"."""
    holds = {"<": float.__lt__, ">": float.__gt__}[relation]
    return next((n for n in range(least, 17) if holds(float(f"{score:.{n}f}"), float(f"{limit:.{n}f}"))), 17)


def compared(score: float, relation: str, limit: float, least: int = 2) -> str:
    """"SCORE < limit LIMIT" (or ">") with `places` decimals, so that the comparison holds as printed."""
    n = places(score, relation, limit, least)
    return f"{score:.{n}f} {relation} limit {limit:.{n}f}"


class Refusal(Finding):
    """A reason the model must not judge this image."""


class Note(Finding):
    """Something the reader should know about the image; the result is still shown."""


@dataclass(frozen=True)
class Subject:
    """What the checks may look at for one image and one model."""

    display: np.ndarray  # the 8-bit film at its default window: what the model sees
    record: ImageRecord | None = None  # header fields; None for a bare array
    card: ModelCard | None = None
    ood_score: float | None = None  # the model file's own out-of-distribution score, when it has one
