"""A shared review store under N readers at once: claims and decisions per second on SQLite and on PostgreSQL; the
next film's claim in a large store; films per second of analysis processes writing to one PostgreSQL store.

    python benchmarks/shared_store.py [--readers 8] [--films 400] [--backend both|sqlite|postgresql]
    python benchmarks/shared_store.py --bench large [--store-films 20000] [--backend ...]
    python benchmarks/shared_store.py --bench analysis [--analysers 1 2 4] [--analysis-films 160]

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
--bench large: claim_next alone (one process, one reader name per claim) in a store of --store-films films, each
with one model result, written in bulk as the previous release (schema 3) wrote them and opened by this one (its
upgrade: `upgrade_s`; PostgreSQL then runs ANALYZE, as its autovacuum would); twice: every film unread, and all but
200 decided (spread over the suspicion order: a department's store after months of reading).
    claim_ms          median and p95 of 100 claim_next calls, each handing out a new film
--bench analysis (PostgreSQL): K `xrayviewer worklist PART --db URL --provider cpu` processes at once, each on its
own K-th of --analysis-films real chest films (the first by name of $XRAYVIEWER_CHEST_FILMS, else
../shared/data/kermany224/train, alternating NORMAL/PNEUMONIA), into one new database; for each K of --analysers.
    films_per_s       films / seconds from the processes' start to the last one's exit (imports, model load included)
    steady_films_per_s  films after each process's first / seconds from the first film's line to the last
    stored_once       every film in the store once, with its result (checked; else the run fails)
PostgreSQL is a throw-away cluster made by initdb in a temporary folder (tests/pg_cluster.py), on a loopback port of
47250-47299, with its default durability (fsync, synchronous_commit on); SQLite is a WAL file with synchronous=FULL
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
PORTS = (47250, 47299)  # the benchmark's loopback ports (the tests use 47200-47249)
UNREAD = 200  # films left unread in the large store's second case

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


def large(where: str, films: int, unread: int, claims: int = 100) -> dict:
    """claim_next alone in a store of `films` films, `unread` of them undecided, written in bulk at schema 3 (the
    previous release) and opened by this release: its upgrade's seconds and the claims' median and p95."""
    from xrayviewer.core.review.store import ReviewStore

    stamp = "2026-12-01T08:00:00+00:00"
    step = films // unread
    with ReviewStore(where) as store, store.backend.transaction() as tx:
        tx.executemany("INSERT INTO films (path, size, mtime_ns, sha256, added_at) VALUES (?, ?, ?, ?, ?)",
                       [(f"/large/{i:06d}.dcm", 1000, i, f"{i:064x}", stamp) for i in range(films)])
        tx.executemany("INSERT INTO results (film_id, model, model_sha256, threshold, probability, label, "
                       "analysed_at) VALUES (?, 'mobilenetv2', 'h', 0.5, ?, 'x', ?)",
                       [(i + 1, (i * 7919 % films) / films, stamp) for i in range(films)])
        tx.executemany("INSERT INTO decisions (film_id, decision, reader, decided_at) VALUES (?, 'normal', 'Dr Past', ?)",
                       [(i + 1, stamp) for i in range(films) if i % step])
        tx.execute("UPDATE state SET value = '3' WHERE key = 'schema_version'")  # rows as the previous release wrote
    t0 = time.perf_counter()
    ReviewStore(where).close()  # this release opens it: its migration, if any
    upgrade_s = time.perf_counter() - t0
    with ReviewStore(where) as store:
        if store.shared:  # the statistics autovacuum keeps on a server in use
            with store.backend.transaction() as tx:
                tx.execute("ANALYZE")
        times, taken = [], set()
        for k in range(claims):
            t0 = time.perf_counter()
            film = store.claim_next(f"reader {k}", 600)
            times.append((time.perf_counter() - t0) * 1000)
            taken.add(film.id)
            assert film.decision is None
        counts = store.counts()
    if len(taken) != claims or counts["claimed"] != claims:
        raise SystemExit(f"a film was claimed twice: {len(taken)} films for {claims} claims, {counts}")
    return {"upgrade_s": round(upgrade_s, 2), "claim_ms": {"median": round(statistics.median(times), 2),
                                                          "p95": round(percentile(times, 95), 2)}}


def analysis(url: str, folder: Path, processes: int, provider: str) -> dict:
    """`processes` worklist runs at once, one on each part of `folder`, into the new database at `url`."""
    import threading

    from xrayviewer.core.review.store import ReviewStore

    parts = sorted(p for p in folder.iterdir() if p.is_dir())
    lines: list[list[float]] = [[] for _ in parts]
    start = time.perf_counter()
    runs = [subprocess.Popen([sys.executable, "-m", "xrayviewer", "worklist", str(part), "--db", url, "--provider",
                              provider], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            for part in parts]

    def follow(k: int) -> None:
        for line in runs[k].stdout:
            if json.loads(line)["status"] == "analysed":
                lines[k].append(time.perf_counter())

    readers = [threading.Thread(target=follow, args=(k,)) for k in range(len(runs))]
    for thread in readers:
        thread.start()
    errors = [run.stderr.read() for run in runs]
    for run, thread in zip(runs, readers):
        run.wait(600)
        thread.join()
    seconds = time.perf_counter() - start
    if any(run.returncode for run in runs):
        raise SystemExit(f"a worklist failed: {[e[-300:] for e in errors]}")
    films = sum(len(list(part.iterdir())) for part in parts)
    with ReviewStore(url) as store:
        stored = store.films()
    if len(stored) != films or len({f.info.path for f in stored}) != films or not all(f.results for f in stored):
        raise SystemExit(f"{len(stored)} films stored for {films}")
    first, last = min(t[0] for t in lines), max(t[-1] for t in lines)
    return {"analysers": processes, "films": films, "films_per_s": round(films / seconds, 2),
            "steady_films_per_s": round((films - len(runs)) / (last - first), 2) if last > first else None,
            "stored_once": True}


def split_films(source: Path, folder: Path, films: int, parts: int) -> None:
    """`films` real chest films (the first by name, alternating NORMAL/PNEUMONIA) in `parts` subfolders."""
    from review import copy_films  # benchmarks/review.py: the same films its worklist figures use

    folder.mkdir(parents=True)
    copy_films(source, folder / "all", films)
    for k, film in enumerate(sorted((folder / "all").iterdir())):
        part = folder / f"part{k % parts}"
        part.mkdir(exist_ok=True)
        film.rename(part / film.name)
    (folder / "all").rmdir()


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", choices=["readers", "large", "analysis"], default="readers")
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--films", type=int, default=400)
    parser.add_argument("--backend", choices=["both", "sqlite", "postgresql"], default="both")
    parser.add_argument("--store-films", type=int, default=20000)
    parser.add_argument("--analysers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--analysis-films", type=int, default=160)
    parser.add_argument("--provider", default="cpu")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if args.bench == "analysis":
        backends = ["postgresql"]
    with tempfile.TemporaryDirectory() as folder:
        for backend in backends:
            cluster = None
            if backend == "postgresql":
                from pg_cluster import Cluster, free_port

                cluster = Cluster(free_port(*PORTS)).start()
            try:
                for case in cases(args):
                    where = str(Path(folder) / f"{case}.sqlite") if cluster is None else cluster.create(case)
                    figures = measure(args, case, where, Path(folder) / case)
                    print(json.dumps({"backend": backend, **figures, "load": load()}), flush=True)
            finally:
                if cluster is not None:
                    cluster.remove()


def cases(args: argparse.Namespace) -> list[str]:
    """The runs of one backend, each on a new store of its own name."""
    if args.bench == "large":
        return ["unread", "decided"]
    if args.bench == "analysis":
        return [f"analysers{k}" for k in args.analysers]
    return ["split", "loop"]


def measure(args: argparse.Namespace, case: str, where: str, scratch: Path) -> dict:
    if args.bench == "large":
        unread = args.store_films if case == "unread" else UNREAD
        return {"bench": "large", "films": args.store_films, "unread": unread, **large(where, args.store_films, unread)}
    if args.bench == "analysis":
        from review import chest_films

        processes = int(case.removeprefix("analysers"))
        split_films(chest_films(), scratch, args.analysis_films, processes)
        return {"bench": "analysis", "provider": args.provider, **analysis(where, scratch, processes, args.provider)}
    return {"mode": case, "readers": args.readers, "films": args.films,
            **run(where, args.readers, args.films, case), "read_once": True}


if __name__ == "__main__":
    main()
