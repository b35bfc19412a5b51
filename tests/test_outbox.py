"""The node sends its results back: `xrayviewer listen --send NODE` against a real Orthanc on loopback ports, films
pushed with dcmtk's storescu. Each analysed film's objects arrive in the film's own study once; a refused film gets
only its SR, which says why; a film pushed again adds nothing, even when the outbox was lost and derives it again; a
PACS that is down, then a listener killed with SIGKILL, lose nothing and send nothing twice; a send the outbox lost
track of (killed between the PACS's success and its own mark) adds nothing when it is sent again; a film analysed but
not yet in the outbox at the kill is found in the review store. Without Orthanc: a PACS (a pynetdicom SCP) that
refuses one object, then is out of resources.

Orthanc runs on ports of 47600-47699 (this suite's range), started and stopped by PID; it keeps its storage across a
restart, as a PACS does."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from test_pacs import ORTHANC, PUSHER_AET, ListenerProcess, data_folder

needs_orthanc = pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed (apt-get install orthanc): "
                                   "these tests need a real PACS and skip without one")
PORTS = range(47600, 47700)
CHEST_CR = "RG1_UNCI.dcm"  # pydicom-data's chest CR, uncompressed (storescu sends files as they are)
REFUSED_FILM = "693_UNCI.dcm"  # a CT slice: the gate refuses it


def free_ports(count: int) -> list[int]:
    found = []
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    pytest.fail(f"fewer than {count} free ports in {PORTS}")


class Pacs:
    """An Orthanc that can be stopped and started again on the same ports and storage."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.http, self.dicom = free_ports(2)
        config = {"Name": "xrayviewer-outbox-tests", "StorageDirectory": str(folder / "db"),
                  "IndexDirectory": str(folder / "db"), "HttpPort": self.http, "DicomPort": self.dicom,
                  "DicomAet": "ORTHANC", "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
                  "Plugins": [], "DicomCheckModalityHost": False, "DicomAlwaysAllowStore": True,
                  "DicomAlwaysAllowEcho": True, "OverwriteInstances": False}
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.process: subprocess.Popen | None = None

    @property
    def node(self) -> str:
        return f"ORTHANC@127.0.0.1:{self.dicom}"

    def start(self) -> None:
        with open(self.folder / "orthanc.log", "ab") as log:
            self.process = subprocess.Popen([ORTHANC, str(self.folder / "orthanc.json")], stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.rest("/system")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Orthanc did not start: {(self.folder / 'orthanc.log').read_text()[-2000:]}")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def rest(self, path: str, body: object = None) -> object:
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", data=data,
                                         method="GET" if data is None else "POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"null")

    def instances_of(self, study_uid: str) -> list[pydicom.Dataset]:
        """Every instance Orthanc holds in the study, as stored (the whole file)."""
        found = self.rest("/tools/find", {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}})
        return [pydicom.dcmread(self._file(i)) for i in found]

    def _file(self, instance: str):
        import io
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/instances/{instance}/file", timeout=30) as f:
            return io.BytesIO(f.read())


@pytest.fixture
def orthanc(tmp_path):
    (tmp_path / "orthanc").mkdir()
    server = Pacs(tmp_path / "orthanc")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    environment = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    environment.pop("XRAYVIEWER_DB", None)
    return environment


def storescu(port: int, path: Path) -> None:
    """dcmtk's storescu pushes one file to the listener."""
    result = subprocess.run(["storescu", "-R", "-aet", PUSHER_AET, "-aec", "XRAYVIEWER", "127.0.0.1", str(port),
                             str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def wait_for(listener: ListenerProcess, status: str, timeout: float = 120) -> dict:
    """The listener's next line with `status` (the lines before it are passed over)."""
    deadline = time.monotonic() + timeout
    while True:
        line = listener.next(max(deadline - time.monotonic(), 0.1))
        assert line.get("status") not in ("outbox_error", "send_failed"), line
        if line.get("status") == status:
            return line


def copy_of(source: Path, folder: Path) -> Path:
    """The film with new study, series and instance UIDs: a study the PACS has not seen."""
    ds = pydicom.dcmread(source)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = folder / f"copy-{source.name}"
    ds.save_as(path)
    return path


def study_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def content_texts(ds: pydicom.Dataset) -> list[str]:
    """Every TEXT value of an SR's content tree."""
    found = []
    for item in ds.get("ContentSequence", []):
        if item.get("ValueType") == "TEXT":
            found.append(str(item.TextValue))
        found += content_texts(item)
    return found


def test_a_node_that_is_not_one_is_said_before_listening(env):
    result = subprocess.run([sys.executable, "-m", "xrayviewer", "listen", "--port", str(free_ports(1)[0]), "--allow",
                             PUSHER_AET, "--send", "nonsense"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no PACS node named 'nonsense'" in result.stderr and "listening on" not in result.stderr


@needs_orthanc
def test_each_film_s_objects_arrive_in_its_study_once_and_a_refused_film_gets_only_its_sr(orthanc, env, dicom_data,
                                                                                          tmp_path):
    port = free_ports(1)[0]
    listener = ListenerProcess(env, port, PUSHER_AET, options=("--send", orthanc.node))
    assert any(line.startswith(f"results to {orthanc.node} through the outbox") for line in listener.stderr)
    try:
        storescu(port, dicom_data / CHEST_CR)
        queued = wait_for(listener, "outbox_queued")
        sent = wait_for(listener, "sent")
        assert sent["objects"] == queued["objects"] and list(sent["objects"].values()) == ["SR", "PM", "SC"]
        arrived = orthanc.instances_of(study_of(dicom_data / CHEST_CR))
        assert sorted(str(ds.SOPInstanceUID) for ds in arrived) == sorted(queued["objects"])
        source = pydicom.dcmread(dicom_data / CHEST_CR, stop_before_pixels=True)
        assert {str(ds.PatientID) for ds in arrived} == {str(source.PatientID)}

        storescu(port, dicom_data / CHEST_CR)  # pushed again: its result is unchanged
        assert wait_for(listener, "unchanged")["film_id"] == sent["film_id"]
        storescu(port, dicom_data / REFUSED_FILM)
        refused = wait_for(listener, "analysed")
        assert refused["results"]["mobilenetv2"]["refused"]
        only = wait_for(listener, "sent")
        assert list(only["objects"].values()) == ["SR"]
        (sr,) = orthanc.instances_of(study_of(dicom_data / REFUSED_FILM))
        assert set(content_texts(sr)) >= set(refused["results"]["mobilenetv2"]["refused"])  # it says why
        assert len(orthanc.instances_of(study_of(dicom_data / CHEST_CR))) == len(arrived)  # the re-push added nothing
    finally:
        assert listener.stop() == 0
    outbox = data_folder(tmp_path) / "review.sqlite.outbox"
    assert sorted(p.name for p in outbox.iterdir() if not p.name.startswith("outbox.sqlite")) == []  # all sent

    shutil.rmtree(outbox)  # the outbox lost: the unchanged result is derived again, into the same objects
    listener = ListenerProcess(env, port, PUSHER_AET, options=("--send", orthanc.node))
    try:
        storescu(port, dicom_data / CHEST_CR)
        again = wait_for(listener, "sent")
    finally:
        assert listener.stop() == 0
    assert again["objects"] == queued["objects"]
    assert len(orthanc.instances_of(study_of(dicom_data / CHEST_CR))) == len(arrived)


@needs_orthanc
def test_a_pacs_down_and_a_kill_9_lose_nothing_and_send_nothing_twice(orthanc, env, dicom_data, tmp_path):
    film = copy_of(dicom_data / CHEST_CR, tmp_path)
    study = study_of(film)
    port = free_ports(1)[0]  # while Orthanc holds its own
    orthanc.stop()
    listener = ListenerProcess(env, port, PUSHER_AET, options=("--send", orthanc.node))
    try:
        storescu(port, film)
        queued = wait_for(listener, "outbox_queued")["objects"]
        deferred = wait_for(listener, "send_deferred")
        assert "no DICOM answer" in deferred["error"] and deferred["retry_in_s"] > 0
    finally:
        listener.process.kill()  # SIGKILL: no chance to tidy up
        listener.process.wait(timeout=30)
    orthanc.start()
    assert orthanc.rest("/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study}}) == []

    listener = ListenerProcess(env, port, PUSHER_AET, options=("--send", orthanc.node))
    try:
        sent = wait_for(listener, "sent")
        assert sent["objects"] == queued
    finally:
        assert listener.stop() == 0
    arrived = sorted(str(ds.SOPInstanceUID) for ds in orthanc.instances_of(study))
    assert arrived == sorted(queued)  # each once

    # killed between the PACS's success and the outbox's mark: the objects, still in the outbox, are sent again
    outbox = data_folder(tmp_path) / "review.sqlite.outbox"
    with sqlite3.connect(outbox / "outbox.sqlite") as db:
        rows = db.execute("SELECT sop_uid, file FROM objects WHERE state = 'sent'").fetchall()
        assert sorted(uid for uid, _ in rows) == arrived
        db.execute("UPDATE objects SET state = 'pending', sent_at = NULL")
    assert not [p for p in outbox.iterdir() if p.suffix == ".dcm"]  # a sent object's file is removed
    stored = {str(ds.SOPInstanceUID): ds for ds in orthanc.instances_of(study)}
    for uid, file in rows:  # as the kill would have left them
        stored[uid].save_as(outbox / file)
    listener = ListenerProcess(env, port, PUSHER_AET, options=("--send", orthanc.node))
    try:
        again = wait_for(listener, "sent")
    finally:
        assert listener.stop() == 0
    assert again["objects"] == queued
    assert sorted(str(ds.SOPInstanceUID) for ds in orthanc.instances_of(study)) == arrived  # nothing added


@needs_orthanc
def test_a_film_analysed_but_not_yet_in_the_outbox_when_killed_is_sent_when_the_pacs_comes_back(orthanc, env,
                                                                                                  dicom_data,
                                                                                                  tmp_path):
    film = copy_of(dicom_data / CHEST_CR, tmp_path)
    port = free_ports(1)[0]  # while Orthanc holds its own
    orthanc.stop()
    listener = ListenerProcess(env, port, PUSHER_AET, options=("--send", orthanc.node))
    try:
        storescu(port, film)
        wait_for(listener, "analysed")
    finally:
        listener.process.kill()  # the heatmap takes seconds: the outbox has not recorded the film yet
        listener.process.wait(timeout=30)
    outbox = data_folder(tmp_path) / "review.sqlite.outbox" / "outbox.sqlite"
    with sqlite3.connect(outbox) as db:
        assert db.execute("SELECT COUNT(*) FROM objects").fetchone()[0] == 0

    listener = ListenerProcess(env, port, PUSHER_AET, options=("--send", orthanc.node))
    try:
        queued = wait_for(listener, "outbox_queued")["objects"]  # found in the review store
        wait_for(listener, "send_deferred")
        orthanc.start()  # back while the node runs: the next try finds it
        sent = wait_for(listener, "sent", timeout=60)
    finally:
        assert listener.stop() == 0
    assert sent["objects"] == queued
    assert sorted(str(ds.SOPInstanceUID) for ds in orthanc.instances_of(study_of(film))) == sorted(queued)


class RefusingPacs:
    """A pynetdicom C-STORE SCP on loopback that answers each object with the status `answer(dataset)` gives, and
    keeps the SOP Instance UIDs it stored (answered 0x0000)."""

    def __init__(self) -> None:
        from pynetdicom import AE, evt
        from pynetdicom.presentation import AllStoragePresentationContexts

        self.port = free_ports(1)[0]
        self.stored: list[str] = []
        self.answer = lambda ds: 0x0000
        ae = AE(ae_title="REFUSER")
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax)
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._on_store)])

    def _on_store(self, event) -> int:
        status = self.answer(event.dataset)
        if status == 0:
            self.stored.append(str(event.dataset.SOPInstanceUID))
        return status


def test_an_object_the_pacs_refuses_is_failed_the_others_go_and_it_is_tried_again_at_the_next_start(dicom_data,
                                                                                                      tmp_path):
    import queue

    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.core.review.outbox import Outbox, export_objects
    from xrayviewer.core.review.pacs_nodes import parse_address
    from xrayviewer.core.review.store import ReviewStore
    from xrayviewer.core.review.worklist import Worklist

    pacs = RefusingPacs()
    pacs.answer = lambda ds: 0xA900 if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30" else 0x0000  # no maps
    node = parse_address(f"REFUSER@127.0.0.1:{pacs.port}")
    engine = Engine("cpu")
    lines: queue.Queue[dict] = queue.Queue()

    def next_line(status: str) -> dict:
        while True:
            line = lines.get(timeout=120)
            if line["status"] == status:
                return line

    try:
        with ReviewStore(tmp_path / "review.sqlite") as store:
            (film,) = [e for e in Worklist(store, engine, ["mobilenetv2"]).run([dicom_data / CHEST_CR])]
            outbox = Outbox(store, node, export_objects(engine), lines.put)
            outbox.start()
            outbox.add(film.film_id)
            queued = next_line("outbox_queued")["objects"]
            sr, pm, sc = (next(uid for uid, kind in queued.items() if kind == k) for k in ("SR", "PM", "SC"))
            failed = next_line("send_failed")
            assert (failed["object"], failed["kind"]) == (pm, "PM") and "0xA900" in failed["error"]
            assert next_line("sent")["objects"] == {sc: "SC"}  # the rest of the film goes on
            outbox.stop()
            assert pacs.stored == [sr, sc]

            pacs.answer = lambda ds: 0xA700  # out of resources: tried again with back-off, not failed
            outbox = Outbox(store, node, export_objects(engine), lines.put)
            outbox.start()
            deferred = next_line("send_deferred")
            assert deferred["retry_in_s"] == 2.0 and "0xA700" in deferred["error"]
            pacs.answer = lambda ds: 0x0000
            assert next_line("sent")["objects"] == {pm: "PM"}
            outbox.stop()
        assert pacs.stored == [sr, sc, pm]  # each once
    finally:
        pacs.server.shutdown()
