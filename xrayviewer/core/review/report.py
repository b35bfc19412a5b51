"""The review report: one row per film (AI results, the reader's decision, agreement) and a summary; as CSV, or as
a page people read (`page`: a header and a table, which the viewer and `xrayviewer report --pdf` print to PDF)."""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from datetime import datetime
from html import escape
from pathlib import Path

from xrayviewer.core.analysis.wording import percent
from xrayviewer.core.reading.readable import age_sex, dicom_date, person_name
from xrayviewer.core.review.session import films_text
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


def ai_text(film: FilmRow, model: str) -> str:
    """A film's result of `model` as the page shows it: label and probability, why it was refused, or nothing."""
    r, call = film.results.get(model), ai_call(film, model)
    if r is None or call == "not analysed":
        return "unreadable" if film.info.error else "not analysed"
    if call == "refused":
        return "refused: " + "; ".join(r.refused)
    return call.upper() + ("" if r.probability is None else f" {percent(r.probability)}") + (
        " (out of scope)" if r.out_of_scope else "")


def page(films: list[FilmRow], made: datetime | None = None) -> str:
    """The report as HTML for a printed page: a header (the date, the readers, the counts, 'research use only', each
    model with its threshold, its calls and its agreement with the reader) and one table row per film with the
    CSV's content (its UIDs and file hash left to the CSV)."""
    made = made or datetime.now()
    done, models = summary(films), models_in(films)
    readers = sorted({f.decision.reader or "(no name)" for f in films if f.decision})
    counts = [films_text(done["films"]), f"{done['reviewed']} reviewed",
              f"{done['films'] - done['reviewed']} not reviewed"]
    counts += [f"{n} {d}" for d in DECISIONS if (n := done["decisions"].get(d))]
    if done["unreadable"]:
        counts.append(f"{done['unreadable']} unreadable")
    folders = sorted({os.path.dirname(f.info.path) for f in films})
    lines = [f"<b>Date:</b> {made:%Y-%m-%d %H:%M}", "<b>Reader:</b> " + escape(", ".join(readers) or "no decision yet"),
             "<b>Films:</b> " + ", ".join(counts),
             "<b>Folder:</b> " + escape(os.path.commonpath(folders) if folders else "-")]
    for m in models:
        thresholds = sorted({r.threshold for f in films if (r := f.results.get(m)) and r.threshold is not None})
        calls, stats = done["models"][m]["ai"], done["models"][m]
        agreed = (f"agrees with the reader on {stats['agree']} of {stats['compared']}" if stats["compared"] else
                  "no reader decision to compare")
        lines.append(f"<b>AI model:</b> {escape(m)}, threshold " + (", ".join(f"{t:.3f}" for t in thresholds) or "-")
                     + "; " + ", ".join(f"{calls.get(c, 0)} {c}" for c in AI_COLUMNS) + f"; {agreed}")
    head = ["#", "Film", "Patient", "ID", "Age/Sex", "Study", "Accession", "View",
            *(c for m in models for c in (m, "Agrees")), "Decision", "Reader", "Decided", "Note"]
    cells = []
    for n, f in enumerate(films, 1):
        i, d = f.info, f.decision
        note = "; ".join(filter(None, (f"unreadable: {i.error}" if i.error else "", d.note if d else "")))
        cells.append([str(n), Path(i.path).name, person_name(i.patient_name), i.patient_id,
                      age_sex(i.patient_age, i.patient_sex), dicom_date(i.study_date), i.accession,
                      " ".join(filter(None, (i.modality, i.view_position))),
                      *(c for m in models for c in (ai_text(f, m), {True: "yes", False: "no", None: ""}[
                          agreement(f, m)])),
                      d.decision if d else "", d.reader if d else "", d.decided_at[:16].replace("T", " ") if d else "",
                      note])
    shown = [k for k, h in enumerate(head) if h in ("#", "Film", "Decision", "Note") or any(r[k] for r in cells)]
    wraps = ("Patient", "Note")  # the other cells stay on one line where they are short
    table = "".join("<tr>" + "".join(_cell("td", row[k], head[k] not in wraps) for k in shown) + "</tr>"
                    for row in cells)
    return (f"<html><head><title>Worklist report {made:%Y-%m-%d}</title></head><body style='font-size: 9pt'>"
            f"<h2>Worklist report, {made:%Y-%m-%d}</h2>"
            "<p style='color: #a00000'><b>Research use only, not a diagnosis.</b> AI results without a reader "
            "decision are not verified by a reader.</p>"
            "<p>" + "<br>".join(lines) + "</p>"
            "<table border='1' cellspacing='0' cellpadding='2' width='100%' style='border-collapse: collapse; "
            "font-size: 7pt'><thead><tr>" + "".join(_cell("th", head[k], True) for k in shown) + "</tr></thead>"
            + table + "</table>"
            "<p style='font-size: 7pt'>Film UIDs and file hashes: in the CSV export of the same report. Columns empty "
            "for every film are left out.</p></body></html>")


def _cell(tag: str, text: str, one_line: bool) -> str:
    """A table cell; a short one (or a header) is kept on one line, a long one (a refusal, a note) wraps; the note
    column takes a fifth of the width."""
    style = " style='white-space: nowrap'" if one_line and len(text) <= 32 else ""
    shade = (" bgcolor='#dddddd'" + (" width='20%'" if text == "Note" else "")) if tag == "th" else ""
    return f"<{tag}{style}{shade}>{escape(text)}</{tag}>"
