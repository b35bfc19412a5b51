"""Running the models for each pane in the background and showing their results; model and provider choice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from xrayviewer.core.analysis.engine import Analysis, Inference, engine_for
from xrayviewer.core.analysis.perturbation import FIRST_EVERY
from xrayviewer.core.analysis.overlay import OverlayStyle
from xrayviewer.core.analysis.wording import bar_top, percent
from xrayviewer.core.review.session import AnalysisSettings, PaneState, ReadingSession
from xrayviewer.gui.background import Tasks
from xrayviewer.gui.messages import Messages
from xrayviewer.gui.panels import ControlPanel
from xrayviewer.gui.settings import Settings
from xrayviewer.gui.viewport import Viewport


@dataclass(frozen=True)
class Shown:
    """What an analysis worker hands back: the forward pass, the result, and the grid to refine its map to."""

    inference: Inference
    analysis: Analysis
    refine: int | None = None  # None: the map is final


@dataclass(eq=False)
class Pane(PaneState):
    """One viewport and its state in the reading session (settings, style, result)."""

    view: Viewport | None = None


class AnalysisPart(QObject):
    """Analyses the film in every visible pane of the session; stale results (film or settings changed) are dropped.

    Collaborators: the session (film on screen, panes, engine); the control `panel` (settings in, result out);
    `tasks`; `settings` (what is remembered); `messages`; `last_folder()` for the model file dialog."""

    analysisShown = Signal()  # every pane with a film has its analysis on screen

    def __init__(self, session: ReadingSession, panel: ControlPanel, tasks: Tasks, settings: Settings,
                 messages: Messages, last_folder: Callable[[], str], parent: QWidget) -> None:
        super().__init__(parent)
        self.session, self.panel, self.tasks, self.saved, self.messages = session, panel, tasks, settings, messages
        self.last_folder, self.dialog_parent = last_folder, parent
        panel.settingsChanged.connect(self._settings_changed)
        panel.styleChanged.connect(self._style_changed)
        panel.providerChanged.connect(self.set_provider)
        panel.openModelRequested.connect(self.open_model_file)
        panel.analyseAnywayRequested.connect(self.analyse_anyway)

    def visible_panes(self) -> list[Pane]:
        return self.session.visible_panes()

    def analyze_all(self) -> None:
        for pane in self.visible_panes():
            self.analyze(pane)

    def analyze(self, pane: Pane) -> None:
        """Analyse the film in `pane`. An occlusion map comes as a first picture (every other patch: a quarter of the
        inferences) and is completed in a second worker (`_refine`), which reuses those scores and stops as soon as
        the film or the settings change."""
        session = self.session
        if session.record is None or not pane.settings.model:
            return
        pane.generation += 1
        generation, settings, display, record = pane.generation, pane.settings, session.display, session.record
        cached, force = pane.inferences.get(settings.model), pane.force
        engine = session.engine

        def stale() -> bool:
            return pane.generation != generation

        def work() -> Shown:
            model = engine.model(settings.model)
            inference = cached or engine.infer(model, [display])[0]
            final = engine.refined_cells(model, settings.method)
            staged = final is not None and not engine.has_map(model, inference, settings.method, settings.target,
                                                              final)
            analysis = engine.analysis(model, inference, display, settings.method, settings.target, record, force,
                                       final, stale, FIRST_EVERY if staged else 1)
            return Shown(inference, analysis, final if staged else None)

        if pane is session.active:
            self.panel.show_busy("Analysing...")
        self.tasks.run(work, lambda r, p=pane, g=generation: self._analysis_done(p, g, r), "Analysing...")

    def _analysis_done(self, pane: Pane, generation: int, shown: Shown) -> None:
        if generation != pane.generation:
            return  # the film or the settings changed meanwhile
        pane.inferences[pane.settings.model] = shown.inference
        self._show(pane, shown.analysis, refining=shown.refine is not None)
        if shown.refine is not None and shown.analysis.cam is not None:
            self._refine(pane, generation, shown)
        elif all(p.analysis is not None for p in self.visible_panes()):
            self.analysisShown.emit()

    def _refine(self, pane: Pane, generation: int, shown: Shown) -> None:
        """The heatmap on its final grid, in the background; dropped unseen if the pane moved on meanwhile."""
        engine, name, analysis = self.session.engine, pane.settings.model, shown.analysis

        def work() -> Analysis:
            cam = engine.cam(engine.model(name), shown.inference, analysis.method, analysis.target,
                             analysis.cam.size, shown.refine, lambda: pane.generation != generation)
            return replace(analysis, cam=cam)

        def done(refined: Analysis) -> None:
            if generation == pane.generation:
                self._show(pane, refined)
                if all(p.analysis is not None for p in self.visible_panes()):
                    self.analysisShown.emit()

        self.tasks.run(work, done, "Refining the heatmap...")

    def _show(self, pane: Pane, analysis: Analysis, refining: bool = False) -> None:
        pane.analysis = analysis
        cam = analysis.cam
        pane.view.set_heat(None if cam is None else cam.heat, caption_of(analysis, refining), bar_top_of(analysis),
                           None if cam is None else cam.against_heat)
        if pane is self.session.active:
            self.panel.show_result(analysis)

    def analyse_anyway(self) -> None:
        """Show the active pane's result although the gate refused the film; it is marked out of scope."""
        self.session.active.force = True
        self.analyze(self.session.active)

    def _settings_changed(self, settings: AnalysisSettings) -> None:
        self.session.set_settings(self.session.active, settings)
        self.saved.set_analysis(settings.model, settings.method)
        self.analyze(self.session.active)

    def _style_changed(self, style: OverlayStyle) -> None:
        """Opacity, colormap, threshold, contours: repaint only, the model does not run."""
        self.session.set_style(self.session.active, style)
        self.session.active.view.set_style(style)
        self.saved.set_style(style)

    def set_provider(self, provider: str) -> None:
        """Run the models on `provider` from now on; the old engine lets its sessions go. A provider this machine
        cannot run falls back to 'auto' once: said in the banner and, in orange, beside every result."""
        engine = self.session.engine
        if provider == engine.provider and not engine.note:
            return
        engine = engine_for(provider)
        self.session.set_engine(engine)
        if engine.note:
            self.messages.error(f"{engine.note}: running on 'auto' instead.")
            self.panel.provider.blockSignals(True)
            self.panel.provider.setCurrentText(engine.provider)
            self.panel.provider.blockSignals(False)
        else:
            self.saved.set_provider(provider)
        self.analyze_all()

    def open_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.dialog_parent, "Open a contract ONNX model", self.last_folder(),
                                              "ONNX models (*.onnx)")
        if not path:
            return
        try:
            self.session.engine.model(path)  # validates the contract before the model is offered
        except Exception as exc:  # noqa: BLE001 - a bad file is reported, the app stays as it was
            self.messages.error(str(exc))
            return
        self.panel.add_model(path)


def caption_of(analysis: Analysis, refining: bool = False) -> str:
    """The viewport's bottom-right text for a result (`refining`: a first, coarse map is shown)."""
    if analysis.label is None:
        return f"{analysis.model}: not analysed\n(outside what it can judge)"
    scope = "\nOUT OF SCOPE (analysed anyway)" if analysis.out_of_scope else ""
    cells = analysis.cam.cells if analysis.cam is not None else None
    grid = f" {cells}x{cells}" if cells else ""
    state = ", first picture, refining..." if refining else ""
    return f"{analysis.model}: {analysis.label} {percent(analysis.probability)}\n{analysis.method}{grid}{state}{scope}"


def bar_top_of(analysis: Analysis) -> str:
    """What the top of the colour bar means for a result's heatmap."""
    return "" if analysis.cam is None else bar_top(analysis.cam.reference)
