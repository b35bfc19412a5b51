"""Talking to a PACS as a client (pynetdicom SCU): echo, study search, retrieve (C-GET, else C-MOVE to this AE title)
and send (C-STORE).

Every association has time-outs (connect, ACSE, DIMSE, network), so a node that does not answer costs seconds
and one clear line naming the node, never a hang. Only the node given is contacted. Retrieved films are written
atomically into a folder under names made here (the content's hash), never names taken from the network.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID

from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.review.pacs_nodes import DEFAULT_AET, Node

CONNECT_S = 5.0  # TCP connection
ACSE_S = 10.0  # association request and release
DIMSE_S = 60.0  # one message (a C-GET's next status comes after each film)
NETWORK_S = 60.0  # silence on an established association
STUDY_FIELDS = ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "StudyTime", "ModalitiesInStudy",
                "StudyDescription", "AccessionNumber", "NumberOfStudyRelatedInstances")
TRANSFER_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70",
                     "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                     "1.2.840.10008.1.2.5")  # implicit/explicit LE, JPEG baseline/lossless, JPEG 2000, RLE
RETRIEVED_CLASSES = ("1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1",
                     "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4",
                     "1.2.840.10008.5.1.4.1.1.6.1")  # CR, DX (presentation, processing), SC, CT, MR, US
NON_IMAGE_MODALITIES = {"SR", "KO", "PR", "DOC", "REG", "SEG", "RWV", "PLAN", "AU", "ECG"}  # series not retrieved
SUCCESS, OUT_OF_RESOURCES, NOT_AUTHORISED, SOP_CLASS_REFUSED, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0x0124, 0x0122, 0xC000

STATUS_MEANINGS = {0xA801: "the move destination is unknown to it: declare this AE title, host and port there",
                   0xA701: "out of resources", 0xA702: "out of resources", 0xC000: "unable to process",
                   0x0122: "SOP class not supported", 0x0124: "not authorised", 0xA700: "out of resources",
                   0xA900: "dataset does not match SOP class"}

logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # failures are reported as one line each, not logs


class PacsError(XRayViewerError):
    """A PACS node could not be reached or refused what was asked."""

    def __init__(self, node: Node, why: str, fix: str = "") -> None:
        super().__init__(None, f"PACS node {node}", why, fix)


def is_image_class(sop_class: str) -> bool:
    """Whether a storage SOP class holds images (CR, DX, SC, CT...), not reports, documents or states."""
    return "Image Storage" in UID(sop_class).name


def application_entity(aet: str = DEFAULT_AET):
    """A pynetdicom AE with the app's time-outs."""
    from pynetdicom import AE

    ae = AE(ae_title=aet)
    ae.connection_timeout, ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = CONNECT_S, ACSE_S, DIMSE_S, \
        NETWORK_S
    return ae


def associate(node: Node, ae, ext_neg: list | None = None, evt_handlers: list | None = None):
    """An established association with `node`, else a PacsError saying why."""
    assoc = ae.associate(node.host, node.port, ae_title=node.aet, ext_neg=ext_neg, evt_handlers=evt_handlers)
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        raise PacsError(node, f"it refused the association from AE title '{ae.ae_title}'",
                        "Ask for this AE title (and host) to be allowed on the PACS.")
    raise PacsError(node, f"no DICOM answer (connection refused, or nothing within {CONNECT_S:.0f} s to connect and "
                    f"{ACSE_S:.0f} s to associate: not running, not reachable, or not a DICOM node)",
                    "Check the AE title, host and port.")


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


def find(node: Node, query: Dataset, aet: str = DEFAULT_AET) -> list[dict]:
    """C-FIND at study level (Study Root): one dict per study with the fields of STUDY_FIELDS."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    ae = application_entity(aet)
    ae.add_requested_context(FIND)
    assoc = associate(node, ae)
    studies = []
    try:
        for status, identifier in assoc.send_c_find(query, FIND):
            code = _check(node, status, "C-FIND", pending_ok=True)
            if code in (0xFF00, 0xFF01) and identifier is not None:
                studies.append(_study(identifier))
    finally:
        assoc.release()
    return studies


def _study(identifier: Dataset) -> dict:
    modalities = identifier.get("ModalitiesInStudy", "")
    modalities = list(modalities) if not isinstance(modalities, str) else [m for m in modalities.split("\\") if m]
    count = identifier.get("NumberOfStudyRelatedInstances", None)
    return {"StudyInstanceUID": str(identifier.get("StudyInstanceUID", "")),
            "patient": str(identifier.get("PatientName", "")), "patient_id": str(identifier.get("PatientID", "")),
            "date": str(identifier.get("StudyDate", "")), "time": str(identifier.get("StudyTime", "")),
            "modalities": [str(m) for m in modalities], "description": str(identifier.get("StudyDescription", "")),
            "accession": str(identifier.get("AccessionNumber", "")),
            "images": int(count) if count not in (None, "") else None}


@dataclass
class Retrieved:
    """What a retrieve brought: the films written, and one message per film the node sent that was not kept."""

    paths: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def retrieve(node: Node, study_uids: list[str], folder: Path, aet: str = DEFAULT_AET,
             move_port: int | None = None) -> Retrieved:
    """C-GET the studies into `folder`; with `move_port`, or when the node does not offer C-GET, C-MOVE them to
    this AE title instead, received on `move_port` (the node must know this AE title's host and port)."""
    if move_port is None:
        try:
            return get(node, study_uids, folder, aet)
        except NoGet:
            move_port = MOVE_PORT
    return move(node, study_uids, folder, aet, move_port)


class NoGet(PacsError):
    """The node does not offer C-GET."""


MOVE_PORT = 11112


def _collector(folder: Path, limit_bytes: int | None) -> tuple[Retrieved, Callable]:
    """What a retrieve brought, and the C-STORE handler that fills it."""
    folder.mkdir(parents=True, exist_ok=True)
    out = Retrieved()

    def on_store(event) -> int:
        status, saved = store_event(event, folder, limit_bytes)
        if saved is None:
            out.problems.append(f"a film of class {UID(event.context.abstract_syntax).name} was not kept "
                                f"(status 0x{status:04X})")
        else:
            out.paths.append(saved)
        return status

    return out, on_store


def image_series(node: Node, study_uids: Iterable[str], aet: str = DEFAULT_AET) -> list[Dataset]:
    """Series-level identifiers of the studies' series that hold images (not reports, key objects or presentation
    states, which a PACS would fail a whole retrieve over when they are declined)."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    ae = application_entity(aet)
    ae.add_requested_context(FIND)
    assoc = associate(node, ae)
    found = []
    try:
        for study_uid in study_uids:
            query = Dataset()
            query.QueryRetrieveLevel, query.StudyInstanceUID = "SERIES", study_uid
            query.SeriesInstanceUID, query.Modality = "", ""
            for status, identifier in assoc.send_c_find(query, FIND):
                code = _check(node, status, f"C-FIND of the series of study {study_uid}", pending_ok=True)
                if code in (0xFF00, 0xFF01) and identifier is not None and \
                        str(identifier.get("Modality", "")).upper() not in NON_IMAGE_MODALITIES:
                    series = Dataset()
                    series.QueryRetrieveLevel, series.StudyInstanceUID = "SERIES", study_uid
                    series.SeriesInstanceUID = identifier.SeriesInstanceUID
                    found.append(series)
    finally:
        assoc.release()
    return found


def get(node: Node, study_uids: Iterable[str], folder: Path, aet: str = DEFAULT_AET,
        limit_bytes: int | None = None) -> Retrieved:
    """C-GET the image series of each study into `folder` (nothing needs configuring on the PACS)."""
    from pynetdicom import evt
    from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    ae = application_entity(aet)
    ae.add_requested_context(GET)
    roles = []
    for sop_class in RETRIEVED_CLASSES:
        for syntax in TRANSFER_SYNTAXES:
            ae.add_requested_context(sop_class, syntax)
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid, role.scu_role, role.scp_role = sop_class, False, True
        roles.append(role)
    out, on_store = _collector(folder, limit_bytes)
    assoc = associate(node, ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        if not any(c.abstract_syntax == GET for c in assoc.accepted_contexts):
            raise NoGet(node, "it does not offer C-GET")
        for series in image_series(node, study_uids, aet):
            for status, _ in assoc.send_c_get(series, GET):
                _check(node, status, f"C-GET of series {series.SeriesInstanceUID}", pending_ok=True)
    finally:
        assoc.release()
    return out


def move(node: Node, study_uids: Iterable[str], folder: Path, aet: str, port: int,
         limit_bytes: int | None = None) -> Retrieved:
    """C-MOVE the image series of each study to this AE title, received on `port` (from `node` only) while the
    move lasts."""
    from pynetdicom import evt
    from pynetdicom.presentation import AllStoragePresentationContexts
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

    receiver = application_entity(aet)
    receiver.require_calling_aet = [node.aet]
    for context in AllStoragePresentationContexts:  # what is not an image is declined film by film
        receiver.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    out, on_store = _collector(folder, limit_bytes)
    try:
        server = receiver.start_server(("", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    except OSError as exc:
        raise PacsError(node, f"cannot receive a C-MOVE on port {port}: {exc.strerror or exc}",
                        "Stop the listener using that port, or give another.") from None
    try:
        ae = application_entity(aet)
        ae.add_requested_context(MOVE)
        assoc = associate(node, ae)
        try:
            for series in image_series(node, study_uids, aet):
                for status, _ in assoc.send_c_move(series, aet, MOVE):
                    _check(node, status, f"C-MOVE of series {series.SeriesInstanceUID} to {aet}", pending_ok=True)
        finally:
            assoc.release()
    finally:
        server.shutdown()
    return out


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


def store_event(event, folder: Path, limit_bytes: int | None = None, free_floor_bytes: int = 0
                ) -> tuple[int, Path | None]:
    """Keep the film of a C-STORE request (an SCP's or a C-GET's): the status to answer and the file written.

    Refuses what is not an image (SOP Class not supported), over `limit_bytes`, what would leave less than
    `free_floor_bytes` free (out of resources), and what cannot be decoded (cannot understand)."""
    if not is_image_class(event.context.abstract_syntax):
        return SOP_CLASS_REFUSED, None
    size = len(event.request.DataSet.getbuffer())
    if limit_bytes is not None and size > limit_bytes:
        return OUT_OF_RESOURCES, None
    try:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        if not (dataset.SOPInstanceUID and "PixelData" in dataset):
            return CANNOT_UNDERSTAND, None
        encoded = event.encoded_dataset()
    except Exception:  # noqa: BLE001 - a malformed dataset is refused, never the end of the association
        return CANNOT_UNDERSTAND, None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        import shutil

        if shutil.disk_usage(folder).free - len(encoded) < free_floor_bytes:
            return OUT_OF_RESOURCES, None
        return SUCCESS, write_atomically(folder, encoded)
    except OSError:
        return OUT_OF_RESOURCES, None


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


def _check(node: Node, status: Dataset | None, what: str, pending_ok: bool = False) -> int:
    """The status code of a response; a PacsError when there was none or it says failure."""
    if status is None or "Status" not in status:
        raise PacsError(node, f"{what}: no answer within {DIMSE_S:.0f} s, or the association was aborted")
    code = int(status.Status)
    if code == SUCCESS or (pending_ok and code in (0xFF00, 0xFF01)) or code in (0xB000, 0xB007, 0xB006):
        return code  # success, pending, or warnings (some sub-operations failed: the films that came are kept)
    comment = status.get("ErrorComment", "") or STATUS_MEANINGS.get(code, "")
    raise PacsError(node, f"{what} failed with status 0x{code:04X}" + (f" ({comment})" if comment else ""))

