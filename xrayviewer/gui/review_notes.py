"""The worklist's note field: a typed note is kept as a draft in the review store at every change (a write of a tenth
of a millisecond: a note typed just before a crash is kept) until it is saved with a decision; Enter or Esc hand the
keys back to the film."""

from __future__ import annotations

from xrayviewer.core.review.store import FilmRow


class NotesMixin:
    """Which film the note field belongs to, its drafts, and the keys that leave it."""

    def _build_notes(self) -> None:
        self.note_film: int | None = None  # the film whose note is in the note field
        self._note_as_loaded = ""  # the note field's text when it was shown or last kept
        self.worklist.noteEdited.connect(self.save_note)
        self.worklist.note.left.connect(self.leave_note)
        self.worklist.note.textEdited.connect(lambda _: self.keep_note())

    def edit_note(self) -> None:
        if self.note_film is None:
            self.statusBar().showMessage("Notes are kept with a worklist film; this film is not in one", 5000)
            return
        self.worklist.note.setFocus()

    def load_note(self, film: FilmRow | None) -> None:
        """Keep the note of the film it was typed for, then show `film`'s (its draft, else its decision's)."""
        self.keep_note()
        self.note_film = film.id if film is not None else None
        text = ""
        if film is not None:
            draft = self.store.draft(film.id)
            text = draft if draft is not None else film.decision.note if film.decision else ""
        self.worklist.note.setText(text)
        self._note_as_loaded = text
        self.worklist.note.setEnabled(film is not None)
        if self.worklist.note.hasFocus():
            self.active.view.setFocus()  # the next key is for the new film, not typed into its note

    def keep_note(self) -> None:
        """Save the note field as a draft of its film (or drop the draft when it says what is saved)."""
        text = self.worklist.note.text()
        if self.note_film is None or self.store is None or text == self._note_as_loaded:
            return  # nothing typed since the note was shown or kept: no write
        film_id, film = self.note_film, self.worklist.film(self.note_film)
        saved = film.decision.note if film is not None and film.decision else ""
        if self._saved("the note", lambda: self.store.set_draft(film_id, "" if text == saved else text)):
            self._note_as_loaded = text

    def save_note(self, note: str) -> None:
        """Enter in the note field: a decided film keeps its decision with the new note; an undecided one keeps
        the note as a draft until its decision. Either way the keys go back to the film."""
        film = self.worklist.film(self.note_film) if self.note_film is not None else None
        if film is None:
            return
        if film.decision is None:
            self.keep_note()
            self.statusBar().showMessage("Note kept; it is saved with the decision (1-4)", 6000)
        else:
            decision, reader, shown = film.decision.decision, self.reader_name(), self._ai_shown(film)
            if self._saved("the note", lambda: self.store.decide(film.id, decision, note, reader, shown)):
                self._note_as_loaded = note
                self.refresh_worklist()
                self.statusBar().showMessage("Note saved", 5000)
        self.active.view.setFocus()

    def leave_note(self) -> None:
        """Esc in the note field: the note is kept, the keys go back to the film."""
        self.keep_note()
        self.active.view.setFocus()

    def closeEvent(self, event) -> None:  # noqa: N802
        """A note typed and not yet saved is kept as a draft when the viewer closes."""
        self.keep_note()
        super().closeEvent(event)
