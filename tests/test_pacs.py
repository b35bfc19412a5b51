"""The PACS commands against a real Orthanc on 127.0.0.1: echo, find, get with the analysis, the listener fed by an
Orthanc push, a refused caller that stores nothing, malformed and non-image datasets that do not stop the listener,
export + send arriving under the source study, and an unreachable node that fails fast with one line.

Orthanc (Debian package `orthanc`, installed by .ci/run) runs from a config written here with free loopback ports;
its packaged service, if any, is left alone (other ports). Where it is not installed the tests skip and say so."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from xrayviewer.core.review import pacs
from xrayviewer.core.review.pacs_nodes import parse_address

# the Debian package puts it in /usr/sbin, which is not on every user's PATH
ORTHANC = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin")
pytestmark = pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed (apt-get install orthanc): the PACS "
                                "tests need a real PACS and skip without one")
CHEST_CR = "RG1_J2KI.dcm"  # pydicom-data's chest CR (JPEG 2000), patient 9RG1
OTHER_FILMS = ("693_J2KR.dcm",)  # a CT slice: not a chest film, refused by the gate
ORTHANC_AET, PUSHER_AET = "ORTHANC", "XRVTEST"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    http: int
    dicom: int
    listener_port: int  # where the modality 'viewer' of its config points: the listener under test
    pid: int

    @property
    def node(self) -> str:
        return f"{ORTHANC_AET}@127.0.0.1:{self.dicom}"

    def rest(self, path: str, body: object = None) -> object:
        data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", data=data,
                                         method="GET" if data is None else "POST")
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read() or b"null")

    def instances_of(self, study_uid: str) -> list[dict]:
        return self.rest("/tools/find", {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid},
                                         "Expand": True})

    def study_id(self, study_uid: str) -> str:
        return self.rest("/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}})[0]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory, dicom_data) -> Orthanc:
    folder = tmp_path_factory.mktemp("orthanc")
    http, dicom, listener = free_port(), free_port(), free_port()
    config = {"Name": "xrayviewer-tests", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "HttpPort": http, "DicomPort": dicom, "DicomAet": ORTHANC_AET, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "Plugins": [], "StableAge": 1, "DicomCheckModalityHost": False,
              "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "DicomScuTimeout": 10,
              "DicomAssociationCloseDelay": 0,  # no association kept open to a listener that a test stopped
              "DicomModalities": {"viewer": ["XRAYVIEWER", "127.0.0.1", listener]}}
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "wb")
    process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    server = Orthanc(http, dicom, listener, process.pid)
    deadline = time.monotonic() + 30
    while True:
        try:
            server.rest("/system")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Orthanc did not start: {(folder / 'orthanc.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
    for name in (CHEST_CR, *OTHER_FILMS):
        assert server.rest("/instances", (dicom_data / name).read_bytes())["Status"] == "Success"
    yield server
    os.kill(server.pid, signal.SIGTERM)
    process.wait(timeout=30)
    log.close()


@pytest.fixture
def data_home(tmp_path) -> dict[str, str]:
    """The environment of a command whose user data folder (nodes, cache, review store) is under tmp_path."""
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("XRAYVIEWER_DB", None)
    return env


def data_folder(tmp_path: Path) -> Path:
    return tmp_path / "data" / "xrayviewer"


def xrayviewer(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xrayviewer", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def lines(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def chest_study(dicom_data: Path) -> str:
    return pydicom.dcmread(dicom_data / CHEST_CR, stop_before_pixels=True).StudyInstanceUID


def test_echo_answers_and_an_unreachable_node_fails_fast_with_one_line_naming_it(orthanc, data_home):
    assert xrayviewer(data_home, "pacs", "echo", orthanc.node).returncode == 0
    closed = free_port()
    start = time.monotonic()
    result = xrayviewer(data_home, "pacs", "echo", f"NOBODY@127.0.0.1:{closed}", timeout=60)
    assert result.returncode == 1 and time.monotonic() - start < 15
    (line,) = result.stderr.strip().splitlines()
    assert f"NOBODY@127.0.0.1:{closed}" in line and "no DICOM answer" in line and "Traceback" not in result.stderr
    assert "no PACS node named 'nonsense'" in xrayviewer(data_home, "pacs", "echo", "nonsense").stderr


def test_find_lists_studies_with_their_fields_and_filters(orthanc, data_home, dicom_data):
    assert xrayviewer(data_home, "pacs", "nodes", "add", "main", orthanc.node).returncode == 0
    everything = lines(xrayviewer(data_home, "pacs", "find", "main"))
    assert len(everything) == 1 + len(OTHER_FILMS)
    (cr,) = lines(xrayviewer(data_home, "pacs", "find", "main", "--modality", "CR,DX"))
    assert cr["StudyInstanceUID"] == chest_study(dicom_data)
    assert (cr["patient_id"], cr["date"], cr["modalities"], cr["description"], cr["images"]) == (
        "9RG1", "20040826", ["CR"], "THORAX", 1)
    assert lines(xrayviewer(data_home, "pacs", "find", "main", "--id", "9RG1", "--date", "20040101-20041231")) == [cr]
    assert lines(xrayviewer(data_home, "pacs", "find", "main", "--patient", "NOBODY*")) == []


def test_get_retrieves_into_the_cache_and_prints_the_worklist_lines(orthanc, data_home, dicom_data, tmp_path):
    result = xrayviewer(data_home, "pacs", "get", orthanc.node, chest_study(dicom_data))
    assert result.returncode == 0, result.stderr
    (film,) = lines(result)
    assert film["status"] == "analysed" and film["patient_id"] == "9RG1"
    assert 0 <= film["results"]["mobilenetv2"]["probability"] <= 1
    assert Path(film["path"]).parent == data_folder(tmp_path) / "pacs-cache"
    written = sorted(p.relative_to(data_folder(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert [p for p in written if not p.name.startswith("review.sqlite")] == [
        Path(film["path"]).relative_to(data_folder(tmp_path))]  # the cache and the review store, nothing else
    again = lines(xrayviewer(data_home, "pacs", "get", orthanc.node, chest_study(dicom_data)))
    assert [f["status"] for f in again] == ["unchanged"]


class ListenerProcess:
    """`xrayviewer listen` in a subprocess; its JSON lines read as they come."""

    def __init__(self, env: dict[str, str], port: int, *allow: str, options: tuple[str, ...] = ()) -> None:
        args = [sys.executable, "-m", "xrayviewer", "listen", "--port", str(port), "--bind", "127.0.0.1",
                *[a for caller in allow for a in ("--allow", caller)], *options]
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict] = queue.Queue()
        self.stderr: list[str] = []
        self.listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()
        if not self.listening.wait(60):  # never a hang: a listener that does not say it listens fails the test
            self.process.kill()
            raise AssertionError("".join(self.stderr) or "the listener said nothing in 60 s")

    def _watch(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)
            if line.startswith("listening on"):
                self.listening.set()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next(self, timeout: float = 60) -> dict:
        return self.lines.get(timeout=timeout)

    def stop(self) -> int:
        os.kill(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout=60)


def send_file(port: int, path: Path, calling: str = PUSHER_AET) -> int:
    """C-STORE one file as it is on disk (its dataset bytes are not decoded here): the listener's status."""
    from pynetdicom import AE

    meta = pydicom.filereader.read_file_meta_info(path)
    ae = AE(ae_title=calling)
    ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="XRAYVIEWER")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(path)
        return int(status.Status) if "Status" in status else None  # None: aborted
    finally:
        if assoc.is_established:
            assoc.release()


def test_listener_analyses_what_orthanc_pushes_and_refuses_other_callers(orthanc, data_home, dicom_data, tmp_path):
    listener = ListenerProcess(data_home, orthanc.listener_port, f"{ORTHANC_AET}@127.0.0.1")
    try:
        pushed = orthanc.rest("/modalities/viewer/store", [orthanc.study_id(chest_study(dicom_data))])
        assert pushed["InstancesCount"] == 1 and pushed["FailedInstancesCount"] == 0
        film = listener.next()
        assert film["status"] == "analysed" and film["calling_aet"] == ORTHANC_AET
        assert 0 <= film["results"]["mobilenetv2"]["probability"] <= 1 and film["seconds_to_result"] >= 0
        with pytest.raises(pacs.PacsError, match="refused the association from AE title 'INTRUDER'"):
            pacs.send(parse_address(f"XRAYVIEWER@127.0.0.1:{orthanc.listener_port}"), [dicom_data / CHEST_CR],
                      "INTRUDER")
        assert listener.next()["status"] == "rejected"
    finally:
        assert listener.stop() == 0
    spool = data_folder(tmp_path) / "listener-spool"
    assert [p.name for p in spool.iterdir()] == [Path(film["path"]).name]


def test_an_allowed_title_from_another_host_stores_nothing(orthanc, data_home, dicom_data, tmp_path):
    listener = ListenerProcess(data_home, orthanc.listener_port, f"{ORTHANC_AET}@10.11.12.13")
    try:
        with pytest.raises(urllib.error.HTTPError):  # Orthanc reports the failed C-STORE
            orthanc.rest("/modalities/viewer/store", [orthanc.study_id(chest_study(dicom_data))])
        refused = listener.next()  # at association, not once the film came
        assert (refused["status"], refused["host"]) == ("rejected", "127.0.0.1")
        assert refused["reason"].startswith(f"host not allowed for AE title '{ORTHANC_AET}'")
    finally:
        assert listener.stop() == 0
    spool = data_folder(tmp_path) / "listener-spool"
    assert not spool.exists() or list(spool.iterdir()) == []


def test_listener_refuses_malformed_and_non_image_datasets_and_keeps_running(data_home, dicom_data, tmp_path):
    port = free_port()
    good = dicom_data / CHEST_CR
    garbage = tmp_path / "garbage.dcm"  # the header up to the SOP Instance UID, then an element longer than the rest
    data = good.read_bytes()
    uid_at = data.index(b"\x08\x00\x18\x00UI", 144 + int.from_bytes(data[140:144], "little"))
    uid_end = uid_at + 8 + int.from_bytes(data[uid_at + 6:uid_at + 8], "little")
    garbage.write_bytes(data[:uid_end] + b"\x10\x00\x10\x00OB\x00\x00\xff\xff\xff\x7f" + bytes(64))
    broken = tmp_path / "broken.dcm"  # a whole header, its JPEG 2000 frame cut short after its first marker
    ds = pydicom.dcmread(good)
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
    ds.save_as(broken)
    report = Path(pydicom.data.get_testdata_file("test-SR.dcm"))
    listener = ListenerProcess(data_home, port, PUSHER_AET)
    try:
        assert send_file(port, report) == pacs.SOP_CLASS_REFUSED
        assert listener.next()["reason"] == "not an image SOP class"
        assert send_file(port, garbage) == pacs.CANNOT_UNDERSTAND
        assert listener.next()["reason"].startswith("the film cannot be decoded (pixel data missing")
        assert send_file(port, broken) == pacs.CANNOT_UNDERSTAND  # its header decodes, its pixels do not: refused
        assert listener.next()["reason"].startswith("the film cannot be decoded")
        assert send_file(port, good) == pacs.SUCCESS
        assert listener.next()["status"] == "analysed"
        assert listener.process.poll() is None
    finally:
        assert listener.stop() == 0


def test_listener_refuses_what_is_over_the_size_limit_or_the_free_disk_floor(data_home, dicom_data, tmp_path):
    spool = data_folder(tmp_path) / "listener-spool"
    for options, film, answer in ((("--max-mb", "0.1"), CHEST_CR, None), (("--free-gb", "1000000"), "SC_rgb.dcm",
                                                                           pacs.OUT_OF_RESOURCES)):
        port = free_port()
        listener = ListenerProcess(data_home, port, PUSHER_AET, options=options)
        try:
            assert send_file(port, dicom_data / film) == answer  # None: the association was aborted
            reason = listener.next()["reason"]
            assert reason.startswith("a dataset over the size limit") if answer is None else \
                reason == "the free-disk floor"
        finally:
            assert listener.stop() == 0
        assert not spool.exists() or list(spool.iterdir()) == []


def test_listener_serves_the_configured_nodes_and_analyses_what_an_earlier_one_left(data_home, dicom_data,
                                                                                     tmp_path):
    refused = xrayviewer(data_home, "listen", "--port", str(free_port()))
    assert refused.returncode == 1 and "no caller is allowed" in refused.stderr
    assert xrayviewer(data_home, "pacs", "nodes", "add", "modality", f"{PUSHER_AET}@127.0.0.1:104").returncode == 0
    spool = data_folder(tmp_path) / "listener-spool"
    spool.mkdir(parents=True)
    left = spool / "0123456789abcdef0123456789abcdef.dcm"  # received, then the listener was killed
    shutil.copy(dicom_data / CHEST_CR, left)
    (spool / ".half-written.tmp").write_bytes(b"DICM")
    cache = data_folder(tmp_path) / "pacs-cache"  # what `pacs get` retrieved: not the listener's to analyse
    cache.mkdir(parents=True)
    shutil.copy(dicom_data / "RG1_J2KR.dcm", cache / "fedcba9876543210fedcba9876543210.dcm")
    port = free_port()
    listener = ListenerProcess(data_home, port)  # no --allow: the configured nodes
    try:
        earlier = listener.next()
        assert (earlier["path"], earlier["status"], earlier["calling_aet"]) == (str(left), "analysed",
                                                                                "(received earlier)")
        assert send_file(port, dicom_data / "RG3_J2KI.dcm") == pacs.SUCCESS
        assert listener.next()["calling_aet"] == PUSHER_AET  # (the film in pacs-cache was not analysed first)
    finally:
        assert listener.stop() == 0
    assert sorted(p.name for p in spool.iterdir() if p.name.startswith(".")) == []


def test_export_and_send_arrive_in_orthanc_under_the_source_study(orthanc, data_home, dicom_data, tmp_path):
    from xrayviewer.core.review.store import ReviewStore

    study = chest_study(dicom_data)
    (film,) = lines(xrayviewer(data_home, "pacs", "get", orthanc.node, study))
    with ReviewStore(data_folder(tmp_path) / "review.sqlite") as store:
        store.decide(film["film_id"], "pneumonia", "consolidation, right lower zone", "Dr Test")
    result = xrayviewer(data_home, "export", film["path"], "--out", str(tmp_path / "out"), "--send", orthanc.node)
    assert result.returncode == 0, result.stderr
    (line,) = lines(result)
    assert line["sent_to"] == orthanc.node
    arrived = {i["MainDicomTags"]["SOPInstanceUID"] for i in orthanc.instances_of(study)}
    sent = {pydicom.dcmread(line[k], stop_before_pixels=True).SOPInstanceUID for k in ("sc", "sr")}
    assert sent <= arrived and len(arrived) >= 3


def test_get_by_c_move_receives_the_study_on_the_given_port(orthanc, data_home, dicom_data, tmp_path):
    result = xrayviewer(data_home, "pacs", "get", orthanc.node, chest_study(dicom_data), "--move-port",
                        str(orthanc.listener_port))  # the port Orthanc's modality 'viewer' (XRAYVIEWER) points at
    assert result.returncode == 0, result.stderr
    cr = pydicom.dcmread(dicom_data / CHEST_CR, stop_before_pixels=True).SOPInstanceUID
    (film,) = [f for f in lines(result) if f["sop_uid"] == cr]  # (an export sent earlier may be in the study too)
    assert film["status"] == "analysed" and Path(film["path"]).parent == data_folder(tmp_path) / "pacs-cache"
    unknown = xrayviewer(data_home, "pacs", "--aet", "NOTKNOWN", "get", orthanc.node, chest_study(dicom_data),
                         "--move-port", str(free_port()))
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr and orthanc.node in unknown.stderr
