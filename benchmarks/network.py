"""Does the app touch the network? Runs it under `strace -f -e trace=network` in a network namespace and counts.

Three runs, each as root in its own network namespace (`unshare -n`, so nothing can leave the machine even if the
app tried) with a fresh temporary HOME:
  control  plain `import onnxruntime` + inference for --control-seconds without ORT_DISABLE_TELEMETRY: what the
           counting sees when telemetry is on (DNS lookups of Microsoft's events host, a device-id file);
  analyze  `python -m xrayviewer analyze` over --films films of --folder (the app as a user runs it);
  viewer   the real viewer (offscreen Qt) opening film after film for --viewer-seconds.
Prints one JSON object: per run, inet/inet6/unix sockets, connect and sendto/sendmsg/sendmmsg calls (all, and those
naming an inet address), the files ONNX Runtime's telemetry leaves under HOME, the exit code and seconds. The exit
code is 1 when the analyze or viewer run opened an inet socket or connected to an inet address.

    python benchmarks/network.py --folder /work/shared/data/kermany224/train --films 2000 --viewer-seconds 180

Needs strace (`apt-get install -y strace`) and root (or unprivileged user namespaces) for `unshare -n`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTROL = """
import sys, time
import numpy as np, onnxruntime as ort
sys.path.insert(0, {tests!r})
from tiny_models import build
session = ort.InferenceSession(str(build(__import__("pathlib").Path({model!r}))), providers=["CPUExecutionProvider"])
end = time.time() + {seconds}
while time.time() < end:
    session.run(None, {{"image": np.zeros((1, 8, 8, 3), np.float32)}})
    time.sleep(0.05)
"""


def count(log: Path) -> dict[str, int]:
    """Network syscalls in an strace log (a call split by `<unfinished ...>` is counted once, at its start)."""
    calls = [line for line in log.read_text(errors="replace").splitlines() if "resumed>" not in line]

    def n(pattern: str) -> int:
        return sum(1 for line in calls if re.search(pattern, line))

    inet = r"sa_family=AF_INET6?\b"
    return {
        "inet_sockets": n(r"\bsocket\(AF_INET,"), "inet6_sockets": n(r"\bsocket\(AF_INET6,"),
        "unix_sockets": n(r"\bsocket\(AF_UNIX,"),
        "connect_calls": n(r"\bconnect\("), "connect_inet": n(r"\bconnect\(.*" + inet),
        "sendto_calls": n(r"\bsendto\("), "sendmsg_calls": n(r"\bsendm?msg\("),
        "sendto_inet": n(r"\bsend(to|m?msg)\(.*" + inet),
    }


# Variables that make ONNX Runtime take the machine for a build server and skip its telemetry (seen in 1.32).
BUILD_SERVER_VARIABLES = ("CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TRAVIS", "CIRCLECI",
                          "APPVEYOR", "BUILDKITE", "CODEBUILD_BUILD_ID", "TEAMCITY_VERSION")


def workstation_environment(home: Path) -> dict[str, str]:
    """This environment as on a user's workstation with a fresh HOME: nothing that turns the telemetry off."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME", *BUILD_SERVER_VARIABLES)}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    return env


def traced(name: str, command: list[str], work: Path) -> dict:
    """Run `command` under strace in a new network namespace with a fresh HOME; the counts and what it left."""
    home = work / f"home-{name}"
    home.mkdir()
    env = workstation_environment(home)
    env.update(XDG_CONFIG_HOME=str(home / ".config"), QT_QPA_PLATFORM="offscreen")
    log = work / f"{name}.strace"
    start = time.perf_counter()
    result = subprocess.run(["unshare", "-n", "strace", "-f", "-qq", "-e", "trace=network", "-o", str(log),
                             *command], env=env, cwd=work, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    telemetry = sorted(str(p.relative_to(home)) for p in home.rglob("*") if "Microsoft" in p.parts)
    figures = {"exit_code": result.returncode, "seconds": round(seconds, 1), **count(log),
               "telemetry_files": telemetry}
    if name == "analyze":
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        figures.update(films=len(rows), analysed=sum(r["probability"] is not None for r in rows),
                       errors=sum(r["error"] is not None for r in rows))
    elif name == "viewer":
        figures.update(json.loads(result.stdout.splitlines()[-1]) if result.stdout.strip() else {})
    if result.returncode != 0 and (name != "analyze" or result.returncode != 1):
        figures["stderr_tail"] = result.stderr[-1500:]
    return figures


def viewer_session(folder: Path, seconds: float) -> None:
    """The child of the viewer run: the real main window opens films one after another until `seconds` pass."""
    from PySide6.QtCore import QEventLoop, QTimer

    from xrayviewer.gui.app import application
    from xrayviewer.gui.main_window import MainWindow

    app = application()
    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    films = sorted(p for p in folder.rglob("*") if p.is_file())
    shown, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        loop = QEventLoop()
        window.analysisShown.connect(loop.quit)
        QTimer.singleShot(60_000, loop.quit)
        window.open_image(films[shown % len(films)])
        loop.exec()
        window.analysisShown.disconnect(loop.quit)
        shown += 1
    window.close()
    app.processEvents()
    print(json.dumps({"films_shown": shown}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, default=Path("/work/shared/data/kermany224/train"))
    parser.add_argument("--films", type=int, default=2000)
    parser.add_argument("--viewer-seconds", type=float, default=180)
    parser.add_argument("--control-seconds", type=float, default=20)
    parser.add_argument("--model", default="mobilenetv2")
    parser.add_argument("--viewer-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.viewer_child:
        viewer_session(args.folder, args.viewer_seconds)
        return 0
    with tempfile.TemporaryDirectory(prefix="xrayviewer-network-") as tmp:
        work = Path(tmp)
        every = sorted(p for p in args.folder.rglob("*") if p.is_file())
        films = [str(f) for f in every[::max(1, len(every) // args.films)][:args.films]]  # both classes
        python = sys.executable
        runs = {
            "control": traced("control", [python, "-c", CONTROL.format(
                tests=str(ROOT / "tests"), model=str(work / "tiny.onnx"), seconds=args.control_seconds)], work),
            "analyze": traced("analyze", [python, "-m", "xrayviewer", "analyze", *films, "--model", args.model,
                                          "--provider", "cpu"], work),
            "viewer": traced("viewer", [python, str(Path(__file__).resolve()), "--viewer-child", "--folder",
                                        str(args.folder), "--viewer-seconds", str(args.viewer_seconds)], work),
        }
    print(json.dumps({"strace": "strace -f -qq -e trace=network", "namespace": "unshare -n", **runs}, indent=1))
    app_runs = (runs["analyze"], runs["viewer"])
    return 0 if all(r["inet_sockets"] + r["inet6_sockets"] + r["connect_inet"] == 0 for r in app_runs) else 1


if __name__ == "__main__":
    sys.exit(main())
