"""A tiny STUN-like UDP probe: which ip:port do my packets arrive from?

The server runs inside a public lab host
(``ip netns exec plab-<id>-rv python -m pilotgw.lab.probe serve``) on a main
port P and an alternate port P+1. Each request is one datagram:

* ``ping`` -- answered from the socket it arrived on with ``<ip>:<port>``,
  the source the server observed (the client's NAT mapping);
* ``alt`` -- the same answer, sent from the *other* port, like STUN's
  CHANGE-PORT: a port-restricted NAT drops it, a full-cone NAT lets it in.

Anything else is ignored, so stray or hostile datagrams cannot stop it. The
client side (:func:`observe`) is what tests use to classify a NAT.
"""

from __future__ import annotations

import argparse
import re
import select
import socket
import sys
import time
from collections.abc import Callable

DEFAULT_PORT = 3478
REPLY_RE = re.compile(rb"^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$")

Endpoint = tuple[str, int]


def serve(port: int = DEFAULT_PORT, host: str = "0.0.0.0", ready: Callable[[], None] | None = None) -> None:
    """Answer probes on ``port`` and ``port + 1`` until killed."""
    main_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    alt_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    main_sock.bind((host, port))
    alt_sock.bind((host, port + 1))
    other = {main_sock: alt_sock, alt_sock: main_sock}
    if ready is not None:
        ready()
    while True:
        readable, _, _ = select.select([main_sock, alt_sock], [], [])
        for sock in readable:
            try:
                data, (ip, src_port) = sock.recvfrom(2048)
            except OSError:
                continue  # e.g. an ICMP error queued by an earlier reply
            request = data.strip()
            if request == b"ping":
                replier = sock
            elif request == b"alt":
                replier = other[sock]
            else:
                continue
            try:
                replier.sendto(f"{ip}:{src_port}".encode(), (ip, src_port))
            except OSError:
                continue


def parse_reply(data: bytes) -> Endpoint | None:
    """The endpoint in a server reply, or None if ``data`` is not one."""
    m = REPLY_RE.match(data)
    if not m or int(m.group(2)) > 65535:
        return None
    try:
        socket.inet_aton(m.group(1).decode())
    except OSError:
        return None
    return m.group(1).decode(), int(m.group(2))


def observe(sock: socket.socket, server: Endpoint, *, alt: bool = False, timeout: float = 0.5, tries: int = 3) -> Endpoint | None:
    """Ask ``server`` how it sees ``sock``; None if no valid answer came back.

    With ``alt`` the answer comes from the server's other port, so None then
    means the NAT filters by port. Datagrams from elsewhere are skipped.
    """
    request = b"alt" if alt else b"ping"
    expected_src = (server[0], server[1] + 1) if alt else server
    for _ in range(tries):
        sock.sendto(request, server)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            try:
                data, src = sock.recvfrom(2048)
            except OSError:
                continue  # ICMP unreachable from an earlier try
            endpoint = parse_reply(data)
            if endpoint is not None and src == expected_src:
                return endpoint
    return None


def _endpoint(text: str) -> Endpoint:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not ip:port")
    try:
        socket.inet_aton(host)
    except OSError:
        raise argparse.ArgumentTypeError(f"{host!r} is not an IPv4 address") from None
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pilotgw.lab.probe", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve", help="answer probes on PORT and PORT+1")
    p_serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    p_serve.add_argument("--host", default="0.0.0.0", help="address to bind (default: all)")
    p_query = sub.add_parser("query", help="print how SERVER sees this host (exit 1 if no answer)")
    p_query.add_argument("server", type=_endpoint, help="ip:port of a probe server")
    p_query.add_argument("--alt", action="store_true", help="ask for the answer from the alternate port")
    p_query.add_argument("--port", type=int, default=0, help="local port to send from")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        serve(args.port, args.host, ready=lambda: print(f"ready {args.port}", flush=True))
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", args.port))
        endpoint = observe(sock, args.server, alt=args.alt)
    if endpoint is None:
        print("no answer", file=sys.stderr)
        return 1
    print(f"{endpoint[0]}:{endpoint[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
