"""Review mode speed: the worklist into the review store, its unchanged rerun, the store's size, and "next film".

    QT_QPA_PLATFORM=offscreen python benchmarks/review.py [--films 1000] [--moves 20] [--repeat 3]

What is timed (real films, the shipped model "mobilenetv2", the real store, worklist and main window; no mocks):
  worklist_films_per_s         N / seconds of `list(Worklist(store, engine, ["mobilenetv2"]).run([folder]))` on a
                               fresh SQLite file: scan, hash, decode, model, one transaction per film. The first N
                               films of --kermany by name, alternating NORMAL/PNEUMONIA, are copied into a temporary
                               folder. One engine for all repeats, its model loaded before the clock.
  rerun_unchanged_films_per_s  the same call again on the same store and folder (every film "unchanged").
  db_mb_per_1000_films         the store's file (+ its -wal, if one is left after close) in MB (10^6 bytes),
                               scaled to 1,000 films.
  next_film_ms                 in the real MainWindow reviewing a worklist (review_paths), from the Down key
                               (QTest.keyClick on the viewport: step_film -> show_worklist_film -> open_image) to
                               the end of the first paint of the left viewport that shows the next film's record,
                               for the 224-px films of the worklist and for 6 copies (new SOPInstanceUIDs) of
                               RG1_J2KR.dcm (JPEG 2000, 1955x1841). Before each move every worker has finished
                               (the previous film's analysis and its decode-ahead); moves alternate between the
                               next film decoded ahead (in the window's FilmCache) and not (the window's cache
                               emptied in place, as a new FilmCache of the same size: FilmCache has no clear(), so the
                               move decodes it). At the end of the worklist, Home (untimed) starts it again.
Medians over --repeat runs (worklist) and over --moves moves per case. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

MODEL = "mobilenetv2"
TIMEOUT_S = 120


def chest_films() -> Path:
    """$XRAYVIEWER_CHEST_FILMS, else ../shared/data/kermany224/train beside the clone (where the tests look)."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "kermany224" / "train"
    return Path(os.environ.get("XRAYVIEWER_CHEST_FILMS") or shared)


def copy_films(source: Path, folder: Path, n: int) -> None:
    """The first `n` films by name, alternating NORMAL and PNEUMONIA, copied into `folder`."""
    classes = [sorted(p for p in (source / c).iterdir() if p.is_file()) for c in ("NORMAL", "PNEUMONIA")]
    folder.mkdir()
    for i in range(n):
        film = classes[i % 2][i // 2]
        shutil.copy(film, folder / f"film{i:05d}{film.suffix}")


def copy_dicom(folder: Path, n: int) -> None:
    """`n` copies of the demo's JPEG 2000 chest CR, each a film of its own (new SOP Instance UID)."""
    import pydicom
    from pydicom.uid import generate_uid

    from xrayviewer.demo import data_store_folder

    folder.mkdir()
    ds = pydicom.dcmread(data_store_folder() / "RG1_J2KR.dcm")
    for i in range(n):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.save_as(folder / f"rg1-{i}.dcm")


def run_worklist(db: Path, folder: Path, engine) -> tuple[float, Counter]:
    """Seconds of one worklist run over `folder` into the store `db`, and the events' statuses."""
    from xrayviewer.core.review.store import ReviewStore
    from xrayviewer.core.review.worklist import Worklist

    with ReviewStore(db) as store:
        start = time.perf_counter()
        events = list(Worklist(store, engine, [MODEL]).run([folder]))
        seconds = time.perf_counter() - start
    return seconds, Counter(e.status for e in events)


def next_film_ms(folder: Path, db: Path, moves: int, provider: str) -> dict[str, float]:
    """Median ms from Down to the next worklist film painted, decoded ahead and not (see the module docstring)."""
    from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer
    from PySide6.QtTest import QTest

    from xrayviewer.gui.app import application
    from xrayviewer.gui.main_window import MainWindow

    app = application()
    loop, poll = QEventLoop(), QTimer()
    poll.setInterval(10)

    def wait(done: Callable[[], bool], what: str) -> None:
        """Run the event loop until `done()` (checked every 10 ms)."""
        deadline = time.monotonic() + TIMEOUT_S
        check = lambda: (done() or time.monotonic() > deadline) and loop.quit()  # noqa: E731
        poll.timeout.connect(check)
        if not done():
            poll.start()
            loop.exec()
            poll.stop()
        poll.timeout.disconnect(check)
        if not done():
            raise TimeoutError(f"{what}: not within {TIMEOUT_S} s")

    class PaintClock(QObject):
        """Paints the viewport itself when it paints `target`'s record, and notes the time after the paint."""

        target: Path | None = None
        shown_at: float | None = None

        def eventFilter(self, view, event) -> bool:  # noqa: N802 - Qt's name
            if (event.type() == QEvent.Type.Paint and self.target is not None and view.record is not None
                    and Path(view.record.path) == self.target):
                view.paintEvent(event)
                self.shown_at, self.target = time.perf_counter(), None
                return True
            return False

    window = MainWindow(provider, models=[MODEL], db=db)
    window.resize(1400, 900)
    window.show()
    idle = lambda: not window.workers and not window._ahead  # noqa: E731
    window.review_paths([folder])
    wait(lambda: idle() and window.record is not None, "the worklist's first film")
    view = window.panes[0].view
    clock = PaintClock()
    view.installEventFilter(clock)
    times: dict[str, list[float]] = {"decoded_ahead": [], "not_decoded_ahead": []}
    for move in range(2 * moves):
        order = window.worklist.order()
        if window.worklist.current_row() >= len(order) - 1:
            QTest.keyClick(view, Qt.Key.Key_Home)
            wait(lambda: idle() and Path(window.record.path) == Path(order[0].info.path), "Home")
        wait(idle, "the workers")
        target = Path(order[window.worklist.current_row() + 1].info.path)
        ahead = move % 2 == 0
        if not ahead:
            window.films.__init__(window.films.size)  # emptied in place: the window's parts share this cache
        assert window.films.holds(target) == ahead, target
        clock.target, clock.shown_at = target, None
        view.setFocus()
        start = time.perf_counter()
        QTest.keyClick(view, Qt.Key.Key_Down)
        wait(lambda: clock.shown_at is not None, f"{target.name} on screen")
        times["decoded_ahead" if ahead else "not_decoded_ahead"].append((clock.shown_at - start) * 1000)
    wait(idle, "the workers")
    view.removeEventFilter(clock)
    window.close()
    app.processEvents()
    return {case: round(statistics.median(ms), 1) for case, ms in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--films", type=int, default=1000)
    parser.add_argument("--moves", type=int, default=20, help="timed moves per case (decoded ahead or not)")
    parser.add_argument("--repeat", type=int, default=3, help="worklist runs, each into a fresh store")
    parser.add_argument("--kermany", type=Path, default=chest_films())
    parser.add_argument("--provider", default="auto")
    args = parser.parse_args()
    load_average = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="xrayviewer-review-") as tmp:
        work = Path(tmp)
        os.environ.update(XDG_CONFIG_HOME=str(work / "config"), XDG_DATA_HOME=str(work / "data"))  # no user settings
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from xrayviewer.core.analysis.engine import Engine

        films = work / "films"
        copy_films(args.kermany, films, args.films)
        engine = Engine(args.provider)
        provider = engine.model(MODEL).provider  # loaded before the clock
        first, rerun = [], []
        for r in range(args.repeat):
            db = work / f"store{r}" / "review.sqlite"
            seconds, first_statuses = run_worklist(db, films, engine)
            first.append(seconds)
            seconds, rerun_statuses = run_worklist(db, films, engine)
            rerun.append(seconds)
        db_bytes = sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
        copy_dicom(work / "dicom", 6)
        next_film = {
            "kermany224": next_film_ms(films, db, args.moves, args.provider),
            "dicom_j2k_1955x1841": next_film_ms(work / "dicom", work / "dicom-store" / "review.sqlite", args.moves,
                                                args.provider),
        }
    print(json.dumps({
        "films": args.films,
        "worklist_films_per_s": round(args.films / statistics.median(first), 1),
        "rerun_unchanged_films_per_s": round(args.films / statistics.median(rerun), 1),
        "db_mb_per_1000_films": round(db_bytes / args.films * 1000 / 1e6, 3),
        "next_film_ms": next_film,
        "statuses": {"first": dict(first_statuses), "rerun": dict(rerun_statuses)},
        "db_bytes": db_bytes, "repeat": args.repeat, "moves": args.moves, "provider": provider,
        "load_average": load_average, "load_average_end": os.getloadavg()[0], "cores": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
