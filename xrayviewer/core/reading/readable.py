"""DICOM values as people read them: person names without `^`, dates as YYYY-MM-DD."""

from __future__ import annotations


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
