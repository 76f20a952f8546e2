"""A minimal Pilot agent: answers questions on pilot port 1000, or asks one.

    python examples/agent.py serve                 # on the answering node
    python examples/agent.py ask <address|hostname> "what is 2+2?"

Each exchange is one JSON line each way over an encrypted overlay stream.
The agent talks to its local daemon through ``pilotgw.connect()`` (the
socket comes from ``PILOT_SOCKET``, ``~/.pilot/config.json`` or
``/tmp/pilot.sock``); no subprocess, no ``pilotctl``.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pilotgw

PORT = 1000


def answer(question: str) -> str:
    """The agent's "skill": replace this with a model call."""
    return question.upper()


async def handle(reader: asyncio.StreamReader, writer) -> None:
    async with asyncio.timeout(30):
        line = await reader.readline()
    request = json.loads(line)
    writer.write(json.dumps({"answer": answer(request["question"])}).encode() + b"\n")
    await writer.drain()
    writer.close()


async def serve() -> None:
    async with await pilotgw.connect() as client:
        me = await client.info()
        print(f"serving on {me['address']}:{PORT}", flush=True)
        async for reader, writer in await client.listen(PORT):
            asyncio.create_task(handle(reader, writer))


async def ask(target: str, question: str) -> str:
    async with await pilotgw.connect() as client:
        reader, writer = await client.dial(target, PORT)
        writer.write(json.dumps({"question": question}).encode() + b"\n")
        await writer.drain()
        async with asyncio.timeout(30):
            reply = json.loads(await reader.readline())
        writer.close()
        return reply["answer"]


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        asyncio.run(serve())
        return 0
    if len(argv) == 3 and argv[0] == "ask":
        print(asyncio.run(ask(argv[1], argv[2])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
