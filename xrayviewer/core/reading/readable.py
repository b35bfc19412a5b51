"""DICOM values as people read them: person names without `^`, dates as YYYY-MM-DD, ages."""

from __future__ import annotations

from datetime import date


def person_name(value: str) -> str:
    """`DOE^JOHN^A^DR^JR` -> `DR DOE, JOHN A, JR`; the ideographic/phonetic groups after `=` are dropped."""
    family, given, middle, prefix, suffix = ([p.strip() for p in str(value).split("=")[0].split("^")] + [""] * 5)[:5]
    name = ", ".join(p for p in (" ".join(filter(None, (prefix, family))), " ".join(filter(None, (given, middle))),
                                 suffix) if p)
    return name


def dicom_date(value: str) -> str:
    """`20040826` -> `2004-08-26`; anything else is returned as it is."""
    value = str(value).strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def age_sex(age: str, sex: str) -> str:
    """DICOM `004Y` and `F` -> `4Y F`; either may be empty."""
    age = str(age).strip().upper()
    if age[:-1].isdigit() and age[-1:] in "DWMY":
        age = f"{int(age[:-1])}{age[-1]}"
    return " ".join(filter(None, (age, str(sex).strip().upper())))


def _date(value: str) -> date | None:
    """A DICOM date (YYYYMMDD) as a date, or None."""
    value = str(value).strip()
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def age_at(birth: str, day: str) -> str:
    """The age on `day` of a patient born on `birth` (both DICOM dates, YYYYMMDD) as a DICOM age string: whole
    years ("034Y"), under a year whole months ("011M"), under a month days ("020D"); "" when either date is missing
    or not a date, or `day` comes before `birth`."""
    born, then = _date(birth), _date(day)
    if born is None or then is None or then < born:
        return ""
    months = (then.year - born.year) * 12 + then.month - born.month - (then.day < born.day)
    if months >= 12:
        return f"{min(months // 12, 999):03d}Y"
    return f"{months:03d}M" if months else f"{(then - born).days:03d}D"
