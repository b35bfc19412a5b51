"""A film's age when its header gives a birth date but no PatientAge: the age at the study (or acquisition), in
DICOM's own form (whole years, months under a year, days under a month)."""

from __future__ import annotations

import pytest

from xrayviewer.core.reading.readable import age_at


@pytest.mark.parametrize(("birth", "day", "age"), [
    ("19400305", "20040826", "064Y"),  # pydicom-data's chest CR (RG1): born 1940-03-05, studied 2004-08-26
    ("19400305", "20040304", "063Y"),  # the day before the birthday
    ("19400305", "20040305", "064Y"),  # on the birthday
    ("20240101", "20241215", "011M"),
    ("20240101", "20240121", "020D"),
    ("20000229", "20010228", "011M"),  # a leap-day birth: not a whole year on 28 February
    ("18000101", "20240101", "224Y"),
])
def test_the_age_at_a_day_is_a_dicom_age(birth, day, age):
    assert age_at(birth, day) == age


@pytest.mark.parametrize(("birth", "day"), [("", "20040826"), ("19400305", ""), ("20050101", "20040101"),
                                            ("20041301", "20050101"), ("1940-03-05", "20040826")])
def test_no_age_without_two_dates_in_order(birth, day):
    assert age_at(birth, day) == ""
