"""Review mode under seeded random use: errors, exceptions and resident memory of the real main window.

    QT_QPA_PLATFORM=offscreen python benchmarks/random_actions.py [--minutes 15] [--seed 7] [--films 60]
                                                                  [--actions N] [--limit-mb 1024]
                                                                  [--weight KIND=W ...]

The first --films films of --kermany (review.copy_films) are copied into a temporary folder and the real
MainWindow (provider cpu, the shipped model "mobilenetv2", a fresh review store) reviews it (soak.open_review:
waits until the worklist is filled). Then, for --minutes (or exactly --actions actions), actions drawn with
random.Random(--seed) from ACTIONS (weights beside each): Down, Up, Home, End, PgDn; decisions 1-4; N, a few
letters typed into the note, then Enter or Esc; side-by-side comparison on/off; heatmap on/off (H); the panel's
colormap and opacity; the CAM method; the provider among auto/cpu/cuda/dml (a provider this machine lacks must be
coped with); the Tags (Ctrl+T), Model card (the panel's button) and Shortcuts (F1) dialogs opened and closed; a
window/level drag and a wheel zoom on the left viewport; a film of the folder opened with window.open_image.
Keys go through QTest.keyClick on the left viewport (the window's shortcuts take them as a reader's keys), mouse
events through QApplication.sendEvent. After each action the events are processed for 0-200 ms (random); while
more than --backlog workers are in flight the run waits for them (two cores cannot keep up with a reader who never
stops, and a queue of analyses is not a leak).

Measured: resident memory (soak.rss_mb, no gc.collect) about every 5 s and at the end after gc.collect(); every
message the window shows in its error banner (counted through the window's Messages.errorShown signal) by
text; every Python exception raised inside a Qt slot (sys.excepthook, which PySide calls for
them) or a virtual method such as keyPressEvent or paintEvent (PySide 6.11 raises those in the Python code that
called into Qt: the action or the event processing after it, where they are caught) and every worker error that
is an unexpected Python exception ("TypeError: ..." in the banner); after the run and its workers have ended, the
live Worker objects and the window's QDialog children.
Prints one JSON object; exits 1 when there was an exception or the peak went over --limit-mb.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import string
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

from review import chest_films
from soak import close, idle, live, open_review, rss_mb, scratch, wait_until

PROVIDERS = ("auto", "cpu", "cuda", "dml")
SAMPLE_S = 5.0
PAUSES_MS = (0, 5, 20, 50, 200)
PYTHON_ERROR = re.compile(r"^[A-Z]\w*(Error|Exception|Iteration|Interrupt)\b: ")  # a worker's non-project error
PROVIDER_BANNER = re.compile(r"provider|unavailable|not available", re.IGNORECASE)


def observed_window_class(banners: Counter):
    """MainWindow whose banner messages (Messages.errorShown, once the window is built) are counted in `banners`."""
    from xrayviewer.gui.main_window import MainWindow

    class ObservedWindow(MainWindow):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.messages.errorShown.connect(lambda message: banners.update([message]))

    return ObservedWindow


class Session:
    """The window, its films and the seeded generator; one method per kind of action."""

    def __init__(self, window, films: list[Path], rng: random.Random) -> None:
        self.window, self.films, self.rng = window, films, rng
        self.view = window.panes[0].view
        self.unavailable_picks = 0

    def key(self, key, modifier=None) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        self.view.setFocus()
        QTest.keyClick(self.view, key, modifier or Qt.KeyboardModifier.NoModifier)

    def move(self, name: str) -> None:
        from PySide6.QtCore import Qt

        self.key(getattr(Qt.Key, f"Key_{name}"))

    def decide(self) -> None:
        from PySide6.QtCore import Qt

        self.key(getattr(Qt.Key, f"Key_{self.rng.randint(1, 4)}"))

    def note(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        self.key(Qt.Key.Key_N)
        note = self.window.worklist.note
        QTest.keyClicks(note, "".join(self.rng.choices(string.ascii_lowercase + " ", k=self.rng.randint(1, 6))))
        QTest.keyClick(note, self.rng.choice((Qt.Key.Key_Return, Qt.Key.Key_Escape)))
        self.view.setFocus()

    def compare(self) -> None:
        self.window.compare_action.trigger()

    def heatmap(self) -> None:
        from PySide6.QtCore import Qt

        self.key(Qt.Key.Key_H)

    def colormap(self) -> None:
        box = self.window.panel.colormap
        box.setCurrentIndex(self.rng.randrange(box.count()))

    def opacity(self) -> None:
        self.window.panel.opacity.setValue(self.rng.randint(0, 100))

    def method(self) -> None:
        box = self.window.panel.method
        box.setCurrentIndex(self.rng.randrange(box.count()))

    def provider(self) -> None:
        from xrayviewer.core.analysis.session import resolve_provider

        box = self.window.panel.provider
        choice = self.rng.choice(PROVIDERS)
        if choice != box.currentText():
            try:
                resolve_provider(choice)
            except Exception:  # noqa: BLE001 - this machine lacks it: the window must cope
                self.unavailable_picks += 1
        box.setCurrentText(choice)

    def dialog(self, kind: str) -> None:
        """Open the Tags, Model card or Shortcuts dialog, leave it up 0-200 ms, close every dialog shown."""
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest
        from PySide6.QtWidgets import QApplication, QDialog

        if kind == "tags":
            self.key(Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
        elif kind == "card":
            self.window.panel.result.card_button.click()
        else:
            self.key(Qt.Key.Key_F1)
        QTest.qWait(self.rng.choice(PAUSES_MS))
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, QDialog) and widget.isVisible():
                widget.close()
        self.view.setFocus()

    def mouse(self, kind, pos, button, buttons) -> None:
        from PySide6.QtCore import QPointF, Qt
        from PySide6.QtGui import QMouseEvent
        from PySide6.QtWidgets import QApplication

        point = QPointF(pos)
        QApplication.sendEvent(self.view, QMouseEvent(kind, point, self.view.mapToGlobal(point), button, buttons,
                                                      Qt.KeyboardModifier.NoModifier))

    def window_level(self) -> None:
        """A left drag (the window/level tool) of a few steps from the middle of the viewport."""
        from PySide6.QtCore import QEvent, QPointF, Qt

        left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
        pos = QPointF(self.view.width() / 2, self.view.height() / 2)
        self.mouse(QEvent.Type.MouseButtonPress, pos, left, left)
        for _ in range(self.rng.randint(1, 5)):
            pos += QPointF(self.rng.uniform(-40, 40), self.rng.uniform(-40, 40))
            self.mouse(QEvent.Type.MouseMove, pos, none, left)
        self.mouse(QEvent.Type.MouseButtonRelease, pos, left, none)

    def zoom(self) -> None:
        from PySide6.QtCore import QPoint, QPointF, Qt
        from PySide6.QtGui import QWheelEvent
        from PySide6.QtWidgets import QApplication

        pos = QPointF(self.rng.uniform(0, self.view.width()), self.rng.uniform(0, self.view.height()))
        QApplication.sendEvent(self.view, QWheelEvent(
            pos, self.view.mapToGlobal(pos), QPoint(), QPoint(0, self.rng.choice((-240, -120, 120, 240))),
            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False))

    def open(self) -> None:
        self.window.open_image(self.rng.choice(self.films))


ACTIONS = {  # kind: (weight, what it does)
    "down": (6, lambda s: s.move("Down")), "up": (3, lambda s: s.move("Up")), "home": (1, lambda s: s.move("Home")),
    "end": (1, lambda s: s.move("End")), "pgdn": (2, lambda s: s.move("PageDown")),
    "decide": (3, Session.decide), "note": (1, Session.note), "compare": (1, Session.compare),
    "heatmap": (1, Session.heatmap), "colormap": (1, Session.colormap), "opacity": (1, Session.opacity),
    "method": (1, Session.method), "provider": (1, Session.provider),
    "tags": (1, lambda s: s.dialog("tags")), "card": (1, lambda s: s.dialog("card")),
    "shortcuts": (1, lambda s: s.dialog("shortcuts")),
    "window_level": (2, Session.window_level), "zoom": (2, Session.zoom), "open": (2, Session.open),
}


def random_actions(folder: Path, db: Path, films: int, seed: int, minutes: float | None = None,
                   actions: int | None = None, backlog: int = 8, provider: str = "cpu",
                   weights: dict[str, float] | None = None) -> dict:
    """The run of the module docstring: for `minutes`, or exactly `actions` actions when given; `weights`
    replaces the weights of some kinds of action."""
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QDialog

    from xrayviewer.gui.workers import Worker

    exceptions: list[str] = []

    def hook(kind, value, tb) -> None:
        exceptions.append("".join(traceback.format_exception_only(kind, value)).strip()
                          + f" (at {traceback.extract_tb(tb)[-1].name if tb else '?'})")
        traceback.print_exception(kind, value, tb)

    banners: Counter = Counter()
    rng = random.Random(seed)
    kinds = list(ACTIONS)
    weights = [(weights or {}).get(k, ACTIONS[k][0]) for k in kinds]
    previous_hook, sys.excepthook = sys.excepthook, hook
    try:
        start = time.perf_counter()
        window, rss_start, _ = open_review(folder, db, films, provider, observed_window_class(banners))
        session = Session(window, sorted(p for p in folder.iterdir() if p.is_file()), rng)
        done: Counter = Counter()
        samples, peak, backlog_waits = [(0.0, rss_mb())], rss_mb(), 0
        begun = last_sample = time.perf_counter()
        end = begun + (minutes or 0) * 60
        while (done.total() < actions) if actions is not None else (time.perf_counter() < end):
            kind = rng.choices(kinds, weights)[0]
            done[kind] += 1
            try:
                ACTIONS[kind][1](session)
                QTest.qWait(rng.choice(PAUSES_MS))
                if len(window.workers) + len(window._ahead) > backlog:
                    backlog_waits += 1
                    wait_until(lambda: len(window.workers) + len(window._ahead) <= backlog, "the backlog of workers")
            except TimeoutError:
                raise
            except Exception as exc:  # noqa: BLE001 - PySide raises a virtual method's exception in its caller
                hook(type(exc), exc, exc.__traceback__)
            if time.perf_counter() - last_sample >= SAMPLE_S:
                last_sample = time.perf_counter()
                samples.append((last_sample - begun, rss_mb()))
                peak = max(peak, samples[-1][1])
        wait_until(lambda: idle(window), "the workers after the last action")
        rss_end = rss_mb(collect=True)
        workers, dialogs = live(Worker), len(window.findChildren(QDialog))
        close(window)
    finally:
        sys.excepthook = previous_hook
    exceptions += [f"in a worker: {text}" for text in banners if PYTHON_ERROR.match(text)]
    step = -(-len(samples) // 20)  # at most 20 of them
    return {
        "seed": seed, "minutes": minutes, "films": films, "actions": done.total(),
        "actions_by_kind": dict(done.most_common()),
        "weights": {k: w for k, w in zip(kinds, weights) if w != ACTIONS[k][0]},
        "rss_start_mb": round(rss_start, 1), "rss_peak_mb": round(max(peak, rss_end), 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_samples": [[round(t), round(mb, 1)] for t, mb in samples[::step]],
        "banners": dict(banners.most_common(10)), "banner_count": banners.total(),
        "provider_banners": sum(n for text, n in banners.items() if PROVIDER_BANNER.search(text)),
        "unavailable_provider_picks": session.unavailable_picks,
        "exceptions": exceptions, "live_workers_end": workers, "dialogs_end": dialogs,
        "backlog_waits": backlog_waits, "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--actions", type=int, help="exactly this many actions (instead of --minutes)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--films", type=int, default=60)
    parser.add_argument("--limit-mb", type=float, default=1024, help="fail when the resident memory peaks above")
    parser.add_argument("--backlog", type=int, default=8, help="workers in flight before the run waits for them")
    parser.add_argument("--weight", action="append", default=[], metavar="KIND=W",
                        help=f"another weight for a kind of action ({', '.join(ACTIONS)}); repeatable")
    parser.add_argument("--kermany", type=Path, default=chest_films())
    args = parser.parse_args()
    with scratch(args.kermany, args.films, "xrayviewer-random-") as work:
        result = random_actions(work / "films", work / "store" / "review.sqlite", args.films, args.seed,
                                None if args.actions is not None else args.minutes, args.actions, args.backlog,
                                weights={k: float(w) for k, w in (item.split("=") for item in args.weight)})
    result.update(limit_mb=args.limit_mb, load_average=os.getloadavg()[0], cores=os.cpu_count())
    print(json.dumps(result))
    sys.exit(1 if result["exceptions"] or result["rss_peak_mb"] > args.limit_mb else 0)


if __name__ == "__main__":
    main()
