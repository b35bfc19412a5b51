"""Receiving films pushed by a PACS or a modality (pynetdicom C-STORE SCP) and analysing each as it arrives.

Only allowed callers are served: their AE title is checked when they associate (others are rejected), their host
when a film comes (others get 'not authorised'). A film is an image SOP class (others: 'SOP class not supported'),
under a size limit, decodable, and leaves a free-disk floor; it is written atomically into the cache under its
content hash and queued, so the association is answered at once however long the analysis takes. One worker
thread analyses the queue into the review store in batches (the worklist's analysis) and reports one dict per film;
films received before a stop or a crash and not yet analysed are queued again at the next start.
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
from xrayviewer.core.review.pacs import (NOT_AUTHORISED, SUCCESS, TRANSFER_SYNTAXES, application_entity,
                                         store_event)
from xrayviewer.core.review.pacs_nodes import AET_CHARS
from xrayviewer.core.review.store import ReviewStore
from xrayviewer.core.review.worklist import BATCH, Worklist, film_path

LIMIT_BYTES = 512 << 20  # one dataset: a large CR is ~30 MB uncompressed
FREE_FLOOR_BYTES = 1 << 30  # what the cache's disk keeps free
EARLIER = "(received earlier)"  # the calling AE title reported for a film found in the cache at start
STATUS_WORDS = {0x0122: "not an image SOP class", 0xA700: "over the size limit or the free-disk floor",
                0xC000: "the dataset cannot be decoded", NOT_AUTHORISED: "the calling host is not allowed"}


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
        ae.require_calling_aet = sorted({c.aet for c in s.allowed})
        ae.add_supported_context(Verification)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo),
                    (evt.EVT_REJECTED, self._on_rejected)]
        try:
            self._server = ae.start_server((s.host, s.port), block=False, evt_handlers=handlers,
                                           ssl_context=s.ssl_context)
        except OSError as exc:
            raise XRayViewerError(None, f"cannot listen on port {s.port}", exc.strerror or str(exc),
                                  "Choose another --port, or stop what uses it.") from None
        self._worker.start()
        self._resume()

    def _resume(self) -> None:
        """Queue what an earlier listener received but did not analyse (it was stopped or killed), and remove the
        temporary files a crash left half-written."""
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

    def _admitted(self, event) -> tuple[bool, str]:
        requestor = event.assoc.requestor
        aet = requestor.ae_title.strip() if isinstance(requestor.ae_title, str) else str(requestor.ae_title)
        return any(c.admits(aet, requestor.address) for c in self.settings.allowed), aet

    def _on_echo(self, event) -> int:
        return SUCCESS if self._admitted(event)[0] else NOT_AUTHORISED

    def _on_rejected(self, event) -> None:
        requestor = event.assoc.requestor
        self._emit({"status": "rejected", "calling_aet": str(requestor.ae_title).strip(),
                    "host": requestor.address, "reason": "calling AE title not allowed"})

    def _on_store(self, event) -> int:
        admitted, aet = self._admitted(event)
        if not admitted:
            status, path = NOT_AUTHORISED, None
        else:
            s = self.settings
            status, path = store_event(event, s.folder, s.limit_bytes, s.free_floor_bytes)
        if path is None:
            self._emit({"status": "refused", "calling_aet": aet, "host": event.assoc.requestor.address,
                        "dicom_status": f"0x{status:04X}", "reason": STATUS_WORDS.get(status, "refused")})
        else:
            self.queue.put(_Arrival(film_path(path), aet))
        return status

    def _analyse(self) -> None:
        """The worker: take what has arrived (up to a batch), analyse it, report each film; until stopped."""
        stopping = False
        while not stopping:
            arrivals = [self.queue.get()]
            while len(arrivals) < BATCH:
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
