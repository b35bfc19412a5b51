"""Fill a review store from folders of films: analyse what is new or changed, skip what is already there.

Resumable by construction: each film is written with its results in one transaction after it is analysed,
so a run killed half-way leaves whole films or none, and the next run starts where it stopped. A film whose
size and modification time are unchanged is skipped without reading it; a touched file whose content hash is
unchanged keeps its results; a file found at a new path with the content of a missing one keeps its decisions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.reading.digest import file_sha256
from xrayviewer.core.reading.display import to_display
from xrayviewer.core.reading.readable import age_at
from xrayviewer.core.reading.record import ImageRecord
from xrayviewer.core.review.store import FilmInfo, ModelResult, ReviewStore

BATCH = 16


@dataclass
class FilmEvent:
    """What the worklist did with one film: analysed, unchanged, moved or error."""

    path: str
    status: str
    film_id: int | None = None
    info: FilmInfo | None = None
    results: list[ModelResult] = field(default_factory=list)

    def as_dict(self) -> dict:
        info = self.info
        return {"path": self.path, "status": self.status, "film_id": self.film_id,
                "patient_id": info.patient_id if info else "", "study_date": info.study_date if info else "",
                "sop_uid": info.sop_uid if info else "", "error": info.error if info else None,
                "results": {r.model: r.as_dict() for r in self.results}}


@dataclass
class _Pending:
    info: FilmInfo
    record: ImageRecord
    display: np.ndarray
    models: list[str]
    replace: bool


def sop_uid(path: str | Path) -> str:
    """The SOP Instance UID of a DICOM file ('' when it has none)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"], force=True)
    except Exception:  # noqa: BLE001 - the film itself was read; a missing UID is not an error
        return ""
    return str(ds.get("SOPInstanceUID", "") or "")


def film_path(raw: str | Path) -> Path:
    """The path a film is kept under: absolute, with links left as they are, so that a film reached through a
    linked file or folder stays inside the folder the reader chose to review."""
    return Path(os.path.abspath(raw))


def film_info(path: Path, sha256: str, record: ImageRecord | None = None, error: str | None = None) -> FilmInfo:
    """The store's view of a film: file identity plus header fields when it was read; without a PatientAge, the
    age at the study (or acquisition) computed from the birth date."""
    stat = path.stat()
    base = FilmInfo(str(path), stat.st_size, stat.st_mtime_ns, sha256, error=error)
    if record is None:
        return base
    m = record.metadata
    return FilmInfo(str(path), stat.st_size, stat.st_mtime_ns, sha256,
                    sop_uid(path) if record.format == "dicom" else "", m.study_uid, m.series_uid, m.patient_id,
                    m.patient_name, m.study_date, m.study_description, m.modality, m.view_position, m.accession,
                    m.patient_age or age_at(m.patient_birth_date, m.study_date or m.acquisition_date), m.patient_sex)


class Worklist:
    """Scans paths into a store with one engine and one or more models."""

    def __init__(self, store: ReviewStore, engine: Engine, models: list[str]) -> None:
        self.store, self.engine, self.models = store, engine, models
        self._model_hashes: dict[str, tuple[str, str]] = {}  # requested name -> (card name, file hash)

    def model_key(self, name: str) -> tuple[str, str]:
        """The card name results are stored under and the model file's SHA-256."""
        if name not in self._model_hashes:
            model = self.engine.model(name)
            self._model_hashes[name] = (model.card.name, model.digest)
        return self._model_hashes[name]

    def scan(self, paths: list[str | Path], skipped: Callable[[Path, int], None] = lambda folder, count: None
             ) -> list[tuple[Path, str | None]]:
        """The films under `paths` (path, problem or None), in browser order; refuses a store among them. A folder's
        files that are not images are left out: `skipped(folder, how many)`."""
        from xrayviewer.core.reading.study import image_paths  # the readers load on first use (the viewer's cold start)

        self._check_not_among(paths)
        return [(p, problem) for p, problem in image_paths(list(paths), skipped)
                if not self._is_store_file(p.resolve())]

    def first(self, paths: list[str | Path]) -> list[tuple[Path, None]]:
        """The first film under `paths` as a one-item `scan` result (empty when none is found at once): what a
        viewer analyses before it scans the rest."""
        from xrayviewer.core.reading.study import first_image

        self._check_not_among(paths)
        path = first_image(list(paths))
        return [] if path is None or self._is_store_file(path.resolve()) else [(path, None)]

    def run(self, paths: list[str | Path], cancelled: Callable[[], bool] = lambda: False,
            skipped: Callable[[Path, int], None] = lambda folder, count: None) -> Iterator[FilmEvent]:
        """Yield one event per film found under `paths`, writing each analysed film before yielding it."""
        return self.run_items(self.scan(paths, skipped), cancelled)

    def run_items(self, items: list[tuple[Path, str | None]],
                  cancelled: Callable[[], bool] = lambda: False) -> Iterator[FilmEvent]:
        """As `run`, for the result of `scan`."""
        keys = {name: self.model_key(name) for name in self.models}
        # every stored result, read once when an unchanged film first needs its own (never for a run of new films,
        # such as the viewer's first film)
        stored = cache(lambda: {f.id: list(f.results.values()) for f in self.store.films()})
        pending: list[_Pending] = []
        batch = 1  # the first film alone, so that the viewer can show it at once; then batches of BATCH
        for raw, problem in items:
            if cancelled():
                return
            event = self._plan(film_path(raw), problem, keys, pending, stored)
            if event is not None:
                yield from self._flush(pending, keys)  # keep the output in scan order
                yield event
            if len(pending) >= batch:
                yield from self._flush(pending, keys)
                batch = BATCH
        yield from self._flush(pending, keys)

    def _plan(self, path: Path, problem: str | None, keys: dict, pending: list[_Pending],
              stored: Callable[[], dict[int, list[ModelResult]]]) -> FilmEvent | None:
        """Either an event right away (unchanged, with its stored results; error) or the film queued for analysis
        (None)."""
        try:
            stat = path.stat()
        except OSError as exc:
            return FilmEvent(str(path), "error", info=FilmInfo(str(path), 0, 0, "", error=str(exc)))
        known = self.store.film_by_path(path)
        wanted = {card: digest for card, digest in keys.values()}
        if known and (known[1].size, known[1].mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            if known[1].error or self._has_all(known[0], wanted):
                return FilmEvent(str(path), "unchanged", known[0], known[1], stored().get(known[0], []))
        try:
            sha = file_sha256(path)
        except OSError as exc:
            return FilmEvent(str(path), "error", info=FilmInfo(str(path), stat.st_size, 0, "", error=str(exc)))
        status = "analysed"
        if known is None:
            moved = [(i, f) for i, f in self.store.film_by_hash(sha) if not Path(f.path).exists()]
            if moved:
                known = moved[0][0], film_info(path, sha, error=moved[0][1].error)
                self.store.move_film(known[0], known[1])
                status = "moved"
        same = known is not None and known[1].sha256 == sha
        if same and (known[1].error or self._has_all(known[0], wanted)):
            self.store.touch_film(known[0], stat.st_mtime_ns)
            return FilmEvent(str(path), "unchanged" if status == "analysed" else status, known[0], known[1],
                             stored().get(known[0], []))
        try:
            if problem:
                raise XRayViewerError(path, "skipped", problem)
            from xrayviewer.core.reading.reader import read_image  # on first use (the viewer's cold start)

            record = read_image(path)
            display = to_display(record)
        except XRayViewerError as exc:
            info = film_info(path, sha, error=str(exc))
            return FilmEvent(str(path), "error", self.store.put_film(info, [], replace_results=True), info)
        have = self.store.models_of(known[0]) if same else {}
        missing = [name for name, (card, digest) in keys.items() if have.get(card) != digest]
        pending.append(_Pending(film_info(path, sha, record), record, display, missing, not same))
        return None

    def _flush(self, pending: list[_Pending], keys: dict) -> Iterator[FilmEvent]:
        """Analyse the queued films (one batch per model) and write each with its results."""
        if not pending:
            return
        results: list[list[ModelResult]] = [[] for _ in pending]
        for name in self.models:
            todo = [i for i, p in enumerate(pending) if name in p.models]
            if not todo:
                continue
            model = self.engine.model(name)
            card, digest = keys[name]
            inferences = self.engine.infer(model, [pending[i].display for i in todo])
            for i, inference in zip(todo, inferences):
                a = self.engine.analysis(model, inference, pending[i].display, None, record=pending[i].record)
                results[i].append(ModelResult(
                    card, digest, a.provider, a.threshold,
                    None if a.probability is None else round(a.probability, 6), a.label,
                    [str(r) for r in a.refused], a.out_of_scope, a.ood_score))
        for p, film_results in zip(pending, results):
            film_id = self.store.put_film(p.info, film_results, replace_results=p.replace)
            yield FilmEvent(p.info.path, "analysed", film_id, p.info, film_results)
        pending.clear()

    def _has_all(self, film_id: int, wanted: dict[str, str]) -> bool:
        have = self.store.models_of(film_id)
        return all(have.get(card) == digest for card, digest in wanted.items())

    def _is_store_file(self, path: Path) -> bool:
        if self.store.path is None:  # a database server's store
            return False
        db = self.store.path.resolve()
        return path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"))

    def _check_not_among(self, paths: list[str | Path]) -> None:
        if self.store.path is None:
            return
        db = self.store.path.resolve()
        for raw in paths:
            folder = Path(raw).resolve()
            if folder.is_dir() and folder in db.parents:
                raise XRayViewerError(db, "the review database lies among the films",
                                      f"it is inside {folder}, which is being scanned",
                                      "Keep it in the user's data folder (the default) or give --db elsewhere.")
