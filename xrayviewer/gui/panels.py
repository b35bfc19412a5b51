"""The side panel: model and CAM choice, the result, and the live overlay controls of the active viewport."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from xrayviewer.core.cam import METHODS
from xrayviewer.core.engine import TARGETS
from xrayviewer.core.overlay import COLORMAPS, OverlayStyle, colorbar
from xrayviewer.gui.viewport import to_qimage

OPEN_MODEL = "Open model file..."


@dataclass(frozen=True)
class AnalysisSettings:
    """What one viewport's analysis uses."""

    model: str = "mobilenetv2"
    method: str = "gradcam"
    target: str = "pneumonia"


def swatch(name: str) -> QIcon:
    return QIcon(QPixmap.fromImage(to_qimage(colorbar(name, 48, 12, vertical=False))))


class ControlPanel(QWidget):
    """Edits the active viewport's AnalysisSettings and OverlayStyle; shows its result."""

    settingsChanged = Signal(object)  # AnalysisSettings
    styleChanged = Signal(object)  # OverlayStyle
    providerChanged = Signal(str)
    openModelRequested = Signal()
    cardRequested = Signal()

    def __init__(self, models: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._loading = False
        self.style = OverlayStyle()
        self.settings = AnalysisSettings(model=models[0] if models else "")
        layout = QVBoxLayout(self)

        box = QGroupBox("AI second opinion")
        form = QFormLayout(box)
        self.model = QComboBox()
        self.model.addItems(models + [OPEN_MODEL])
        self.provider = QComboBox()
        self.provider.addItems(["auto", "cpu", "cuda", "dml"])
        self.running = QLabel("-")
        self.method = QComboBox()
        for name, cls in METHODS.items():
            self.method.addItem(cls.label, name)
        self.target = QComboBox()
        self.target.addItems([t.upper() for t in TARGETS])
        form.addRow("Model", self.model)
        form.addRow("Provider", self.provider)
        form.addRow("Running on", self.running)
        form.addRow("CAM method", self.method)
        form.addRow("Target class", self.target)
        layout.addWidget(box)

        result = QGroupBox("Result")
        rl = QVBoxLayout(result)
        self.probability = QProgressBar()
        self.probability.setRange(0, 1000)
        self.probability.setFormat("P(pneumonia): -")
        self.label = QLabel("No analysis yet")
        self.label.setWordWrap(True)
        self.ood = QLabel("")
        self.ood.setWordWrap(True)
        self.ood.setStyleSheet("QLabel { background: #8a1c1c; color: white; padding: 6px; font-weight: bold; }")
        self.ood.hide()
        self.card_button = QPushButton("Model card...")
        for w in (self.probability, self.label, self.ood, self.card_button):
            rl.addWidget(w)
        layout.addWidget(result)

        overlay = QGroupBox("Heatmap overlay")
        of = QFormLayout(overlay)
        self.visible = QCheckBox("Show (H)")
        self.visible.setChecked(True)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(self.style.opacity * 100))
        self.colormap = QComboBox()
        for name in COLORMAPS:
            self.colormap.addItem(swatch(name), name, name)
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0, 100)
        self.threshold.setValue(round(self.style.threshold * 100))
        self.contours = QCheckBox("Contour lines")
        of.addRow(self.visible)
        of.addRow("Opacity", self.opacity)
        of.addRow("Colormap", self.colormap)
        of.addRow("Lower threshold", self.threshold)
        of.addRow(self.contours)
        layout.addWidget(overlay)
        notice = QLabel("Research use only. Not a diagnosis.")
        notice.setStyleSheet("color: #e0b050;")
        layout.addWidget(notice)
        layout.addStretch(1)

        self.model.currentIndexChanged.connect(self._model_changed)
        self.method.currentIndexChanged.connect(self._settings_changed)
        self.target.currentIndexChanged.connect(self._settings_changed)
        self.provider.currentTextChanged.connect(lambda p: None if self._loading else self.providerChanged.emit(p))
        self.card_button.clicked.connect(self.cardRequested)
        for signal in (self.visible.toggled, self.opacity.valueChanged, self.colormap.currentIndexChanged,
                       self.threshold.valueChanged, self.contours.toggled):
            signal.connect(self._style_changed)

    def add_model(self, path: str) -> None:
        """Put a user's model file in the list (before the 'Open' entry) and select it."""
        if self.model.findText(path) < 0:
            self.model.insertItem(self.model.count() - 1, path)
        self.model.setCurrentText(path)

    def _model_changed(self) -> None:
        if self.model.currentText() == OPEN_MODEL:
            self._loading = True
            self.model.setCurrentText(self.settings.model)
            self._loading = False
            self.openModelRequested.emit()
            return
        self._settings_changed()

    def _settings_changed(self) -> None:
        if self._loading:
            return
        self.settings = AnalysisSettings(self.model.currentText(), self.method.currentData(),
                                         self.target.currentText().lower())
        self.settingsChanged.emit(self.settings)

    def _style_changed(self) -> None:
        if self._loading:
            return
        self.style = OverlayStyle(self.colormap.currentData(), self.opacity.value() / 100,
                                  self.threshold.value() / 100, self.contours.isChecked(), self.visible.isChecked())
        self.styleChanged.emit(self.style)

    def show_state(self, settings: AnalysisSettings, style: OverlayStyle) -> None:
        """Load a viewport's settings into the controls without emitting changes."""
        self._loading = True
        self.settings, self.style = settings, style
        self.model.setCurrentText(settings.model)
        self.method.setCurrentIndex(self.method.findData(settings.method))
        self.target.setCurrentText(settings.target.upper())
        self.visible.setChecked(style.visible)
        self.opacity.setValue(round(style.opacity * 100))
        self.colormap.setCurrentIndex(self.colormap.findData(style.colormap))
        self.threshold.setValue(round(style.threshold * 100))
        self.contours.setChecked(style.contours)
        self._loading = False

    def toggle_visible(self) -> None:
        self.visible.toggle()

    def show_result(self, analysis) -> None:
        """Probability bar, label and OOD warning of an Analysis (or None to clear)."""
        if analysis is None:
            self.probability.setValue(0)
            self.probability.setFormat("P(pneumonia): -")
            self.label.setText("No analysis yet")
            self.ood.hide()
            return
        self.probability.setValue(round(analysis.probability * 1000))
        self.probability.setFormat(f"P(pneumonia): {analysis.probability:.1%}")
        self.label.setText(f"<b>{analysis.label}</b> at the model's operating threshold "
                           f"{analysis.threshold:.3f} ({analysis.model})")
        self.running.setText(analysis.provider.replace("ExecutionProvider", ""))
        if analysis.ood.get("flagged"):
            why = ", ".join(analysis.ood.get("reasons", []))
            self.ood.setText("This image does not look like the frontal chest films the model was trained on "
                             f"({why}). Treat the result with caution.")
            self.ood.show()
        else:
            self.ood.hide()

    def show_busy(self, text: str) -> None:
        self.label.setText(text)
