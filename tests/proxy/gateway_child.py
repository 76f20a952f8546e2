"""A gateway-like process for crash tests: starts a gateway, maps the fake
agent, prints ``ready`` and runs until killed.

Usage: python gateway_child.py <state-dir>
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvloop
from fake_overlay import AGENT, FakeOverlay

from pilotgw.proxy.gateway import Gateway


async def main(state_dir: Path) -> None:
    gateway = Gateway(FakeOverlay(), state_dir=state_dir)
    await gateway.start()
    await gateway.map(AGENT)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(Path(sys.argv[1])))
