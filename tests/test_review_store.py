"""The review store, `xrayviewer worklist` and `xrayviewer report`: real SQLite files, real processes, real films."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_models import build

from xrayviewer.core.review import report as review_report
from xrayviewer.core.review.store import (DB_ENV, SCHEMA_VERSION, FilmInfo, Mark, ModelResult, ReviewStore,
                                          default_db_path)


def xrayviewer(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True, timeout=300,
                          **kwargs)


def copy_films(kermany: Path, folder: Path, n: int, start: int = 0) -> list[Path]:
    """`n` real chest films, half normal, half pneumonia. Where `kermany` has fewer (the 16 films kept with the tests),
    they come round again, each later round shifted sideways by as many pixels as rounds gone and saved anew: every
    film a picture of its own (its own content hash and model input), as in a real folder."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    classes = [sorted((kermany / name).iterdir()) for name in ("NORMAL", "PNEUMONIA")]
    out = []
    for i in range(start, start + n):
        films = classes[i % 2]
        again, index = divmod(i // 2, len(films))
        target = folder / f"film{i:03d}{films[index].suffix}"
        if again:
            gray = np.roll(cv2.imread(str(films[index]), cv2.IMREAD_GRAYSCALE), again, axis=1)
            cv2.imwrite(str(target), gray, [cv2.IMWRITE_JPEG_QUALITY, 95])
        else:
            shutil.copy(films[index], target)
        out.append(target)
    return out


@pytest.fixture
def tiny(tmp_path):
    return build(tmp_path / "tiny.onnx", bias=-1.0, ood_threshold=0.9)


def test_default_location_is_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(DB_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if sys.platform.startswith("linux"):
        assert default_db_path() == tmp_path / "data" / "xrayviewer" / "review.sqlite"
    monkeypatch.setenv(DB_ENV, str(tmp_path / "elsewhere.sqlite"))
    assert default_db_path() == tmp_path / "elsewhere.sqlite"


def test_decisions_marks_and_history_survive_reopening(tmp_path):
    db = tmp_path / "review.sqlite"
    info = FilmInfo(str(tmp_path / "a.png"), 10, 1, "ab" * 32, patient_id="P1")
    with ReviewStore(db) as store:
        film = store.put_film(info, [ModelResult("m", "h", probability=0.8, label="PNEUMONIA", threshold=0.5)])
        store.decide(film, "uncertain", reader="dr a")
        store.decide(film, "pneumonia", "right lower lobe", "dr a", {"m": {"probability": 0.8}})
        store.set_marks(film, [Mark("length", [(1, 2), (3, 4)], value=2.83, unit="mm"), Mark("text", [(5, 5)], "x")])
        with pytest.raises(ValueError, match="unknown decision"):
            store.decide(film, "maybe")
    with ReviewStore(db) as store:
        (row,) = store.films()
        assert row.decision.decision == "pneumonia" and row.decision.note == "right lower lobe"
        assert row.decision.ai_shown == {"m": {"probability": 0.8}}
        assert [d.decision for d in store.history(film)] == ["uncertain", "pneumonia"]
        assert store.marks(film)[0] == Mark("length", [(1.0, 2.0), (3.0, 4.0)], "", 2.83, "mm")
        assert row.results["m"].probability == 0.8 and store.integrity() == "ok"
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_worklist_survives_kill_9_and_resumes_without_duplicates(tmp_path, kermany, tiny):
    films = copy_films(kermany, tmp_path / "films", 120)
    db = tmp_path / "store" / "review.sqlite"
    args = [sys.executable, "-m", "xrayviewer", "worklist", str(tmp_path / "films"), "--db", str(db),
            "--model", str(tiny), "--provider", "cpu"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    printed = [process.stdout.readline() for _ in range(20)]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert all(json.loads(line)["status"] == "analysed" for line in printed)
    with ReviewStore(db) as store:
        stored_after_kill = {f.info.path for f in store.films()}
        assert store.integrity() == "ok"
    assert 20 <= len(stored_after_kill) < len(films)  # killed half-way; what was printed is stored

    result = xrayviewer(*args[3:])
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(films)
    assert {r["path"] for r in rows if r["status"] == "unchanged"} == stored_after_kill
    assert all(r["status"] == "analysed" for r in rows if r["path"] not in stored_after_kill)
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM films").fetchone() == (len(films), len(films))
    assert con.execute("SELECT COUNT(*) FROM results").fetchone()[0] == len(films)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    new = copy_films(kermany, tmp_path / "films", 1, start=200)[0]
    films[0].write_bytes(films[0].read_bytes())  # touched, same content
    result = xrayviewer(*args[3:])
    statuses = {json.loads(line)["path"]: json.loads(line)["status"] for line in result.stdout.splitlines()}
    assert statuses.pop(str(new)) == "analysed"
    assert set(statuses.values()) == {"unchanged"}
    assert con.execute("SELECT COUNT(*) FROM films").fetchone()[0] == len(films) + 1


def test_worklist_refuses_a_database_among_the_films(tmp_path, kermany, tiny):
    copy_films(kermany, tmp_path / "films", 1)
    result = xrayviewer("worklist", str(tmp_path / "films"), "--db", str(tmp_path / "films" / "r.sqlite"),
                        "--model", str(tiny))
    assert result.returncode == 1 and "lies among the films" in result.stderr


def test_report_has_a_row_per_film_and_the_agreement(tmp_path, kermany, tiny, dicom_data):
    copy_films(kermany, tmp_path / "films", 6)
    (tmp_path / "films" / "broken.dcm").write_bytes((dicom_data / "RG1_UNCR.dcm").read_bytes()[:3000])
    db = tmp_path / "review.sqlite"
    assert xrayviewer("worklist", str(tmp_path / "films"), "--db", str(db), "--model", str(tiny)).returncode == 1
    with ReviewStore(db) as store:
        films = store.films()
        analysed = [f for f in films if not f.info.error]
        model = next(iter(analysed[0].results))
        for i, film in enumerate(analysed[:4]):  # two agree with the model, one disagrees, one uncertain
            call = review_report.ai_call(film, model)
            other = "normal" if call == "pneumonia" else "pneumonia"
            store.decide(film.id, (call, call, other, "uncertain")[i])
    result = xrayviewer("report", "--db", str(db), "--csv", str(tmp_path / "r.csv"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    table = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(table) == len(films) == summary["films"] == 7
    assert summary["unreadable"] == 1 and summary["reviewed"] == 4
    stats = summary["models"][model]
    assert (stats["compared"], stats["agree"], stats["agreement"]) == (3, 2, 0.6667)
    assert sum(stats["confusion_reader_vs_ai"]["uncertain"].values()) == 1
    assert [r[f"{model}_agrees"] for r in table if r["decision"]].count("yes") == 2
    broken = next(r for r in table if r["path"].endswith("broken.dcm"))
    assert "broken.dcm" in broken["error"] and broken["decision"] == ""
    result = xrayviewer("report", "--db", str(db), "--json", str(tmp_path / "r.json"))
    assert len(json.loads((tmp_path / "r.json").read_text())["films"]) == 7
    missing = xrayviewer("report", "--db", str(tmp_path / "none.sqlite"))
    assert missing.returncode == 1 and "no such review database" in missing.stderr


def test_worklist_rerun_prints_the_stored_results_of_unchanged_films(tmp_path, kermany, tiny):
    copy_films(kermany, tmp_path / "films", 2)
    args = ("worklist", str(tmp_path / "films"), "--db", str(tmp_path / "review.sqlite"), "--model", str(tiny),
            "--provider", "cpu")
    first, again = ([json.loads(line) for line in xrayviewer(*args).stdout.splitlines()] for _ in range(2))
    assert [r["status"] for r in first] == ["analysed"] * 2 and [r["status"] for r in again] == ["unchanged"] * 2
    assert [r["results"] for r in again] == [r["results"] for r in first]
    assert all(r["results"]["tiny"]["probability"] is not None for r in again)


def test_a_store_of_schema_1_opens_with_its_decisions_and_gains_the_new_columns(tmp_path):
    """Stores written before undo, drafts and the age/sex/accession columns keep every row."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE films (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, sop_uid TEXT NOT NULL DEFAULT '',
                study_uid TEXT NOT NULL DEFAULT '', series_uid TEXT NOT NULL DEFAULT '',
                patient_id TEXT NOT NULL DEFAULT '', patient_name TEXT NOT NULL DEFAULT '',
                study_date TEXT NOT NULL DEFAULT '', study_description TEXT NOT NULL DEFAULT '',
                modality TEXT NOT NULL DEFAULT '', view_position TEXT NOT NULL DEFAULT '', error TEXT,
                added_at TEXT NOT NULL);
            CREATE TABLE decisions (id INTEGER PRIMARY KEY, film_id INTEGER NOT NULL, decision TEXT NOT NULL,
                note TEXT NOT NULL DEFAULT '', reader TEXT NOT NULL DEFAULT '', decided_at TEXT NOT NULL,
                ai_shown TEXT NOT NULL DEFAULT '{}');
            CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO state VALUES ('schema_version', '1');
            INSERT INTO films (path, size, mtime_ns, sha256, patient_id, added_at)
                VALUES ('/films/a.dcm', 10, 1, 'ab', 'P1', '2026-11-30T10:00:00+00:00');
            INSERT INTO decisions (film_id, decision, note, reader, decided_at)
                VALUES (1, 'pneumonia', 'old note', 'Dr A', '2026-11-30T10:01:00+00:00');
        """)
    with ReviewStore(path) as store:
        (film,) = store.films()
        assert film.info.patient_id == "P1" and film.info.accession == "" and film.info.patient_sex == ""
        assert film.decision.decision == "pneumonia" and film.decision.note == "old note"
        assert store.state("schema_version") == str(SCHEMA_VERSION) == "4"
        store.set_draft(film.id, "draft")
        assert store.withdraw(film.id).decision == "pneumonia"
        assert store.film(film.id).decision is None and store.draft(film.id) == "draft"
        assert [(e.reader, e.action) for e in store.events(film.id)] == [("Dr A", "withdraw")]


def test_report_help_says_where_the_store_lives():
    text = " ".join(xrayviewer("report", "--help").stdout.split())
    assert "review.sqlite in the user's data folder" in text and "review mode uses the same one" in text
