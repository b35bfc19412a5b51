"""The gate's shipped checks: DICOM header rules, image statistics, the model's own gate, the population note.

Header rules only fire on what a header says: a PNG or JPEG chest film has no header and passes
them. Every finding names its evidence (tag and value, or score and limit).
"""

from __future__ import annotations

import re
from datetime import date

import cv2
import numpy as np

from xrayviewer.core.analysis.findings import Finding, Note, Refusal, Subject, compared, places
from xrayviewer.core.analysis.preprocess import interior_range
from xrayviewer.core.reading.display import to_gray

RADIOGRAPHY = {"CR", "DX", "DR", "RG"}  # computed / digital radiography, digitised film
MODALITY_NAMES = {
    "CT": "computed tomography", "MR": "magnetic resonance", "US": "ultrasound", "NM": "nuclear medicine",
    "PT": "PET", "MG": "mammography", "XA": "angiography", "RF": "fluoroscopy", "OT": "other",
    "SC": "secondary capture", "SEG": "segmentation", "PX": "panoramic dental X-ray", "IO": "intra-oral X-ray",
}
CHEST_WORDS = ("CHEST", "THORA", "TORAX", "LUNG", "PULMO")  # CHEST, THORAX, THORACIC, LUNGS, PULMONARY...
NON_FRONTAL_VIEWS = {
    "LL": "left lateral", "RL": "right lateral", "LAT": "lateral", "LATERAL": "lateral",
    "RLD": "right lateral decubitus", "LLD": "left lateral decubitus",
    "RLO": "right lateral oblique", "LLO": "left lateral oblique",
}
COLOR_LIMIT = 3.0  # mean |R-G| + |G-B| in gray levels; every training film is exactly gray (0)
ASPECT_LIMIT = 2.0  # no chest film is twice as long as it is wide
FLAT_LIMIT = 6.0  # standard deviation in gray levels; the flattest validation chest film has 21
QUALITY_SIZE = 224  # the film is judged as the shipped models see it: resized whole to 224 x 224 (INTER_AREA)
QUALITY_MARGIN = 20  # px of that frame left out on each side (the models' blanked border, markers, edges)
SHARPNESS_SCALES = (1.5, 3.0)  # px at 224: fine band = film - blur(1.5), coarse band = blur(1.5) - blur(3)
# `sharpness` below which a film is too blurred to read: between validation films blurred by 1.5 px (2nd percentile
# 0.54, the model reads them as it reads clean films) and by 2.5 px (98th percentile 0.495; it calls 18 % of the normal
# ones pneumonia, 6 % as they are); their geometric mean, 0.517, rounded down (`benchmarks/sharpness.py`)
SHARPNESS_LIMIT = 0.51
ROUNDING_VARIANCE = 1 / 12  # gray levels^2: the noise of rounding a film to whole gray levels
FAINT_LIMIT = 40.0  # gray levels from the 1st to the 99th percentile; see `faint`
TRAINING_AGES = (1.0, 6.0)  # years, [from, to): children aged 1-5
POPULATION = "outside the training population (children aged 1-5)"
AGE_UNITS = {"D": 365.25, "W": 365.25 / 7, "M": 12.0, "Y": 1.0}


def _dicom(subject: Subject) -> bool:
    return subject.record is not None and subject.record.format == "dicom"


def modality(subject: Subject) -> list[Finding]:
    """Modality present and not a radiograph."""
    value = subject.record.metadata.modality.strip().upper() if _dicom(subject) else ""
    if not value or value in RADIOGRAPHY:
        return []
    name = f" ({MODALITY_NAMES[value]})" if value in MODALITY_NAMES else ""
    return [Refusal("modality", f"Modality {value}{name}: not a radiograph; the model reads CR/DX chest films",
                    tag="Modality", value=value)]


def body_part(subject: Subject) -> list[Finding]:
    """BodyPartExamined present and not the chest."""
    value = subject.record.metadata.body_part.strip().upper() if _dicom(subject) else ""
    if not value or any(word in value for word in CHEST_WORDS):
        return []
    return [Refusal("body_part", f"BodyPartExamined {value}: not a chest film", tag="BodyPartExamined",
                    value=value)]


def view_position(subject: Subject) -> list[Finding]:
    """A lateral, decubitus or oblique view."""
    value = subject.record.metadata.view_position.strip().upper() if _dicom(subject) else ""
    if value not in NON_FRONTAL_VIEWS:
        return []
    return [Refusal("view", f"ViewPosition {value} ({NON_FRONTAL_VIEWS[value]}): the model was trained on "
                    "frontal (AP/PA) films only", tag="ViewPosition", value=value)]


def frames(subject: Subject) -> list[Finding]:
    """A multi-frame (cine) object is not a single radiograph."""
    n = subject.record.frames if subject.record is not None else 1
    if n <= 1:
        return []
    return [Refusal("frames", f"NumberOfFrames {n}: a multi-frame (cine) series, not a single radiograph",
                    tag="NumberOfFrames", value=str(n))]


def colour(subject: Subject) -> list[Finding]:
    """A colour picture: no chest film is coloured."""
    if subject.display.ndim != 3:
        return []
    f = subject.display[::4, ::4].astype(np.float32)  # a sample is enough to tell colour from gray
    chroma = float((np.abs(f[..., 0] - f[..., 1]) + np.abs(f[..., 1] - f[..., 2])).mean())
    if chroma <= COLOR_LIMIT:
        return []
    return [Refusal("colour", f"a colour image: colour score {compared(chroma, '>', COLOR_LIMIT, 1)} "
                    "(chest films are gray)", score=round(chroma, places(chroma, '>', COLOR_LIMIT)),
                    limit=COLOR_LIMIT)]


def aspect(subject: Subject) -> list[Finding]:
    """A picture more than twice as long as it is wide."""
    h, w = subject.display.shape[:2]
    ratio = max(h, w) / max(min(h, w), 1)
    if ratio <= ASPECT_LIMIT:
        return []
    return [Refusal("aspect", f"aspect ratio {compared(ratio, '>', ASPECT_LIMIT, 1)}: no chest film is that "
                    "elongated", score=round(ratio, places(ratio, '>', ASPECT_LIMIT)), limit=ASPECT_LIMIT)]


def flat(subject: Subject) -> list[Finding]:
    """A (nearly) uniform image: nothing for a model to read."""
    spread = float(to_gray(subject.display)[::4, ::4].std())
    if spread >= FLAT_LIMIT:
        return []
    return [Refusal("flat", f"a flat image: contrast (standard deviation) {compared(spread, '<', FLAT_LIMIT, 1)} "
                    "gray levels", score=round(spread, places(spread, '<', FLAT_LIMIT)), limit=FLAT_LIMIT)]


def _quality_frame(display: np.ndarray) -> np.ndarray:
    """The film as the models see it, resized whole to 224 x 224 (INTER_AREA), float32 gray: a large, smooth DICOM
    film is measured after the resize, so its size does not count."""
    return cv2.resize(to_gray(display), (QUALITY_SIZE, QUALITY_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)


def _band_noise_gains() -> tuple[float, float]:
    """The share of white noise's variance that passes into the fine and into the coarse band of `sharpness`."""
    impulse = np.zeros((65, 65), np.float32)
    impulse[32, 32] = 1
    low, high = (cv2.GaussianBlur(impulse, (0, 0), s) for s in SHARPNESS_SCALES)
    return float(((impulse - low) ** 2).sum()), float(((low - high) ** 2).sum())


BAND_NOISE_GAINS = _band_noise_gains()  # (0.89, 0.016)


def sharpness(display: np.ndarray) -> float:
    """How sharp the film is, whatever it shows: the standard deviation of its fine band (the film minus a Gaussian
    blur of 1.5 px) over that of the next coarser band (blur 1.5 px minus blur 3 px), at 224 x 224 without the
    outer 20 px, each band's share of the rounding noise taken out of its variance.

    A film's detail falls off with scale at much the same rate whatever the film shows, so the ratio depends on
    how the film was taken rather than on what is in it: a pneumonia film has less fine detail than a normal one,
    but also less coarse detail. A blur takes the fine band first, so the ratio falls with it. Being a ratio, it
    ignores contrast, exposure and gamma; noise raises it (a noisy blurred film may pass). Without the rounding
    noise taken out, a film blurred by 8 px or more would read sharp again (its fine band is rounding noise alone).
    A film with no coarse band above the rounding noise has 0 (a uniform image is the `flat` check's).
    Validation films (`benchmarks/sharpness.py`): 0.85 or more as they are (internal test 0.79, the demo CR 1.00),
    and much the same for normal and pneumonia films (median 1.03 and 1.01); blurred by 1.5 px, median 0.58; by
    2 px, 0.51; by 2.5 px, 0.47 (0.51 or less); by 3 px, 0.44 (medians). Contrast 50 % or 30 % and gamma 0.7 or
    1.5 leave it.
    """
    g = _quality_frame(display)
    low, high = (cv2.GaussianBlur(g, (0, 0), s) for s in SHARPNESS_SCALES)
    inner = slice(QUALITY_MARGIN, QUALITY_SIZE - QUALITY_MARGIN)
    fine, coarse = ((band[inner, inner].var() - gain * ROUNDING_VARIANCE)
                    for band, gain in zip((g - low, low - high), BAND_NOISE_GAINS))
    return float(np.sqrt(max(fine, 0) / coarse)) if coarse > 0 else 0.0


def quality_measures(display: np.ndarray) -> tuple[float, float]:
    """(sharpness, contrast) of a film as the image checks see it: `sharpness`, and the standard deviation of its
    gray levels at 224 x 224 without the outer 20 px."""
    inner = slice(QUALITY_MARGIN, QUALITY_SIZE - QUALITY_MARGIN)
    return sharpness(display), float(_quality_frame(display)[inner, inner].std())


def dynamic_range(display: np.ndarray) -> float:
    """Gray levels from the 1st to the 99th percentile of the film at 224 x 224 without its outer 20 px (as
    `sharpness` sees it): how much of the 8-bit range the film's interior uses."""
    lo, hi = interior_range(_quality_frame(display), QUALITY_MARGIN / QUALITY_SIZE)
    return hi - lo


def faint(subject: Subject) -> list[Finding]:
    """A film too faint to read: its interior spans fewer gray levels than `FAINT_LIMIT`, two thirds of the
    faintest training film's range (61 of 4,190 films; median 168) and under the faintest validation film's (42).
    Validation films flattened to 50 % of their contrast span 21 or more (median 84; 1.0 % refused), to 30 % 13 or
    more (median 50; 12.7 % refused): the faintest are refused here rather than called. (A uniform image is the
    `flat` check's.)"""
    spread = dynamic_range(subject.display)
    if spread >= FAINT_LIMIT or flat(subject):
        return []
    return [Refusal("faint", f"too faint to read: the film spans {compared(spread, '<', FAINT_LIMIT)} gray levels "
                    "(1st to 99th percentile; every training film spans 61 or more). Under- or over-exposed, or "
                    "windowed too wide: check the window / level, or open the original film",
                    score=round(spread, places(spread, '<', FAINT_LIMIT, 1)), limit=FAINT_LIMIT)]


def detail(subject: Subject) -> list[Finding]:
    """A film too blurred for the model to read: `sharpness` under `SHARPNESS_LIMIT`. (A uniform image is the `flat`
    check's, a faint one the `faint` check's.)"""
    ratio = sharpness(subject.display)
    if ratio >= SHARPNESS_LIMIT or flat(subject):
        return []
    return [Refusal("detail", f"too blurred to read: sharpness {compared(ratio, '<', SHARPNESS_LIMIT)} (fine over "
                    f"coarse detail at {QUALITY_SIZE} x {QUALITY_SIZE} px; chest films as they are have 0.79 or more, "
                    "blurred by 2.5 px 0.51 or less). The models call many normal films this blurred pneumonia; open "
                    "the original or a sharper copy of the film",
                    score=round(ratio, places(ratio, '<', SHARPNESS_LIMIT, 3)), limit=SHARPNESS_LIMIT)]


def model_ood(subject: Subject) -> list[Finding]:
    """The model file's own out-of-distribution gate, above the threshold its card gives."""
    gate = subject.card.data.get("ood") if subject.card is not None else None
    score = subject.ood_score
    if score is None or not gate or score <= float(gate["threshold"]):
        return []
    limit = float(gate["threshold"])
    return [Refusal("ood_score", "unlike the training films: out-of-distribution score "
                    f"{compared(score, '>', limit)} (the model's own gate)",
                    score=round(score, places(score, '>', limit, 4)), limit=limit)]


def population(subject: Subject) -> list[Finding]:
    """A note when the header puts the patient outside the training population (children aged 1-5)."""
    if not _dicom(subject):
        return []
    meta = subject.record.metadata
    match = re.fullmatch(r"(\d{1,3})\s*([DWMY])", meta.patient_age.strip().upper())
    if match:
        years, tag, value, where = int(match[1]) / AGE_UNITS[match[2]], "PatientAge", meta.patient_age, ""
    else:
        birth, study = _date(meta.patient_birth_date), _date(meta.study_date)
        if birth is None or study is None or study < birth:
            return []
        years, tag, value = (study - birth).days / 365.25, "PatientBirthDate", meta.patient_birth_date
        where = f" at the study (PatientBirthDate {meta.patient_birth_date}, StudyDate {meta.study_date})"
    if TRAINING_AGES[0] <= years < TRAINING_AGES[1] or years > 130:
        return []
    said = f"PatientAge {value}: " if tag == "PatientAge" else ""
    return [Note("population", f"{POPULATION}: {said}{_age_text(years)} old{where}", tag=tag, value=value,
                 score=round(years, 2))]


def _date(text: str) -> date | None:
    """A DICOM DA value (YYYYMMDD; YYYY.MM.DD accepted) or None."""
    digits = text.replace(".", "").strip()
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8])) if len(digits) == 8 else None
    except ValueError:
        return None


def _age_text(years: float) -> str:
    years += 1e-9  # "2W" is 14 days, not 13.99...
    if years >= 2:
        return f"{int(years)} years"
    if years >= 1 / 12:
        return f"{int(years * 12)} months"
    days = years * 365.25
    return f"{int(days / 7)} weeks" if days >= 14 else f"{int(days)} days"


def reading(subject: Subject) -> list[Finding]:
    """What the reader had to work around in the file (a header value it could not use, and what it did instead)."""
    notes = subject.record.notes if subject.record is not None else ()
    return [Note("reading", f"file read with a repair: {note}") for note in notes]


HEADER = (reading, modality, body_part, view_position, frames)
IMAGE = (colour, aspect, flat, faint, detail)
