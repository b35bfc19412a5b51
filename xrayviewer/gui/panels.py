"""The side panel: model and CAM choice, the result, and the live overlay controls of the active viewport."""

from __future__ import annotations


from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from xrayviewer.core.analysis.cam import METHODS
from xrayviewer.core.analysis.engine import TARGETS
from xrayviewer.core.analysis.overlay import COLORMAPS, OverlayStyle, colorbar
from xrayviewer.core.analysis.session import PROVIDER_NAMES
from xrayviewer.core.review.session import AnalysisSettings
from xrayviewer.gui.result_view import ResultView
from xrayviewer.gui.viewport import to_qimage

OPEN_MODEL = "Open model file..."
GAP_NOTE = "With a global-average-pooling head (every shipped model) it equals Grad-CAM exactly."
METHOD_TEXT = {  # list label (when it differs from the method's own) and tooltip
    "gradcam": ("", "Feature maps weighted by the mean gradient of the target class. Class-specific."),
    "gradcampp": ("", "Positive gradients weighted per position (alpha). Class-specific."),
    "xgradcam": ("XGrad-CAM (= Grad-CAM, GAP head)",
                 f"Gradients weighted by the normalised activations. Class-specific. {GAP_NOTE}"),
    "layercam": ("", "Each position weighted by its own positive gradient. Class-specific."),
    "eigencam": ("Eigen-CAM (ignores the target)", "First principal component of the activations, no gradients. "
                 "Not class-specific: the map is the same for PNEUMONIA and NORMAL."),
    "scorecam": ("", "Each map weighted by the target probability of the film masked by it (32 extra forward "
                 "passes). Class-specific."),
    "occlusion": ("Occlusion (default)", "How far the target's logit falls when each patch of the film is covered "
                  "by the mean normal film of the model's training set: every other patch first (a quarter of the "
                  "forward passes), then the whole grid (14 x 14 for MobileNetV2, about 145 passes in all, none "
                  "twice). Dashed cyan lines: evidence against the target. The border the model never sees stays "
                  "empty. Class-specific."),
}


def swatch(name: str) -> QIcon:
    return QIcon(QPixmap.fromImage(to_qimage(colorbar(name, 48, 12, vertical=False))))


class ControlPanel(QWidget):
    """Edits the active viewport's AnalysisSettings and OverlayStyle; shows its result."""

    settingsChanged = Signal(object)  # AnalysisSettings
    styleChanged = Signal(object)  # OverlayStyle
    providerChanged = Signal(str)
    openModelRequested = Signal()
    cardRequested = Signal()
    analyseAnywayRequested = Signal()

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
        self.running.setWordWrap(True)
        self.method = QComboBox()
        for combo in (self.model, self.method):  # long entries (user model paths) do not widen the panel
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(16)
        for name, cls in METHODS.items():
            label, tip = METHOD_TEXT.get(name, ("", (cls.__doc__ or "").split("\n")[0]))  # a new method still shows
            self.method.addItem(label or cls.label, name)
            self.method.setItemData(self.method.count() - 1, f"{cls.label}: {tip}", Qt.ItemDataRole.ToolTipRole)
        self.target = QComboBox()
        self.target.addItems([t.upper() for t in TARGETS])
        form.addRow("Model", self.model)
        form.addRow("Provider", self.provider)
        form.addRow("Running on", self.running)
        form.addRow("CAM method", self.method)
        form.addRow("Target class", self.target)
        layout.addWidget(box)

        self.result = ResultView()
        layout.addWidget(self.result)

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
        self.threshold.setToolTip("Heat floor: heatmap values below it are left transparent. It changes only the "
                                  "picture; the decision threshold is the model card's.")
        of.addRow("Heat floor", self.threshold)
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
        self.result.cardRequested.connect(self.cardRequested)
        self.result.analyseAnyway.connect(self.analyseAnywayRequested)
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
        """The result box for an Analysis (or None to clear), and the provider that ran it."""
        self.result.show_analysis(analysis)
        if analysis is not None:
            self.running.setText(running_text(analysis.provider, analysis.provider_note))
            self.running.setStyleSheet("color: #e0b050;" if analysis.provider_note else "")

    def show_busy(self, text: str) -> None:
        self.result.show_busy(text)


def running_text(provider: str, fallback: str) -> str:
    """The provider that ran the analysis, and when 'auto' fell back to it, why and what that means."""
    name = PROVIDER_NAMES.get(provider, provider)
    if not fallback:
        return name
    return f"{name} (fall-back): {fallback}. Results are the same as on the GPU, only slower."
