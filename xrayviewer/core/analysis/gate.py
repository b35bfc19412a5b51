"""The gate in front of every model, shipped or user-brought: what it will not judge, and what it notes.

A check is any callable `Subject -> list[Finding]` (the types live in `findings`, which the checks import). A
`Refusal` among the findings means the model's answer must not be shown (unless the user forces it, and then it is
marked out of scope); a `Note` is shown beside the answer. The shipped checks (`xrayviewer.core.analysis.checks`)
read the DICOM header, simple image statistics and the model file's own out-of-distribution score; a
chest-radiograph detector (`xrayviewer.core.analysis.detector`) joins them when its file is present. Adding a check
changes no caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xrayviewer.core.analysis.findings import Finding, Note, Refusal, Subject, compared

DETECTOR_FILE = "chest-detector.onnx"  # in the shipped models' folder; optional


@dataclass(frozen=True)
class Verdict:
    refused: list[Refusal] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


Check = Callable[[Subject], list[Finding]]


def default_checks() -> list[Check]:
    """Header rules, image statistics, the model's own gate, the chest detector (if present), population."""
    from xrayviewer.core.analysis import checks
    from xrayviewer.core.analysis.detector import ChestDetector
    from xrayviewer.models import FOLDER

    return [*checks.HEADER, *checks.IMAGE, checks.model_ood, ChestDetector(FOLDER / DETECTOR_FILE),
            checks.population]


class Gate:
    """Runs every check on a subject and sorts the findings into refusals and notes."""

    def __init__(self, checks: Sequence[Check] | None = None) -> None:
        self.checks: list[Check] = list(checks) if checks is not None else default_checks()

    def __call__(self, subject: Subject) -> Verdict:
        findings = [f for check in self.checks for f in check(subject)]
        if self._detector_saw_a_chest_film(findings):
            findings = [_as_population_note(f) for f in findings]
        return Verdict([f for f in findings if isinstance(f, Refusal)], [f for f in findings if isinstance(f, Note)])

    def _detector_saw_a_chest_film(self, findings: list[Finding]) -> bool:
        from xrayviewer.core.analysis.detector import ChestDetector

        ran = any(isinstance(c, ChestDetector) and c.path.is_file() for c in self.checks)
        return ran and not any(f.code == "detector" for f in findings)


OOD_NOTE_FACTOR = 2.0  # a recognised chest film up to this many times the model's own OOD limit is analysed


def _as_population_note(finding: Finding) -> Finding:
    """The model's own OOD refusal of a film the detector recognised as a chest film, as a note.

    The feature-space score says the film is unlike the training films, not that it is no chest film:
    an adult's or another hospital's chest film is analysed, with the note in view. Far above the
    limit the refusal stands.
    """
    if finding.code != "ood_score" or finding.score is None or finding.limit is None \
            or finding.score > OOD_NOTE_FACTOR * finding.limit:
        return finding
    return Note("ood_population", "unlike the training films (out-of-distribution score "
                f"{compared(finding.score, '>', finding.limit)}), though recognised as a chest film: another "
                "population or another kind of machine; read the result with care", score=finding.score,
                limit=finding.limit)
