"""`xrayviewer listen` exposed to hostile and broken peers: dcmtk's echoscu/storescu and raw or pynetdicom peers
written here against a real listener process.

Who calls is checked at association (called AE title, calling AE title, host, the association limit), each
refusal is one JSON line with its true reason; an oversized dataset aborts its association as it passes --max-mb,
a PDU announced longer than we accept is refused from its header, a peer that stalls inside a PDU is dropped
after --timeout, a command set that never ends is cut at 1 MiB, and the listener's peak memory does not move while
it happens; truncated pixel data and invalid UIDs get failure statuses and nothing is kept. All test data are
generated here, small, or written to tmp_path."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from test_pacs import CHEST_CR, PUSHER_AET, ListenerProcess, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from pacs_listener import CR_CLASS, RawPeer, big_cr, native_cr, peak_rss_mb, reset_peak_rss  # noqa: E402

ECHOSCU, STORESCU = shutil.which("echoscu"), shutil.which("storescu")
needs_dcmtk = pytest.mark.skipif(ECHOSCU is None or STORESCU is None,
                                 reason="dcmtk (apt-get install dcmtk) is the independent peer of these tests")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    import os

    environment = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    environment.pop("XRAYVIEWER_DB", None)
    return environment


def spool(tmp_path: Path) -> Path:
    return tmp_path / "data" / "xrayviewer" / "listener-spool"


def spooled(tmp_path: Path) -> list[str]:
    """Every file in the listener's spool folder, hidden ones included."""
    folder = spool(tmp_path)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def echoscu(port: int, calling: str, called: str = "XRAYVIEWER") -> int:
    return subprocess.run([ECHOSCU, "-to", "10", "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
                          capture_output=True, timeout=60).returncode


def storescu(port: int, *files: Path, calling: str = PUSHER_AET) -> subprocess.Popen:
    return subprocess.Popen([STORESCU, "-xs", "-xv", "-xw", "-to", "30", "-aet", calling, "-aec", "XRAYVIEWER",
                             "127.0.0.1", str(port), *map(str, files)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def store(port: int, ds: Dataset, calling: str = PUSHER_AET) -> int | None:
    """C-STORE `ds` with pynetdicom: the status, or None when the association was aborted."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="XRAYVIEWER")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
        return int(status.Status) if "Status" in status else None
    finally:
        if assoc.is_established:
            assoc.release()


def lines_until(listener: ListenerProcess, count: int, timeout: float = 60) -> list[dict]:
    return [listener.next(timeout) for _ in range(count)]


@needs_dcmtk
def test_callers_are_checked_at_association_and_each_refusal_says_why(env, tmp_path):
    port = free_port()
    listener = ListenerProcess(env, port, PUSHER_AET, "MODALITY@10.11.12.13", options=("--timeout", "5"))
    try:
        assert echoscu(port, PUSHER_AET) == 0
        assert echoscu(port, PUSHER_AET, called="WRONG") != 0
        assert echoscu(port, "INTRUDER") != 0
        assert echoscu(port, "MODALITY") != 0  # an allowed AE title from a host not on the list: not even associated
        wrong_called, intruder, wrong_host = lines_until(listener, 3)
        assert (wrong_called["status"], wrong_called["reason"]) == (
            "rejected", "called AE title 'WRONG' is not this listener's ('XRAYVIEWER')")
        assert (intruder["calling_aet"], intruder["reason"]) == ("INTRUDER", "calling AE title not allowed")
        assert (wrong_host["calling_aet"], wrong_host["host"]) == ("MODALITY", "127.0.0.1")
        assert wrong_host["reason"].startswith("host not allowed for AE title 'MODALITY'")
    finally:
        assert listener.stop() == 0
    assert spooled(tmp_path) == []


@pytest.mark.parametrize("limit", [None, 2])  # the default, 10, and --max-associations 2
def test_the_association_over_the_limit_is_rejected_and_logged_as_the_limit(env, limit):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    port = free_port()
    options = ("--timeout", "20") + (("--max-associations", str(limit)) if limit else ())
    listener = ListenerProcess(env, port, PUSHER_AET, options=options)
    limit = limit or 10
    ae = AE(ae_title=PUSHER_AET)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 20
    held = []
    try:
        held = [ae.associate("127.0.0.1", port, ae_title="XRAYVIEWER") for _ in range(limit)]
        assert all(a.is_established for a in held)
        over = ae.associate("127.0.0.1", port, ae_title="XRAYVIEWER")
        assert over.is_rejected
        line = listener.next()
        assert (line["status"], line["calling_aet"], line["reason"]) == ("rejected", PUSHER_AET,
                                                                          f"association limit ({limit} open)")
        held.pop().release()
        time.sleep(0.5)
        again = ae.associate("127.0.0.1", port, ae_title="XRAYVIEWER")
        assert again.is_established and int(again.send_c_echo().Status) == 0
        again.release()
    finally:
        for assoc in held:
            assoc.release()
        assert listener.stop() == 0


@needs_dcmtk
def test_oversized_senders_are_aborted_as_they_pass_the_limit_and_an_honest_one_is_served(env, dicom_data,
                                                                                            tmp_path):
    big = big_cr(tmp_path / "big.dcm", 24)
    port = free_port()
    listener = ListenerProcess(env, port, PUSHER_AET, options=("--max-mb", "1", "--timeout", "10"))
    try:
        senders = [storescu(port, big) for _ in range(3)]
        honest = storescu(port, dicom_data / CHEST_CR)
        assert honest.wait(120) == 0, honest.stderr.read()
        assert all(s.wait(120) != 0 for s in senders)
        lines = lines_until(listener, 4, timeout=120)
        aborted = [line for line in lines if line["status"] == "aborted"]
        assert len(aborted) == 3 and {line["calling_aet"] for line in aborted} == {PUSHER_AET}
        for line in aborted:  # as it passed the limit: within one PDU (64 KiB) of it, not after the 24 MB
            assert line["reason"] in ("a dataset over the size limit (1.0 MB): aborted after 1.0 MB",
                                      "a dataset over the size limit (1.0 MB): aborted after 1.1 MB"), line
        (analysed,) = [line for line in lines if line["status"] == "analysed"]
        reset_peak_rss(listener.process.pid)
        before = peak_rss_mb(listener.process.pid)  # (the honest film's analysis has its own cost: not counted)
        senders = [storescu(port, big) for _ in range(3)]
        assert all(s.wait(120) != 0 for s in senders)
        assert [line["status"] for line in lines_until(listener, 3)] == ["aborted"] * 3
        rise = peak_rss_mb(listener.process.pid) - before
        assert rise < 20, f"the listener's peak memory rose {rise:.0f} MB"  # 3 x 24 MB were sent
    finally:
        assert listener.stop() == 0
    assert spooled(tmp_path) == [Path(analysed["path"]).name]  # no half-received file left


def test_a_huge_pdu_a_stall_an_unknown_pdu_and_a_command_flood_are_dropped_and_memory_stays_flat(env):
    port = free_port()
    listener = ListenerProcess(env, port, PUSHER_AET, options=("--timeout", "3"))
    try:
        pid = listener.process.pid
        reset_peak_rss(pid)
        before = peak_rss_mb(pid)
        huge = RawPeer(port, PUSHER_AET)
        start = time.monotonic()
        if huge.send(b"\x04\x00" + struct.pack(">I", 0xFFFFFFF0) + bytes(4 << 20)):  # ~4 GB announced, 4 MB sent
            assert huge.seconds_until_closed(10) < 2
        assert time.monotonic() - start < 5
        line = listener.next()
        assert (line["status"], line["reason"]) == ("aborted", "a PDU of 4,294,967,280 bytes, over the 65,536 "
                                                               "accepted")
        stalled = RawPeer(port, PUSHER_AET)
        stalled.send(b"\x04\x00" + struct.pack(">I", 1000) + bytes(10))  # then nothing
        waited = stalled.seconds_until_closed(30)
        assert 2 < waited < 10, f"the stalled peer was dropped after {waited:.1f} s (--timeout 3)"
        line = listener.next()
        assert (line["status"], line["reason"]) == ("aborted", "silent for 3 s (the network time-out): dropped")
        unknown = RawPeer(port, PUSHER_AET)  # a PDU type DICOM does not have, and more bytes after it
        unknown.send(b"\x99\x00" + struct.pack(">I", 100) + bytes(100))
        assert unknown.seconds_until_closed(10) < 2
        line = listener.next()
        assert (line["status"], line["reason"]) == ("aborted", "an unrecognised PDU (type 0x99)")
        unknown.close()
        flood = RawPeer(port, PUSHER_AET)  # command fragments that never end: pynetdicom keeps them in memory
        fragment = struct.pack(">IBB", 2 + 60000, 1, 0x01) + bytes(60000)  # a PDV: context 1, command, not last
        for _ in range(40):
            if not flood.send(b"\x04\x00" + struct.pack(">I", len(fragment)) + fragment):
                break
        assert flood.seconds_until_closed(10) < 5
        line = listener.next()
        assert (line["status"], line["reason"]) == ("aborted", "a command set over 1,048,576 bytes")
        assert peak_rss_mb(pid) - before < 20
        huge.close()
        stalled.close()
        flood.close()
        assert listener.process.poll() is None
    finally:
        assert listener.stop() == 0


def truncated_j2k(dicom_data: Path) -> Dataset:
    """The chest CR with its JPEG 2000 code-stream cut in half: headers intact, no end marker."""
    from pydicom.encaps import encapsulate, generate_frames

    ds = pydicom.dcmread(dicom_data / CHEST_CR)
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    ds.PixelData = encapsulate([frame[: len(frame) // 2]])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds


def test_truncated_pixel_data_and_invalid_uids_get_failure_statuses_and_nothing_is_kept(env, dicom_data, tmp_path):
    port = free_port()
    listener = ListenerProcess(env, port, PUSHER_AET, options=("--timeout", "10"))
    try:
        tiny_truncated = native_cr(pixels=bytes(1000))  # 64 x 64 x 2 bytes declared, 1000 held
        assert store(port, tiny_truncated) == 0xC000
        assert listener.next()["reason"].startswith("the film cannot be decoded (truncated pixel data")
        assert store(port, truncated_j2k(dicom_data)) == 0xC000
        assert listener.next()["dicom_status"] == "0xC000"
        for keyword, bad in (("SOPInstanceUID", "../../etc/x"), ("StudyInstanceUID", "1." + "2" * 5002),
                             ("SeriesInstanceUID", "1.02.3")):
            ds = native_cr()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's own remark on the invalid value: the point here
                setattr(ds, keyword, bad)
                assert store(port, ds) == 0xA900
            line = listener.next()
            assert (line["status"], line["dicom_status"]) == ("refused", "0xA900")
            assert line["reason"].startswith(f"{keyword} ") and "is not a valid UID" in line["reason"]
        assert store(port, native_cr()) == 0
        assert listener.next()["status"] == "analysed"
    finally:
        assert listener.stop() == 0
    assert len(spooled(tmp_path)) == 1


def test_a_failed_tls_handshake_is_logged(env, tmp_path):
    from test_pacs_tls import certificate, echo

    cert, key = certificate(tmp_path, "server")
    port = free_port()
    listener = ListenerProcess(env, port, PUSHER_AET, options=("--tls-cert", str(cert), "--tls-key", str(key),
                                                               "--timeout", "5"))
    try:
        assert not echo(port, None)  # plain DICOM to a TLS listener
        line = listener.next()
        assert (line["status"], line["host"]) == ("rejected", "127.0.0.1")
        assert line["reason"].startswith("TLS handshake failed")
        assert listener.process.poll() is None
    finally:
        assert listener.stop() == 0


def test_a_c_get_requestor_under_bound_keeps_good_films_and_is_aborted_by_an_oversized_one(tmp_path):
    """dicom_receive's API as a C-GET (pacs get) uses it, against a pynetdicom C-GET SCP written here."""
    from pynetdicom import AE, evt
    from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    from xrayviewer.core.review.dicom_receive import ReceiveLimits, bound, keep_dataset

    films = {"good": native_cr(), "big": native_cr(1024, 2048)}  # 4 MB, over the 1 MB limit below

    def serve(event):
        ds = films[event.identifier.PatientID]
        yield 1
        yield 0xFF00, ds

    scp = AE(ae_title="PACS")
    scp.add_supported_context(GET)
    scp.add_supported_context(CR_CLASS, ExplicitVRLittleEndian, scu_role=True, scp_role=True)
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_GET, serve)])
    kept, refusals = [], []

    def on_store(event) -> int:
        kept.append(keep_dataset(event, tmp_path / "got"))
        return kept[-1].status

    try:
        for name in films:
            ae = AE(ae_title=PUSHER_AET)
            ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = 10
            ae.add_requested_context(GET)
            ae.add_requested_context(CR_CLASS, ExplicitVRLittleEndian)
            role = SCP_SCU_RoleSelectionNegotiation()
            role.sop_class_uid, role.scu_role, role.scp_role = CR_CLASS, False, True
            assoc = ae.associate("127.0.0.1", port, ae_title="PACS", ext_neg=[role],
                                 evt_handlers=[(evt.EVT_C_STORE, on_store)])
            assert assoc.is_established
            bound(assoc, tmp_path / "got", ReceiveLimits(1 << 20), refusals.append)
            query = Dataset()
            query.QueryRetrieveLevel, query.PatientID = "PATIENT", name
            answers = [int(status.Status) for status, _ in assoc.send_c_get(query, GET) if "Status" in status]
            if assoc.is_established:
                assoc.release()
            if name == "good":
                assert answers[-1] == 0 and [k.status for k in kept] == [0]
            else:
                assert assoc.is_aborted and len(kept) == 1
                (refusal,) = refusals
                assert (refusal.what, refusal.calling_aet) == ("aborted", "PACS")
                assert refusal.reason.startswith("a dataset over the size limit (1.0 MB)")
    finally:
        server.shutdown()
    assert sorted(p.name for p in (tmp_path / "got").iterdir()) == [kept[0].path.name]  # nothing half-received
