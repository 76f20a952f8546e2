"""pilotgw.overlay stays sans-IO: importing all of it loads no I/O machinery.

Runs in a fresh interpreter so that modules other tests (or pytest itself)
imported cannot hide a violation.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Modules whose presence means some overlay module does networking, runs an
#: event loop, spawns processes or starts threads.
BANNED = ("socket", "asyncio", "selectors", "ssl", "subprocess", "threading", "concurrent.futures")

_PROBE = """
import importlib, json, pkgutil, sys
import pilotgw.overlay as pkg
names = []
for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
    importlib.import_module(info.name)
    names.append(info.name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def test_overlay_imports_no_io_modules() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(out.stdout)
    assert "pilotgw.overlay.packet" in result["imported"]
    assert "pilotgw.overlay.crypto" in result["imported"]
    leaked = [m for m in BANNED if m in result["loaded"]]
    assert not leaked, f"importing pilotgw.overlay loaded {leaked}"
