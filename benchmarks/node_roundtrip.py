"""How long a film takes from its C-STORE into the AI node to its results being in the PACS: a burst of C-STOREs on
one association into a real `Listener` on 127.0.0.1 whose `Outbox` (core/review/outbox.py) sends each film's
objects (SR, Parametric Map, SC) to a real Orthanc started here on free loopback ports (or to --node).

"In the PACS" is the moment the PACS answered success to the last of the film's objects. Prints one JSON object:
films, objects sent by kind (SR, PM, SC; a film whose heatmap shows no evidence has no PM) and the instances the
PACS holds (counted there, by its REST API, when Orthanc is started here), films per second from the first
C-STORE to the last film's results in the PACS, the median time from a film's C-STORE to its result in the store,
and the median and p95 to its results in the PACS.

    PYTHONPATH=. python benchmarks/node_roundtrip.py [--films 20] [--film PATH] [--provider cpu] [--interval S]
                                            [--node AET@HOST:PORT]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_orthanc(folder: Path) -> tuple[subprocess.Popen, int, int]:
    """A throw-away Orthanc on free loopback ports: (process, HTTP port, DICOM port)."""
    orthanc = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin")
    if orthanc is None:
        raise SystemExit("Orthanc is not installed (apt-get install orthanc); or give --node AET@HOST:PORT")
    http, dicom = free_port(), free_port()
    config = {"Name": "xrayviewer-bench", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "HttpPort": http, "DicomPort": dicom, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "Plugins": [], "DicomCheckModalityHost": False,
              "DicomAlwaysAllowStore": True}
    (folder / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen([orthanc, str(folder / "orthanc.json")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http}/system", timeout=5).read()
            return process, http, dicom
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("Orthanc did not start") from None
            time.sleep(0.2)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def main() -> None:
    from pynetdicom import AE

    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.core.review.listener import Caller, Listener, ListenerSettings
    from xrayviewer.core.review.outbox import Outbox, export_objects
    from xrayviewer.core.review.pacs_nodes import parse_address
    from xrayviewer.core.review.store import ReviewStore
    from xrayviewer.demo import data_store_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=20)
    parser.add_argument("--film", type=Path, help="the DICOM film sent (default: pydicom-data's RG1_UNCI chest CR); "
                        "each copy has a patch of its own, so that no heatmap is a cache hit")
    parser.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "dml"])
    parser.add_argument("--interval", type=float, default=0.0, metavar="S",
                        help="seconds between films (default 0: a burst; spaced films show the time without a queue)")
    parser.add_argument("--node", help="send to this PACS (AET@HOST:PORT) instead of an Orthanc started here")
    args = parser.parse_args()
    film = pydicom.dcmread(args.film or data_store_folder() / "RG1_UNCI.dcm")
    if film.file_meta.TransferSyntaxUID.is_compressed:
        film.decompress()
    pixels = film.pixel_array
    copies = []
    for i in range(args.films):  # each a new instance with its own pixels: a new analysis and heatmap (no cache hit)
        ds = copy.deepcopy(film)
        varied = pixels.copy()
        h, w = varied.shape[:2]
        varied[h // 3:h // 3 + h // 8, w // 4:w // 4 + w // 8] = (i * 997) % int(pixels.max() + 1)
        ds.PixelData = varied.tobytes()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        copies.append(ds)

    sent_at: dict[str, float] = {}
    in_store: dict[int, float] = {}
    in_pacs: dict[int, float] = {}
    sop_of: dict[int, str] = {}
    kinds: dict[str, int] = {}
    problems: list[dict] = []
    done = threading.Event()

    with tempfile.TemporaryDirectory(prefix="xrayviewer-node-bench-") as folder:
        folder = Path(folder)
        orthanc = None
        if args.node:
            node = parse_address(args.node)
        else:
            (folder / "orthanc").mkdir()
            orthanc, http, dicom = start_orthanc(folder / "orthanc")
            node = parse_address(f"ORTHANC@127.0.0.1:{dicom}")
        port = free_port()
        settings = ListenerSettings(folder / "cache", [Caller("BENCH")], port, host="127.0.0.1", free_floor_bytes=0)
        try:
            with ReviewStore(folder / "review.sqlite") as store:
                def on_outbox(line: dict) -> None:
                    if line["status"] == "sent":
                        in_pacs[line["film_id"]] = time.monotonic()
                        for kind in line["objects"].values():
                            kinds[kind] = kinds.get(kind, 0) + 1
                        if len(in_pacs) == args.films:
                            done.set()
                    elif line["status"] in ("outbox_error", "send_failed", "send_deferred"):
                        problems.append(line)

                outbox = Outbox(store, node, export_objects(Engine(args.provider)), on_outbox, "BENCH")
                outbox.start()

                def on_listener(line: dict) -> None:
                    if line.get("status") == "analysed":
                        in_store[line["film_id"]], sop_of[line["film_id"]] = time.monotonic(), line["sop_uid"]
                    outbox.take(line)

                listener = Listener(settings, store, Engine(args.provider), ["mobilenetv2"], on_listener)
                listener.start()
                ae = AE(ae_title="BENCH")
                ae.add_requested_context(film.SOPClassUID, film.file_meta.TransferSyntaxUID)
                assoc = ae.associate("127.0.0.1", port, ae_title="XRAYVIEWER")
                start = time.monotonic()
                for i, ds in enumerate(copies):
                    if i and args.interval:
                        time.sleep(args.interval)
                    sent_at[ds.SOPInstanceUID] = time.monotonic()
                    assert int(assoc.send_c_store(ds).Status) == 0
                assoc.release()
                finished = done.wait(3600)
                listener.stop()
                outbox.stop()
            stored_in_pacs = None
            if orthanc is not None:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/statistics", timeout=30) as answer:
                    stored_in_pacs = json.loads(answer.read())["CountInstances"]
        finally:
            if orthanc is not None:
                os.kill(orthanc.pid, signal.SIGTERM)
                orthanc.wait(timeout=60)
    to_store = [in_store[f] - sent_at[sop_of[f]] for f in in_store]
    to_pacs = [in_pacs[f] - sent_at[sop_of[f]] for f in in_pacs if f in sop_of]
    print(json.dumps({
        "films": args.films, "interval_s": args.interval, "in_pacs": len(in_pacs), "complete": finished,
        "node": node.address,
        "film": f"{film.Rows}x{film.Columns} {film.file_meta.TransferSyntaxUID.name}",
        "objects_sent": kinds, "instances_in_orthanc": stored_in_pacs,
        "films_per_s_to_pacs": round(len(in_pacs) / (max(in_pacs.values()) - start), 3) if in_pacs else None,
        "median_store_to_result_s": round(statistics.median(to_store), 3) if to_store else None,
        "median_store_to_pacs_s": round(statistics.median(to_pacs), 3) if to_pacs else None,
        "p95_store_to_pacs_s": round(p95(to_pacs), 3) if to_pacs else None,
        "problems": problems[:3]}))


if __name__ == "__main__":
    main()
