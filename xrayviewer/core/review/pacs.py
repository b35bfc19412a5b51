"""Talking to a PACS as a client (pynetdicom SCU): echo, study search, retrieve (C-GET, else C-MOVE to this AE title)
and send (C-STORE). Only the node given is contacted, and nothing it sends is trusted:

- every association has time-outs (connect, ACSE, DIMSE, network), and a search or a retrieve has an overall limit
  (`Limits`): a node that does not answer, or trickles bytes or films, costs at most the stated limit and one line
  naming the node and the limit that was hit;
- matches are read attribute by attribute (`pacs_answers`: a bad value becomes empty, with a note) and handed on
  as they arrive;
- a film a retrieve receives must belong to the study asked for, and to its patient when the search gave one, or it
  is refused and nothing of it is kept; a C-MOVE is received only while it lasts, on the interface that reaches the
  node, and only from that node (its AE title and host);
- films stream to disk as they come, under the same limits as the listener's (`dicom_receive`: a film over the size
  limit aborts its association as it passes it), and are kept under names made here (the content's hash), never
  names from the network; those kept before a failure are returned with it (`Retrieved.failure`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pydicom.uid import UID

from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.pacs_answers import Answer, is_uid, shown
from xrayviewer.core.review.pacs_nodes import DEFAULT_AET, Node

if TYPE_CHECKING:  # (imported where used: importing this module stays light)
    from xrayviewer.core.review.dicom_receive import ReceiveLimits, Refusal

CONNECT_S = 5.0  # TCP connection
ACSE_S = 10.0  # association request and release
DIMSE_S = 60.0  # one message (a C-GET's next status comes after each film)
NETWORK_S = 60.0  # silence on an established association
SEARCH_S = 300.0  # a whole search, by default (`pacs find --timeout`)
RETRIEVE_S = 1800.0  # a whole retrieve, by default (`pacs get --timeout`)
LIMIT_BYTES = 512 << 20  # the largest film a retrieve takes, by default (`pacs get --max-mb`, as the listener's)
MOVE_ASSOCIATIONS = 2  # associations the node may open at once to deliver a C-MOVE
STUDY_FIELDS = ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "StudyTime", "ModalitiesInStudy",
                "StudyDescription", "AccessionNumber", "NumberOfStudyRelatedInstances")
TRANSFER_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70",
                     "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                     "1.2.840.10008.1.2.5")  # implicit/explicit LE, JPEG baseline/lossless, JPEG 2000, RLE
RETRIEVED_CLASSES = ("1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1",
                     "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4",
                     "1.2.840.10008.5.1.4.1.1.6.1")  # CR, DX (presentation, processing), SC, CT, MR, US
NON_IMAGE_MODALITIES = {"SR", "KO", "PR", "DOC", "REG", "SEG", "RWV", "PLAN", "AU", "ECG"}  # series not retrieved
AI_OVERLAY_SERIES = "AI overlay (research use only, not a diagnosis)"  # this viewer's own SC
AI_HEATMAP_SERIES = "AI heatmap (research use only, not a diagnosis)"  # its Parametric Map (the film's modality)
OWN_SERIES = {AI_OVERLAY_SERIES: "AI overlay", AI_HEATMAP_SERIES: "AI heatmap"}  # never retrieved as films
MIXED_MODALITIES = {"OT", ""}  # images (a Secondary Capture) or not (a Parametric Map): the films' classes tell
SUCCESS, OUT_OF_RESOURCES, NOT_AUTHORISED, SOP_CLASS_REFUSED, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0x0124, 0x0122, 0xC000
PENDING = (0xFF00, 0xFF01)
A_ABORT = bytes.fromhex("07000000000400000000")  # an A-ABORT PDU from the service user, no reason given

STATUS_MEANINGS = {0xA801: "the move destination is unknown to it: declare this AE title, host and port there",
                   0xA701: "out of resources", 0xA702: "out of resources", 0xC000: "unable to process",
                   0x0122: "SOP class not supported", 0x0124: "not authorised", 0xA700: "out of resources",
                   0xA900: "dataset does not match SOP class"}

logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # failures are reported as one line each, not logs


class PacsError(XRayViewerError):
    """A PACS node could not be reached or refused what was asked; `cause` says what stopped it, as in
    "3 of 25 films retrieved before <cause>"."""

    def __init__(self, node: Node, why: str, fix: str = "", cause: str = "") -> None:
        super().__init__(None, f"PACS node {node}", why, fix)
        self.cause = cause or f"a failure ({self.why})"


def is_image_class(sop_class: str) -> bool:
    """Whether a storage SOP class holds images (CR, DX, SC, CT...), not reports, documents or states."""
    return "Image Storage" in UID(sop_class).name


def application_entity(aet: str = DEFAULT_AET, within: float = math.inf):
    """A pynetdicom AE with the app's time-outs (connecting and associating take at most `within` seconds)."""
    from pynetdicom import AE, _config

    _config.LOG_RESPONSE_IDENTIFIERS = _config.LOG_REQUEST_IDENTIFIERS = False  # (pynetdicom decodes each to log it)
    ae = AE(ae_title=aet)
    ae.connection_timeout, ae.acse_timeout = min(CONNECT_S, within), min(ACSE_S, within)
    ae.dimse_timeout, ae.network_timeout = DIMSE_S, NETWORK_S
    return ae


def associate(node: Node, ae, ext_neg: list | None = None, evt_handlers: list | None = None):
    """An established association with `node`, else a PacsError saying why."""
    assoc = ae.associate(node.host, node.port, ae_title=node.aet, ext_neg=ext_neg, evt_handlers=evt_handlers)
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        raise PacsError(node, f"it refused the association from AE title '{ae.ae_title}'",
                        "Ask for this AE title (and host) to be allowed on the PACS.")
    raise PacsError(node, f"no DICOM answer (connection refused, or nothing within {ae.connection_timeout:g} s to "
                    f"connect and {ae.acse_timeout:g} s to associate: not running, not reachable, or not a DICOM "
                    "node)", "Check the AE title, host and port.")


class Limits:
    """The time limits of one search or retrieve. Each association's own time-outs end a silent exchange; the overall
    limit (`seconds`) ends one that a node keeps alive by trickling bytes or films: when it passes, the watched
    associations are aborted. `failure()` says which limit ended an exchange that got no answer."""

    def __init__(self, node: Node, seconds: float | None, what: str) -> None:
        self.node, self.seconds, self.what = node, seconds, what
        self.start = self.last = time.monotonic()
        self.hit = False
        self._timers: dict[int, threading.Timer] = {}  # by the id of the association each aborts

    def touch(self) -> None:
        """A message came: the per-message limit starts again."""
        self.last = time.monotonic()

    def remaining(self) -> float:
        return math.inf if self.seconds is None else self.start + self.seconds - time.monotonic()

    def associate(self, aet: str, contexts: Iterable = (), ext_neg: list | None = None,
                  evt_handlers: list | None = None, receive: ReceiveLimits | None = None):
        """An association with the node requesting `contexts`, aborted when the overall limit passes; with
        `receive`, one that receives films under those limits."""
        if self.remaining() <= 0:
            raise self.failure(f"{self.what}")
        ae = application_entity(aet, self.remaining())
        if receive is not None:
            from xrayviewer.core.review.dicom_receive import configure

            configure(ae, receive)
        for context in contexts:
            ae.add_requested_context(*context) if isinstance(context, tuple) else ae.add_requested_context(context)
        assoc = associate(self.node, ae, ext_neg, evt_handlers)
        self.watch(assoc)
        return assoc

    def watch(self, assoc) -> None:
        """Abort `assoc` when the overall limit passes."""
        if self.seconds is None:
            return
        timer = threading.Timer(max(0.0, self.remaining()), self._expire, [assoc])
        timer.daemon = True
        timer.start()
        self._timers[id(assoc)] = timer

    def _expire(self, assoc) -> None:
        self.hit = True  # (the exchange is still on: its end cancels the timer)
        hang_up(assoc)

    def close(self, assoc) -> None:
        """Release `assoc` (hang up where a release could outlast the overall limit), then stop watching it."""
        try:
            if assoc.is_established:
                assoc.release() if self.remaining() > ACSE_S else hang_up(assoc)
        finally:
            timer = self._timers.pop(id(assoc), None)
            if timer is not None:
                timer.cancel()

    def failure(self, what: str) -> PacsError:
        """Why `what` got no answer: the overall limit, the per-message limit, or the node's abort."""
        if self.hit or self.remaining() <= 0:
            limit = f"the {self.what} time limit of {self.seconds:g} s"
            return PacsError(self.node, f"{what}: {limit} was hit (--timeout)",
                             "Give a longer --timeout, or ask for less at a time.", f"{limit} was hit")
        if time.monotonic() - self.last >= min(DIMSE_S, NETWORK_S) - 1:
            return PacsError(self.node, f"{what}: nothing complete came within {DIMSE_S:g} s (the per-message limit)",
                             "Check that the node is not overloaded, then try again.",
                             f"the PACS sent nothing complete for {DIMSE_S:g} s")
        return PacsError(self.node, f"{what}: the PACS aborted the association or closed the connection",
                         cause="the PACS aborted")


def hang_up(assoc) -> None:
    """End `assoc` now, from any thread: an A-ABORT if the socket takes it at once, then the connection closed. (Not
    pynetdicom's abort, which waits for its DUL: a node trickling a long PDU keeps that reading for as long as it
    likes.) The DUL's read ends, and pynetdicom wakes whatever waits for a message on the association."""
    connection = getattr(assoc.dul.socket, "socket", None)
    if connection is None:
        return
    try:
        connection.send(A_ABORT, getattr(socket, "MSG_DONTWAIT", 0))
    except OSError:
        pass
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _check(node: Node, status: Dataset | None, what: str, limits: Limits | None = None,
           pending_ok: bool = False) -> int:
    """The status code of a response; a PacsError when there was none or it says failure."""
    if status is None or "Status" not in status:
        if limits is not None:
            raise limits.failure(what)
        raise PacsError(node, f"{what}: no answer within {DIMSE_S:.0f} s, or the association was aborted")
    code = int(status.Status)
    if code == SUCCESS or (pending_ok and code in PENDING) or code in (0xB000, 0xB007, 0xB006):
        return code  # success, pending, or warnings (some sub-operations failed: the films that came are kept)
    comment = str(status.get("ErrorComment", "") or STATUS_MEANINGS.get(code, ""))
    raise PacsError(node, f"{what} failed with status 0x{code:04X}" + (f" ({shown(comment)})" if comment else ""),
                    cause=f"the PACS answered 0x{code:04X}" + (f" ({shown(comment)})" if comment else ""))


def echo(node: Node, aet: str = DEFAULT_AET) -> None:
    """C-ECHO: returns when the node answers with success."""
    from pynetdicom.sop_class import Verification

    ae = application_entity(aet)
    ae.add_requested_context(Verification)
    assoc = associate(node, ae)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    _check(node, status, "C-ECHO")


def study_query(patient: str = "", patient_id: str = "", dates: str = "", modalities: str = "",
                accession: str = "") -> Dataset:
    """A study-level C-FIND identifier; empty keys ask the node to return the field."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    for keyword in STUDY_FIELDS:
        setattr(query, keyword, "")
    query.PatientName, query.PatientID, query.StudyDate, query.AccessionNumber = patient, patient_id, dates, accession
    query.ModalitiesInStudy = modalities.replace(",", "\\")
    return query


def _matches(assoc, query: Dataset, limits: Limits, what: str, note: Callable[[str], None]) -> Iterator[Answer]:
    """The matches of one C-FIND on `assoc` as they arrive; a PacsError after the last when it failed."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    previous = None
    for status, identifier in assoc.send_c_find(query, FIND):
        limits.touch()
        if _check(limits.node, status, what, limits, pending_ok=True) in PENDING:
            if identifier is not None:
                yield Answer(identifier)
            elif status is not previous:  # (pynetdicom yields an undecodable match twice)
                note("a match could not be decoded: skipped")
        previous = status


def search(node: Node, query: Dataset, aet: str = DEFAULT_AET, seconds: float | None = SEARCH_S,
           note: Callable[[str], None] = lambda _: None) -> Iterator[dict]:
    """C-FIND at study level (Study Root): one dict per study, with the fields of STUDY_FIELDS, as each arrives;
    `note` hears of attributes left empty. A failure (within `seconds` in all) is a PacsError after the last one."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    limits = Limits(node, seconds, "search")
    assoc = limits.associate(aet, [FIND])
    try:
        for answer in _matches(assoc, query, limits, "C-FIND", note):
            study = _study(answer)
            for text in answer.notes:
                note(f"study {study['StudyInstanceUID'] or '(no valid UID)'}: {text}")
            yield study
    finally:
        limits.close(assoc)


def find(node: Node, query: Dataset, aet: str = DEFAULT_AET, seconds: float | None = SEARCH_S) -> list[dict]:
    """The studies of `search` as a list."""
    return list(search(node, query, aet, seconds))


def _study(answer: Answer) -> dict:
    return {"StudyInstanceUID": answer.uid("StudyInstanceUID"), "patient": answer.text("PatientName"),
            "patient_id": answer.text("PatientID"), "date": answer.date("StudyDate"),
            "time": answer.time("StudyTime"), "modalities": answer.codes("ModalitiesInStudy"),
            "description": answer.text("StudyDescription"), "accession": answer.text("AccessionNumber"),
            "images": answer.integer("NumberOfStudyRelatedInstances")}


@dataclass(frozen=True)
class Series:
    """A series to retrieve and what each of its films must carry: its study's UID and, when the search gave one,
    its patient's ID; `count` is the number of films the search announced (None when it did not say)."""

    study_uid: str
    series_uid: str
    patient_id: str
    count: int | None

    def identifier(self) -> Dataset:
        series = Dataset()
        series.QueryRetrieveLevel, series.StudyInstanceUID = "SERIES", self.study_uid
        series.SeriesInstanceUID = self.series_uid
        return series

    def mismatch(self, film: Dataset) -> str:
        """What makes `film` another study's or another patient's ('' when nothing does)."""
        answer = Answer(film)
        differ = []
        study = answer.text("StudyInstanceUID")
        if study != self.study_uid:
            differ.append(f"its StudyInstanceUID {shown(study)} is not the study asked for ({self.study_uid})")
        patient = answer.text("PatientID")
        if self.patient_id and patient != self.patient_id:
            differ.append(f"its PatientID {shown(patient)} is not the study's ({shown(self.patient_id)})")
        return "; ".join(differ)


@dataclass
class Retrieved:
    """What a retrieve brought: the films written, one message per film or caller refused, the number of films the
    node announced (None when it did not say), and what ended the retrieve early (None when it completed)."""

    paths: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    expected: int | None = None
    failure: PacsError | None = None
    refused: int = 0  # films refused (each has its line in `problems`)

    def summary(self) -> str:
        """'3 of 25 films retrieved before the PACS aborted', '1 of 2 films retrieved, 1 refused'..."""
        count = len(self.paths)
        films = f"{count} of {self.expected} films" if self.expected is not None and self.expected >= count else \
            f"{count} film{'' if count == 1 else 's'}"
        refused = f", {self.refused} refused" if self.refused else ""
        return f"{films} retrieved{refused}" + (f" before {self.failure.cause}" if self.failure else "")


def image_series(node: Node, study_uids: Iterable[str], aet: str = DEFAULT_AET, limits: Limits | None = None,
                 note: Callable[[str], None] = lambda _: None) -> list[Series]:
    """The studies' series that hold images (not reports, key objects or presentation states, which a PACS would fail
    a whole retrieve over when they are declined), each with its study's patient ID as the node gives it."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    limits = limits or Limits(node, RETRIEVE_S, "retrieve")
    assoc = limits.associate(aet, [FIND])
    found = []
    try:
        for study_uid in study_uids:
            query = Dataset()
            query.QueryRetrieveLevel, query.StudyInstanceUID, query.PatientID = "STUDY", study_uid, ""
            patients = {answer.text("PatientID") for answer in _matches(assoc, query, limits,
                                                                        f"C-FIND of study {study_uid}", note)
                        if answer.text("StudyInstanceUID") == study_uid}
            if len(patients) != 1:
                note(f"study {study_uid}: " + ("the node does not know it" if not patients else
                     f"the node gives it {len(patients)} patient IDs ({', '.join(map(shown, sorted(patients)))}): "
                     "not retrieved"))
                continue
            query = Dataset()
            query.QueryRetrieveLevel, query.StudyInstanceUID = "SERIES", study_uid
            query.SeriesInstanceUID, query.Modality, query.NumberOfSeriesRelatedInstances = "", "", ""
            query.SeriesDescription = ""
            for answer in _matches(assoc, query, limits, f"C-FIND of the series of study {study_uid}", note):
                series_uid = answer.uid("SeriesInstanceUID")
                if answer.text("StudyInstanceUID") not in ("", study_uid) or not series_uid:
                    note(f"study {study_uid}: a series answer without a valid SeriesInstanceUID of this study: "
                         "skipped")
                elif answer.text("SeriesDescription") in OWN_SERIES:
                    note(f"study {study_uid}: series {series_uid} is this viewer's own "
                         f"{OWN_SERIES[answer.text('SeriesDescription')]}, not a film: skipped")
                elif answer.text("Modality").upper() not in NON_IMAGE_MODALITIES and (
                        answer.text("Modality").upper() not in MIXED_MODALITIES or
                        _holds_images(assoc, study_uid, series_uid, limits, note)):
                    found.append(Series(study_uid, series_uid, next(iter(patients)),
                                        answer.integer("NumberOfSeriesRelatedInstances")))
    finally:
        limits.close(assoc)
    return found


def _holds_images(assoc, study_uid: str, series_uid: str, limits: Limits, note: Callable[[str], None]) -> bool:
    """Whether a series of an ambiguous modality holds images (a Secondary Capture) or not (a Parametric Map)."""
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID, query.SeriesInstanceUID = "IMAGE", study_uid, series_uid
    query.SOPInstanceUID, query.SOPClassUID = "", ""
    classes = {answer.uid("SOPClassUID") for answer in _matches(assoc, query, limits,
                                                                 f"C-FIND of the films of series {series_uid}", note)}
    return not classes or any(sop_class and is_image_class(sop_class) for sop_class in classes)


def retrieve(node: Node, study_uids: list[str], folder: Path, aet: str = DEFAULT_AET, move_port: int | None = None,
             seconds: float | None = RETRIEVE_S, progress: Callable[[int, int | None], None] | None = None,
             move_bind: str | None = None, limit_bytes: int = LIMIT_BYTES) -> Retrieved:
    """C-GET the studies into `folder`; with `move_port`, or when the node does not offer C-GET, C-MOVE them to
    this AE title instead, received on `move_port` (the node must know this AE title's host and port). All within
    `seconds`; `progress(films kept, films announced)` after each film."""
    wrong = [uid for uid in study_uids if not is_uid(uid)]
    if wrong:
        raise XRayViewerError(None, f"{shown(wrong[0])} is not a study UID",
                              "give the StudyInstanceUID that `xrayviewer pacs find` printed")
    if move_port is None:
        try:
            return get(node, study_uids, folder, aet, limit_bytes, seconds, progress)
        except NoGet:
            move_port = MOVE_PORT
    return move(node, study_uids, folder, aet, move_port, limit_bytes, seconds, progress, move_bind)


class NoGet(PacsError):
    """The node does not offer C-GET."""


MOVE_PORT = 11112


class _Receiver:
    """The C-STORE side of one retrieve: keeps each film of the series being asked for (streamed to disk under
    `limits`, checked by dicom_receive), refuses any other; `refused` hears of the associations it aborted or
    rejected."""

    def __init__(self, node: Node, folder: Path, limits: Limits, limit_bytes: int,
                 progress: Callable[[int, int | None], None] | None) -> None:
        from xrayviewer.core.review.dicom_receive import ReceiveLimits

        self.node, self.folder, self.limits = node, folder, limits
        self.receive = ReceiveLimits(limit_bytes)
        self.progress = progress or (lambda kept, expected: None)
        self.out = Retrieved()
        self.asked: Series | None = None  # the series of the C-GET or C-MOVE in flight
        self.announced: dict[str, int | None] = {}  # films per series: the search's count, then the retrieve's
        self.aborted: str | None = None  # why this workstation aborted an association that was sending films
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    def plan(self, series: list[Series]) -> None:
        self.announced = {s.series_uid: s.count for s in series}
        self._count()

    def follow(self, series: Series, responses: Iterable, what: str) -> None:
        """Take the films of `series` while its C-GET/C-MOVE `responses` come. A failure the node reports after
        films were refused here is a note (it failed them: we did), not the end of the retrieve."""
        self.asked, refused = series, self.out.refused
        try:
            for status, _ in responses:
                self.limits.touch()
                answered = status is not None and "Status" in status
                if answered:
                    self.counted(series, status)
                try:
                    _check(self.node, status, what, self.limits, pending_ok=True)
                except PacsError as exc:
                    if not answered or self.out.refused == refused:
                        raise
                    self.refuse(f"{what}: {exc.cause}, having had {self.out.refused - refused} of its films refused")
        finally:
            self.asked = None

    def counted(self, series: Series, status: Dataset) -> None:
        """Take the films a C-GET/C-MOVE response announces for `series` (done + remaining)."""
        try:
            numbers = [int(status.get(k) or 0) for k in (
                "NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
                "NumberOfWarningSuboperations")]
        except (TypeError, ValueError):
            return
        if "NumberOfRemainingSuboperations" in status or "NumberOfCompletedSuboperations" in status:
            self.announced[series.series_uid] = sum(numbers)
            self._count()

    def _count(self) -> None:
        counts = list(self.announced.values())
        self.out.expected = sum(counts) if counts and None not in counts else None

    def refuse(self, problem: str) -> None:
        with self._lock:
            self.out.problems.append(problem)

    def refused(self, refusal: Refusal) -> None:
        """dicom_receive turned a peer away: a caller that is not the node (rejected), or one over the limits."""
        if refusal.what == "aborted":
            self.aborted = self.aborted or refusal.reason
        self.refuse(f"{refusal.what} an association from {shown(refusal.calling_aet)} at {shown(refusal.host)}: "
                    f"{refusal.reason}")

    def failed(self, exc: PacsError) -> None:
        """The retrieve ended early: because this workstation aborted a film's association, or as `exc` says."""
        self.out.failure = exc if self.aborted is None else PacsError(
            self.node, f"a film was refused while it came ({self.aborted}), which ended the retrieve",
            "Give a larger --max-mb if such films are expected.", f"a film was refused ({self.aborted})")

    def on_store(self, event) -> int:
        from xrayviewer.core.review.dicom_receive import Kept, keep_dataset

        self.limits.touch()
        asked, received = self.asked, getattr(event.request, "_dataset_path", None)  # (streamed by `bound`)
        sop = shown(event.request.AffectedSOPInstanceUID or "")
        why = "it came while none was asked for" if asked is None else self._mismatch(asked, event, received)
        if why:
            kept = Kept(CANNOT_UNDERSTAND, reason=why)
        else:
            kept = keep_dataset(event, self.folder)
        if kept.path is None:
            if received is not None:
                Path(received).unlink(missing_ok=True)
            with self._lock:
                self.out.refused += 1
            self.refuse(f"refused film {sop}: {kept.reason} (status 0x{kept.status:04X})")
            return kept.status
        with self._lock:
            self.out.paths.append(kept.path)
            count = len(self.out.paths)
        self.progress(count, self.out.expected)
        return kept.status

    @staticmethod
    def _mismatch(asked: Series, event, received: str | None) -> str:
        """What makes the film received another study's or patient's, or keeps that from being known ('' when
        nothing does). Read from the streamed file's header (a dataset not streamed is a small one, in memory)."""
        from xrayviewer.core.reading.dicom import parse

        try:
            header = parse(Path(received), headers_only=True) if received is not None else event.dataset
            return asked.mismatch(header)
        except Exception as exc:  # noqa: BLE001 - whatever the bytes: refused, never kept unchecked
            why = exc.reason if isinstance(exc, XRayViewerError) else type(exc).__name__
            return f"its header cannot be read ({why})"


def get(node: Node, study_uids: Iterable[str], folder: Path, aet: str = DEFAULT_AET, limit_bytes: int = LIMIT_BYTES,
        seconds: float | None = RETRIEVE_S, progress: Callable[[int, int | None], None] | None = None) -> Retrieved:
    """C-GET the image series of each study into `folder` (nothing needs configuring on the PACS)."""
    from pynetdicom import evt
    from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    from xrayviewer.core.review.dicom_receive import bound

    limits = Limits(node, seconds, "retrieve")
    contexts, roles = [GET], []
    for sop_class in RETRIEVED_CLASSES:
        contexts += [(sop_class, syntax) for syntax in TRANSFER_SYNTAXES]
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid, role.scu_role, role.scp_role = sop_class, False, True
        roles.append(role)
    receiver = _Receiver(node, folder, limits, limit_bytes, progress)
    assoc = limits.associate(aet, contexts, roles, [(evt.EVT_C_STORE, receiver.on_store)], receiver.receive)
    bound(assoc, folder, receiver.receive, receiver.refused)
    try:
        if not any(c.abstract_syntax == GET for c in assoc.accepted_contexts):
            raise NoGet(node, "it does not offer C-GET")
        series_list = image_series(node, study_uids, aet, limits, receiver.refuse)
        receiver.plan(series_list)
        try:
            for series in series_list:
                receiver.follow(series, assoc.send_c_get(series.identifier(), GET),
                                f"C-GET of series {series.series_uid}")
        except PacsError as exc:
            receiver.failed(exc)
    finally:
        limits.close(assoc)
    return receiver.out


def move(node: Node, study_uids: Iterable[str], folder: Path, aet: str, port: int, limit_bytes: int = LIMIT_BYTES,
         seconds: float | None = RETRIEVE_S, progress: Callable[[int, int | None], None] | None = None,
         bind: str | None = None) -> Retrieved:
    """C-MOVE the image series of each study to this AE title, received on `port` of `bind` (default: the interface
    that reaches the node) while the move lasts, from the node only (its AE title and host)."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

    limits = Limits(node, seconds, "retrieve")
    receiver = _Receiver(node, folder, limits, limit_bytes, progress)
    series_list = image_series(node, study_uids, aet, limits, receiver.refuse)
    receiver.plan(series_list)
    assoc = limits.associate(aet, [MOVE])
    try:
        server = _receiving_server(node, aet, bind or assoc.dul.socket.socket.getsockname()[0], port, receiver)
        try:
            for series in series_list:
                receiver.follow(series, assoc.send_c_move(series.identifier(), aet, MOVE),
                                f"C-MOVE of series {series.series_uid} to {aet}")
        except PacsError as exc:
            receiver.failed(exc)
        finally:
            server.shutdown()
            for association in server.active_associations:  # (one still delivering, perhaps a byte at a time)
                hang_up(association)
    finally:
        limits.close(assoc)
    return receiver.out


def _receiving_server(node: Node, aet: str, host: str, port: int, receiver: _Receiver):
    """A bounded C-STORE SCP on `host`:`port` for the node alone: another AE title or host is rejected at
    association."""
    from pynetdicom import evt
    from pynetdicom.presentation import AllStoragePresentationContexts

    from xrayviewer.core.review.dicom_receive import start_server

    try:
        hosts = {info[4][0] for info in socket.getaddrinfo(node.host, None)}
    except OSError:
        hosts = {node.host}

    def admit(calling: str, address: str) -> str | None:
        if calling != node.aet:
            return f"not the node's AE title ({node.aet})"
        return None if address in hosts else f"not the node's host ({node.host})"

    ae = application_entity(aet)
    for context in AllStoragePresentationContexts:  # what is not an image is declined film by film
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    try:
        return start_server(ae, (host, port), receiver.folder, receiver.receive,
                            [(evt.EVT_C_STORE, receiver.on_store)], on_refusal=receiver.refused, admit=admit,
                            max_associations=MOVE_ASSOCIATIONS)
    except OSError as exc:
        raise PacsError(node, f"cannot receive a C-MOVE on {host or 'port'}:{port}: {exc.strerror or exc}",
                        "Stop the listener using that port, or give another.") from None


def send(node: Node, paths: Iterable[Path], aet: str = DEFAULT_AET) -> None:
    """C-STORE each DICOM file to `node` on one association; a refusal names the file."""
    import pydicom

    files = [(Path(p), pydicom.dcmread(p, force=True)) for p in paths]
    ae = application_entity(aet)
    for _, ds in files:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = associate(node, ae)
    try:
        for path, ds in files:
            _check(node, assoc.send_c_store(ds), f"C-STORE of {path.name}")
    finally:
        assoc.release()


def write_atomically(folder: Path, encoded: bytes) -> Path:
    """`encoded` as `<sha256 prefix>.dcm` in `folder`: written to a temporary name, synced, then renamed."""
    path = folder / f"{hashlib.sha256(encoded).hexdigest()[:32]}.dcm"
    temporary = folder / f".{uuid.uuid4().hex}.tmp"
    with open(temporary, "wb") as f:
        f.write(encoded)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return path
