"""A shared review store under N readers at once: claims and decisions per second on SQLite and on PostgreSQL.

    python benchmarks/shared_store.py [--readers 8] [--films 400] [--backend both|sqlite|postgresql]

What is timed (the real ReviewStore, real processes, a real server; no mocks):
  Each run's store is filled with --films films (synthetic rows: path, hash and one model result with a
  probability, no pixels) and --readers reader processes each open it (PostgreSQL: a pool of one connection each),
  say they are ready, and go together on one word from here. Every call is timed in its process (perf_counter).
  mode "split": each process claims with `claim_next(name, 60)` under a new reader name per film (one reader holds
  one film) until none is left; then, on a second word, decides each film it claimed.
    claims_per_s      films / seconds from the first go to the last process's last claim
    decisions_per_s   films / seconds from the second go to the last process's last decision
  mode "loop": each process is one reader reading on: claim_next, decide, claim_next... until none is left.
    films_per_s       films / seconds from the go to the last reader's end
  next_ms, decide_ms  median and p95 of one call, over every call of every process (the last, empty claim_next too)
  read_once           every film claimed and decided exactly once (checked after each run; else the run fails)
PostgreSQL is a throw-away cluster made by initdb in a temporary folder (tests/pg_cluster.py), on a loopback port of
47850-47899, with its default durability (fsync, synchronous_commit on); SQLite is a WAL file with synchronous=FULL
in a temporary folder. Prints one JSON object per backend and mode, with the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # pg_cluster: the tests' throw-away server

READER = """
import json, sys, time
from xrayviewer.core.review.store import ReviewStore
store = ReviewStore(sys.argv[1], pool_size=1)
reader, mode = sys.argv[2], sys.argv[3]
print("ready", flush=True)
sys.stdin.readline()
nexts, decides, films = [], [], []
def timed(calls, call):
    t0 = time.perf_counter()
    answer = call()
    calls.append(time.perf_counter() - t0)
    return answer
if mode == "loop":  # a reader's day: the next film, its decision, the next film...
    while (film := timed(nexts, lambda: store.claim_next(reader, 60))) is not None:
        timed(decides, lambda: store.decide(film.id, "normal", reader=reader))
        films.append(film.id)
else:  # claims alone (a new reader name for each, as one reader holds one film), then their decisions alone
    while (film := timed(nexts, lambda: store.claim_next(f"{reader}/{len(films)}", 60))) is not None:
        films.append(film.id)
    print(json.dumps({"end": time.time()}), flush=True)
    sys.stdin.readline()
    for k, film_id in enumerate(films):
        timed(decides, lambda: store.decide(film_id, "normal", reader=f"{reader}/{k}"))
store.close()
print(json.dumps({"next": nexts, "decide": decides, "films": films, "end": time.time()}), flush=True)
"""


def fill(where: str, films: int) -> None:
    from xrayviewer.core.review.store import FilmInfo, ModelResult, ReviewStore

    with ReviewStore(where) as store:
        for i in range(films):
            store.put_film(FilmInfo(f"/bench/{i:05d}.dcm", 1000, i, f"{i:064x}"),
                           [ModelResult("mobilenetv2", "h", probability=(i * 7919 % films) / films, threshold=0.5)])


def run(where: str, readers: int, films: int, mode: str) -> dict:
    """One run on a filled store; `mode` "loop" (next, decide, next...) or "split" (all claims, then all
    decisions)."""
    fill(where, films)
    processes = [subprocess.Popen([sys.executable, "-c", READER, where, f"reader {n}", mode], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, cwd=ROOT) for n in range(readers)]
    for p in processes:
        assert p.stdout.readline().strip() == "ready"
    go = tell(processes)
    figures = {}
    if mode == "split":
        claimed = max(json.loads(p.stdout.readline())["end"] for p in processes) - go
        figures["claims_per_s"] = round(films / claimed, 1)
        go = tell(processes)
    results = [json.loads(p.stdout.readline()) for p in processes]
    for p in processes:
        p.wait(60)
    seconds = max(r["end"] for r in results) - go
    check(where, films, [f for r in results for f in r["films"]])
    nexts = [t * 1000 for r in results for t in r["next"]]
    decides = [t * 1000 for r in results for t in r["decide"]]
    if mode == "split":
        figures["decisions_per_s"] = round(films / seconds, 1)
    else:
        figures["films_per_s"] = round(films / seconds, 1)
    return {**figures,
            "next_ms": {"median": round(statistics.median(nexts), 2), "p95": round(percentile(nexts, 95), 2)},
            "decide_ms": {"median": round(statistics.median(decides), 2),
                          "p95": round(percentile(decides, 95), 2)},
            "films_per_reader": sorted(len(r["films"]) for r in results)}


def tell(processes: list[subprocess.Popen]) -> float:
    """Let every reader go at once; when."""
    now = time.time()
    for p in processes:
        p.stdin.write("go\n")
        p.stdin.flush()
    return now


def check(where: str, films: int, read: list[int]) -> None:
    from xrayviewer.core.review.store import ReviewStore

    with ReviewStore(where) as store:
        counts = store.counts()
    if sorted(read) != sorted(set(read)) or len(read) != films or counts["decided"] != films:
        raise SystemExit(f"a film was read twice or not at all: {len(read)} reads, {len(set(read))} films, {counts}")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--films", type=int, default=400)
    parser.add_argument("--backend", choices=["both", "sqlite", "postgresql"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory() as folder:
        for backend in backends:
            cluster = None
            if backend == "postgresql":
                from pg_cluster import Cluster, free_port

                cluster = Cluster(free_port(47850, 47899)).start()
            try:
                for mode in ("split", "loop"):
                    where = str(Path(folder) / f"{mode}.sqlite") if cluster is None else cluster.create(mode)
                    figures = run(where, args.readers, args.films, mode)
                    print(json.dumps({"backend": backend, "mode": mode, "readers": args.readers, "films": args.films,
                                      **figures, "read_once": True,
                                      "load": [round(x, 2) for x in os.getloadavg()]}), flush=True)
            finally:
                if cluster is not None:
                    cluster.remove()


if __name__ == "__main__":
    main()
