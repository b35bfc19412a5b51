"""The review report: one row per film (AI results, the reader's decision, agreement) and a summary."""

from __future__ import annotations

import csv
import io
from collections import Counter

from xrayviewer.core.review.store import DECISIONS, FilmRow

AI_LABELS = {"NORMAL": "normal", "PNEUMONIA": "pneumonia"}
AI_COLUMNS = ("normal", "pneumonia", "refused", "not analysed")


def ai_call(film: FilmRow, model: str) -> str:
    """What the model said about the film: normal, pneumonia, refused or not analysed."""
    result = film.results.get(model)
    if result is None or film.info.error:
        return "not analysed"
    if result.refused and not result.out_of_scope:
        return "refused"
    return AI_LABELS.get(result.label or "", "not analysed")


def agreement(film: FilmRow, model: str) -> bool | None:
    """Whether the reader's normal/pneumonia decision matches the model's label; None when either has none."""
    call = ai_call(film, model)
    if film.decision is None or film.decision.decision not in AI_LABELS.values() or call not in AI_LABELS.values():
        return None
    return film.decision.decision == call


def models_in(films: list[FilmRow]) -> list[str]:
    return sorted({m for f in films for m in f.results})


def rows(films: list[FilmRow]) -> list[dict]:
    """One flat row per film, with a column group per model."""
    models = models_in(films)
    out = []
    for f in films:
        i, d = f.info, f.decision
        row = {"film_id": f.id, "path": i.path, "patient_id": i.patient_id, "patient_name": i.patient_name,
               "patient_age": i.patient_age, "patient_sex": i.patient_sex, "accession": i.accession,
               "study_date": i.study_date, "study_uid": i.study_uid, "sop_uid": i.sop_uid, "modality": i.modality,
               "view": i.view_position, "sha256": i.sha256, "error": i.error or ""}
        for m in models:
            r = f.results.get(m)
            row[f"{m}_probability"] = "" if r is None or r.probability is None else r.probability
            row[f"{m}_label"] = (r.label or "") if r else ""
            row[f"{m}_refused"] = "; ".join(r.refused) if r else ""
            row[f"{m}_agrees"] = {True: "yes", False: "no", None: ""}[agreement(f, m)]
        row.update({"decision": d.decision if d else "", "note": d.note if d else "",
                    "reader": d.reader if d else "", "decided_at": d.decided_at if d else ""})
        out.append(row)
    return out


def summary(films: list[FilmRow]) -> dict:
    """Counts, reader-vs-AI agreement and confusion per model."""
    decided = Counter(f.decision.decision if f.decision else "not reviewed" for f in films)
    per_model = {}
    for m in models_in(films):
        confusion = {reader: dict.fromkeys(AI_COLUMNS, 0) for reader in (*DECISIONS, "not reviewed")}
        for f in films:
            confusion[f.decision.decision if f.decision else "not reviewed"][ai_call(f, m)] += 1
        agrees = [a for a in (agreement(f, m) for f in films) if a is not None]
        calls = Counter(ai_call(f, m) for f in films)
        per_model[m] = {"ai": dict(calls), "compared": len(agrees), "agree": sum(agrees),
                        "agreement": round(sum(agrees) / len(agrees), 4) if agrees else None,
                        "confusion_reader_vs_ai": confusion}
    return {"films": len(films), "unreadable": sum(bool(f.info.error) for f in films),
            "reviewed": len(films) - decided["not reviewed"], "decisions": dict(decided), "models": per_model}


def to_csv(table: list[dict]) -> str:
    if not table:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buffer.getvalue()
