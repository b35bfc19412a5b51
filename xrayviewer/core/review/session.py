"""The reading session, without Qt: what the reader has open and where they are, and the review rules.

It holds the film on screen (and the generation counter of the films asked for), the panes' analysis settings and
results, the worklist (its folders, its films, the film chosen and the film on screen), the decisions of this session
(for undo) and the note being typed. The GUI's parts call its methods and observe its events; the rules are tested
without a window (tests/test_reading_session.py):

- A decision, note or mark lands on the worklist film whose pixels are on screen, never on a film only asked for
  (`Refused` "Wait: ... still opening") nor on a film opened from elsewhere (`Refused` "... not in the worklist").
- Undo withdraws the last decision of this session (it stays in the history) and its note comes back as a draft.
- A note is kept as a draft at every change, until it is saved with a decision.
- A write the store refuses (disk full, the file gone) raises `NotSaved`, naming the file and what was not saved; the
  session's state stays as it was.
- A decision on a film another named reader decided is `SecondRead` (a `Refused` carrying their decision), the
  window asks the reader once, and `decide(..., second_read=True)` records it as a second read beside theirs (both in
  the history); on a file store too.

On a store shared by several readers (a PostgreSQL server; tests/test_shared_session.py), without a folder the
worklist is every film in the store, and:
- The film on screen is claimed in the reader's name when shown, its lease renewed while it stays (`fetch_news`, off
  the GUI thread), and given back when the reader moves on undecided or closes (`close`); a decision ends it.
- A film another reader holds is read-only: a decision on it is `Refused` "Being read by NAME"; it becomes the
  reader's once the other lets it go. The worklist knows every live claim (`claims`) and reads the films again
  when another reader changed them (`fetch_news` then `apply_news`, a short poll).
- A server that cannot be reached is said once (`connection_changed`) until a look succeeds again; meanwhile a
  decision is `NotSaved` at once (shown as made only once committed) and a typed note is kept here, written as the
  film's draft when the server is back.
- After the reader's own decision or undo only that film is read again; the other films come with the next look,
  off the GUI thread (a look started before it is not applied: `revision` is then the session's own mark).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from xrayviewer.core.analysis.cam import DEFAULT_METHOD
from xrayviewer.core.analysis.engine import Analysis, Engine
from xrayviewer.core.analysis.overlay import OverlayStyle
from xrayviewer.core.reading.record import ImageRecord
from xrayviewer.core.review.store import (
    LEASE_S,
    Claim,
    ClaimRefused,
    Decision,
    FilmRow,
    Mark,
    ReviewStore,
    default_location,
    location,
)
from xrayviewer.core.review.store_sql import StoreUnreachable, is_server, masked
from xrayviewer.core.review.worklist import film_path

ROOTS_KEY = "worklist_roots"
WAIT_S = 3.0  # how long a write on a shared store waits for a connection before the server counts as unreachable
CURRENT_KEY = "current_film"
_CHANGES = itertools.count(1)  # marks of the films as this session changed them (see ReadingSession._refresh)


class Event:
    """Callbacks called in order with the event's arguments; `connect` returns the function that disconnects."""

    def __init__(self) -> None:
        self._callbacks: list[Callable] = []

    def connect(self, callback: Callable) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self.disconnect(callback)

    def disconnect(self, callback: Callable) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        for callback in list(self._callbacks):
            callback(*args)


class Refused(Exception):
    """The session refused what was asked; the message says why and what to do. `banner`: worth more than the status
    bar (the reader's action was lost, not only early)."""

    def __init__(self, message: str, banner: bool = False) -> None:
        super().__init__(message)
        self.banner = banner


class NotSaved(Exception):
    """The store refused a write: the message names the file and what was not saved."""


class SecondRead(Refused):
    """A decision on a film another named reader decided: no decision was saved; it is taken as a second read
    (`ReadingSession.decide(..., second_read=True)`) once the reader says so. `first`: the other reader's decision."""

    def __init__(self, film: FilmRow, first: Decision) -> None:
        super().__init__(f"{first.reader} decided {Path(film.info.path).name}: {first.decision} "
                         f"({clock(first.decided_at)}); no decision was saved. Decide it again to record yours as a "
                         "second read.")
        self.film, self.first = film, first

    def question(self) -> str:
        """What the window asks the reader, once."""
        return (f"{self.first.reader} decided this film: {self.first.decision} ({clock(self.first.decided_at)}). "
                "Record your reading as a second read?")


def clock(iso: str) -> str:
    """A stored UTC time as the reader's local time: '10:42' today, '2026-12-05 10:42' another day."""
    try:
        at = datetime.fromisoformat(iso).astimezone()
    except ValueError:
        return iso
    return at.strftime("%H:%M" if at.date() == datetime.now().astimezone().date() else "%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class News:
    """What a shared store says now: read off the GUI thread (`ReadingSession.fetch_news`), applied on it
    (`apply_news`)."""

    claims: dict[int, Claim] = field(default_factory=dict)
    revision: tuple = ()
    since: tuple = ()  # the revision the look started from
    films: list[FilmRow] | None = None  # None: unchanged since then
    renewed: int | None = None  # the film whose lease was renewed, if one was due
    lost: int | None = None  # the film whose lease could not be renewed (another reader took it)
    unreachable: str = ""  # why the store could not be reached ('' when it answered)


@dataclass(frozen=True)
class AnalysisSettings:
    """What one pane's analysis uses."""

    model: str = "mobilenetv2"
    method: str = DEFAULT_METHOD
    target: str = "pneumonia"


@dataclass(eq=False)
class PaneState:
    """One pane: its analysis settings and overlay style, and the result of its film."""

    settings: AnalysisSettings
    style: OverlayStyle = field(default_factory=OverlayStyle)
    analysis: Analysis | None = None
    inferences: dict = field(default_factory=dict)  # model -> Inference, for the current film
    generation: int = 0  # bumps on every change; stale worker results are dropped
    force: bool = False  # the user asked to see this film's result although the gate refused it


def under(path: str, roots: list[Path]) -> bool:
    """Whether `path` is one of `roots` or lies inside one of them."""
    p = Path(path)
    return any(p == root or root in p.parents for root in roots)


def films_text(count: int) -> str:
    """'1 film', '2 films'."""
    return f"{count} film" if count == 1 else f"{count} films"


def primary_result(film: FilmRow, model: str):
    """The result of `model` for the film, else of any model it has, else None."""
    return film.results.get(model) or next(iter(film.results.values()), None)


def decided_by_another(film: FilmRow, reader: str) -> Decision | None:
    """The film's current decision when another named reader made it (a decision of this reader's takes only a
    second read then), else None. An unnamed decision is nobody else's."""
    made = film.decision
    return made if made is not None and made.reader not in ("", reader) else None


def ai_positive(film: FilmRow, model: str) -> bool:
    """Whether the film's result (of `model`, else of any model) is at or above its threshold, and not refused."""
    result = primary_result(film, model)
    return (result is not None and not result.refused and result.probability is not None
            and result.threshold is not None and result.probability >= result.threshold)


class ReadingSession:
    """The reader's session: the film on screen, the panes, the worklist, decisions, undo and the note being typed.

    Events (each an `Event`; the arguments in brackets):
    - `film_shown(record, film)`: a film's pixels are on screen; `film` is its worklist row, or None
    - `films_changed(films)`: the worklist's rows were reloaded from the store
    - `note_shown(film, text)`: the note field belongs to `film` (None: to no film) and shows `text`
    - `decision_recorded(film, decision)` and `decision_undone(film, withdrawn)`
    - `draft_kept(film_id, text)`: a typed note was written as a draft
    - `pane_changed(pane)`: a pane's settings or style changed
    - on a shared store: `claims_changed(claims)` (film id -> Claim, who reads what), `hold_changed(film, holder)`
      (the film on screen is another reader's, `holder` naming them, or the reader's own: None) and
      `connection_changed(problem)` (the store is unreachable, and why; '' once it answers again)
    """

    def __init__(self, engine: Engine, panes: list[PaneState], db: str | Path | None = None,
                 reader: Callable[[], str] = lambda: "") -> None:
        """`panes`: the first is always shown, the others with compare; `db`: the review store (default: the
        user's); `reader`: the name saved with each decision."""
        self.engine = engine
        self.panes = panes
        self.active = panes[0]
        self.compare = False
        self.db_path = location(db) if db is not None else default_location()  # a file, or a server's URL
        self.shared = is_server(self.db_path)  # a store on a server, shared with other readers
        self.reader = reader
        self.store: ReviewStore | None = None
        self.record: ImageRecord | None = None  # the film on screen
        self.display: np.ndarray | None = None  # the film at its default window: what the models see
        self.generation = 0  # bumps on every film asked for; a slower earlier read is not shown
        self.roots: list[Path] = []  # the worklist's folders and files
        self.films: list[FilmRow] = []  # the worklist's films
        self.chosen: int | None = None  # the worklist film asked for (its row is highlighted)
        self.film: FilmRow | None = None  # the worklist film whose pixels are on screen
        self.decided: list[int] = []  # films decided in this session, the latest last (for undo)
        self.note_film: int | None = None  # the film whose note is being typed
        self.note = ""  # the note as typed
        self._note_kept = ""  # the note as shown or last written
        self.film_shown, self.films_changed, self.note_shown = Event(), Event(), Event()
        self.decision_recorded, self.decision_undone, self.draft_kept = Event(), Event(), Event()
        self.pane_changed = Event()
        self.lease_s = LEASE_S
        self.claims: dict[int, Claim] = {}  # live claims on a shared store, by film id
        self.holder: str | None = None  # another reader holding the film on screen: it is read-only
        self.held: int | None = None  # the film this reader holds (claimed when shown)
        self.ended: int | None = None  # the film on screen whose claim this reader's decision ended
        self.unreachable = ""  # why the shared store cannot be reached ('' while it can)
        self.pending: dict[int, str] = {}  # notes typed while it could not be: written as drafts once it can
        self.revision: tuple = ()  # the store's revision the films were read at
        self._renewed_at = 0.0
        self.claims_changed, self.hold_changed, self.connection_changed = Event(), Event(), Event()

    # ----- the store -----
    def open_store(self) -> ReviewStore:
        """The review store, opened on first use (XRayViewerError when it cannot be)."""
        if self.store is None:
            self.store = ReviewStore(self.db_path)
            if self.shared:  # a server gone away keeps the reader waiting this long at most, not the pool's 10 s
                self.store.backend.pool.timeout = WAIT_S
        return self.store

    def state(self, key: str, default: str = "") -> str:
        if self.store is None or (self.shared and self.unreachable):
            return default
        return self.store.state(self._key(key), default)

    def set_state(self, key: str, value: str) -> None:
        if self.store is not None and not (self.shared and self.unreachable):
            self._saved("where the reader is", lambda: self.store.set_state(self._key(key), value))

    def _key(self, key: str) -> str:
        """A state's key: on a shared store each reader's own (where one reader is is nobody else's)."""
        return f"{key}@{self.reader().strip()}" if self.shared else key

    def _saved(self, what: str, write: Callable[[], object]):
        """One write to the store; a failure is `NotSaved`, naming the file and what was not saved (a server that
        cannot be reached: said at once, without trying, until a look finds it again)."""
        if self.unreachable:
            raise NotSaved(f"{what[:1].upper()}{what[1:]} was not saved: {self.unreachable_text()}")
        try:
            return write()
        except StoreUnreachable as exc:
            self._lost_connection(exc)
            raise NotSaved(f"{what[:1].upper()}{what[1:]} was not saved: {self.unreachable_text()}") from None
        except ClaimRefused as exc:
            raise Refused(str(exc), banner=True) from None
        except (sqlite3.Error, OSError) as exc:
            raise NotSaved(f"{self.db_path}: {what} was not saved: {exc}. Check the disk and the file's "
                           "permissions, then try again.") from None

    # ----- a shared store: who reads what, and the connection -----
    def place(self) -> str:
        """Where the store is, for messages: the server's host (and port), or the file."""
        if not self.shared:
            return str(self.db_path)
        url = urlsplit(str(self.db_path))
        return f"{url.hostname}:{url.port}" if url.hostname and url.port else url.hostname or masked(str(self.db_path))

    def unreachable_text(self) -> str:
        return (f"the shared worklist at {self.place()} is unreachable: {self.unreachable} Retrying; what you type "
                "is kept here until it is back.")

    def _lost_connection(self, exc: BaseException) -> None:
        why = exc.why if isinstance(exc, StoreUnreachable) else str(exc)
        first = not self.unreachable
        self.unreachable = why if why.endswith(".") else f"{why}."
        if first:
            self.connection_changed.emit(self.unreachable)

    def read_only(self) -> str:
        """Why the film on screen takes no decision nor note on a shared store ('' when it does)."""
        if not self.shared or self.film is None:
            return ""
        if self.holder:
            return f"Being read by {self.holder}"
        if not self.reader().strip():
            return "Give your name (Reader, under the decision buttons): on a shared worklist each film is read " \
                   "in a reader's name"
        return ""

    def _hold(self, film: FilmRow | None) -> None:
        """The film on screen changed: give back the one held before (undecided) and claim this one."""
        if self.held is not None and (film is None or film.id != self.held):
            self._release()
        self.holder = None
        reader = self.reader().strip()
        if film is not None and reader and not self.unreachable:
            try:
                self.claims[film.id] = self.store.claim(film.id, reader, self.lease_s)
                self.held = film.id
                self._renewed_at = time.monotonic()
                self.claims_changed.emit(self.claims)
            except ClaimRefused:
                self.held = None if self.held == film.id else self.held
                self.holder = self._holder_of(film.id)
            except StoreUnreachable as exc:
                self._lost_connection(exc)
        self.hold_changed.emit(film, self.holder)

    def _holder_of(self, film_id: int) -> str:
        """Who holds the film (another reader), read from the store."""
        try:
            self.claims = self.store.claims()
            self.claims_changed.emit(self.claims)
        except StoreUnreachable as exc:
            self._lost_connection(exc)
        claim = self.claims.get(film_id)
        return claim.reader if claim is not None else "another reader"

    def renamed(self, previous: str) -> None:
        """The reader's name changed from `previous`: the film on screen is held under the new name."""
        if self.shared and self.store is not None:
            self._release(previous)
            self._hold(self.film)

    def _release(self, reader: str | None = None) -> None:
        film_id, self.held = self.held, None
        if film_id is None or self.unreachable:
            return  # a lease not given back runs out by itself
        try:
            self.store.release(film_id, (self.reader() if reader is None else reader).strip())
        except StoreUnreachable as exc:
            self._lost_connection(exc)
        self.claims.pop(film_id, None)
        self.claims_changed.emit(self.claims)

    def close(self) -> None:
        """The reader leaves: the note typed is kept, the film held given back."""
        if self.store is None:
            return
        try:
            self.keep_note()
        except NotSaved:
            pass  # the note stays a draft of this session only when the server is away: nothing more to do
        if self.shared:
            self._release()

    def fetch_news(self) -> Callable[[], News]:
        """A look at the shared store to run off the GUI thread (it may wait on the server): the live claims, the
        films when they changed since `revision`, and the lease of the film held renewed when a third of it has
        passed. Give its answer to `apply_news`."""
        store, revision, roots, reader = self.store, self.revision, list(self.roots), self.reader().strip()
        due = self.held if self.held is not None and time.monotonic() - self._renewed_at > self.lease_s / 3 else None
        lease = self.lease_s

        def look() -> News:
            try:
                renewed = lost = None
                if due is not None:
                    if store.renew(due, reader, lease):
                        renewed = due
                    else:
                        lost = due
                now = store.revision()
                films = None if now == revision else [f for f in store.films() if not roots or under(f.info.path,
                                                                                                        roots)]
                return News(store.claims(), now, revision, films, renewed, lost)
            except StoreUnreachable as exc:
                return News(unreachable=exc.why)
        return look

    def apply_news(self, news: News) -> None:
        """What `fetch_news` found: the connection back (the notes kept meanwhile are written), the claims, the
        films, the lease kept or lost; the film on screen becomes the reader's once its other reader let it go (not
        one whose claim the reader's own decision ended)."""
        if news.unreachable:
            self._lost_connection(StoreUnreachable(self.place(), "unreachable", news.unreachable))
            return
        back = bool(self.unreachable)
        self.unreachable = ""
        if back:
            self.connection_changed.emit("")
            self._write_pending()
        if news.renewed is not None and news.renewed == self.held:
            self._renewed_at = time.monotonic()
        self.claims = news.claims
        self.claims_changed.emit(self.claims)
        if news.films is not None and news.since == self.revision:  # not older than what this reader did meanwhile
            self.revision = news.revision
            self._set_films(news.films)
        me = self.reader().strip()
        if self.film is None or not me or self.film.id == self.ended:
            return
        claim = self.claims.get(self.film.id)
        mine = claim is not None and claim.reader == me
        if self.held == self.film.id:
            if not mine:  # the lease ran out (the server was away) or another reader has the film now
                self.held = None
                self._hold(self.film)
        elif claim is None or mine or claim.reader != self.holder:
            self._hold(self.film)  # not held yet (the server was away, the other reader let it go), or held by another

    def _write_pending(self) -> None:
        for film_id, text in list(self.pending.items()):
            try:
                self.store.set_draft(film_id, text)
            except StoreUnreachable as exc:
                self._lost_connection(exc)
                return
            del self.pending[film_id]
            self.draft_kept.emit(film_id, text)

    # ----- panes and analysis -----
    def visible_panes(self) -> list[PaneState]:
        return self.panes if self.compare else self.panes[:1]

    def set_active(self, pane: PaneState) -> None:
        self.active = pane

    def set_settings(self, pane: PaneState, settings: AnalysisSettings) -> None:
        pane.settings = settings
        self.pane_changed.emit(pane)

    def set_style(self, pane: PaneState, style: OverlayStyle) -> None:
        pane.style = style
        self.pane_changed.emit(pane)

    def set_compare(self, on: bool) -> None:
        self.compare = on
        if not on:
            self.active = self.panes[0]

    def set_engine(self, engine: Engine) -> None:
        """Run the models with `engine` from now on; the old one lets its sessions go, the panes forget their
        forward passes."""
        if engine is not self.engine:
            self.engine.close()
        self.engine = engine
        for pane in self.panes:
            pane.inferences.clear()

    def card_name(self) -> str:
        """The name the active pane's model stores its results under ('' without a usable model)."""
        try:
            return self.engine.model(self.active.settings.model).card.name
        except Exception:  # noqa: BLE001 - no usable model: the first stored result is shown
            return ""

    # ----- the film on screen -----
    def ask(self) -> int:
        """A film is asked for: its generation, to give back to `show` with its pixels."""
        self.generation += 1
        return self.generation

    def show(self, record: ImageRecord, display: np.ndarray, generation: int | None = None) -> bool:
        """The pixels of `record` are on screen (False, and nothing changes, when a later film was asked for since).
        The worklist film with its path becomes the film decisions, notes and marks go to, whatever was chosen
        before; a film from elsewhere takes none."""
        if generation is not None and generation != self.generation:
            return False
        self.record, self.display = record, display
        for pane in self.panes:
            pane.inferences.clear()
            pane.analysis = None
            pane.force = False
        self.film = self.film_at(record.path)
        if self.film is None and self.chosen is not None:
            self.chosen = None
            self.load_note(None)
        elif self.film is not None and self.chosen != self.film.id:
            self.chosen = self.film.id
            self.load_note(self.film)
            self.set_state(CURRENT_KEY, str(self.film.id))
        if self.shared:
            self.ended = None
            self._hold(self.film)
        self.film_shown.emit(record, self.film)
        return True

    def show_frame(self, record: ImageRecord) -> None:
        """Another frame of the film on screen (cine): the same film, the same worklist row."""
        self.record = record

    def film_at(self, path: str | Path) -> FilmRow | None:
        return next((f for f in self.films if Path(f.info.path) == Path(path)), None)

    def marks(self) -> list[Mark]:
        """The marks saved with the film on screen (none off the worklist)."""
        return self.store.marks(self.film.id) if self.film is not None and self.store is not None else []

    def save_marks(self, marks: list[Mark]) -> None:
        """Measurements and annotations are saved with the film on screen at once."""
        if self.film is None:
            raise Refused("Marks are saved with a worklist film's review; this film is not in one "
                          "(Review > Review folder...)")
        film_id = self.film.id
        self._saved("the marks", lambda: self.store.set_marks(film_id, marks))

    # ----- the worklist -----
    def saved_roots(self) -> list[Path]:
        """The worklist of the last session, from the store (none without a store file; none on a shared store:
        `review_store` opens its worklist)."""
        if self.shared or not self.db_path.is_file():
            return []
        return [Path(r) for r in json.loads(self.open_store().state(ROOTS_KEY, "[]"))]

    def set_worklist(self, paths: list[str | Path]) -> None:
        """Make `paths` the worklist (remembered in the store); the note typed so far is kept first."""
        store = self.open_store()
        self.keep_note()
        self.roots = [film_path(p) for p in paths]
        self._saved("the worklist", lambda: store.set_state(self._key(ROOTS_KEY),
                                                            json.dumps([str(r) for r in self.roots])))
        self.reload()

    def review_store(self) -> None:
        """The worklist is every film of the store (a department's shared worklist)."""
        self.open_store()
        self.keep_note()
        self.roots = []
        self.reload()

    def resume(self, roots: list[Path]) -> None:
        """The worklist of an earlier session, as it is in the store."""
        self.roots = list(roots)
        self.reload()

    def reload(self) -> None:
        """Reload the worklist's films from the store (on a shared store without folders: all its films)."""
        if self.store is None or not (self.roots or self.shared):
            return
        if self.shared:
            if self.unreachable:
                return  # the next look that finds the server reads them
            try:
                self.revision = self.store.revision()
                films = self.store.films()
                self.claims = self.store.claims()
            except StoreUnreachable as exc:
                self._lost_connection(exc)
                return
            self.claims_changed.emit(self.claims)
        else:
            films = self.store.films()
        self._set_films([f for f in films if not self.roots or under(f.info.path, self.roots)])

    def _set_films(self, films: list[FilmRow]) -> None:
        self.films = films
        if self.film is not None:
            self.film = self.film_row(self.film.id) or self.film
        self.films_changed.emit(self.films)

    def film_row(self, film_id: int | None) -> FilmRow | None:
        return next((f for f in self.films if f.id == film_id), None)

    def remembered_film(self) -> int | None:
        """The film the reader was on when the worklist was last left."""
        wanted = self.state(CURRENT_KEY)
        return int(wanted) if wanted else None

    def choose(self, film: FilmRow) -> None:
        """The reader chose a worklist film (key, click, decision): its note is shown; it opens (the caller asks
        for its pixels)."""
        self.chosen = film.id
        self.load_note(film)
        self.set_state(CURRENT_KEY, str(film.id))

    def unread(self) -> int:
        return sum(f.decision is None for f in self.films)

    def others(self) -> dict[int, str]:
        """The films other readers hold now, and their names."""
        me = self.reader().strip()
        return {film_id: c.reader for film_id, c in self.claims.items() if c.reader != me}

    def end_text(self) -> str:
        """Said when there is no film to go on to."""
        unread, total = self.unread(), films_text(len(self.films))
        return (f"End of the worklist: all {total} reviewed" if not unread else
                f"End of the worklist: {unread} of {total} still unread (U: next unread)")

    # ----- deciding -----
    def decide(self, decision: str, second_read: bool = False) -> FilmRow:
        """Record the reader's decision for the film on screen with the note typed (committed at once); returns the
        film. `Refused` when the film on screen is not a worklist film or the chosen one is still opening;
        `SecondRead` when another named reader decided it, unless `second_read` (then it is recorded as one)."""
        film = self.film
        if film is None or self.store is None:
            raise Refused("The film on screen is not in the worklist: no decision was saved. Choose a film in "
                          "the worklist (or Review > Review folder...) first.", banner=True)
        if self.chosen != film.id:
            chosen = self.film_row(self.chosen)
            raise Refused(f"Wait: {Path(chosen.info.path).name if chosen else 'the film'} is still opening; no "
                          "decision was saved (decide again once it is on screen)")
        if read_only := self.read_only():
            raise Refused(f"{read_only}: {Path(film.info.path).name} is open read-only; no decision was saved. "
                          "Take another film (U: the next unread one nobody reads).", banner=True)
        note, reader, shown = self.note if self.note_film == film.id else "", self.reader(), self.ai_shown(film)
        if (first := decided_by_another(film, reader)) is not None:
            if not second_read:
                raise SecondRead(film, first)
            note = "" if note == first.note else note  # their note, shown in the field, is not copied as this one's
        try:
            made = self._saved(f"the {'second read' if second_read else 'decision'} '{decision}'",
                               lambda: self.store.decide(film.id, decision, note, reader, shown, second_read))
        except Refused:
            if self.shared:
                self._hold(film)  # another reader may hold it after all (this reader's lease ran out)
            if self.holder:
                raise Refused(f"{self.read_only()}: no decision was saved on {Path(film.info.path).name}. Take "
                              "another film (U: the next unread one nobody reads).", banner=True) from None
            self._refresh(film.id)  # decided (or withdrawn) by another reader since it was read
            fresh = self.film_row(film.id)
            if fresh is not None and not second_read and (first := decided_by_another(fresh, reader)) is not None:
                raise SecondRead(fresh, first) from None
            raise
        if film.id == self.held:
            self.held = None  # the decision ended the claim
            self.claims.pop(film.id, None)
            self.claims_changed.emit(self.claims)
        self.ended = film.id  # a look does not claim it again while it stays on screen
        self.decided.append(film.id)
        self._note_kept = note
        self._refresh(film.id)
        self.decision_recorded.emit(self.film_row(film.id) or film, made)
        return film

    def _refresh(self, film_id: int) -> None:
        """Read the film this reader just changed again: on a shared store that film alone (the other films come with
        the next look, off the GUI thread; a look begun before this one is not applied), on a file every film."""
        if not self.shared:
            self.reload()
            return
        if self.unreachable:
            return
        try:
            row = self.store.film(film_id)
        except StoreUnreachable as exc:
            self._lost_connection(exc)
            return
        except KeyError:  # gone from the store meanwhile: the next look reads every film
            row = None
        self.revision = ("changed here", next(_CHANGES))  # no store's revision: the next look reads every film
        self._set_films([f for f in (row if f.id == film_id else f for f in self.films) if f is not None])

    def undo(self) -> tuple[FilmRow | None, int, Decision]:
        """Withdraw the last decision of this session (kept in the history); its note becomes the film's draft
        again. Returns (the film's row, its id, the withdrawn decision); `Refused` when there is none to undo."""
        if not self.decided or self.store is None:
            raise Refused("No decision of this session to undo")
        film_id = self.decided[-1]

        def withdraw() -> Decision | None:
            withdrawn = self.store.withdraw(film_id)
            if withdrawn is not None and withdrawn.note:
                self.store.set_draft(film_id, withdrawn.note)
            return withdrawn

        withdrawn = self._saved("the undo", withdraw)
        self.decided.pop()
        if withdrawn is None:
            raise Refused("No decision of this session to undo")
        self.note_film = None  # the note is read again from the store, not kept over the draft
        if self.ended == film_id:
            self.ended = None  # to be decided again: the next look claims it while it is on screen
        self._refresh(film_id)
        film = self.film_row(film_id)
        self.decision_undone.emit(film, withdrawn)
        return film, film_id, withdrawn

    def ai_shown(self, film: FilmRow) -> dict:
        """What the AI showed on screen when the reader decided: the visible panes' results; when none was on
        screen yet, the stored result marked `on_screen` false."""
        shown = {}
        if self.record is not None and Path(self.record.path) == Path(film.info.path):
            for pane in self.visible_panes():
                a = pane.analysis
                if a is not None:
                    shown[a.model] = {"probability": a.probability, "label": a.label, "threshold": a.threshold,
                                      "refused": [str(r) for r in a.refused], "out_of_scope": a.out_of_scope,
                                      "method": a.method, "on_screen": True}
        if not shown and (result := primary_result(film, self.card_name())) is not None:
            shown[result.model] = {**result.as_dict(), "on_screen": False}
        return shown

    # ----- the note -----
    def load_note(self, film: FilmRow | None) -> None:
        """Keep the note of the film it was typed for, then show `film`'s (its draft, else its decision's)."""
        self.keep_note()
        self.note_film = film.id if film is not None else None
        text = ""
        if film is not None and self.store is not None:
            draft = None
            if film.id in self.pending:
                draft = self.pending[film.id] or None
            elif not (self.shared and self.unreachable):
                try:
                    draft = self.store.draft(film.id)
                except StoreUnreachable as exc:
                    self._lost_connection(exc)
            text = draft if draft is not None else film.decision.note if film.decision else ""
        self.note = self._note_kept = text
        self.note_shown.emit(film, text)

    def type_note(self, text: str) -> None:
        """The note field changed: written as the film's draft at once (a note typed just before a crash is kept)."""
        self.note = text
        self.keep_note()

    def keep_note(self) -> None:
        """Write the note as a draft of its film (or drop the draft when it says what is saved); no write when
        nothing changed since it was shown or kept."""
        text = self.note
        if self.note_film is None or self.store is None or text == self._note_kept:
            return
        film_id, film = self.note_film, self.film_row(self.note_film)
        saved = film.decision.note if film is not None and film.decision else ""
        draft = "" if text == saved else text
        if self.holder and self.film is not None and film_id == self.film.id:
            return  # another reader's film: their note, not this reader's to change
        try:
            self._saved("the note", lambda: self.store.set_draft(film_id, draft))
        except NotSaved:
            if not self.unreachable:
                raise
            self.pending[film_id] = draft  # kept here, written once the server is back
            self._note_kept = text
            return
        self.pending.pop(film_id, None)
        self._note_kept = text
        self.draft_kept.emit(film_id, text)

    def save_note(self, note: str) -> str:
        """Enter in the note field: a decided film keeps its decision with the new note ("saved"); an undecided
        one, or one another reader decided, keeps the note as a draft until this reader's decision or second read
        ("kept"); "" when the note belongs to no film."""
        film = self.film_row(self.note_film)
        if film is None:
            return ""
        self.note = note
        if film.decision is None or decided_by_another(film, self.reader()):
            self.keep_note()
            return "kept"
        decision, reader, shown = film.decision.decision, self.reader(), self.ai_shown(film)
        self._saved("the note", lambda: self.store.decide(film.id, decision, note, reader, shown))
        self._note_kept = note
        self._refresh(film.id)
        return "saved"
