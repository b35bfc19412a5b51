"""Run a native decoder that can abort the process (gdcm) in a forked child, so that only the child dies.

gdcm reports some damaged JPEG streams by throwing a C++ exception nobody catches, which ends the process
(exit 134) wherever it runs: the viewer and `info` with it. Where `os.fork` exists the decode runs in a child
that inherits the parsed data set, sends the pixel array back through a pipe and exits; a child killed by a
signal or silent past the time limit becomes a Python error here. Without fork (Windows) the call runs in
process: the header checks in `dicom.pixel_layout` are then the only guard.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import time
from collections.abc import Callable

import numpy as np

TIME_LIMIT_S = 60.0


class DecoderCrashed(RuntimeError):
    """The isolated decoder died or hung; the message says which, in a user's words."""


def run_isolated(decode: Callable[[], np.ndarray], time_limit: float = TIME_LIMIT_S) -> np.ndarray:
    """`decode()` in a forked child; its array, or its exception as RuntimeError, or DecoderCrashed."""
    if not hasattr(os, "fork"):
        return decode()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        os.close(read_fd)
        _child(decode, write_fd)
    os.close(write_fd)
    try:
        data = _read_all(read_fd, pid, time_limit)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if len(data) < 4 or len(data) < 4 + struct.unpack("<I", data[:4])[0]:
        cause = (f"it stopped with signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                 else f"it ended with code {os.WEXITSTATUS(status)}")
        raise DecoderCrashed(f"the decoder crashed on the compressed data ({cause})")
    size = struct.unpack("<I", data[:4])[0]
    header = json.loads(bytes(data[4:4 + size]))
    if "error" in header:
        raise RuntimeError(header["error"])
    return np.frombuffer(data, dtype=np.dtype(header["dtype"]), offset=4 + size).reshape(header["shape"])


def _child(decode: Callable[[], np.ndarray], write_fd: int) -> None:
    code = 0
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)  # gdcm's "terminate called after..." is not the user's concern
        try:
            array = np.ascontiguousarray(decode())
            header, payload = {"dtype": array.dtype.str, "shape": list(array.shape)}, memoryview(array).cast("B")
        except Exception as exc:  # noqa: BLE001 - reported to the parent as text
            header, payload = {"error": str(exc) or type(exc).__name__}, memoryview(b"")
        encoded = json.dumps(header).encode()
        _write_all(write_fd, struct.pack("<I", len(encoded)) + encoded)
        _write_all(write_fd, payload)
    except BaseException:  # noqa: BLE001 - the child must reach os._exit whatever happens
        code = 1
    finally:
        os._exit(code)


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(fd: int, pid: int, time_limit: float) -> bytearray:
    """Everything the child writes; the child is killed when it is silent past `time_limit`."""
    data, deadline = bytearray(), time.monotonic() + time_limit
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise DecoderCrashed(f"the decoder did not finish within {time_limit:.0f} s")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return data
        data += chunk
        deadline = time.monotonic() + time_limit
