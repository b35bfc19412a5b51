"""The PACS client against a hostile PACS written here with pynetdicom (Verification, Study Root FIND/GET/MOVE):
films of another patient or study, callers injecting films into a C-MOVE, aborts part-way, malformed attributes,
a node trickling one byte per second or one film at a time. Nothing it sends may enter the cache or the review
store unchecked, what arrived before a failure is kept and said, and every limit ends where it says.

The hostile node listens on 127.0.0.2 (another loopback address than the client's), ports 47400-47499."""

from __future__ import annotations

import itertools
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian
from test_pacs import data_folder, data_home, lines, xrayviewer  # noqa: F401 - data_home: the fixture

from xrayviewer.core.review import pacs
from xrayviewer.core.review.pacs_nodes import parse_address

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from pacs_client import HOST, STUDY, HostilePacs, film, peak_of_get, study_answer  # noqa: E402
from pacs_client import chest as chest_of  # noqa: E402

OTHER_HOST = "127.0.0.3"  # a caller that is not the node (which is on 127.0.0.2)
PORTS = itertools.count(47400)  # this file's loopback ports (none is used twice in a session)
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR")  # (pydicom, reading what this PACS sends)


@pytest.fixture(scope="module")
def chest(dicom_data) -> tuple[Dataset, np.ndarray]:
    """pydicom-data's chest CR: its header, and its pixels at a quarter of the size (quick to analyse)."""
    return chest_of(dicom_data)


def raw(keyword: str, vr: str, value: bytes) -> RawDataElement:
    """An element as the bytes a PACS sends, whatever its VR allows."""
    return RawDataElement(Tag(keyword), vr, len(value), value, 0, False, True)


class Hostile(HostilePacs):
    @property
    def node(self):
        return parse_address(self.address)


@pytest.fixture
def hostile():
    node = Hostile(next(PORTS))
    yield node
    node.close()


def cached(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_film_of_another_patient_or_study_is_refused_and_nothing_of_it_is_kept(hostile, chest, tmp_path):
    good = film(chest)
    other_patient, other_study = film(chest, patient="EVIL"), film(chest, study="1.2.826.0.1.3680043.8.498.66")
    hostile.films = {hostile.series[0].SeriesInstanceUID: [other_patient, good, other_study]}
    got = pacs.get(hostile.node, [STUDY], tmp_path / "cache")
    assert len(got.paths) == 1 and pydicom.dcmread(got.paths[0]).SOPInstanceUID == good.SOPInstanceUID
    assert cached(tmp_path / "cache") == [got.paths[0].name]
    patient_line, study_line = got.problems
    assert other_patient.SOPInstanceUID in patient_line and "its PatientID 'EVIL' is not the study's ('P28')" in \
        patient_line and "StudyInstanceUID" not in patient_line
    assert "its StudyInstanceUID '1.2.826.0.1.3680043.8.498.66' is not the study asked for" in study_line
    assert got.failure is None and got.summary() == "1 of 3 films retrieved, 2 refused"


def test_get_of_a_wrong_patients_film_stores_nothing_and_says_what_differed(hostile, chest, data_home, tmp_path):
    hostile.films = {hostile.series[0].SeriesInstanceUID: [film(chest, patient="EVIL")]}
    result = xrayviewer(data_home, "pacs", "get", hostile.node.address, STUDY, "--db", str(tmp_path / "r.sqlite"))
    assert result.returncode == 1 and lines(result) == [] and "Traceback" not in result.stderr
    assert "its PatientID 'EVIL' is not the study's ('P28')" in result.stderr
    assert f"{hostile.node}: 0 of 1 films retrieved, 1 refused into" in result.stderr
    assert cached(data_folder(tmp_path) / "pacs-cache") == []
    if (tmp_path / "r.sqlite").exists():
        from xrayviewer.core.review.store import ReviewStore

        with ReviewStore(tmp_path / "r.sqlite") as store:
            assert store.films() == []


def send_as(caller_aet: str, source_host: str, port: int, ds: Dataset) -> str:
    """Try to C-STORE `ds` to 127.0.0.1:`port` as `caller_aet` from `source_host`: 'rejected', or the status."""
    from pynetdicom import AE

    ae = AE(caller_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="XRAYVIEWER", bind_address=(source_host, 0))
    if not assoc.is_established:
        return "rejected" if assoc.is_rejected else "no association"
    try:
        return f"0x{int(assoc.send_c_store(ds).Status):04X}"
    finally:
        assoc.release()


def connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def test_c_move_listens_only_while_it_lasts_on_one_interface_and_only_for_the_node(hostile, chest, tmp_path):
    port = next(PORTS)
    good, wrong = film(chest), film(chest, patient="EVIL")
    hostile.films = {hostile.series[0].SeriesInstanceUID: [good, wrong]}
    hostile.destination = ("127.0.0.1", port)
    seen = {}

    def inject() -> None:
        seen["other interface"] = connects("127.0.0.4", port)
        seen["node's title, other host"] = send_as("HOSTILE", OTHER_HOST, port, film(chest))
        seen["other title, node's host"] = send_as("EVIL", HOST, port, film(chest))

    hostile.before_move = inject
    assert not connects("127.0.0.1", port)
    got = pacs.move(hostile.node, [STUDY], tmp_path / "cache", "XRAYVIEWER", port)
    assert seen == {"other interface": False, "node's title, other host": "rejected",
                    "other title, node's host": "rejected"}
    assert [pydicom.dcmread(p).SOPInstanceUID for p in got.paths] == [good.SOPInstanceUID]
    assert cached(tmp_path / "cache") == [got.paths[0].name]
    assert any("rejected an association from 'HOSTILE' at '127.0.0.3': not the node's host" in p for p in got.problems)
    assert any("rejected an association from 'EVIL' at '127.0.0.2': not the node's AE title" in p for p in got.problems)
    assert any(wrong.SOPInstanceUID in p and "PatientID 'EVIL'" in p for p in got.problems)
    assert got.failure is None and got.summary() == "1 of 2 films retrieved, 1 refused"
    assert not connects("127.0.0.1", port)  # the receiver is gone with the move


def aborting_get(films: list[Dataset], announced: int):
    def get(event):
        yield announced
        for ds in films:
            yield 0xFF00, ds
        time.sleep(0.5)
        event.assoc.abort()
    return get


def test_films_before_an_abort_are_kept_analysed_and_summed_up(hostile, chest, data_home, tmp_path):
    films = [film(chest) for _ in range(3)]
    hostile.get = aborting_get(films, 25)
    got = pacs.get(hostile.node, [STUDY], tmp_path / "cache")
    assert len(got.paths) == 3 and got.expected == 25
    assert got.summary() == "3 of 25 films retrieved before the PACS aborted"
    result = xrayviewer(data_home, "pacs", "get", hostile.node.address, STUDY, "--db", str(tmp_path / "r.sqlite"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "3 of 25 films retrieved before the PACS aborted" in result.stderr
    rows = lines(result)
    assert sorted(r["sop_uid"] for r in rows) == sorted(f.SOPInstanceUID for f in films)
    assert {r["status"] for r in rows} == {"analysed"}


def test_a_c_move_cut_short_keeps_what_came_and_closes_its_port(hostile, chest, tmp_path):
    port = next(PORTS)
    films = [film(chest) for _ in range(2)]
    hostile.destination = ("127.0.0.1", port)

    def move(event, stall: bool):
        yield (*hostile.destination, {"bind_address": (HOST, 0)})
        yield 10
        for ds in films:
            yield 0xFF00, ds
        if stall:
            time.sleep(30)  # past the client's limit: it hangs up
        event.assoc.abort()

    hostile.move = lambda event: move(event, stall=False)
    got = pacs.move(hostile.node, [STUDY], tmp_path / "aborted", "XRAYVIEWER", port)
    assert len(got.paths) == 2 and got.summary() == "2 of 10 films retrieved before the PACS aborted"
    hostile.move = lambda event: move(event, stall=True)
    got = pacs.move(hostile.node, [STUDY], tmp_path / "stalled", "XRAYVIEWER", port, seconds=5)
    assert got.summary() == "2 of 10 films retrieved before the retrieve time limit of 5 s was hit"
    assert "(--timeout)" in str(got.failure) and not connects("127.0.0.1", port)


class ReadLines:
    """The JSON lines of a running command, as they come."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.lines = process, queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(json.loads(line)) for line in process.stdout],
                         daemon=True).start()

    def next(self, timeout: float) -> dict:
        return self.lines.get(timeout=timeout)


def test_find_prints_matches_as_they_arrive_and_keeps_them_when_the_pacs_aborts(hostile, data_home):
    printed = threading.Event()
    released_by_the_test = []

    def find(event):
        for n in range(2):
            yield 0xFF00, study_answer(f"1.2.826.0.1.3680043.8.498.2801{n}")
        released_by_the_test.append(printed.wait(60))  # the client must have printed both by now
        event.assoc.abort()

    hostile.find = find
    process = subprocess.Popen([sys.executable, "-m", "xrayviewer", "pacs", "find", hostile.node.address],
                               env=data_home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = ReadLines(process)
    studies = [output.next(60)["StudyInstanceUID"] for _ in range(2)]
    printed.set()
    assert process.wait(60) == 1 and released_by_the_test == [True]
    assert studies == ["1.2.826.0.1.3680043.8.498.28010", "1.2.826.0.1.3680043.8.498.28011"]
    stderr = process.stderr.read()
    assert f"{hostile.node}: 2 studies found before the PACS aborted" in stderr and "Traceback" not in stderr


def test_malformed_attributes_become_empty_with_a_note_and_the_other_matches_stay(hostile, data_home):
    bad = study_answer("1.2.826.0.1.3680043.8.498.28020")
    for keyword, vr, value in (("NumberOfStudyRelatedInstances", "IS", b"notanumber"),
                               ("StudyDate", "DA", b"20261345"), ("StudyTime", "TM", b"99:99 "),
                               ("PatientName", "PN", b"DOE^\xe2\x80\xaeEVIL"),
                               ("ModalitiesInStudy", "CS", b"CR\\cr;rm")):
        bad[Tag(keyword)] = raw(keyword, vr, value)
    hostile.studies = [bad, study_answer(NumberOfStudyRelatedInstances=3)]
    result = xrayviewer(data_home, "pacs", "find", hostile.node.address, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    first, second = lines(result)
    assert (first["images"], first["date"], first["time"], first["modalities"]) == (None, "", "", ["CR"])
    assert "\u202e" not in result.stdout  # JSON escapes it
    assert (second["StudyInstanceUID"], second["images"], second["date"]) == (STUDY, 3, "20260101")
    for said in ("NumberOfStudyRelatedInstances 'notanumber' is not an integer: left empty",
                 "StudyDate '20261345' is not a date (YYYYMMDD): left empty",
                 "StudyTime '99:99' is not a time (HHMMSS): left empty", "ModalitiesInStudy 'cr;rm' is not a code"):
        assert said in result.stderr
    assert f"{hostile.node}: 2 studies" in result.stderr
    hostile.studies = []
    nothing = xrayviewer(data_home, "pacs", "find", hostile.node.address)
    assert nothing.returncode == 0 and nothing.stdout == "" and f"{hostile.node}: 0 studies" in nothing.stderr


class Trickle:
    """A TCP relay to `target`: what the node answers passes at once up to its association answer, then one byte
    per second."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, next(PORTS)
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pass, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._trickle, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pass(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    @staticmethod
    def _trickle(source: socket.socket, sink: socket.socket) -> None:
        try:
            header = source.recv(6, socket.MSG_WAITALL)
            sink.sendall(header + source.recv(int.from_bytes(header[2:6], "big"), socket.MSG_WAITALL))
            while data := source.recv(1):
                sink.sendall(data)
                time.sleep(1)
        except OSError:
            pass

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def test_a_node_trickling_one_byte_a_second_ends_at_the_search_limit(hostile, data_home):
    trickle = Trickle((HOST, hostile.port))
    try:
        start = time.monotonic()
        result = xrayviewer(data_home, "pacs", "find", f"HOSTILE@127.0.0.1:{trickle.port}", "--timeout", "6",
                            timeout=120)
        took = time.monotonic() - start
    finally:
        trickle.close()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the search time limit of 6 s was hit (--timeout)" in result.stderr
    assert "0 studies found before the search time limit of 6 s was hit" in result.stderr
    assert took < 45  # the command's start and the hang-up, well before the 60 s per-message limit


def test_a_node_sending_a_film_at_a_time_ends_at_the_retrieve_limit_and_says_its_progress(hostile, chest, data_home,
                                                                                          tmp_path):
    def slow_get(event):
        yield 65535
        while True:
            yield 0xFF00, film(chest)
            time.sleep(2.5)

    hostile.get = slow_get
    result = xrayviewer(data_home, "pacs", "get", hostile.node.address, STUDY, "--timeout", "8",
                        "--db", str(tmp_path / "r.sqlite"), timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rows = lines(result)  # a film every 2.5 s for 8 s
    assert 1 <= len(rows) <= 4 and {r["status"] for r in rows} == {"analysed"}
    assert f"{len(rows)} of 65535 films retrieved before the retrieve time limit of 8 s was hit" in result.stderr
    assert "films received" in result.stderr  # progress


# (VmHWM, not ru_maxrss: Linux carries that over from the forking process, this test's, across exec)
def test_a_film_over_the_size_limit_is_abandoned_as_it_comes_and_memory_stays_bounded(hostile, chest, data_home,
                                                                                      tmp_path):
    series = hostile.series[0].SeriesInstanceUID
    hostile.films = {series: [film(chest, patient="EVIL")]}  # refused too: the same path, nothing analysed
    small, idle_mb = peak_of_get(data_home, hostile.node.address, "--max-mb", "16")
    assert small.returncode == 1 and "its PatientID 'EVIL'" in small.stderr, small.stderr
    hostile.films = {series: [film(chest, pixels=np.zeros((8000, 10000), np.uint16))]}  # 160 MB, made here
    result, peak_mb = peak_of_get(data_home, hostile.node.address, "--max-mb", "16")
    print(f"peak RSS: {idle_mb:.1f} MB retrieving a small film, {peak_mb:.1f} MB a 160 MB one over --max-mb 16")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "0 films retrieved before a film was refused (a dataset over the size limit (16.0 MB)" in result.stderr
    assert cached(data_folder(tmp_path) / "pacs-cache") == []  # not even a temporary file
    assert peak_mb - idle_mb < 40


@pytest.mark.parametrize("action", ["echo", "find", "get", "nodes"])
def test_each_pacs_action_has_a_description_and_examples(action, capsys):
    from xrayviewer.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["pacs", action, "--help"])
    shown_help = capsys.readouterr().out
    description = shown_help.split("\n\n")[1]
    assert len(description) > 80 and "examples:\n  xrayviewer pacs" in shown_help
