"""Gateway benchmarks in the demo lab (needs root): ``gw`` behind one NAT, the
agent ``bob`` behind another, bob's ``python -m http.server`` exposed on
pilot port 80 (see :mod:`benchmarks.gateway_lab`).

* ``gateway``: ``curl http://10.4.0.1/big.bin`` on ``gw`` (the full product
  path: curl -> nftables redirect -> proxy -> IPC -> daemon -> two NATs ->
  daemon -> expose -> http.server), MB/s;
* ``direct``: the same HTTP stream between the daemons directly (a
  ``pilotgw.client`` dial from ``gw`` to ``bob:80``), MB/s, and the ratio
  gateway/direct (goal >= 0.8);
* ``parallel``: N concurrent curl downloads of a random file through the
  gateway, all checked byte for byte (SHA-256);
* ``connect``: connect latency through the gateway: curl's TCP connect and
  time to first byte of a small page (median and p95 of sequential requests;
  each request is a new overlay stream).

Usage: ``sudo python -m benchmarks.gateway_bench [--size-mib 1024] [--parallel 200]
[--json]``. The lab is torn down on exit, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.gateway_lab import AGENT, GATEWAY, GatewayLab

CHUNK = 1 << 20


def make_www(root: Path, size_mib: int, small_kib: int) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    big = root / "big.bin"
    with open(big, "wb") as f:  # random, not sparse: compression or zero pages must not help
        block = os.urandom(CHUNK)
        for i in range(size_mib):
            f.write(block[i % 7:] + block[: i % 7])
    (root / "small.bin").write_bytes(os.urandom(small_kib * 1024))
    (root / "hello.html").write_text("<html>hi</html>\n")
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in ("small.bin",)}


def curl_rate(gl: GatewayLab, url: str) -> tuple[float, int]:
    done = gl.curl(url, "-o", "/dev/null", "-w", "%{size_download} %{time_total}", timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"curl {url} failed: {done.stderr}")
    size, seconds = done.stdout.split()
    return int(size) / float(seconds) / 1e6, int(size)


async def _direct(socket_path: str, node_id: int) -> tuple[float, int]:
    import pilotgw

    client = await pilotgw.connect(socket_path)
    try:
        start = time.perf_counter()
        reader, writer = await client.dial(node_id, 80)
        writer.write(b"GET /big.bin HTTP/1.0\r\nHost: bob\r\n\r\n")
        await writer.drain()
        total = 0
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            total += len(data)
        return total / (time.perf_counter() - start) / 1e6, total
    finally:
        await client.close()


def direct_rate(gl: GatewayLab) -> tuple[float, int]:
    """On uvloop, like the gateway, so the comparison is of the paths, not the loops."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_direct(str(gl.home(GATEWAY) / "pilot.sock"), gl.node_ids[AGENT]))


def parallel(gl: GatewayLab, n: int, digest: str, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    args = ["curl", "-sS", "--max-time", "600", "-Z", "--parallel-max", str(n)]
    for i in range(n):
        args += ["-o", str(out / f"f{i}"), "http://10.4.0.1/small.bin"]
    start = time.perf_counter()
    done = gl.host(GATEWAY).run(args, check=False, timeout=900)
    seconds = time.perf_counter() - start
    exact = sum(
        1 for i in range(n) if (out / f"f{i}").exists() and hashlib.sha256((out / f"f{i}").read_bytes()).hexdigest() == digest
    )
    return {"downloads": n, "byte_exact": exact, "seconds": round(seconds, 2), "curl_status": done.returncode}


def connect_latency(gl: GatewayLab, count: int) -> dict[str, float]:
    connects, firsts = [], []
    for _ in range(count):
        done = gl.curl("http://10.4.0.1/hello.html", "-o", "/dev/null", "-w", "%{time_connect} %{time_starttransfer}")
        if done.returncode == 0:
            c, f = done.stdout.split()
            connects.append(float(c) * 1000)
            firsts.append(float(f) * 1000)
    firsts.sort()
    return {
        "requests": count,
        "ok": len(firsts),
        "tcp_connect_ms_median": round(statistics.median(connects), 3) if connects else -1,
        "first_byte_ms_median": round(statistics.median(firsts), 2) if firsts else -1,
        "first_byte_ms_p95": round(firsts[int(len(firsts) * 0.95) - 1], 2) if firsts else -1,
    }


def run(size_mib: int, n: int, latency_count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        digests = make_www(work / "www", size_mib, 1024)
        with GatewayLab(work, work / "www") as gl:
            gl.pilotctl_json(GATEWAY, "gateway", "start", gl.addrs[AGENT])
            direct, direct_bytes = direct_rate(gl)
            gateway, gateway_bytes = curl_rate(gl, "http://10.4.0.1/big.bin")
            direct2, _ = direct_rate(gl)  # interleaved, since the 2 cores are shared
            gateway2, _ = curl_rate(gl, "http://10.4.0.1/big.bin")
            result: dict[str, Any] = {
                "size_mib": size_mib,
                "gateway_mb_s": round(max(gateway, gateway2), 1),
                "direct_mb_s": round(max(direct, direct2), 1),
                "runs": {"gateway": [round(gateway, 1), round(gateway2, 1)], "direct": [round(direct, 1), round(direct2, 1)]},
                "gateway_bytes": gateway_bytes,
                "direct_bytes": direct_bytes,
            }
            result["ratio"] = round(result["gateway_mb_s"] / result["direct_mb_s"], 3)
            result["parallel"] = parallel(gl, n, digests["small.bin"], work / "downloads")
            result["connect"] = connect_latency(gl, latency_count)
            result["gateway_list"] = gl.pilotctl_json(GATEWAY, "gateway", "list")["mappings"][0]["metrics"]
            return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--parallel", type=int, default=200)
    parser.add_argument("--latency-count", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("gateway_bench needs root (network namespaces, TUN, nftables)")
    result = run(opts.size_mib, opts.parallel, opts.latency_count)
    if opts.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
