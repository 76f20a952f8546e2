"""Stand-ins for pilot-daemon and pilot-rendezvous in daemon-lifecycle tests.

``python stubprograms.py daemon -socket S ...`` serves the scripted fake
daemon on S until SIGTERM; ``python stubprograms.py rendezvous
-registry-addr H:P ...`` accepts TCP on H:P until SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "client"))


def _flag(name: str) -> str:
    args = sys.argv
    return args[args.index(name) + 1]


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if sys.argv[1] == "daemon":
        from fakedaemon import FakeDaemon

        daemon = FakeDaemon(_flag("-socket"))
        print("stub daemon up", " ".join(sys.argv[2:]), flush=True)
        stop.wait()
        daemon.close()
    else:
        host, port = _flag("-registry-addr").rsplit(":", 1)
        server = socket.create_server((host, int(port)))
        print("stub rendezvous up", flush=True)
        threading.Thread(target=lambda: [server.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
        stop.wait()
        server.close()


if __name__ == "__main__":
    main()
