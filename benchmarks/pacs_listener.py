"""How fast the listener takes films in and analyses them: a burst of C-STOREs on one association into a real
`Listener` (core/review/listener.py) on 127.0.0.1, with a fresh review store and cache.

Prints one JSON object: films, how long the sender's association took (the queue answers at once, so this is
the network and the writes, not the analysis), films per second received and analysed (first C-STORE to the last
result in the store), and the medians of the time from a film's C-STORE to its result in the store, end to end
and from its arrival as the listener measures it.

    PYTHONPATH=. python benchmarks/pacs_listener.py [--films 40] [--film PATH] [--provider cpu]
"""

from __future__ import annotations

import argparse
import copy
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    from pynetdicom import AE

    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.core.review.listener import Caller, Listener, ListenerSettings
    from xrayviewer.core.review.store import ReviewStore
    from xrayviewer.demo import data_store_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=40)
    parser.add_argument("--film", type=Path, help="the DICOM film sent (default: pydicom-data's RG1_J2KI chest CR)")
    parser.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "dml"])
    args = parser.parse_args()
    film = pydicom.dcmread(args.film or data_store_folder() / "RG1_J2KI.dcm")
    copies = []
    for _ in range(args.films):  # each a new instance, so each is a new file and a new analysis
        ds = copy.deepcopy(film)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        copies.append(ds)

    sent: dict[str, float] = {}
    results: dict[str, tuple[float, float]] = {}  # SOP UID -> (result time, the listener's seconds_to_result)
    done = threading.Event()

    def report(line: dict) -> None:
        if line.get("status") == "analysed":
            results[line["sop_uid"]] = (time.monotonic(), line["seconds_to_result"])
            if len(results) == args.films:
                done.set()

    with tempfile.TemporaryDirectory(prefix="xrayviewer-pacs-bench-") as folder:
        port = free_port()
        settings = ListenerSettings(Path(folder) / "cache", [Caller("BENCH")], port, host="127.0.0.1",
                                    free_floor_bytes=0)
        with ReviewStore(Path(folder) / "review.sqlite") as store:
            listener = Listener(settings, store, Engine(args.provider), ["mobilenetv2"], report)
            listener.start()
            ae = AE(ae_title="BENCH")
            ae.add_requested_context(film.SOPClassUID, film.file_meta.TransferSyntaxUID)
            assoc = ae.associate("127.0.0.1", port, ae_title="XRAYVIEWER")
            start = time.monotonic()
            for ds in copies:
                sent[ds.SOPInstanceUID] = time.monotonic()
                assert int(assoc.send_c_store(ds).Status) == 0
            association_s = time.monotonic() - start
            assoc.release()
            finished = done.wait(600)
            listener.stop()
    latencies = [results[uid][0] - sent[uid] for uid in results]
    print(json.dumps({
        "films": args.films, "analysed": len(results), "complete": finished,
        "film": f"{film.Rows}x{film.Columns} {film.file_meta.TransferSyntaxUID.name}",
        "association_s": round(association_s, 3),
        "films_per_s": round(len(results) / (max(t for t, _ in results.values()) - start), 2) if results else None,
        "median_store_to_result_s": round(statistics.median(latencies), 3) if latencies else None,
        "median_arrival_to_result_s": round(statistics.median(s for _, s in results.values()), 3)
        if results else None,
        "first_store_to_result_s": round(min(latencies), 3) if latencies else None}))


if __name__ == "__main__":
    main()
