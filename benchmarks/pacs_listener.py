"""How fast and how bounded the listener is: a real `xrayviewer listen` process on 127.0.0.1, fresh review store
and spool folder, fed by pynetdicom (the honest burst) and by dcmtk's storescu and raw peers (the hostile ones).

Two phases, each a burst of --films copies of the film (fresh UIDs, so each is a new file and a new analysis) on
one association:
  quiet    the burst alone;
  hostile  the same burst while --oversized storescu senders push at once a generated native CR of --oversized-mb
           (over --max-mb), one raw peer announces a ~4 GB P-DATA PDU and streams into it, and one stalls inside a
           PDU (dropped after --timeout).
For each: films per second (first C-STORE to the last result line), the median and p95 time from a film's
C-STORE to its result line, and the listener's peak memory (VmHWM, reset before the phase) against its idle size
(models loaded, before the first film). For the hostile phase also: how the oversized senders ended (the
listener's 'aborted' lines), and how long the stalled and the huge-PDU peers stayed connected.
Prints one JSON object.

    PYTHONPATH=. python benchmarks/pacs_listener.py [--films 40] [--film PATH] [--provider cpu] [--oversized 10]
        [--oversized-mb 64] [--max-mb 16] [--timeout 5]

Needs dcmtk (`apt-get install dcmtk`) for the oversized senders. The helpers below (RawPeer, native_cr, big_cr,
peak RSS) are used by tests/test_listener_limits.py too.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import queue
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_CLASS = "1.2.840.10008.5.1.4.1.1.1"
LISTENER_AET, SENDER_AET = "XRAYVIEWER", "BENCH"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident size since it started or since `reset_peak_rss`."""
    return _status_kb(pid, "VmHWM") / 1024


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from the current size


def native_cr(rows: int = 64, columns: int = 64, pixels: bytes | None = None) -> Dataset:
    """A native 16-bit CR with fresh UIDs; `pixels` replaces its pixel data (a truncated film, say)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CR_CLASS, generate_uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CR_CLASS, ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "CR", "LIMITS", "Test^Limits"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels if pixels is not None else np.zeros((rows, columns), np.uint16).tobytes()
    return ds


def big_cr(path: Path, megabytes: int) -> Path:
    """A valid native CR file of about `megabytes` MB, written in pieces (never held whole in memory)."""
    columns = 2048
    rows = megabytes * 2**20 // (2 * columns)
    native_cr(rows, columns, pixels=b"").save_as(path, enforce_file_format=True)  # PixelData last, empty
    header = path.read_bytes().rindex(b"\xe0\x7f\x10\x00OW")
    with open(path, "r+b") as file:
        file.seek(header + 8)
        file.write(struct.pack("<I", rows * columns * 2))
        file.seek(0, 2)
        chunk = bytes(1 << 20)
        for _ in range(rows * columns * 2 // len(chunk)):
            file.write(chunk)
    return path


class RawPeer:
    """A peer that associates by hand (pynetdicom's PDU classes) and then writes whatever bytes it likes."""

    def __init__(self, port: int, calling: str = SENDER_AET, called: str = LISTENER_AET) -> None:
        from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID
        from pynetdicom.pdu import A_ASSOCIATE_RQ
        from pynetdicom.pdu_primitives import (A_ASSOCIATE, ImplementationClassUIDNotification,
                                               MaximumLengthNotification)
        from pynetdicom.presentation import build_context

        primitive = A_ASSOCIATE()
        primitive.application_context_name = "1.2.840.10008.3.1.1.1"
        primitive.calling_ae_title, primitive.called_ae_title = calling, called
        context = build_context(CR_CLASS, ExplicitVRLittleEndian)
        context.context_id = 1
        primitive.presentation_context_definition_list = [context]
        length, implementation = MaximumLengthNotification(), ImplementationClassUIDNotification()
        length.maximum_length_received = 16384
        implementation.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
        primitive.user_information = [length, implementation]
        pdu = A_ASSOCIATE_RQ()
        pdu.from_primitive(primitive)
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.socket.sendall(pdu.encode())
        answer = self._read(6)
        if answer[:1] != b"\x02":
            raise ConnectionError(f"association not accepted: {answer!r}")  # not an A-ASSOCIATE-AC
        self._read(struct.unpack(">I", answer[2:6])[0])

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.socket.recv(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def send(self, data: bytes) -> bool:
        """Whether all of `data` went out before the listener closed the connection."""
        try:
            self.socket.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def seconds_until_closed(self, limit: float) -> float:
        """How long until the listener closes the connection (an A-ABORT it sends first is read and ignored);
        infinity when it is still open after `limit` seconds."""
        start = time.monotonic()
        self.socket.settimeout(limit)
        try:
            while self.socket.recv(65536):
                pass
        except TimeoutError:
            return float("inf")
        except OSError:
            pass
        return time.monotonic() - start

    def close(self) -> None:
        self.socket.close()


def huge_pdu(port: int) -> float:
    """Seconds a peer stays connected after announcing a ~4 GB P-DATA PDU and streaming 64 MB into it."""
    peer = RawPeer(port)
    start = time.monotonic()
    try:
        if peer.send(b"\x04\x00" + struct.pack(">I", 0xFFFFFFF0)):
            chunk = bytes(1 << 20)
            for _ in range(64):
                if not peer.send(chunk):
                    break
            else:
                return peer.seconds_until_closed(120) + time.monotonic() - start
        return time.monotonic() - start
    finally:
        peer.close()


def stalled_pdu(port: int) -> float:
    """Seconds a peer stays connected after sending 10 bytes of a 1000-byte P-DATA PDU and nothing more."""
    peer = RawPeer(port)
    try:
        peer.send(b"\x04\x00" + struct.pack(">I", 1000) + bytes(10))
        return peer.seconds_until_closed(300)
    finally:
        peer.close()


class ListenerProcess:
    """`xrayviewer listen` in a subprocess, each JSON line it prints taken with the time it came."""

    def __init__(self, folder: Path, port: int, options: list[str]) -> None:
        env = {**os.environ, "XDG_DATA_HOME": str(folder / "data")}
        args = [sys.executable, "-m", "xrayviewer", "listen", "--port", str(port), "--bind", "127.0.0.1", "--allow",
                SENDER_AET, "--db", str(folder / "review.sqlite"), *options]
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[tuple[float, dict]] = queue.Queue()
        listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._watch, args=(listening,), daemon=True).start()
        if not listening.wait(120):
            self.process.kill()
            raise RuntimeError("the listener did not start in 120 s")

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put((time.monotonic(), json.loads(line)))

    def _watch(self, listening: threading.Event) -> None:
        for line in self.process.stderr:
            if line.startswith("listening on"):
                listening.set()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)


def burst(port: int, film: Dataset, count: int) -> dict[str, float]:
    """Send `count` fresh copies of `film` on one association: SOP Instance UID -> when its C-STORE began."""
    from pynetdicom import AE

    copies = []
    for _ in range(count):
        ds = copy.deepcopy(film)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        copies.append(ds)
    ae = AE(ae_title=SENDER_AET)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    ae.add_requested_context(film.SOPClassUID, film.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=LISTENER_AET)
    if not assoc.is_established:
        raise RuntimeError("the honest sender's association was not accepted")
    sent = {}
    try:
        for ds in copies:
            sent[ds.SOPInstanceUID] = time.monotonic()
            status = assoc.send_c_store(ds)
            if int(status.get("Status", -1)) != 0:
                raise RuntimeError(f"the honest film was answered {status}")
    finally:
        assoc.release()
    return sent


def collect(listener: ListenerProcess, sent: dict[str, float], others: list[dict], limit: float) -> dict[str, float]:
    """Result line times of the films `sent`, until all came or `limit` seconds passed; other lines to `others`."""
    results: dict[str, float] = {}
    deadline = time.monotonic() + limit
    while len(results) < len(sent) and time.monotonic() < deadline:
        try:
            at, line = listener.lines.get(timeout=1)
        except queue.Empty:
            continue
        if line.get("sop_uid") in sent and line.get("status") == "analysed":
            results[line["sop_uid"]] = at
        else:
            others.append(line)
    return results


def figures(sent: dict[str, float], results: dict[str, float]) -> dict:
    latencies = sorted(results[uid] - sent[uid] for uid in results)
    return {"analysed": len(results),
            "films_per_s": round(len(results) / (max(results.values()) - min(sent.values())), 2) if results else None,
            "median_store_to_result_s": round(statistics.median(latencies), 3) if latencies else None,
            "p95_store_to_result_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3)
            if latencies else None}


class Attack:
    """Oversized storescu senders, a huge-PDU peer and a stalled peer, all started at once."""

    def __init__(self, storescu: str, port: int, big: Path, senders: int) -> None:
        self.senders = [subprocess.Popen([storescu, "-to", "60", "-aet", SENDER_AET, "-aec", LISTENER_AET,
                                          "127.0.0.1", str(port), str(big)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for _ in range(senders)]
        self.raw: dict[str, float] = {}
        self.threads = [threading.Thread(target=lambda k=k, f=f: self.raw.__setitem__(k, f(port)))
                        for k, f in (("huge_pdu_connected_s", huge_pdu), ("stalled_pdu_connected_s", stalled_pdu))]
        for thread in self.threads:
            thread.start()

    def end(self, listener: ListenerProcess, others: list[dict]) -> dict:
        """Wait for every attacker to be done; what the listener said about them."""
        failed = sum(1 for s in self.senders if s.wait(600) != 0)
        for thread in self.threads:
            thread.join(600)
        time.sleep(1)
        while not listener.lines.empty():
            others.append(listener.lines.get()[1])
        aborted = [line for line in others if line.get("status") == "aborted"]
        others.clear()
        return {"oversized_senders_failed": failed, "aborted_lines": len(aborted),
                "abort_reasons": sorted({line["reason"] for line in aborted}),
                **{k: round(v, 2) for k, v in self.raw.items()}}


def main() -> None:
    from xrayviewer.demo import data_store_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=40)
    parser.add_argument("--film", type=Path, help="the DICOM film sent (default: pydicom-data's RG1_J2KI chest CR)")
    parser.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "dml"])
    parser.add_argument("--oversized", type=int, default=10, help="oversized senders at once")
    parser.add_argument("--oversized-mb", type=int, default=64)
    parser.add_argument("--max-mb", type=float, default=16)
    parser.add_argument("--timeout", type=float, default=5, help="the listener's --timeout")
    args = parser.parse_args()
    storescu = shutil.which("storescu")
    if storescu is None:
        sys.exit("storescu not found: apt-get install dcmtk")
    film = pydicom.dcmread(args.film or data_store_folder() / "RG1_J2KI.dcm")

    with tempfile.TemporaryDirectory(prefix="xrayviewer-pacs-bench-") as tmp:
        folder = Path(tmp)
        big = big_cr(folder / "oversized.dcm", args.oversized_mb)
        port = free_port()
        listener = ListenerProcess(folder, port, ["--max-mb", str(args.max_mb), "--timeout", str(args.timeout),
                                                  "--provider", args.provider,
                                                  "--max-associations", str(args.oversized + 3)])
        pid = listener.process.pid
        idle = rss_mb(pid)
        out: dict = {"film": f"{film.Rows}x{film.Columns} {film.file_meta.TransferSyntaxUID.name}",
                     "films": args.films, "idle_rss_mb": round(idle, 1)}
        try:
            others: list[dict] = []
            reset_peak_rss(pid)
            sent = burst(port, film, args.films)
            quiet = figures(sent, collect(listener, sent, others, 900))
            quiet["peak_rss_mb"] = round(peak_rss_mb(pid), 1)
            out["quiet"] = quiet

            time.sleep(2)
            reset_peak_rss(pid)
            before = rss_mb(pid)
            attack = Attack(storescu, port, big, args.oversized)
            alone = attack.end(listener, others)
            out["attack_alone"] = {"rss_before_mb": round(before, 1), "peak_rss_mb": round(peak_rss_mb(pid), 1),
                                   "peak_above_before_mb": round(peak_rss_mb(pid) - before, 1), **alone}

            time.sleep(2)
            reset_peak_rss(pid)
            before = rss_mb(pid)
            attack = Attack(storescu, port, big, args.oversized)
            sent = burst(port, film, args.films)
            hostile = figures(sent, collect(listener, sent, others, 900))
            hostile.update(attack.end(listener, others))
            hostile.update({"rss_before_mb": round(before, 1), "peak_rss_mb": round(peak_rss_mb(pid), 1),
                            "peak_above_idle_mb": round(peak_rss_mb(pid) - idle, 1)})
            out["attack_with_burst"] = hostile
            out["attack"] = {"oversized_senders": args.oversized, "oversized_mb": args.oversized_mb,
                             "max_mb": args.max_mb, "timeout_s": args.timeout,
                             "spool_files_left": sorted(p.name for p in (folder / "data" / "xrayviewer" /
                                                                         "listener-spool").iterdir()
                                                        if p.name.startswith("."))}
        finally:
            listener.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
