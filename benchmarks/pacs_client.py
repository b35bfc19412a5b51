"""How fast and how bounded the PACS client is, against a PACS written here with pynetdicom (`HostilePacs`, on
127.0.0.2; tests/test_pacs_client_hostile.py makes it misbehave in every way it checks):

  retrieve  `pacs.get` of --films small chest CRs (the demo CR at a quarter of its size, ~450 KB, uncompressed) in
            a fresh process: films per second received, checked and kept;
  memory    the peak resident memory (VmHWM) of `xrayviewer pacs get` receiving one generated CR of --large-mb
            (over --max-mb: abandoned as it passes the limit) against the same command receiving a small film
            that it refuses (another patient's): what a large film adds;
  search    `xrayviewer pacs find` of --matches studies: when the first line and the last came (command start
            included).
Prints one JSON object.

    PYTHONPATH=. python benchmarks/pacs_client.py [--films 200] [--large-mb 600] [--max-mb 512] [--matches 20000]

The PACS, its films and answers are used by tests/test_pacs_client_hostile.py too.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

HOST = "127.0.0.2"  # the PACS's address: another loopback address than the client's
STUDY, PATIENT, SERIES = "1.2.826.0.1.3680043.8.498.28001", "P28", "1.2.826.0.1.3680043.8.498.28002"
# `xrayviewer ARGS...`, then its peak resident memory on stderr (VmHWM: Linux carries ru_maxrss over from the
# forking process across exec)
PEAK = ("import sys\nfrom xrayviewer.cli import main\ncode = main(sys.argv[1:])\n"
        "peak = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "print(f'peak RSS {peak} KB', file=sys.stderr)\nsys.exit(code)")


def chest(folder: Path) -> tuple[Dataset, np.ndarray]:
    """pydicom-data's chest CR (in `folder`): its header, and its pixels at a quarter of the size."""
    ds = pydicom.dcmread(folder / "RG1_J2KI.dcm")
    pixels = np.ascontiguousarray(ds.pixel_array[::4, ::4])
    del ds.PixelData, ds.LossyImageCompression, ds.LossyImageCompressionRatio
    return ds, pixels


def film(chest: tuple[Dataset, np.ndarray], study: str = STUDY, patient: str = PATIENT, series: str = SERIES,
         pixels: np.ndarray | None = None) -> Dataset:
    """A CR of `patient` in `study`/`series` with a new SOP Instance UID, uncompressed (the chest's pixels, or
    `pixels`)."""
    header, chest_pixels = chest
    pixels = chest_pixels if pixels is None else pixels
    ds = copy.deepcopy(header)
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = study, series, patient
    ds.PatientName = f"DOE^{patient}"
    ds.Rows, ds.Columns = pixels.shape
    ds.add_new(Tag("PixelData"), "OW", pixels.tobytes())
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    return ds


def study_answer(study: str = STUDY, patient: str = PATIENT, **values) -> Dataset:
    """A study-level C-FIND match."""
    answer = Dataset()
    answer.QueryRetrieveLevel, answer.StudyInstanceUID, answer.PatientID = "STUDY", study, patient
    answer.PatientName, answer.StudyDate, answer.ModalitiesInStudy = f"DOE^{patient}", "20260101", "CR"
    for keyword, value in values.items():
        setattr(answer, keyword, value)
    return answer


def series_answer(series: str = SERIES, count: int | None = None) -> Dataset:
    """A series-level C-FIND match of the study."""
    answer = Dataset()
    answer.QueryRetrieveLevel, answer.StudyInstanceUID, answer.SeriesInstanceUID = "SERIES", STUDY, series
    answer.Modality = "CR"
    if count is not None:
        answer.NumberOfSeriesRelatedInstances = count
    return answer


class HostilePacs:
    """A PACS on 127.0.0.2:`port` whose answers a test sets: `studies` and `series` answer C-FIND at each level;
    `get(event)` and `move(event)` are pynetdicom's C-GET and C-MOVE generators (default: the `films` of the series
    asked for); a C-MOVE connects from 127.0.0.2 to `destination`, calling `before_move()` first."""

    def __init__(self, port: int) -> None:
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import (ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation,
                                          StudyRootQueryRetrieveInformationModelFind,
                                          StudyRootQueryRetrieveInformationModelGet,
                                          StudyRootQueryRetrieveInformationModelMove, Verification)

        self.port = port
        self.studies, self.series = [study_answer()], [series_answer()]
        self.films: dict[str, list[Dataset]] = {}
        self.destination: tuple[str, int] | None = None
        self.before_move = lambda: None
        self.find, self.get, self.move = self._find, self._get, self._move
        ae = AE("HOSTILE")
        ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 30
        for context in (Verification, StudyRootQueryRetrieveInformationModelFind,
                        StudyRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelMove):
            ae.add_supported_context(context)
        for storage in (ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation):
            ae.add_supported_context(storage, ExplicitVRLittleEndian, scu_role=True, scp_role=True)
            ae.add_requested_context(storage, ExplicitVRLittleEndian)
        handlers = [(evt.EVT_C_ECHO, lambda event: 0x0000), (evt.EVT_C_FIND, lambda event: self.find(event)),
                    (evt.EVT_C_GET, lambda event: self.get(event)), (evt.EVT_C_MOVE, lambda event: self.move(event))]
        self.server = ae.start_server((HOST, self.port), block=False, evt_handlers=handlers)

    @property
    def address(self) -> str:
        return f"HOSTILE@{HOST}:{self.port}"

    def _find(self, event):
        asked = event.identifier
        answers = self.studies if asked.QueryRetrieveLevel == "STUDY" else self.series
        for answer in answers:
            if asked.get("StudyInstanceUID") in (None, "", answer.get("StudyInstanceUID")):
                yield 0xFF00, answer

    def _get(self, event):
        films = self.films.get(event.identifier.SeriesInstanceUID, [])
        yield len(films)
        for ds in films:
            yield 0xFF00, ds

    def _move(self, event):
        yield (*self.destination, {"bind_address": (HOST, 0)})
        films = self.films.get(event.identifier.SeriesInstanceUID, [])
        yield len(films)
        self.before_move()
        for ds in films:
            yield 0xFF00, ds

    def close(self) -> None:
        self.server.shutdown()


def peak_of_get(env: dict[str, str], address: str, *options: str) -> tuple[subprocess.CompletedProcess, float]:
    """`xrayviewer pacs get ADDRESS STUDY OPTIONS...`, and its peak resident memory in MB."""
    result = subprocess.run([sys.executable, "-c", PEAK, "pacs", "get", address, STUDY, *options], env=env,
                            capture_output=True, text=True, timeout=1800)
    return result, int(result.stderr.rsplit("peak RSS ", 1)[1].split()[0]) / 1024


RETRIEVE = """
import json, sys, tempfile, time
from pathlib import Path
from xrayviewer.core.review import pacs
from xrayviewer.core.review.pacs_nodes import parse_address
start = time.monotonic()
got = pacs.get(parse_address(sys.argv[1]), [sys.argv[2]], Path(tempfile.mkdtemp(prefix='xrayviewer-bench-')))
print(json.dumps({'films': len(got.paths), 'seconds': time.monotonic() - start, 'summary': got.summary()}))
"""


def measure_retrieve(pacs: HostilePacs, chest, films: int) -> dict:
    pacs.films = {SERIES: [film(chest) for _ in range(films)]}
    out = json.loads(subprocess.run([sys.executable, "-c", RETRIEVE, pacs.address, STUDY], capture_output=True,
                                    text=True, check=True, timeout=1800).stdout)
    return {"films": out["films"], "seconds": round(out["seconds"], 2),
            "films_per_s": round(out["films"] / out["seconds"], 1)}


def measure_memory(pacs: HostilePacs, chest, env: dict[str, str], large_mb: float, max_mb: float) -> dict:
    pacs.films = {SERIES: [film(chest, patient="OTHER")]}
    _, small_mb = peak_of_get(env, pacs.address, "--max-mb", str(max_mb))
    columns = 10_000
    rows = int(large_mb * 2**20 / 2 / columns)
    pacs.films = {SERIES: [film(chest, pixels=np.zeros((rows, columns), np.uint16))]}
    start = time.monotonic()
    result, large_peak_mb = peak_of_get(env, pacs.address, "--max-mb", str(max_mb))
    summary = next((line for line in result.stderr.splitlines() if "retrieved" in line), result.stderr[-300:])
    return {"large_film_mb": round(rows * columns * 2 / 2**20, 1), "max_mb": max_mb,
            "peak_rss_mb_small_film": round(small_mb, 1), "peak_rss_mb_large_film": round(large_peak_mb, 1),
            "seconds_large_film": round(time.monotonic() - start, 1), "summary": summary}


def measure_search(pacs: HostilePacs, env: dict[str, str], matches: int) -> dict:
    pacs.studies = [study_answer(f"1.2.826.0.1.3680043.8.498.9{n}") for n in range(matches)]
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "xrayviewer", "pacs", "find", pacs.address], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first, count = None, 0
    for _ in process.stdout:
        count += 1
        first = first if first is not None else time.monotonic() - start
    process.wait()
    return {"matches": count, "first_line_s": round(first or 0, 2), "last_line_s": round(time.monotonic() - start, 2)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--films", type=int, default=200)
    parser.add_argument("--large-mb", type=float, default=600)
    parser.add_argument("--max-mb", type=float, default=512)
    parser.add_argument("--matches", type=int, default=20000)
    args = parser.parse_args()
    from xrayviewer.demo import data_store_folder

    template = chest(data_store_folder())
    pacs = HostilePacs(free_port())
    try:
        with tempfile.TemporaryDirectory(prefix="xrayviewer-bench-") as home:
            env = {**os.environ, "XDG_DATA_HOME": home}
            print(json.dumps({"retrieve": measure_retrieve(pacs, template, args.films),
                              "memory": measure_memory(pacs, template, env, args.large_mb, args.max_mb),
                              "search": measure_search(pacs, env, args.matches),
                              "load_average": os.getloadavg()[0]}, indent=1))
    finally:
        pacs.close()


if __name__ == "__main__":
    main()
