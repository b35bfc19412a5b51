"""Review mode soak: resident memory while the reader steps through a worklist again and again.

    QT_QPA_PLATFORM=offscreen python benchmarks/soak.py [--films 300] [--passes 2] [--db F] [--kermany DIR]

The first N films of --kermany by name, alternating NORMAL/PNEUMONIA (review.copy_films), are copied into a
temporary folder; the real MainWindow (provider cpu, the shipped model "mobilenetv2", a real review store: --db,
else a fresh one) reviews it (review_paths) and the run waits until the worklist is filled and its first film is
analysed; `first_film_s` is the time from review_paths to the first film analysed on screen (the issue's goal:
within 2 s for a folder of any size). Then --passes passes: Home, and Down through every film of the worklist
(QTest.keyClick on the left viewport), each time waiting until the film is on screen with every visible pane's
analysis shown and no worker in flight (neither the window's nor the decode-ahead). Every 10th film of a pass
toggles side-by-side comparison (window.compare_action) and the heatmap (key H); each pass starts with comparison
off and the heatmap shown.

Resident memory (VmRSS of /proc/self/statm, MB = 2^20 bytes) after gc.collect(): at the window shown, after the
fill, after each pass; the peak is sampled (without gc.collect) after every film. At the end, after gc.collect(),
the live xrayviewer.gui.workers.Worker and xrayviewer.core.ImageRecord objects are counted (gc.get_objects()).
The goal of the issue: on 300 films the second pass grows resident memory by <= 15 MB.

Prints one JSON object. The helpers here (rss_mb, live, wait_until, open_review) are shared with
random_actions.py and tests/test_soak.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from review import MODEL, chest_films, copy_films

TIMEOUT_S = 120
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb(collect: bool = False) -> float:
    """This process's resident memory in MB (2^20 bytes), after gc.collect() when `collect`."""
    if collect:
        gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def live(cls: type) -> int:
    """How many objects of `cls` (or a subclass) the garbage collector knows of, after a collection."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, cls))


def wait_until(done: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    """Process Qt events (5 ms steps) until `done()`; TimeoutError after `timeout` seconds."""
    from PySide6.QtTest import QTest

    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        QTest.qWait(5)


def idle(window) -> bool:
    """No worker of the window in flight: neither its own nor a decode-ahead."""
    return not window.workers and not window._ahead


def shown(window, path: str | Path | None = None) -> bool:
    """The film `path` (default: any) is on screen and every visible pane shows its analysis."""
    record = window.record
    return (record is not None and (path is None or Path(record.path) == Path(path))
            and all(p.analysis is not None for p in window.visible_panes()))


def analysed(window, path: str | Path | None = None) -> bool:
    """As `shown`, and no worker in flight."""
    return shown(window, path) and idle(window)


def application():
    from xrayviewer.gui.app import application as app

    return app()


def open_review(folder: Path, db: Path, films: int, provider: str = "cpu", window_class=None):
    """The real MainWindow shown (1400x900), reviewing `folder`: returns (window, rss_mb at shown, rss_mb filled)
    once the worklist holds `films` films and the first one is analysed."""
    from PySide6.QtTest import QTest

    from xrayviewer.gui.main_window import MainWindow

    application()
    window = (window_class or MainWindow)(provider, models=[MODEL], db=db)
    window.resize(1400, 900)
    window.show()
    window.activateWindow()
    QTest.qWaitForWindowExposed(window)
    wait_until(lambda: idle(window), "the window's start")
    rss_shown = rss_mb(collect=True)
    start = time.perf_counter()
    window.review_paths([folder])
    wait_until(lambda: shown(window), "the first film")
    window.first_film_s = time.perf_counter() - start  # from the folder given to its first film analysed on screen
    wait_until(lambda: len(window.worklist.table.films) == films and analysed(window), "the worklist's fill",
               timeout=TIMEOUT_S + films)
    return window, rss_shown, rss_mb(collect=True)


def close(window) -> None:
    """Let the workers end, forget what the run chose (settings of the tests' shared config), close, delete."""
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtTest import QTest

    wait_until(lambda: idle(window), "the last workers")
    window.saved.store.clear()
    window.close()
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QTest.qWait(10)


def soak(folder: Path, db: Path, films: int, passes: int, provider: str = "cpu") -> dict:
    """The measurements of the module docstring for a window reviewing `folder` (`films` films)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from xrayviewer.core import ImageRecord
    from xrayviewer.gui.workers import Worker

    start = time.perf_counter()
    window, rss_start, rss_filled = open_review(folder, db, films, provider)
    view = window.panes[0].view
    peak, after_pass = max(rss_start, rss_filled), []
    for _ in range(passes):
        window.compare_action.setChecked(False)
        window.panel.visible.setChecked(True)
        order = [Path(f.info.path) for f in window.worklist.order()]
        view.setFocus()
        if window.worklist.current_row() != 0:
            QTest.keyClick(view, Qt.Key.Key_Home)
        wait_until(lambda: analysed(window, order[0]), "Home")
        for i in range(1, len(order)):
            if i % 10 == 0:
                window.compare_action.setChecked(not window.compare_action.isChecked())
                QTest.keyClick(view, Qt.Key.Key_H)
            QTest.keyClick(view, Qt.Key.Key_Down)
            wait_until(lambda: analysed(window, order[i]), f"film {i} of the pass ({order[i].name}) analysed")
            peak = max(peak, rss_mb())
        after_pass.append(rss_mb(collect=True))
    workers, records = live(Worker), live(ImageRecord)
    close(window)
    growth = after_pass[1] - after_pass[0] if passes >= 2 else None
    return {
        "films": films, "passes": passes, "first_film_s": round(window.first_film_s, 2),
        "rss_start_mb": round(rss_start, 1), "rss_after_fill_mb": round(rss_filled, 1),
        "rss_after_pass_mb": [round(r, 1) for r in after_pass], "rss_peak_mb": round(max([peak, *after_pass]), 1),
        "growth_second_pass_mb": None if growth is None else round(growth, 2),
        "growth_per_100_films_mb": None if growth is None else round(growth / films * 100, 2),
        "live_workers": workers, "live_records": records,
        "seconds": round(time.perf_counter() - start, 1),
    }


@contextmanager
def scratch(kermany: Path, films: int, prefix: str) -> Iterator[Path]:
    """A temporary folder with `films` films copied into films/, and its own settings and data folders (the user's
    are left alone); offscreen unless a display was asked for."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        os.environ.update(XDG_CONFIG_HOME=str(work / "config"), XDG_DATA_HOME=str(work / "data"))
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        copy_films(kermany, work / "films", films)
        yield work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--films", type=int, default=300)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--db", type=Path, help="the review store (default: a fresh one in the temporary folder)")
    parser.add_argument("--kermany", type=Path, default=chest_films())
    parser.add_argument("--provider", default="cpu")
    args = parser.parse_args()
    with scratch(args.kermany, args.films, "xrayviewer-soak-") as work:
        result = soak(work / "films", args.db or work / "store" / "review.sqlite", args.films, args.passes,
                      args.provider)
    print(json.dumps({**result, "provider": args.provider, "load_average": os.getloadavg()[0],
                      "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
