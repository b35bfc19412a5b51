"""The worklist's note field, bound to the reading session: every change is kept as a draft of its film at once (a
write of a tenth of a millisecond: a note typed just before a crash is kept) until it is saved with a decision; Enter
or Esc hand the keys back to the film. A film another reader holds on a shared store keeps the field disabled."""

from __future__ import annotations

from collections.abc import Callable

from xrayviewer.core.review.session import NotSaved, ReadingSession
from xrayviewer.core.review.store import FilmRow


class NotesPart:
    """Shows the session's note in `field` (a worklist_view.NoteField) and hands what is typed to the session.
    `row(film_id)` is the worklist's row of a film; `messages` says what happened."""

    def __init__(self, session: ReadingSession, field, row: Callable[[int], FilmRow | None], messages) -> None:
        self.session, self.field, self.row, self.messages = session, field, row, messages
        field.setEnabled(False)
        field.textChanged.connect(self._typed)  # typed, pasted or set: the note as the reader sees it
        field.returnPressed.connect(lambda: self.save_note(field.text()))
        field.left.connect(self.leave_note)
        session.note_shown.connect(self._shown)
        session.hold_changed.connect(lambda film, holder: self.field.setEnabled(film is not None and not holder))

    def _shown(self, film: FilmRow | None, text: str) -> None:
        self.field.setText(text)
        self.field.setEnabled(film is not None and not self.session.holder)
        if self.field.hasFocus():
            self.focus_film()  # the next key is for the new film, not typed into its note

    def _typed(self, text: str) -> None:
        try:
            self.session.type_note(text)
        except NotSaved as exc:
            self.messages.error(str(exc))

    def focus_film(self) -> None:
        self.session.active.view.setFocus()

    def edit_note(self) -> None:
        if self.session.note_film is None:
            self.messages.status("Notes are kept with a worklist film; this film is not in one", 5000)
            return
        self.field.setFocus()

    def save_note(self, note: str) -> None:
        """Enter in the note field: a decided film keeps its decision with the new note; an undecided one keeps
        the note as a draft until its decision. Either way the keys go back to the film."""
        try:
            done = self.session.save_note(note)
        except NotSaved as exc:
            self.messages.error(str(exc))
            done = "failed"
        if not done:
            return  # the note belongs to no film
        if done == "kept":
            self.messages.status("Note kept; it is saved with the decision (1-4)", 6000)
        elif done == "saved":
            self.messages.status("Note saved", 5000)
        self.focus_film()

    def leave_note(self) -> None:
        """Esc in the note field: the note is kept, the keys go back to the film."""
        self.keep_note()
        self.focus_film()

    def keep_note(self) -> None:
        """What is typed is written now (on closing the viewer, too)."""
        try:
            self.session.keep_note()
        except NotSaved as exc:
            self.messages.error(str(exc))
