"""Before a picture file (no DICOM header) is exported as DICOM: who and which examination it is of."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QWidget

from xrayviewer.core.reading.record import ImageRecord
from xrayviewer.core.review.dicom_export import Identity


class IdentityDialog(QDialog):
    """Patient name, patient ID and accession number, shown and editable; OK exports with them."""

    def __init__(self, record: ImageRecord, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Identity for the DICOM export")
        m = record.metadata
        self.patient_name, self.patient_id = QLineEdit(m.patient_name), QLineEdit(m.patient_id)
        self.accession = QLineEdit(m.accession)
        self.patient_name.setPlaceholderText("FAMILY^GIVEN")
        self.patient_name.setMaxLength(64)
        self.patient_id.setMaxLength(64)
        self.accession.setMaxLength(16)
        note = QLabel(f"{record.path} is a picture file: it names no patient. The export joins the study of this "
                      "file (the same at every export) under these details.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow(note)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Accession number", self.accession)
        form.addRow(buttons)

    def identity(self) -> Identity:
        return Identity(self.patient_name.text(), self.patient_id.text(), self.accession.text())


def ask_identity(record: ImageRecord, parent: QWidget | None = None) -> Identity | None:
    """The identity the user confirms for a picture file (None: cancelled)."""
    dialog = IdentityDialog(record, parent)
    try:
        return dialog.identity() if dialog.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dialog.deleteLater()
