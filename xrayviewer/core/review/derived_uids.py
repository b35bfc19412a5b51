"""UIDs of the objects an export derives from a film, and the check that the film's own UIDs may be copied.

A derived object's Series and SOP Instance UIDs are made from what the object depends on (the source's SOP Instance
UID, the model file's hash, the result, the decision, the marks), as 2.25 UIDs of a name-based UUID of them:
exporting an unchanged result again gives the same UIDs, so a PACS stores nothing new, and any change gives new ones.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from pydicom.dataset import Dataset

from xrayviewer.core.errors import XRayViewerError

UI_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")  # the UI value representation
UI_MAX = 64
NAMESPACE = uuid.UUID("6f1c2a9e-5b7d-5e0f-9c43-58a1d2e7b310")  # XRay Viewer's derived objects (name-based UUIDs)
COPIED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID")


def valid_uid(value: object) -> bool:
    """Whether `value` is a DICOM UID: digits and dots, no leading zero in a component, at most 64 characters."""
    text = str(value)
    return 0 < len(text) <= UI_MAX and UI_PATTERN.fullmatch(text) is not None


def check_source_uids(source: Dataset, path: str | Path) -> None:
    """Refuse a film whose UIDs an export would copy (study, series, instance, class, frame of reference) when one
    of them is not a valid UID: the exported objects would be invalid and could collide in a PACS."""
    for keyword in COPIED_UIDS:
        if keyword not in source and keyword == "FrameOfReferenceUID":
            continue
        value = str(source.get(keyword, "") or "")
        if not valid_uid(value):
            shown = value if len(value) <= 70 else f"{value[:40]}... ({len(value)} characters)"
            raise XRayViewerError(path, "cannot be exported", f"its {keyword} '{shown}' is not a valid DICOM UID "
                                  f"(digits and dots, at most {UI_MAX} characters)",
                                  "Correct the film's header at its source; nothing was written.")


def derived_uid(*parts: object) -> str:
    """A 2.25 UID made from `parts` (strings, numbers, lists, dicts: anything JSON can write), the same for the same
    parts on every machine: the name-based (SHA-1, version 5) UUID of their JSON text, as ITU-T X.667 allows."""
    return f"2.25.{uuid.uuid5(NAMESPACE, json.dumps(parts, sort_keys=True, default=str)).int}"
