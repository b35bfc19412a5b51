"""The main window: study browser, one or two viewports, the control panel, menus, workers and settings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from xrayviewer import __version__
from xrayviewer.core import ImageRecord, Window, export, read_image, to_display
from xrayviewer.core.display import percentile_window
from xrayviewer.core.engine import Analysis, Engine, Inference
from xrayviewer.core.overlay import OverlayStyle, save_png
from xrayviewer.gui.browser import StudyBrowser
from xrayviewer.gui.card_dialog import ModelCardDialog
from xrayviewer.gui.panels import AnalysisSettings, ControlPanel
from xrayviewer.gui.viewport import Viewport
from xrayviewer.gui.workers import Worker, start

SHORTCUTS = [
    ("Left drag", "window / level (horizontal: width, vertical: level)"),
    ("Wheel or right drag", "zoom"), ("Middle drag", "pan"), ("I", "invert"), ("R or Esc", "reset view"),
    ("F", "fit to window"), ("1", "1:1 pixels"), ("+ / -", "zoom in / out"), ("H", "show / hide heatmap"),
    ("Ctrl+O", "open files"), ("Ctrl+Shift+O", "open folder or DICOMDIR"), ("Ctrl+E", "export view as PNG"),
    ("Ctrl+D", "side-by-side comparison"), ("Ctrl+T", "DICOM tags"),
]
ABOUT = (
    f"<h3>XRay Viewer {__version__}</h3><p>Offline chest X-ray review with an AI second opinion "
    "(pneumonia classifier, Grad-CAM family heatmaps) run by ONNX Runtime. <b>Research use only; not a "
    "diagnosis.</b></p><p>The shipped models were trained on frontal chest films of children aged 1-5 from one "
    "hospital (Guangzhou Women and Children's Medical Center): adults, other hospitals, lateral views and other "
    "body parts are outside what they have seen. Images the gate refuses get no result unless you ask.</p>"
    "<p>Models trained on data from Kermany et al., Mendeley Data v2 (2018), CC BY 4.0.</p>"
    "<p>Demo study: the RG1 adult chest CR of the pydicom-data package (github.com/pydicom/pydicom-data).</p>"
)


@dataclass
class Pane:
    """One viewport and what it analyses with."""

    view: Viewport
    settings: AnalysisSettings
    style: OverlayStyle = field(default_factory=OverlayStyle)
    analysis: Analysis | None = None
    inferences: dict = field(default_factory=dict)  # model -> Inference, for the current film
    generation: int = 0  # bumps on every change; stale worker results are dropped
    force: bool = False  # the user asked to see this film's result although the gate refused it


class MainWindow(QMainWindow):
    analysisShown = Signal()  # every pane with a film has its analysis on screen

    def __init__(self, provider: str = "auto", models: list[str] | None = None) -> None:
        super().__init__()
        from xrayviewer.models import available

        self.setWindowTitle("XRay Viewer - research use only, not a diagnosis")
        self.setAcceptDrops(True)
        self.qsettings = QSettings("XRayViewer", "XRayViewer")
        self.models = models if models is not None else available()
        self.engine = Engine(str(self.qsettings.value("provider", provider)))
        self.record: ImageRecord | None = None
        self.model_display: np.ndarray | None = None  # the film at its default window: what the model sees
        self.workers: set[Worker] = set()

        self.panel = ControlPanel(self.models)
        first = AnalysisSettings(model=self.models[0] if self.models else "")
        self.panes = [Pane(Viewport(), first), Pane(Viewport(), self._second_settings(first))]
        self.panes[1].style = replace(self.panes[1].style, colormap="inferno")
        self.active = self.panes[0]
        self.sync = True

        self.views = views = QSplitter()
        for pane in self.panes:
            views.addWidget(pane.view)
            pane.view.activated.connect(lambda p=pane: self.set_active(p))
            pane.view.viewChanged.connect(lambda p=pane: self._sync_from(p))
            pane.view.cursorInfo.connect(self.cursor_label_text)
        self.panes[1].view.hide()
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel { background: #5a2a10; color: white; padding: 6px; }")
        self.banner.hide()
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.banner)
        cl.addWidget(views, 1)
        self.setCentralWidget(central)

        self.browser = StudyBrowser()
        self.browser.instanceChosen.connect(self.open_image)
        self.browser.firstInstance.connect(self.open_image)  # each scan opens its first film
        self.browser.error.connect(self.show_error)
        left = QDockWidget("Study", self)
        left.setObjectName("study")
        left.setWidget(self.browser)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, left)
        right = QDockWidget("Analysis", self)
        right.setObjectName("analysis")
        scroll = QScrollArea()  # long reasons wrap, and the panel scrolls down rather than clipping them
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.panel.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        right.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, right)

        self.panel.settingsChanged.connect(self._settings_changed)
        self.panel.styleChanged.connect(self._style_changed)
        self.panel.providerChanged.connect(self.set_provider)
        self.panel.openModelRequested.connect(self.open_model_file)
        self.panel.cardRequested.connect(self.show_model_card)
        self.panel.analyseAnywayRequested.connect(self.analyse_anyway)

        self.frame = QSpinBox()
        self.frame.setPrefix("Frame ")
        self.frame.setMinimum(1)
        self.frame.valueChanged.connect(lambda v: self.record and self.open_image(Path(self.record.path), v - 1))
        self.cursor_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_work)
        toolbar = self.addToolBar("Film")
        toolbar.setObjectName("film")
        self.frame_action = toolbar.addWidget(self.frame)
        self.frame_action.setVisible(False)
        self.statusBar().addWidget(self.cursor_label, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self.statusBar().addPermanentWidget(QLabel("Research use only - not a diagnosis"))
        self._build_menus()
        self._restore_settings()
        for pane in self.panes:
            pane.view.set_style(pane.style)
        self.set_active(self.panes[0])
        if not self.models:
            self.show_error("No shipped model is installed: open a contract .onnx file from the model list.")

    # ----- menus -----
    def _action(self, menu, text: str, slot, shortcut=None, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        file = self.menuBar().addMenu("&File")
        self._action(file, "Open files...", self.open_files_dialog, QKeySequence.StandardKey.Open)
        self._action(file, "Open folder or DICOMDIR...", self.open_folder_dialog, "Ctrl+Shift+O")
        self._action(file, "Open demo study", self.open_demo)
        self.recent_menu = file.addMenu("Recent")
        file.addSeparator()
        self._action(file, "Export view as PNG...", self.export_view, "Ctrl+E")
        self._action(file, "Export overlays of the study...", self.export_study)
        file.addSeparator()
        self._action(file, "Quit", self.close, QKeySequence.StandardKey.Quit)
        view = self.menuBar().addMenu("&View")
        self.compare_action = self._action(view, "Side-by-side comparison", self.set_compare, "Ctrl+D", True)
        self.sync_action = self._action(view, "Synchronise zoom, pan and window", self.set_sync, None, True)
        self.sync_action.setChecked(True)
        self._action(view, "Show heatmap", self.panel.toggle_visible, "H")
        presets = view.addMenu("Window presets")
        for name in ("File default", "Full range", "Auto (0.5-99.5 %)", "Soft (2-98 %)"):
            self._action(presets, name, lambda _=False, n=name: self.apply_preset(n))
        self._action(view, "DICOM tags...", self.show_tags, "Ctrl+T")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "Shortcuts", self.show_shortcuts, "F1")
        self._action(help_menu, "About", lambda: QMessageBox.about(self, "About XRay Viewer", ABOUT))
        self._refresh_recent()

    # ----- opening -----
    def open_paths(self, paths: list[str | Path]) -> None:
        """Files, folders or DICOMDIRs: the study browser lists them, the first image opens."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        self.browser.scan(paths)
        self.qsettings.setValue("last_folder", str(paths[0] if paths[0].is_dir() else paths[0].parent))
        self._remember(paths[0])

    def open_demo(self) -> None:
        from xrayviewer.demo import demo_paths

        try:
            self.open_paths(demo_paths())
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            self.show_error(str(exc))

    def open_files_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open images or DICOM files", self._last_folder(),
                                                "Images and DICOM (*.dcm *.png *.jpg *.jpeg *.tif *.tiff *.bmp "
                                                "DICOMDIR *);;All files (*)")
        self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder or a DICOMDIR's folder", self._last_folder())
        if folder:
            self.open_paths([folder])

    def open_image(self, path: Path, frame: int = 0) -> None:
        """Read one film in the background and show it in every visible viewport."""
        self._run(lambda: _load(path, frame), self._image_loaded, f"Reading {Path(path).name}...")

    def _image_loaded(self, loaded: tuple[ImageRecord, np.ndarray]) -> None:
        self.record, self.model_display = loaded
        self.frame.blockSignals(True)
        self.frame.setMaximum(max(self.record.frames, 1))
        self.frame.setValue(self.record.frame + 1)
        self.frame.blockSignals(False)
        self.frame_action.setVisible(self.record.frames > 1)
        self.setWindowTitle(f"{Path(self.record.path).name} - XRay Viewer - research use only")
        for pane in self.panes:
            pane.inferences.clear()
            pane.analysis = None
            pane.force = False
            pane.view.set_record(self.record)
        self.panel.show_result(None)
        self.analyze_all()

    # ----- analysis -----
    def visible_panes(self) -> list[Pane]:
        return [p for p in self.panes if p.view.isVisible() or p is self.panes[0]]

    def analyze_all(self) -> None:
        for pane in self.visible_panes():
            self.analyze(pane)

    def analyze(self, pane: Pane) -> None:
        if self.record is None or not pane.settings.model:
            return
        pane.generation += 1
        generation, settings, display, record = pane.generation, pane.settings, self.model_display, self.record
        cached, force = pane.inferences.get(settings.model), pane.force
        engine = self.engine

        def work() -> tuple[Inference, Analysis, np.ndarray | None]:
            model = engine.model(settings.model)
            inference = cached or engine.infer(model, [display])[0]
            analysis = engine.analysis(model, inference, display, settings.method, settings.target, record, force)
            return inference, analysis, None if analysis.cam is None else analysis.cam.heat

        if pane is self.active:
            self.panel.show_busy("Analysing...")
        self._run(work, lambda r, p=pane, g=generation: self._analysis_done(p, g, r), "Analysing...")

    def _analysis_done(self, pane: Pane, generation: int, result) -> None:
        if generation != pane.generation:
            return  # the film or the settings changed meanwhile
        inference, analysis, heat = result
        pane.inferences[pane.settings.model] = inference
        pane.analysis = analysis
        pane.view.set_heat(heat, caption_of(analysis), bar_top_of(analysis))
        if pane is self.active:
            self.panel.show_result(analysis)
        if all(p.analysis is not None for p in self.visible_panes()):
            self.analysisShown.emit()

    def analyse_anyway(self) -> None:
        """Show the active pane's result although the gate refused the film; it is marked out of scope."""
        self.active.force = True
        self.analyze(self.active)

    def _settings_changed(self, settings: AnalysisSettings) -> None:
        self.active.settings = settings
        self.qsettings.setValue("model", settings.model)
        self.qsettings.setValue("method", settings.method)
        self.analyze(self.active)

    def _style_changed(self, style: OverlayStyle) -> None:
        """Opacity, colormap, threshold, contours: repaint only, the model does not run."""
        self.active.style = style
        self.active.view.set_style(style)
        self.qsettings.setValue("colormap", style.colormap)
        self.qsettings.setValue("opacity", style.opacity)

    def set_provider(self, provider: str) -> None:
        self.engine = Engine(provider)
        self.qsettings.setValue("provider", provider)
        for pane in self.panes:
            pane.inferences.clear()
        self.analyze_all()

    def open_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a contract ONNX model", self._last_folder(),
                                              "ONNX models (*.onnx)")
        if not path:
            return
        try:
            self.engine.model(path)  # validates the contract before the model is offered
        except Exception as exc:  # noqa: BLE001 - a bad file is reported, the app stays as it was
            self.show_error(str(exc))
            return
        self.panel.add_model(path)

    # ----- panes, compare and sync -----
    def _second_settings(self, first: AnalysisSettings) -> AnalysisSettings:
        other = [m for m in self.models if m != first.model]
        if other:
            return replace(first, model=other[0])
        return replace(first, method="gradcampp")

    def set_active(self, pane: Pane) -> None:
        self.active = pane
        for p in self.panes:
            p.view.active = p is pane and self.panes[1].view.isVisible()
            p.view.update()
        self.panel.show_state(pane.settings, pane.style)
        self.panel.show_result(pane.analysis)

    def set_compare(self, on: bool) -> None:
        second = self.panes[1]
        second.view.setVisible(on)
        self.qsettings.setValue("compare", on)
        if on:
            half = max(self.views.width() // 2, 200)
            self.views.setSizes([half, half])
            second.view.set_record(self.record)
            second.view.set_style(second.style)
            if self.record is not None:
                self.analyze(second)
            self._sync_from(self.panes[0])
        else:
            self.set_active(self.panes[0])
        self.set_active(self.active)

    def set_sync(self, on: bool) -> None:
        self.sync = on

    def _sync_from(self, source: Pane) -> None:
        if not self.sync:
            return
        for pane in self.panes:
            if pane is not source and pane.view.isVisible() and pane.view.record is source.view.record:
                pane.view.apply_geometry(source.view.geometry_state())

    def apply_preset(self, name: str) -> None:
        if self.record is None:
            return
        pixels = self.record.pixels
        windows = {
            "File default": self.record.window,
            "Full range": Window.from_range(float(pixels.min()), float(pixels.max())),
            "Auto (0.5-99.5 %)": percentile_window(pixels),
            "Soft (2-98 %)": percentile_window(pixels, 2, 98),
        }
        self.active.view.set_window(windows[name])

    # ----- export, dialogs -----
    def export_view(self) -> None:
        pane = self.active
        if pane.view.shown is None:
            self.show_error("Nothing to export: open a film first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export view", str(Path(self._last_folder()) / "overlay.png"),
                                              "PNG (*.png)")
        if path:
            save_png(path, export.annotate(pane.view.shown, pane.style, pane.analysis))
            self.statusBar().showMessage(f"Saved {path}", 5000)

    def export_study(self) -> None:
        instances = self.browser.instance_paths()
        if not instances:
            self.show_error("No study is open.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export overlays to", self._last_folder())
        if not folder:
            return
        settings, style, engine = self.active.settings, self.active.style, self.engine

        def work(worker: Worker) -> int:
            return export.export_study(instances, Path(folder), engine, settings.model, settings.method,
                                       settings.target, style, worker.signals.progress.emit, lambda: worker.cancelled)

        self._run(work,
                  lambda n: self.statusBar().showMessage(f"Exported {n} overlays to {folder}", 8000),
                  "Exporting overlays...", pass_worker=True)

    def show_tags(self) -> None:
        if self.record is None:
            return
        dialog = QDialog(self)
        dialog.setWindowTitle(f"Tags - {Path(self.record.path).name}")
        text = QTextBrowser()
        text.setFontFamily("monospace")
        text.setPlainText(export.tag_dump(self.record))
        QVBoxLayout(dialog).addWidget(text)
        dialog.resize(720, 600)
        dialog.show()

    def show_model_card(self) -> None:
        try:
            card = self.engine.model(self.active.settings.model).card.data
        except Exception as exc:  # noqa: BLE001
            self.show_error(str(exc))
            return
        ModelCardDialog(card, self).show()

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in SHORTCUTS)
        box = QMessageBox(self)
        box.setWindowTitle("Shortcuts")
        box.setText(f"<table cellpadding=3>{rows}</table>")
        box.setModal(False)
        box.show()

    def show_error(self, message: str) -> None:
        """Non-modal: a banner over the views that hides itself, and the status bar."""
        self.banner.setText(message)
        self.banner.show()
        self.statusBar().showMessage(message, 15000)
        QTimer.singleShot(15000, self.banner.hide)

    def cursor_label_text(self, text: str) -> None:
        self.cursor_label.setText(text)

    # ----- background work -----
    def _run(self, fn, on_result, busy: str, pass_worker: bool = False) -> Worker:
        worker = Worker(fn, pass_worker=pass_worker)
        worker.signals.result.connect(on_result)
        worker.signals.error.connect(self.show_error)
        worker.signals.progress.connect(self._progress)
        worker.signals.finished.connect(lambda w=worker: self._finished(w))
        self.workers.add(worker)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.setVisible(pass_worker)
        self.statusBar().showMessage(busy)
        return start(worker)

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _finished(self, worker: Worker) -> None:
        self.workers.discard(worker)
        if not self.workers:
            self.progress.hide()
            self.cancel_button.hide()
            self.statusBar().clearMessage()

    def cancel_work(self) -> None:
        for worker in list(self.workers):
            worker.cancel()

    # ----- drag and drop, settings -----
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        self.open_paths([u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()])

    def _last_folder(self) -> str:
        return str(self.qsettings.value("last_folder", str(Path.home())))

    def _remember(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.qsettings.value("recent", [], list) if p != str(path)]
        self.qsettings.setValue("recent", recent[:10])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.qsettings.value("recent", [], list):
            self._action(self.recent_menu, p, lambda _=False, p=p: self.open_paths([p]))

    def _restore_settings(self) -> None:
        s = self.qsettings
        model = str(s.value("model", ""))
        if model in self.models:
            self.panes[0].settings = replace(self.panes[0].settings, model=model)
        self.panes[0].settings = replace(self.panes[0].settings, method=str(s.value("method", "gradcam")))
        self.panes[0].style = OverlayStyle(str(s.value("colormap", "jet")), float(s.value("opacity", 0.4)))
        self.panel.provider.setCurrentText(self.engine.provider)
        if s.value("geometry") is not None:
            self.restoreGeometry(s.value("geometry"))
            self.restoreState(s.value("state"))
        if s.value("compare", False, bool):
            self.compare_action.setChecked(True)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.qsettings.setValue("geometry", self.saveGeometry())
        self.qsettings.setValue("state", self.saveState())
        super().closeEvent(event)


def caption_of(analysis: Analysis) -> str:
    """The viewport's bottom-right text for a result."""
    if analysis.label is None:
        return f"{analysis.model}: not analysed\n(outside what it can judge)"
    scope = "\nOUT OF SCOPE (analysed anyway)" if analysis.out_of_scope else ""
    return f"{analysis.model}: {analysis.label} {analysis.probability:.1%}\n{analysis.method}{scope}"


def bar_top_of(analysis: Analysis) -> str:
    """What the top of the colour bar means for a result's heatmap."""
    if analysis.cam is None:
        return ""
    return "this image's maximum" if analysis.cam.reference is None else "typical pneumonia film"


def _load(path: Path, frame: int) -> tuple[ImageRecord, np.ndarray]:
    """Read a film and make the display array the model sees (its default window)."""
    record = read_image(path, frame)
    return record, to_display(record)
