"""The model card as readable text (non-modal, deleted when closed)."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QTextBrowser, QVBoxLayout, QWidget

from xrayviewer.core.analysis.card_text import sections


def card_html(card: dict) -> str:
    """The card's sections as simple HTML: a heading and a bullet list each."""
    parts = [f"<h2>Model card: {escape(str(card.get('name')))}</h2>"]
    for title, lines in sections(card):
        items = "".join(f"<li>{escape(line)}</li>" for line in lines)
        parts.append(f"<h3>{escape(title)}</h3><ul>{items}</ul>")
    return "".join(parts)


class ModelCardDialog(QDialog):
    def __init__(self, card: dict, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(f"Model card - {card.get('name')}")
        self.text = QTextBrowser()
        self.text.setHtml(card_html(card))
        QVBoxLayout(self).addWidget(self.text)
        self.resize(720, 680)
