"""The analysis panel's result box: probability against the threshold, or the gate's reasons; notes; heat legend."""

from __future__ import annotations

from html import escape as html_escape

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QGroupBox, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from xrayviewer.core.analysis.cam import METHODS
from xrayviewer.core.analysis.engine import Analysis
from xrayviewer.core.analysis.wording import percent

MARKER = QColor(255, 210, 0)
BOX = "QLabel {{ background: {}; color: white; padding: 6px; }}"


def escape(text: str) -> str:
    """Text for a rich-text label (&, < and > escaped; quotes left readable)."""
    return html_escape(text, quote=False)


class ThresholdBar(QProgressBar):
    """P(pneumonia) as a bar with the operating threshold drawn on it as a marker; the digits are written above
    it (`text`), where the marker cannot cross them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRange(0, 1000)
        self.setMinimumHeight(18)
        self.setTextVisible(False)
        self.threshold: float | None = None
        self.text_label = QLabel()
        self.set_result(None, None)

    def set_result(self, probability: float | None, threshold: float | None) -> None:
        self.threshold = threshold
        self.setValue(0 if probability is None else round(probability * 1000))
        self.text_label.setText("P(pneumonia): -" if probability is None else
                                f"P(pneumonia): <b>{percent(probability)}</b>")
        self.update()

    def marker_x(self) -> float | None:
        """Where the marker is drawn, in widget pixels (None without a threshold)."""
        if self.threshold is None:
            return None
        inner = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        return inner.left() + self.threshold * inner.width()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)
        x = self.marker_x()
        if x is None:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(MARKER, 3))
        painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        painter.setPen(QPen(QColor(0, 0, 0), 1))
        painter.setBrush(MARKER)
        for y, d in ((0, 6), (self.height(), -6)):
            painter.drawPolygon(QPolygonF([QPointF(x - 5, y), QPointF(x + 5, y), QPointF(x, y + d)]))
        painter.end()


def heat_text(analysis: Analysis) -> str:
    """What the heatmap's colour means for this result, or why there is none to see."""
    cam, target = analysis.cam, analysis.target.upper()
    method = METHODS[analysis.method]
    if cam is None:
        return ""
    if cam.empty:
        text = (f"Heatmap empty: {method.label} finds no positive evidence for {target} in this film, "
                "so nothing is drawn.")
    elif cam.reference is None:
        text = ("Colour stretched per image: this model has no reference scale, so the hottest spot reaches the "
                "top of the colour bar however weak the evidence is.")
    else:
        text = (f"Colour: evidence for {target} relative to typical pneumonia films (top of the colour bar = the "
                f"95th percentile of their peaks). This film's peak: {cam.relative_peak:.0%} of that.")
    if not method.class_specific:
        text += f" {method.label} is not class-specific: it ignores the target class."
    if cam.draws_against:
        text += f" Dashed cyan lines: evidence against {target} (the score rises when that part is covered)."
    return text


class ResultView(QGroupBox):
    """Shows an Analysis: refused (reasons and 'Analyse anyway'), or the result, marked out of scope if forced."""

    analyseAnyway = Signal()
    cardRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Result", parent)
        layout = QVBoxLayout(self)
        self.bar = ThresholdBar()
        self.rule = self._text("color: #e0c040;")
        self.label = self._text("")
        self.scope = self._text(BOX.format("#a04000"))
        self.refusal = self._text(BOX.format("#8a1c1c"))
        self.anyway = QPushButton("Analyse anyway")
        self.anyway.setToolTip("Show the model's result for this image; it is marked out of scope.")
        self.notes = self._text(BOX.format("#6a5200"))
        self.heat = self._text("color: #b0c4de;")
        self.card_button = QPushButton("Model card...")
        for w in (self.bar.text_label, self.bar, self.rule, self.label, self.scope, self.refusal, self.anyway,
                  self.notes, self.heat, self.card_button):
            layout.addWidget(w)
        self.anyway.clicked.connect(self.analyseAnyway)
        self.card_button.clicked.connect(self.cardRequested)
        self.show_analysis(None)

    @staticmethod
    def _text(style: str) -> QLabel:
        label = QLabel()
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setStyleSheet(style)
        return label

    def show_busy(self, text: str) -> None:
        self.label.setText(text)
        self.label.show()

    def show_analysis(self, analysis: Analysis | None) -> None:
        """Refused: no label, probability or heatmap, but the reasons. Otherwise the result (and its scope)."""
        refused = analysis is not None and analysis.label is None
        shown = analysis is not None and analysis.label is not None
        self.bar.set_result(analysis.probability if shown else None, analysis.threshold if shown else None)
        self.bar.setVisible(not refused)
        self.bar.text_label.setVisible(not refused)
        self.rule.setVisible(shown)
        self.refusal.setVisible(refused)
        self.anyway.setVisible(refused)
        self.scope.setVisible(shown and analysis.out_of_scope)
        self.heat.setVisible(shown)
        self.notes.setVisible(bool(analysis and analysis.notes))
        if analysis is None:
            self.label.setText("No analysis yet")
            return
        reasons = "".join(f"<li>{escape(str(r))}</li>" for r in analysis.refused)
        self.notes.setText("<b>Note</b><ul style='margin:0'>"
                           + "".join(f"<li>{escape(str(n))}</li>" for n in analysis.notes) + "</ul>")
        if refused:
            self.label.setText(f"<b>No result</b> from {escape(analysis.model)}: the gate refused this image.")
            self.refusal.setText("<b>Not analysed: outside what this model can judge.</b>"
                                 f"<ul style='margin:0'>{reasons}</ul>")
            return
        rule = analysis.threshold_rule or "rule not stated in the model card"
        self.rule.setText(f"\u25b2 threshold {analysis.threshold:.2f}: {escape(rule)}")
        self.label.setText(f"<b>{analysis.label}</b> at the operating threshold ({escape(analysis.model)})")
        self.scope.setText("<b>OUT OF SCOPE: shown only because you asked.</b> The gate refused this image:"
                           f"<ul style='margin:0'>{reasons}</ul>")
        self.heat.setText(escape(heat_text(analysis)) + "<br><i>" + escape(analysis.faithfulness) + "</i>")
