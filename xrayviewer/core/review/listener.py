"""Receiving films pushed by a PACS or a modality (pynetdicom C-STORE SCP) and analysing each as it arrives.

Safe to expose: every association is bounded (`dicom_receive`: datasets stream to disk, an oversized one aborts its
association, a stalled peer is dropped by the time-outs), and callers are checked when they associate: the called
AE title must be ours, the calling AE title allowed, from its host when one is given, and at most
`max_associations` at once. A film is kept only when it is an image with valid UIDs and decodable pixel data,
under the size limit and above the free-disk floor; it is written atomically into the listener's own spool
folder under its content hash and queued, so the association is answered at once however long the analysis
takes. One worker thread analyses the queue into the review store in batches (the worklist's analysis) and reports
one dict per film; every refusal is reported too, with its true reason. Films of the spool folder received before
a stop or a crash and not yet analysed are queued again at the next start (only those: the spool folder is the
listener's alone, never the cache `pacs get` fills).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.dicom_receive import ReceiveLimits, Refusal, keep_dataset, start_server
from xrayviewer.core.review.pacs import LIMIT_BYTES, NETWORK_S, SUCCESS, TRANSFER_SYNTAXES, application_entity
from xrayviewer.core.review.pacs_nodes import AET_CHARS, data_folder
from xrayviewer.core.review.store import ReviewStore
from xrayviewer.core.review.worklist import Worklist, film_path

FREE_FLOOR_BYTES = 1 << 30  # what the spool folder's disk keeps free
MAX_ASSOCIATIONS = 10
# Films analysed together: each is held decoded until its batch is done, so a burst that outruns the analysis costs
# this many films in memory (the worklist's 16 cost ~220 MB more on 40 chest CRs sent during an attack).
ANALYSIS_BATCH = 4
SPOOL_FOLDER = "listener-spool"
EARLIER = "(received earlier)"  # the calling AE title reported for a film found in the spool folder at start


def spool_folder() -> Path:
    """Where the listener keeps the films it received (its own: `pacs get` fills `pacs-cache`)."""
    return data_folder() / SPOOL_FOLDER


@dataclass(frozen=True)
class Caller:
    """An allowed caller: an AE title, and the host it must call from when one is given."""

    aet: str
    host: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Caller":
        """`AET` or `AET@HOST`."""
        aet, _, host = text.partition("@")
        if not AET_CHARS.match(aet) or (_ and not host):
            raise XRayViewerError(None, f"'{text}' is not a caller", "give AET or AET@HOST")
        return cls(aet, host or None)

    def admits(self, aet: str, host: str) -> bool:
        return aet.strip() == self.aet and (self.host is None or self.host == host)


@dataclass
class ListenerSettings:
    """Where and as whom to listen, whom to serve, where films go and the limits."""

    folder: Path
    allowed: list[Caller]
    port: int = 11112
    aet: str = "XRAYVIEWER"
    host: str = ""  # every interface
    limit_bytes: int = LIMIT_BYTES
    free_floor_bytes: int = FREE_FLOOR_BYTES
    ssl_context: object | None = None  # an ssl.SSLContext for DICOM over TLS
    max_associations: int = MAX_ASSOCIATIONS
    network_timeout_s: float = NETWORK_S  # silence after which a peer is dropped, within a PDU or between them


@dataclass
class _Arrival:
    path: Path
    calling_aet: str
    received_at: float = field(default_factory=time.monotonic)


class Listener:
    """A C-STORE SCP feeding a review store; `start()`, then `stop()` (waits for the queue to be analysed)."""

    def __init__(self, settings: ListenerSettings, store: ReviewStore, engine: Engine, models: list[str],
                 report: Callable[[dict], None]) -> None:
        if not settings.allowed:
            raise XRayViewerError(None, "no caller is allowed", "the listener serves only the callers it is given",
                                  "Give --allow AET[@HOST], or configure PACS nodes.")
        self.settings, self.report = settings, report
        self.worklist = Worklist(store, engine, models)
        self.queue: queue.Queue[_Arrival | None] = queue.Queue()
        self._report_lock = threading.Lock()
        self._worker = threading.Thread(target=self._analyse, name="listener-analysis", daemon=True)
        self._server = None

    def start(self) -> None:
        from pynetdicom import evt
        from pynetdicom.presentation import AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification

        s = self.settings
        for name in self.worklist.models:
            self.worklist.model_key(name)  # load the models before the first film comes
        ae = application_entity(s.aet)
        ae.network_timeout = s.network_timeout_s
        ae.add_supported_context(Verification)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, lambda event: SUCCESS)]
        limits = ReceiveLimits(s.limit_bytes)
        self._resume()
        try:
            self._server = start_server(ae, (s.host, s.port), s.folder, limits, handlers, s.ssl_context,
                                        self._on_refusal, self._admit, s.max_associations)
        except OSError as exc:
            raise XRayViewerError(None, f"cannot listen on port {s.port}", exc.strerror or str(exc),
                                  "Choose another --port, or stop what uses it.") from None
        self._worker.start()

    def _resume(self) -> None:
        """Queue what an earlier listener received into the spool folder but did not analyse (it was stopped or
        killed), and remove the files a crash or an aborted association left half-written."""
        folder = self.settings.folder
        if not folder.is_dir():
            return
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        for path in sorted(folder.glob("*.dcm")):
            if self.worklist.store.film_by_path(film_path(path)) is None:
                self.queue.put(_Arrival(film_path(path), EARLIER))

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self.settings.port

    def stop(self) -> None:
        """Stop accepting, then analyse what is queued."""
        if self._server is not None:
            self._server.shutdown()
        if self._worker.is_alive():
            self.queue.put(None)
            self._worker.join()

    def _admit(self, aet: str, host: str) -> str | None:
        """Why a caller is refused at association, or None."""
        callers = [c for c in self.settings.allowed if c.aet == aet]
        if not callers:
            return "calling AE title not allowed"
        if not any(c.admits(aet, host) for c in callers):
            return f"host not allowed for AE title '{aet}' (allowed: " \
                   f"{', '.join(sorted({c.host or 'any' for c in callers}))})"
        return None

    def _on_refusal(self, refusal: Refusal) -> None:
        self._emit(refusal.as_dict())

    def _on_store(self, event) -> int:
        s = self.settings
        kept = keep_dataset(event, s.folder, s.free_floor_bytes)
        requestor = event.assoc.requestor
        aet = str(requestor.ae_title).strip()
        if kept.path is None:
            self._emit({"status": "refused", "calling_aet": aet, "host": requestor.address,
                        "dicom_status": f"0x{kept.status:04X}", "reason": kept.reason})
        else:
            self.queue.put(_Arrival(film_path(kept.path), aet))
        return kept.status

    def _analyse(self) -> None:
        """The worker: take what has arrived (up to a batch), analyse it, report each film; until stopped."""
        stopping = False
        while not stopping:
            arrivals = [self.queue.get()]
            while len(arrivals) < ANALYSIS_BATCH:
                try:
                    arrivals.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in arrivals
            arrivals = [a for a in arrivals if a is not None]
            if arrivals:
                self._analyse_batch(arrivals)

    def _analyse_batch(self, arrivals: list[_Arrival]) -> None:
        by_path = {str(a.path): a for a in arrivals}
        try:
            for event in self.worklist.run_items([(a.path, None) for a in arrivals]):
                arrival = by_path.get(event.path)
                line = event.as_dict()
                if arrival is not None:
                    line["calling_aet"] = arrival.calling_aet
                    line["seconds_to_result"] = round(time.monotonic() - arrival.received_at, 3)
                self._emit(line)
        except Exception as exc:  # noqa: BLE001 - one bad batch is reported; the listener goes on
            for a in arrivals:
                self._emit({"path": str(a.path), "status": "error", "calling_aet": a.calling_aet,
                            "error": f"{type(exc).__name__}: {exc}"})

    def _emit(self, line: dict) -> None:
        with self._report_lock:
            self.report(line)
