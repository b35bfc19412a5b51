"""Start the viewer: QApplication, dark theme, the main window, and the --screenshot mode."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from PySide6.QtCore import QPoint, QRect, QSize, QThreadPool, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from xrayviewer.offline import keep_http_clients_out

SCREENSHOT_TIMEOUT_MS = 120_000
WINDOW_SIZE = (1500, 950)  # the first window's size where the screen has room


def dark_palette() -> QPalette:
    p = QPalette()
    colors = {
        QPalette.ColorRole.Window: (45, 45, 48), QPalette.ColorRole.WindowText: (220, 220, 220),
        QPalette.ColorRole.Base: (30, 30, 32), QPalette.ColorRole.AlternateBase: (45, 45, 48),
        QPalette.ColorRole.Text: (220, 220, 220), QPalette.ColorRole.Button: (55, 55, 58),
        QPalette.ColorRole.ButtonText: (220, 220, 220), QPalette.ColorRole.Highlight: (70, 130, 220),
        QPalette.ColorRole.HighlightedText: (255, 255, 255), QPalette.ColorRole.ToolTipBase: (30, 30, 32),
        QPalette.ColorRole.ToolTipText: (220, 220, 220),
    }
    for role, rgb in colors.items():
        p.setColor(role, QColor(*rgb))
    return p


def quiet_qt_messages(mode: QtMsgType, context, message: str) -> None:
    """Qt's messages on stderr as usual, less those about what a platform plug-in cannot do (the offscreen one
    of --screenshot says "does not support propagateSizeHints()"), which tell the user nothing."""
    if "does not support" in message and mode in (QtMsgType.QtWarningMsg, QtMsgType.QtInfoMsg):
        return
    print(message, file=sys.stderr)


def application() -> QApplication:
    keep_http_clients_out()  # before the readers load pydicom
    qInstallMessageHandler(quiet_qt_messages)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("XRay Viewer")
    app.setOrganizationName("XRayViewer")
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    return app


def run(paths: list[str], demo: bool = False, screenshot: Path | None = None, provider: str | None = None,
        compare: bool = False, startup_probe: bool = False, review: bool = False, db: str | Path | None = None) -> int:
    """Open the main window; with `screenshot`, save it once the analysis is on screen and exit (1, with the message,
    on the first error shown); with `startup_probe`, print the time the window was shown (`xrayviewer bench`'s cold
    start) and exit; with `review`, the paths become the worklist (in the review store `db`, a file or a server's
    URL), and without paths the worklist is every film of the shared store."""
    if screenshot is not None and (problem := unwritable(screenshot)):
        print(f"error: {screenshot}: {problem}", file=sys.stderr)
        return 1
    if problem := display_problem(os.environ):
        from xrayviewer.qt_platform import EXIT_CODE

        print(problem, file=sys.stderr)
        return EXIT_CODE
    from xrayviewer.gui.main_window import MainWindow
    from xrayviewer.gui.workers import load_readers

    app = application()
    window = MainWindow(provider, db=db)
    quit_on_interrupt(window)
    offscreen = app.platformName() == "offscreen"  # no screen to fit (--screenshot): the real first window's size
    window.setGeometry(QRect(QPoint(0, 0), QSize(*WINDOW_SIZE)) if offscreen else first_geometry(app))
    window.show()
    if compare:  # for this run only: the next start opens as the user left it
        remembered = window.saved.compare()
        window.compare_action.setChecked(True)
        window.saved.set_compare(remembered)
    if startup_probe:
        QTimer.singleShot(0, lambda: (print(json.dumps({"window_shown": time.time()}), flush=True), app.quit()))
    else:  # the readers were left out of the start for speed: load them now, while the user looks at the window
        QTimer.singleShot(0, lambda: threading.Thread(target=load_readers, name="load-readers", daemon=True).start())
    if screenshot is not None:
        status = {"code": 1}

        def save() -> None:
            if window.grab().save(str(screenshot)):
                status["code"] = 0
            else:
                print(f"error: {screenshot}: the picture could not be written", file=sys.stderr)
            app.quit()

        def failed(message: str) -> None:
            print(f"error: {message}", file=sys.stderr)
            app.quit()

        window.analysisShown.connect(lambda: QTimer.singleShot(300, save))
        window.errorShown.connect(failed)
        QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, lambda: failed("no analysis on screen after "
                                                                f"{SCREENSHOT_TIMEOUT_MS // 1000} s"))
    if demo:
        window.open_demo()
    elif paths and review:
        window.review_paths(paths)
    elif review:  # in the event loop: a server that cannot be reached ends --screenshot with its message
        QTimer.singleShot(0, window.review.review_store)
    elif paths:
        window.open_paths(paths)
    code = app.exec()
    window.review.leave()  # quit without closing the window (--screenshot): the film held is given back too
    window.cancel_work()  # a worklist still filling stops at its next film; what runs ends before Python does
    QThreadPool.globalInstance().waitForDone(10_000)
    return status["code"] if screenshot is not None else code


def display_problem(env) -> str | None:
    """Why Qt's xcb plug-in would find no X server at $DISPLAY (it aborts the process, exit 134, with a message about
    xcb-cursor), else None. Only where xcb is the plug-in Qt will use and DISPLAY names a display."""
    chosen = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    wayland = not chosen and (env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland")
    match = re.fullmatch(r"(?P<host>[^:]*):(?P<number>\d+)(\.\d+)?", env.get("DISPLAY", ""))
    if not sys.platform.startswith("linux") or chosen not in ("", "xcb") or wayland or match is None:
        return None
    host, number = match["host"], int(match["number"])
    try:
        if host in ("", "unix"):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                try:
                    s.connect(f"/tmp/.X11-unix/X{number}")
                except OSError:
                    s.connect(f"\0/tmp/.X11-unix/X{number}")  # the abstract socket of a server without the file
        else:
            socket.create_connection((host, 6000 + number), timeout=2).close()
    except OSError as exc:
        return (f"No X server answers at DISPLAY={env['DISPLAY']} ({exc.strerror or exc}): start one or set DISPLAY to "
                "a running one. Without a display, `xrayviewer FILE --screenshot out.png` renders offscreen.")
    return None


def unwritable(picture: Path) -> str | None:
    """Why a picture cannot be written at `picture` (a missing or read-only folder), else None."""
    folder = picture.parent if str(picture.parent) else Path(".")
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    if not os.access(folder, os.W_OK):
        return f"the folder {folder} is not writable"
    return None


def quit_on_interrupt(window) -> None:
    """Ctrl-C in the terminal closes the window as its close button does (the note typed is kept), instead of a
    KeyboardInterrupt raised wherever Python happens to be. Qt's loop hands Python a moment every 200 ms to see it."""
    signal.signal(signal.SIGINT, lambda *_: QTimer.singleShot(0, window.close))
    ticker = QTimer(window)
    ticker.timeout.connect(lambda: None)
    ticker.start(200)


def first_geometry(app: QApplication) -> QRect:
    """1500 x 950, or less on a smaller screen: the window fits the screen's free area (taskbar left out), centred."""
    screen = app.primaryScreen()
    free = screen.availableGeometry() if screen is not None else QRect(0, 0, *WINDOW_SIZE)
    frame = 40  # the title bar and borders the window manager adds around the window
    size = QSize(min(WINDOW_SIZE[0], free.width() - 16), min(WINDOW_SIZE[1], free.height() - frame))
    rect = QRect(QPoint(0, 0), size)
    rect.moveCenter(free.center())
    rect.moveTop(max(rect.top(), free.top() + frame - 8))
    return rect

