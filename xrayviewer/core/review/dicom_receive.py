"""Receiving DICOM datasets with bounded memory: the C-STORE side of the listener, of C-GET and of C-MOVE.

A peer's data never piles up in memory, whatever it sends:

- Each C-STORE dataset streams into a file in the destination folder as its fragments arrive (a hidden `.*.tmp`,
  removed when refused or when its association ends). pynetdicom's own `_config.STORE_RECV_CHUNKED_DATASET` does
  the same, but for every association of the process and into the system temp folder (a RAM disk on many
  systems); here the file is opened per association, where the film will be kept.
- A PDU longer than we accept is refused from its 6-byte header, before its body is read: a P-DATA-TF may be as
  long as the maximum PDU size we advertised (`ReceiveLimits.pdu_bytes`), any other PDU 64 KiB (an association
  request with every storage context is ~30 KB). pynetdicom would otherwise read an announced 4 GB into memory.
- A dataset is counted fragment by fragment and its association aborted as soon as it passes
  `ReceiveLimits.dataset_bytes`; a command set, or a dataset that is not a C-STORE's (kept in memory by
  pynetdicom), may not pass 1 MiB; a peer may not queue more than a few requests ahead of their answers.
- A stalled peer is dropped: the sockets we accept get the network time-out (pynetdicom leaves them blocking, so a
  peer silent in the middle of a PDU held its thread forever), and a TLS handshake runs in the connection's own
  thread under that time-out, not in the accepting loop.

The two hooks are the narrowest pynetdicom offers, both installed per association by `bound()`: its
`AssociationSocket.recv(n)`, the one place PDU bytes enter (the DUL reads a 6-byte header, then the body in one
`recv(length)` call), and its `DIMSEServiceProvider.receive_primitive`, where every P-DATA fragment passes before
it is written. A refusal sends an A-ABORT and shuts the socket; the reader then sees the transport closed (Evt17),
and pynetdicom ends the association as if the peer had gone.

Use:

    ae = application_entity(aet); configure(ae, limits)              # advertise the PDU size we accept
    server = start_server(ae, ("", port), folder, limits, handlers,  # an SCP (the listener, a C-MOVE receiver)
                          on_refusal=log, admit=policy, max_associations=10)
    assoc = associate(node, ae, ...); bound(assoc, folder, limits)    # a requestor receiving C-GET sub-operations
    kept = keep_dataset(event, folder)                               # in an EVT_C_STORE handler: status and file

`keep_dataset` answers Success only for a film that is an image, whose UIDs are valid and whose pixel data decode
(so truncated native or compressed pixel data get 0xC000, never Success) and moves it to `<sha256 prefix>.dcm`.
Refusals reach `on_refusal` as `Refusal` records naming the peer and the true reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom import evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dsutils import create_file_meta
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from xrayviewer.core.errors import XRayViewerError

P_DATA_TF = 0x04
OTHER_PDU_BYTES = 64 << 10  # an A-ASSOCIATE-RQ proposing 128 contexts of 8 syntaxes is ~30 KB; the rest are tiny
IN_MEMORY_BYTES = 1 << 20  # a command set, or a dataset pynetdicom keeps in memory (not a C-STORE's)
# The C-STORE statuses answered here (PS3.4 B.2.3); pacs.py, which imports this module, names them too.
SUCCESS, OUT_OF_RESOURCES, SOP_CLASS_REFUSED, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0x0122, 0xC000
DATASET_MISMATCH = 0xA900  # "Data Set does not match SOP Class" (here: its identifying UIDs are invalid)
UID_KEYWORDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID")
_CHECKING = threading.BoundedSemaphore(1)  # one film read and decoded at a time to check it: one film in memory


@dataclass(frozen=True)
class ReceiveLimits:
    """What one association may send us."""

    dataset_bytes: int  # the largest C-STORE dataset (--max-mb)
    pdu_bytes: int = 64 << 10  # the largest P-DATA-TF PDU, advertised as our maximum PDU size
    waiting: int = 4  # complete requests received and not yet answered


@dataclass(frozen=True)
class Refusal:
    """A peer turned away: `what` is 'rejected' (at association or connection), 'aborted' (during it)."""

    what: str
    host: str
    calling_aet: str
    reason: str

    def as_dict(self) -> dict:
        return {"status": self.what, "calling_aet": self.calling_aet, "host": self.host, "reason": self.reason}


OnRefusal = Callable[[Refusal], None]


def configure(ae, limits: ReceiveLimits) -> None:
    """Advertise the PDU size we accept."""
    ae.maximum_pdu_size = limits.pdu_bytes


class _Guard:
    """One association's limits and its refusal: the first one aborts the association, later ones are ignored."""

    def __init__(self, assoc, limits: ReceiveLimits, on_refusal: OnRefusal) -> None:
        self.assoc, self.limits, self.on_refusal = assoc, limits, on_refusal
        self.reason: str | None = None

    def refuse(self, reason: str, source: int = 0x00, diagnostic: int = 0x00) -> None:
        """Send an A-ABORT and shut the socket; the next read sees the transport closed."""
        if self.reason is not None:
            return
        self.reason = reason
        peer = self.assoc.requestor if self.assoc.is_acceptor else self.assoc.acceptor
        self.on_refusal(Refusal("aborted", _address(peer), _aet(peer), reason))
        raw = self.assoc.dul.socket.socket if self.assoc.dul.socket else None
        if raw is None:
            return
        abort = A_ABORT_RQ()
        abort.source, abort.reason_diagnostic = source, diagnostic
        try:
            raw.sendall(abort.encode())
        except OSError:
            pass
        try:
            raw.shutdown(socket.SHUT_RDWR)  # not closed: its descriptor stays valid for the reader's select()
        except OSError:
            pass


class _BoundedSocket(AssociationSocket):
    """An AssociationSocket that refuses a PDU longer than allowed from its header, before reading its body."""

    _guard: _Guard
    _pdu_type: int = 0

    def recv(self, nr_bytes: int) -> bytearray:
        guard = self._guard
        if guard.reason is not None:
            raise ConnectionAbortedError(guard.reason)
        if nr_bytes > 6:  # the DUL reads a PDU's 6-byte header, then its body in one call
            allowed = guard.limits.pdu_bytes if self._pdu_type == P_DATA_TF else OTHER_PDU_BYTES
            if nr_bytes > allowed:
                guard.refuse(f"a PDU of {nr_bytes:,} bytes, over the {allowed:,} accepted", 0x02, 0x06)
                raise ConnectionAbortedError(guard.reason)
        try:
            data = super().recv(nr_bytes)
        except TimeoutError:
            guard.refuse(f"silent for {self.socket.gettimeout():g} s (the network time-out): dropped")
            raise
        if nr_bytes == 6 and data:
            self._pdu_type = data[0]
            if not 0x01 <= data[0] <= 0x07:  # A-ASSOCIATE-RQ ... A-ABORT: pynetdicom would abort, then read on
                guard.refuse(f"an unrecognised PDU (type 0x{data[0]:02X})", 0x02, 0x01)
                raise ConnectionAbortedError(guard.reason)
        return data


class _BoundedDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider, fed one fragment at a time: counted, refused past the limits, and a C-STORE's
    dataset written to a file in `folder` as it comes."""

    def __init__(self, assoc, guard: _Guard, folder: Path) -> None:
        super().__init__(assoc)
        self.guard, self.folder = guard, folder
        self._command_bytes = self._dataset_bytes = 0

    def receive_primitive(self, primitive: P_DATA) -> None:
        for context_id, data in primitive.presentation_data_value_list:
            if self.guard.reason is not None:
                return
            if not data:
                self.guard.refuse("an empty presentation data value", 0x02, 0x06)
                return
            if not self._within_limits(data):
                return
            single = P_DATA()
            single.presentation_data_value_list = [[context_id, data]]
            try:
                super().receive_primitive(single)
                if self.message is None:  # complete: the next fragment starts a new message
                    self._command_bytes = self._dataset_bytes = 0
                elif isinstance(self.message, C_STORE_RQ) and self.message._data_set_file is None:
                    self._open_dataset_file(context_id)  # (a C-STORE-RQ not complete has a dataset to come)
            except Exception as exc:  # noqa: BLE001 - a command set pydicom cannot decode: the peer, not a crash
                self._drop_message()
                self.guard.refuse(f"a message that cannot be decoded ({type(exc).__name__})")
                return

    def _within_limits(self, data: bytes) -> bool:
        limits = self.limits
        if data[0] & 1:
            self._command_bytes += len(data) - 1
            if self._command_bytes > IN_MEMORY_BYTES:
                self.guard.refuse(f"a command set over {IN_MEMORY_BYTES:,} bytes")
                return False
        else:
            self._dataset_bytes += len(data) - 1
            to_file = self.message is not None and getattr(self.message, "_data_set_file", None) is not None
            limit = limits.dataset_bytes if to_file else IN_MEMORY_BYTES
            if self._dataset_bytes > limit:
                self.guard.refuse(f"a dataset over the size limit ({_size(limit)}): aborted after "
                                  f"{_size(self._dataset_bytes)}")
                self._drop_message()
                return False
        if self.msg_queue.qsize() >= limits.waiting:
            self.guard.refuse(f"more than {limits.waiting} requests sent ahead of their answers")
            return False
        return True

    @property
    def limits(self) -> ReceiveLimits:
        return self.guard.limits

    def _open_dataset_file(self, context_id: int) -> None:
        """As pynetdicom's STORE_RECV_CHUNKED_DATASET: preamble and file meta, then the fragments as they come."""
        message = self.message
        context = next(c for c in self.assoc.accepted_contexts if c.context_id == context_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        file = tempfile.NamedTemporaryFile(dir=self.folder, prefix=".", suffix=".tmp", delete=False)
        file.write(b"\x00" * 128 + b"DICM")
        command = message.command_set  # an invalid UID there is refused with the film (keep_dataset), not here
        sop_class, sop_instance = (str(command.get(k) or "") for k in ("AffectedSOPClassUID", "AffectedSOPInstanceUID"))
        write_file_meta_info(file, create_file_meta(
            sop_class_uid=UID(sop_class if UID(sop_class).is_valid else "0"),
            sop_instance_uid=UID(sop_instance if UID(sop_instance).is_valid else "0"),
            transfer_syntax=context.transfer_syntax[0]))
        message._data_set_file, message._data_set_path = file, Path(file.name)

    def _drop_message(self) -> None:
        """Forget the message being received and remove its file."""
        if self.message is not None:
            _discard(getattr(self.message, "_data_set_file", None))
            self.message = None

    def discard_unanswered(self) -> None:
        """At the end of the association: the files of the message being received and of those not answered
        (the end-of-connection mark pynetdicom queued stays for whoever waits on the queue)."""
        self._drop_message()
        ended = False
        while not self.msg_queue.empty():
            _, request = self.msg_queue.get_nowait()
            ended |= request is None
            _discard(getattr(request, "_dataset_file", None))
        if ended:
            self.msg_queue.put((None, None))


def _discard(file) -> None:
    if file is not None:
        file.close()
        Path(file.name).unlink(missing_ok=True)


def bound(assoc, folder: Path, limits: ReceiveLimits, on_refusal: OnRefusal = lambda r: None) -> None:
    """Put `assoc` under `limits`, its C-STORE datasets streaming into `folder`: before `start()` for an acceptor,
    right after it is established for a requestor (nothing arrives before its first request)."""
    guard = _Guard(assoc, limits, on_refusal)
    sock = assoc.dul.socket
    sock.__class__, sock._guard = _BoundedSocket, guard  # the class changes, not the object pynetdicom holds
    assoc.dimse = _BoundedDIMSE(assoc, guard, folder)
    assoc.bind(evt.EVT_CONN_CLOSE, lambda event: event.assoc.dimse.discard_unanswered())
    assoc.bind(evt.EVT_ABORTED, _on_aborted)


def _on_aborted(event) -> None:
    """pynetdicom aborts an association silent between messages for its network time-out: a refusal too."""
    assoc = event.assoc
    guard = assoc.dimse.guard
    if guard.reason is None and assoc.dul.idle_timer_expired():
        guard.reason = f"silent for {assoc.network_timeout:g} s (the network time-out): dropped"
        peer = assoc.requestor if assoc.is_acceptor else assoc.acceptor
        guard.on_refusal(Refusal("aborted", _address(peer), _aet(peer), guard.reason))


class _Handler(RequestHandler):
    def _create_association(self):
        assoc = super()._create_association()
        server: BoundedServer = self.server
        bound(assoc, server.folder, server.limits, server.on_refusal)
        return assoc


class BoundedServer(ThreadedAssociationServer):
    """An SCP whose associations are bounded, that checks who calls at association and logs every refusal."""

    folder: Path
    limits: ReceiveLimits
    on_refusal: OnRefusal
    admit: Callable[[str, str], str | None]
    max_associations: int

    def get_request(self):
        """Accept without the TLS handshake (done in the connection's thread), with the network time-out."""
        client, address = self.socket.accept()
        client.settimeout(self.ae.network_timeout)
        return client, address

    def process_request(self, request, client_address) -> None:
        connections = len(self.active_associations)  # associated or not yet
        if connections >= 2 * self.max_associations:
            self.on_refusal(Refusal("rejected", client_address[0], "", f"association limit ({connections} connections"
                                    f" open for {self.max_associations} associations)"))
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (OSError, ValueError) as exc:
                self.on_refusal(Refusal("rejected", client_address[0], "", f"TLS handshake failed: {exc}"))
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)

    def on_requested(self, event) -> None:
        """EVT_REQUESTED: reject a wrong called AE title, a caller `admit` refuses, the association over the limit."""
        assoc = event.assoc
        request = assoc.requestor.primitive
        calling, host = str(request.calling_ae_title).strip(), assoc.requestor.address
        try:
            rejection = self._rejection(calling, str(request.called_ae_title).strip(), host)
        except Exception as exc:  # noqa: BLE001 - a check that fails rejects (an exception here would accept)
            rejection = (0x01, 0x01, 0x01), f"the caller could not be checked ({type(exc).__name__}: {exc})"
        if rejection is None:
            return
        (result, source, diagnostic), reason = rejection
        self.on_refusal(Refusal("rejected", host, calling, reason))
        assoc.acse.send_reject(result, source, diagnostic)
        assoc.kill()  # as pynetdicom's own rejection: waits for the A-ASSOCIATE-RJ to go out

    def _rejection(self, calling: str, called: str, host: str) -> tuple[tuple[int, int, int], str] | None:
        """The A-ASSOCIATE-RJ (result, source, diagnostic) and its reason, or None to go on."""
        if called != self.ae_title.strip():
            return (0x01, 0x01, 0x07), f"called AE title '{called}' is not this listener's ('{self.ae_title}')"
        if (reason := self.admit(calling, host)) is not None:
            return (0x01, 0x01, 0x03), reason
        if sum(1 for a in self.active_associations if a.is_established) >= self.max_associations:
            return (0x02, 0x03, 0x02), f"association limit ({self.max_associations} open)"
        return None


def start_server(ae, address: tuple[str, int], folder: Path, limits: ReceiveLimits, evt_handlers: list,
                 ssl_context=None, on_refusal: OnRefusal = lambda r: None,
                 admit: Callable[[str, str], str | None] = lambda aet, host: None,
                 max_associations: int = 10) -> BoundedServer:
    """A BoundedServer serving in a thread (`server.shutdown()` stops it). `admit(calling_aet, host)` returns why a
    caller is refused, or None."""
    configure(ae, limits)
    ae.maximum_associations = 2 * max_associations  # ours is the check that counts; pynetdicom's never bites first
    server = ae.make_server(address, evt_handlers=evt_handlers, ssl_context=ssl_context,
                            server_class=BoundedServer, request_handler=_Handler)
    server.folder, server.limits, server.on_refusal = folder, limits, on_refusal
    server.admit, server.max_associations = admit, max_associations
    server.bind(evt.EVT_REQUESTED, server.on_requested)
    ae._servers.append(server)  # as AE.start_server does: shutdown() removes it
    threading.Thread(target=server.serve_forever, name=f"listener-{server.server_address[1]}", daemon=True).start()
    return server


@dataclass(frozen=True)
class Kept:
    """What `keep_dataset` did: the status to answer, the film kept (on success) and why not (otherwise)."""

    status: int
    path: Path | None = None
    reason: str = ""


def keep_dataset(event, folder: Path, free_floor_bytes: int = 0) -> Kept:
    """Keep the film of a C-STORE request as `<sha256 prefix>.dcm` in `folder` when it is an image with valid
    UIDs and decodable pixel data and leaves `free_floor_bytes` free; otherwise remove it and say why."""
    if "Image Storage" not in UID(event.context.abstract_syntax).name:  # CR, DX, SC, CT...; not reports or states
        return Kept(SOP_CLASS_REFUSED, reason="not an image SOP class")
    received = _received_file(event, folder)
    try:
        kept = _check_and_keep(event, received, folder, free_floor_bytes)
    except OSError as exc:
        kept = Kept(OUT_OF_RESOURCES, reason=f"cannot write the film: {exc.strerror or exc}")
    if kept.path is None:
        received.unlink(missing_ok=True)
    return kept


def _received_file(event, folder: Path) -> Path:
    """The dataset's file: streamed there by a bounded association, else written now from memory."""
    path = getattr(event.request, "_dataset_path", None)
    if path is not None:
        event.request._dataset_file.close()  # complete: closed before it is read and renamed (Windows needs that)
        return Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".", suffix=".tmp", delete=False) as file:
        file.write(event.encoded_dataset())
    return Path(file.name)


def _check_and_keep(event, received: Path, folder: Path, free_floor_bytes: int) -> Kept:
    from xrayviewer.core.reading.dicom import parse
    from xrayviewer.core.reading.reader import read_image

    with _CHECKING:  # the header alone is parsed here; read_image reads the film once to decode it
        try:
            header = parse(received, headers_only=True)
        except XRayViewerError as exc:
            return Kept(CANNOT_UNDERSTAND, reason=f"the dataset cannot be decoded ({exc.reason})")
        try:
            read_image(received)
            _check_stream_ends(header, received)
        except XRayViewerError as exc:
            return Kept(CANNOT_UNDERSTAND, reason=f"the film cannot be decoded ({exc.reason})")
    problem = invalid_uids(header, str(event.request.AffectedSOPInstanceUID or ""))
    if problem:
        return Kept(DATASET_MISMATCH, reason=problem)
    if shutil.disk_usage(folder).free < free_floor_bytes:
        return Kept(OUT_OF_RESOURCES, reason="the free-disk floor")
    return Kept(SUCCESS, _keep(received, folder))


def invalid_uids(ds, affected_sop_instance: str) -> str | None:
    """Why the dataset's identifying UIDs are unusable (not UI values: digits and dots, no leading zero in a
    component, at most 64 characters; or a SOP Instance UID other than the request's), or None."""
    for keyword in UID_KEYWORDS:
        value = str(ds.get(keyword, "") or "")
        if not UID(value).is_valid:
            shown = value if len(value) <= 70 else f"{value[:64]}... ({len(value):,} characters)"
            return f"{keyword} {shown!r} is not a valid UID"
    if affected_sop_instance and str(ds.SOPInstanceUID) != affected_sop_instance:
        return "the dataset's SOPInstanceUID is not the one of the C-STORE request"
    return None


_STREAM_ENDS = {"1.2.840.10008.1.2.4.9": b"\xff\xd9", "1.2.840.10008.1.2.4.20": b"\xff\xd9",  # JPEG 2000 EOC
                "1.2.840.10008.1.2.4.5": b"\xff\xd9", "1.2.840.10008.1.2.4.7": b"\xff\xd9",  # JPEG EOI
                "1.2.840.10008.1.2.4.8": b"\xff\xd9"}  # JPEG-LS EOI


def _check_stream_ends(header, path: Path) -> None:
    """A JPEG or JPEG 2000 frame must end with its end marker: decoders show a cut stream without complaint."""
    from pydicom.encaps import generate_frames

    from xrayviewer.core.errors import CorruptFileError
    from xrayviewer.core.reading.dicom import parse

    ts = str(header.file_meta.get("TransferSyntaxUID", ""))
    marker = next((m for prefix, m in _STREAM_ENDS.items() if ts.startswith(prefix)), None)
    if marker is None:
        return
    ds = parse(path)  # (compressed: the size of the data received)
    try:
        frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
    except Exception as exc:  # noqa: BLE001 - pydicom's errors on broken fragment items
        raise CorruptFileError(path, "damaged compressed pixel data", str(exc)) from None
    for frame in frames:
        if not frame.rstrip(b"\x00\xff").endswith(marker):  # (padded to an even length with 00, or FF by some)
            raise CorruptFileError(path, "truncated pixel data", f"a {UID(ts).name} frame does not end with its end"
                                   " marker")


def _keep(received: Path, folder: Path) -> Path:
    """Synced, then renamed to its content's name."""
    digest = hashlib.sha256()
    with open(received, "rb+") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
        os.fsync(file.fileno())
    path = folder / f"{digest.hexdigest()[:32]}.dcm"
    os.replace(received, path)
    return path


def _aet(user) -> str:
    try:
        title = user.ae_title or (user.primitive.calling_ae_title if user.primitive else "")
    except AttributeError:
        return ""
    return str(title).strip()


def _address(user) -> str:
    try:
        return user.address
    except ValueError:
        return ""


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n:,} bytes"
