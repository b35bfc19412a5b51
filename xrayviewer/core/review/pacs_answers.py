"""What a PACS answers, read defensively: each attribute of a C-FIND match is parsed on its own, and a value its VR
does not allow (an IS that is no integer, a DA or TM that is no date or time, a UID with other characters) becomes
empty with a note, never an exception that loses the other matches. Values are shown in messages escaped."""

from __future__ import annotations

import datetime
import re
import warnings

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

MAX_TEXT = 256  # characters kept of a text attribute (a name, a description)
UID_CHARS = re.compile(r"^[0-9]+(\.[0-9]+)*$")
INTEGER = re.compile(r"^[+-]?[0-9]{1,12}$")
TIME = re.compile(r"^([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?$")
CODE = re.compile(r"^[A-Z0-9 _]{1,16}$")


def shown(value: object, limit: int = 80) -> str:
    """A value from the network as it may be printed: quoted, cut to `limit` characters, control characters and
    bidirectional overrides escaped."""
    text = str(value)
    return ascii(text[:limit] + ("..." if len(text) > limit else ""))


def is_uid(text: str) -> bool:
    """Whether `text` is a DICOM UID (digits and dots, at most 64 characters)."""
    return len(text) <= 64 and bool(UID_CHARS.match(text))


class Answer:
    """One identifier a PACS sent, read attribute by attribute; `notes` says what was left empty and why."""

    def __init__(self, identifier: Dataset) -> None:
        self.identifier = identifier
        self.notes: list[str] = []

    def text(self, keyword: str) -> str:
        """The attribute as text ('' when absent or undecodable); values of a multi-valued one joined by '\\'."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns of values its VR does not allow: noted here instead
                value = self.identifier.get(keyword, "")
                values = value if isinstance(value, (MultiValue, list, tuple)) else [value]
                text = "\\".join("" if v is None else v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)
                                   for v in values)
        except Exception:  # noqa: BLE001 - whatever the bytes, one attribute is lost, never the match
            self.notes.append(f"{keyword} cannot be decoded: left empty")
            return ""
        text = text.strip(" \0")
        if len(text) > MAX_TEXT:
            self.notes.append(f"{keyword} is {len(text)} characters long: cut to {MAX_TEXT}")
            text = text[:MAX_TEXT]
        return text

    def _checked(self, keyword: str, valid: bool, text: str, kind: str) -> bool:
        if text and not valid:
            self.notes.append(f"{keyword} {shown(text)} is not {kind}: left empty")
            return False
        return True

    def uid(self, keyword: str) -> str:
        text = self.text(keyword)
        return text if self._checked(keyword, is_uid(text), text, "a UID") else ""

    def integer(self, keyword: str) -> int | None:
        """An IS attribute: None when absent, empty or not an integer."""
        text = self.text(keyword)
        return int(text) if text and self._checked(keyword, bool(INTEGER.match(text)), text, "an integer") else None

    def date(self, keyword: str) -> str:
        """A DA attribute as YYYYMMDD: '' when absent or not a date of the calendar."""
        text = self.text(keyword)
        try:
            valid = len(text) == 8 and text.isdigit() and bool(datetime.datetime.strptime(text, "%Y%m%d"))
        except ValueError:
            valid = False
        return text if self._checked(keyword, valid, text, "a date (YYYYMMDD)") else ""

    def time(self, keyword: str) -> str:
        """A TM attribute as HH[MM[SS[.F]]]: '' when absent or not a time of day."""
        text = self.text(keyword)
        return text if self._checked(keyword, bool(TIME.match(text)), text, "a time (HHMMSS)") else ""

    def codes(self, keyword: str) -> list[str]:
        """A multi-valued CS attribute: the values that are codes (others dropped, with a note)."""
        values = [v.strip() for v in self.text(keyword).split("\\") if v.strip()]
        return [v for v in values if self._checked(keyword, bool(CODE.match(v)), v, "a code")]
