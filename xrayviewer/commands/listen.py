"""`xrayviewer listen [--port 11112] [--aet XRAYVIEWER] [--allow AET[@HOST]]... [--db FILE]`: receive films.

A C-STORE SCP for the allowed callers only (default: the configured PACS nodes); each film is kept in the
listener's spool folder in the user's data folder, analysed into the review store as it arrives, and reported as
one JSON line; so is each refusal. Runs until Ctrl-C or SIGTERM, then analyses what is still queued.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import threading
from pathlib import Path

from xrayviewer.commands import command_parser
from xrayviewer.commands.worklist import add_db_option


def add_parser(sub: argparse._SubParsersAction) -> None:
    from xrayviewer.core.review.pacs import LIMIT_BYTES

    p = command_parser(
        sub, "listen", "receive films from a PACS (C-STORE SCP) and analyse each; one JSON line each",
        "Listen for films pushed by a PACS or a modality. Only the allowed callers are served (checked when they "
        "associate: called AE title, calling AE title, host when given; default: the configured PACS nodes), at "
        "most --max-associations at once. A dataset over --max-mb aborts its association as it passes the limit "
        "(nothing is held in memory: it streams to disk), and a peer silent for --timeout seconds is dropped. "
        "Films that are not images, have invalid UIDs or pixel data that cannot be decoded, or would fill the disk "
        "are refused with a DICOM status. Each film is stored under a name made here in the listener's spool "
        "folder in the user's data folder and analysed into the review store; every refusal is one JSON line with "
        "its reason.",
        "  xrayviewer listen --allow ORTHANC@10.0.0.5\n  xrayviewer listen --port 104 --aet CXRAI --allow PACS")
    p.add_argument("--port", type=int, default=11112)
    p.add_argument("--aet", default="XRAYVIEWER", help="the AE title this listener answers to")
    p.add_argument("--bind", default="", metavar="ADDRESS", help="the interface to listen on (default: all)")
    p.add_argument("--allow", action="append", metavar="AET[@HOST]",
                   help="a caller to serve; repeat for several (default: the configured PACS nodes)")
    add_db_option(p)
    p.add_argument("--model", action="append", metavar="NAME",
                   help="shipped model name or .onnx path; repeat for several (default: mobilenetv2)")
    p.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda", "dml"])
    p.add_argument("--max-mb", type=float, default=LIMIT_BYTES / 2**20,
                   help="the largest dataset accepted: a larger one aborts its association "
                   f"(default {LIMIT_BYTES / 2**20:g} MB)")
    p.add_argument("--free-gb", type=float, default=1, help="disk space the spool folder leaves free (default 1 GB)")
    p.add_argument("--max-associations", type=int, default=10, metavar="N",
                   help="associations served at once; the next caller is rejected, 'local limit exceeded' (default 10)")
    p.add_argument("--timeout", type=float, default=60, metavar="SECONDS",
                   help="silence after which a peer is dropped, within a message or between them (default 60)")
    p.add_argument("--tls-cert", type=Path, help="DICOM over TLS: this listener's certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    p.add_argument("--tls-ca", type=Path, help="accept only callers with a certificate signed by this CA (PEM)")
    p.add_argument("--send", metavar="NODE", help="store each film's results (SR, heatmap as a Parametric Map, SC) "
                   "on this PACS node, in the film's study, through a durable outbox (name or AET@HOST:PORT)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.core.errors import XRayViewerError
    from xrayviewer.core.review.listener import Caller, Listener, ListenerSettings, spool_folder
    from xrayviewer.core.review.pacs_nodes import load_nodes
    from xrayviewer.core.review.store import ReviewStore

    allowed = [Caller.parse(a) for a in args.allow] if args.allow else [
        Caller(n.aet, n.host) for n in load_nodes().values()]
    node = None
    if args.send:
        from xrayviewer.core.review.pacs_nodes import resolve_node

        node = resolve_node(args.send)  # a wrong node is said before listening
    if args.max_associations < 1 or args.timeout <= 0 or args.max_mb <= 0:
        raise XRayViewerError(None, "invalid limit", "--max-associations must be 1 or more, --timeout and --max-mb "
                              "more than 0")
    settings = ListenerSettings(spool_folder(), allowed, args.port, args.aet, args.bind, int(args.max_mb * 2**20),
                                int(args.free_gb * 2**30), tls_context(args), args.max_associations, args.timeout)
    # Decoding a film in the analysis thread points descriptor 2 at the null device for a moment (core.reading.quiet,
    # process-wide), so the listener's own messages go to a copy of it taken now: none is lost to that race.
    log = os.fdopen(os.dup(2), "w", buffering=1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ReviewStore(args.db) as store:
        printing = threading.Lock()  # the listener's and the outbox's threads print whole lines

        def say(line: dict) -> None:
            with printing:
                print(json.dumps(line), flush=True)

        outbox = None
        if node is not None:
            from xrayviewer.core.review.outbox import Outbox, export_objects

            outbox = Outbox(store, node, export_objects(Engine(args.provider)), say, args.aet)
            outbox.start(settings.folder)
            print(f"results to {node} through the outbox in {outbox.folder}", file=log, flush=True)
        listener = Listener(settings, store, Engine(args.provider), args.model or ["mobilenetv2"],
                            say if outbox is None else lambda line: (say(line), outbox.take(line)))
        listener.start()
        print(f"listening on port {listener.port} as {args.aet} for "
              f"{', '.join(c.aet + (f'@{c.host}' if c.host else '') for c in allowed)}; films into "
              f"{settings.folder}, results into {store.name}", file=log, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            listener.stop()
            if outbox is not None:
                outbox.stop()
    print("stopped", file=log, flush=True)
    return 0


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """A server TLS context from --tls-cert/--tls-key (and --tls-ca to require client certificates)."""
    if not (args.tls_cert or args.tls_key or args.tls_ca):
        return None
    from xrayviewer.core.errors import XRayViewerError

    if not (args.tls_cert and args.tls_key):
        raise XRayViewerError(None, "TLS needs a certificate and its key", "give both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=args.tls_ca)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise XRayViewerError(args.tls_cert, "cannot use the TLS certificate", str(exc)) from None
    if args.tls_ca:
        context.verify_mode = ssl.CERT_REQUIRED
    return context
