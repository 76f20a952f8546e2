"""Shared set-up for the daemon benchmarks: a rendezvous and N daemons on
loopback in a temporary directory, raw IPC helpers, and process accounting.

Everything started here is killed (process group) on exit, also on errors.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

BIN = os.path.dirname(sys.executable)
_U32 = struct.Struct(">I")


def _exe(name: str, module: str) -> list[str]:
    path = shutil.which(name, path=BIN)
    return [path] if path else [sys.executable, "-m", module]


class Proc:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log_path = log
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"process did not print {pattern!r}:\n{self.log()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def rss_peak_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Daemon(Proc):
    node_id: int
    socket: str


@contextlib.contextmanager
def cluster(n: int = 2, extra: tuple[str, ...] = ()) -> Iterator[list[Daemon]]:
    """A rendezvous and ``n`` daemons (public, encrypted, identity files)."""
    tmp = Path(tempfile.mkdtemp(prefix="pilot-bench-"))
    procs: list[Proc] = []
    try:
        rv = Proc(_exe("pilot-rendezvous", "pilotgw.rendezvous") + [
            "-registry-addr", "127.0.0.1:0", "-beacon-addr", "127.0.0.1:0", "-store", str(tmp / "store.json")],
            tmp / "rv.log")
        procs.append(rv)
        rv.wait_for("pilot-rendezvous ready")
        text = rv.log()
        reg = re.search(r"registry listening on (\S+):(\d+)", text)
        bea = re.search(r"beacon listening on (\S+):(\d+)", text)
        daemons = []
        for i in range(n):
            sock = str(tmp / f"d{i}.sock")
            d = Daemon(_exe("pilot-daemon", "pilotgw.daemon.cli") + [
                "-registry", f"{reg.group(1)}:{reg.group(2)}", "-beacon", f"{bea.group(1)}:{bea.group(2)}",
                "-listen", "127.0.0.1:0", "-socket", sock, "-identity", str(tmp / f"d{i}.key"), "-public",
                "-log-level", "warn", *extra], tmp / f"d{i}.log")
            procs.append(d)
            daemons.append(d)
        for i, d in enumerate(daemons):
            d.socket = str(tmp / f"d{i}.sock")
            deadline = time.monotonic() + 20
            while not os.path.exists(d.socket):
                if time.monotonic() > deadline or d.proc.poll() is not None:
                    raise RuntimeError(f"daemon {i} did not start:\n{d.log()}")
                time.sleep(0.05)
            with Ipc(d.socket) as ipc:
                d.node_id = ipc.info()["node_id"]
        yield daemons
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


class Ipc:
    """A minimal blocking IPC client: no library overhead in the measurement."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.connect(path)
        self.buf = bytearray()

    def __enter__(self) -> "Ipc":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, body: bytes) -> None:
        self.sock.sendall(_U32.pack(len(body)) + body)

    def frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (n,) = _U32.unpack_from(self.buf)
                if len(self.buf) >= 4 + n:
                    body = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    return body
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("daemon closed the IPC socket")
            self.buf += chunk

    def info(self) -> dict:
        import json

        self.send(b"\x0d")
        body = self.frame()
        assert body[0] == 0x0E, body
        return json.loads(body[1:])

    def bind(self, port: int) -> None:
        self.send(b"\x01" + struct.pack(">H", port))
        assert self.frame()[0] == 0x02

    def dial(self, node: int, port: int) -> int:
        self.send(b"\x03" + struct.pack(">HIH", 0, node, port))
        body = self.frame()
        if body[0] != 0x04:
            raise RuntimeError(f"dial failed: {body[3:].decode(errors='replace')}")
        return _U32.unpack_from(body, 1)[0]
