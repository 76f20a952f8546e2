"""Sending files: the reference's single FILE frame, our bulk extension, and
one file to many receivers (services-and-cli.md §A3, C-9, C-10; wire format
of the extension in :mod:`pilotgw.services.xfer`).

Used by the client (``send_file``) with connections it dialled through the
daemon; everything here works on asyncio-style ``(reader, writer)`` pairs
(reader: ``read``/``readexactly``; writer: ``write``/``drain``/``close``) and
a ``dial(addr, port)`` coroutine returning one.

How a transfer is chosen (:func:`send_file`): dial the extension port. A
pilotgw receiver answers; a reference node refuses the SYN (RST), and the
file then goes as one FILE frame on port 1001 if it fits the reference's
16 MiB frame -- otherwise it is refused before anything is sent, with an
error that states that peer's limit. Memory stays bounded either way: the
file is streamed from disk in chunks.

To N receivers (:func:`send_file` with several targets): the pilotgw
receivers form a chain -- the sender streams one copy to the first, each
receiver saves and forwards to the next -- so the file is read once and sent
once, whatever N is. Reference receivers each get their own FILE frame.
Progress is reported per receiver through ``progress(node, done, total)``.

An interrupted bulk transfer is resumed, not restarted: the sender re-dials
(``retries`` times) and the receivers offer the bytes they already hold; a
later call for the same unchanged file resumes the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from pilotgw.overlay import dataexchange as dx
from pilotgw.overlay.address import PORT_DATA_EXCHANGE, Addr
from pilotgw.overlay.errors import DecodeError
from pilotgw.services import xfer

CHUNK = 256 * 1024
#: Largest file a reference receiver accepts: its 16 MiB frame minus the
#: 2-byte name length (and minus the name itself).
REFERENCE_MAX = dx.MAX_LENGTH - 2
ACK_TIMEOUT = 30.0
RETRIES = 3
RETRY_DELAY = 1.0

Dial = Callable[[Addr, int], Awaitable[tuple[Any, Any]]]
Progress = Callable[[str, int, int], None]


class TransferError(Exception):
    """A transfer that cannot be done. ``code`` follows the CLI's codes
    (``invalid_argument``, ``not_found``, ``connection_failed``, ``internal``)."""

    def __init__(self, message: str, code: str = "connection_failed") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Delivery:
    """What happened at one receiver."""

    target: str
    ok: bool
    bytes: int = 0
    method: str = "bulk"  # or "standard" (one FILE frame on port 1001)
    path: str = ""  # where the receiver saved it (bulk only)
    ack: str | None = None  # the receiver's ACK text (standard only)
    error: str = ""
    resumed_from: int = 0


@dataclass
class _Source:
    path: str
    name: str
    size: int
    id: str
    fd: int = field(default=-1)


def _open_source(path: str | os.PathLike[str], name: str | None) -> _Source:
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise TransferError(f"file not found: {path}", "not_found") from None
    except PermissionError:
        raise TransferError(f"permission denied: {path}", "internal") from None
    except OSError as exc:
        raise TransferError(f"read file: {exc}", "internal") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise TransferError(f"not a regular file: {path}", "invalid_argument")
    ident = hashlib.sha256(
        f"{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}".encode("utf-8", "surrogateescape")
    ).hexdigest()[:32]
    base = name if name is not None else os.path.basename(path)
    return _Source(path, base, st.st_size, ident, fd)


def _is_refused(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionRefusedError) or "connection refused" in str(exc)


# -- the reference's single frame ----------------------------------------------------


async def send_standard(
    reader: Any, writer: Any, path: str | os.PathLike[str], *, name: str | None = None,
    progress: Progress | None = None, target: str = "",
) -> Delivery:
    """One FILE frame (what a reference receiver accepts), streamed from
    disk; then wait for the ACK (a missing ACK is not an error, Q1)."""
    src = _open_source(path, name)
    try:
        return await _send_standard(reader, writer, src, progress, target)
    finally:
        os.close(src.fd)


def check_reference_limit(size: int, name: str) -> None:
    """C-10: refuse before dialling what a reference receiver would drop."""
    if 2 + len(name.encode("utf-8")) + size > dx.MAX_LENGTH:
        raise TransferError(f"file too large: {size} bytes (max {REFERENCE_MAX} minus name length)", "invalid_argument")


async def _send_standard(reader: Any, writer: Any, src: _Source, progress: Progress | None, target: str) -> Delivery:
    check_reference_limit(src.size, src.name)
    writer.write(dx.encode_file_prefix(src.name, src.size))
    pos = 0
    while pos < src.size:
        chunk = os.pread(src.fd, min(CHUNK, src.size - pos), pos)
        if not chunk:
            raise TransferError(f"read file: {src.path} shrank while sending", "internal")
        writer.write(chunk)
        await writer.drain()
        pos += len(chunk)
        if progress is not None:
            progress(target, pos, src.size)
    await writer.drain()
    ack = await _read_ack(reader)
    ok = ack is None or ack.startswith("ACK ")
    return Delivery(target, ok, src.size, "standard", ack=ack, error="" if ok else (ack or ""))


async def _read_ack(reader: Any) -> str | None:
    parser = dx.FrameAssembler(max_length=64 * 1024)
    try:
        async with asyncio.timeout(ACK_TIMEOUT):
            while True:
                data = await reader.read(4096)
                if not data:
                    return None
                frames = parser.feed(data)
                if frames:
                    return frames[0].payload.decode("utf-8", "replace")
    except (TimeoutError, DecodeError, ConnectionError, OSError):
        return None


# -- the bulk extension --------------------------------------------------------------


async def send_bulk(
    reader: Any, writer: Any, path: str | os.PathLike[str], *, name: str | None = None,
    chain: Sequence[Addr] = (), progress: Progress | None = None, target: str = "",
) -> list[Delivery]:
    """Send over an extension connection to the first receiver, which
    forwards to ``chain``. Returns one :class:`Delivery` per receiver."""
    src = _open_source(path, name)
    try:
        return await _send_bulk(reader, writer, src, tuple(chain), progress, target)
    finally:
        os.close(src.fd)


async def _send_bulk(
    reader: Any, writer: Any, src: _Source, chain: tuple[Addr, ...], progress: Progress | None, target: str
) -> list[Delivery]:
    expected = [target] + [str(a) for a in chain]
    results: dict[str, Delivery] = {}
    frames = xfer.FrameReader(reader)
    writer.write(xfer.Offer(src.name, src.size, src.id, chain).encode())
    await writer.drain()
    # Receivers the first hop could not reach report before its READY.
    while True:
        got = await frames.next()
        if got is None:
            raise ConnectionResetError("receiver closed the connection before READY")
        kind, payload = got
        if kind == xfer.RESULT:
            res = xfer.Result.decode(payload)
            results[res.node] = Delivery(res.node, res.ok, res.bytes, error=res.error, path=res.path)
        elif kind == xfer.REFUSED:
            raise TransferError(f"receiver refused the file: {xfer.parse_refused(payload)}")
        elif kind == xfer.READY:
            ready = xfer.Ready.decode(payload)
            break
        else:
            raise DecodeError(f"unexpected transfer frame 0x{kind:08X}", "state")
    offset = min(ready.offset, src.size)
    digest = await _hash_range(src.fd, offset)
    if digest.hexdigest() != ready.prefix_sha256:
        offset, digest = 0, hashlib.sha256()
    writer.write(xfer.start(offset))

    listener = asyncio.get_running_loop().create_task(_collect(frames, results, expected, progress, src.size))
    try:
        pos = offset
        while pos < src.size:
            if listener.done():
                break  # the receiver hung up; the listener says why
            chunk = os.pread(src.fd, min(CHUNK, src.size - pos), pos)
            if not chunk:
                raise TransferError(f"read file: {src.path} shrank while sending", "internal")
            digest.update(chunk)
            writer.write(xfer.data_header(len(chunk)))
            writer.write(chunk)
            await writer.drain()
            pos += len(chunk)
        if pos == src.size:
            writer.write(xfer.end(digest.hexdigest()))
            await writer.drain()
        await listener
    finally:
        listener.cancel()
    missing = [node for node in expected if node not in results]
    if missing:
        raise ConnectionResetError(f"connection lost before results from {', '.join(missing)}")
    for node in expected:
        results[node].resumed_from = offset
    return [results[node] for node in expected]


async def _collect(
    frames: xfer.FrameReader, results: dict[str, Delivery], expected: list[str], progress: Progress | None, total: int
) -> None:
    """Read PROGRESS/RESULT until every receiver has reported or EOF."""
    try:
        while any(node not in results for node in expected):
            got = await frames.next()
            if got is None:
                return
            kind, payload = got
            if kind == xfer.PROGRESS:
                node, done = xfer.parse_progress(payload)
                if progress is not None:
                    progress(node, done, total)
            elif kind == xfer.RESULT:
                res = xfer.Result.decode(payload)
                results[res.node] = Delivery(res.node, res.ok, res.bytes, path=res.path, error=res.error)
            else:
                return
    except (DecodeError, ConnectionError, OSError, asyncio.IncompleteReadError):
        return


async def _hash_range(fd: int, length: int) -> "hashlib._Hash":
    """SHA-256 of the file's first ``length`` bytes (a resume's prefix), on a
    thread: it may be many GB. The thread reads through its own duplicate
    of ``fd``, so the caller may close ``fd`` whenever it likes."""
    dup = os.dup(fd)

    def run() -> "hashlib._Hash":
        try:
            digest = hashlib.sha256()
            pos = 0
            while pos < length:
                chunk = os.pread(dup, min(4 * CHUNK, length - pos), pos)
                if not chunk:
                    break
                digest.update(chunk)
                pos += len(chunk)
            return digest
        finally:
            os.close(dup)

    return await asyncio.to_thread(run)


# -- choosing, fanning out, resuming -----------------------------------------------------


async def send_file(
    dial: Dial,
    targets: Addr | Sequence[Addr],
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    progress: Progress | None = None,
    retries: int = RETRIES,
) -> list[Delivery]:
    """Send one file to one or many nodes; one :class:`Delivery` per target,
    in the order given. Raises :class:`TransferError` only for problems with
    the file itself; per-receiver failures are reported in the result."""
    if isinstance(targets, Addr):
        targets = [targets]
    targets = list(dict.fromkeys(targets))
    src = _open_source(path, name)
    os.close(src.fd)
    probes = await asyncio.gather(*(_probe(dial, t) for t in targets))
    bulk = [(t, conn) for t, conn in zip(targets, probes) if not isinstance(conn, BaseException) and conn is not None]
    reference = [t for t, conn in zip(targets, probes) if conn is None]
    failed = {t: conn for t, conn in zip(targets, probes) if isinstance(conn, BaseException)}
    for _, (_, writer) in bulk[1:]:
        writer.close()  # only the head of the chain is used; the others were probes
    jobs = [_standard_job(dial, t, path, name, progress) for t in reference]
    if bulk:
        jobs.append(_bulk_job(dial, [t for t, _ in bulk], bulk[0][1], path, name, progress, retries))
    outcome: dict[str, Delivery] = {}
    for result in await asyncio.gather(*jobs):
        for delivery in result:
            outcome[delivery.target] = delivery
    # A receiver the chain could not reach (e.g. a private node that trusts
    # the sender but not the receiver before it) gets its own copy.
    skipped = [t for t, _ in bulk if _unreachable_in_chain(outcome.get(str(t)))]
    for result in await asyncio.gather(*(_bulk_job(dial, [t], None, path, name, progress, retries) for t in skipped)):
        for delivery in result:
            outcome[delivery.target] = delivery
    for t, exc in failed.items():
        outcome[str(t)] = Delivery(str(t), False, error=f"cannot connect: {exc}")
    return [outcome.get(str(t)) or Delivery(str(t), False, error="no result") for t in targets]


def _unreachable_in_chain(delivery: Delivery | None) -> bool:
    return delivery is not None and not delivery.ok and delivery.error.startswith(xfer.UNREACHABLE)


async def _probe(dial: Dial, target: Addr) -> tuple[Any, Any] | None | BaseException:
    """An extension connection, ``None`` for a node that refuses the
    extension port (a reference node), or the dial error."""
    try:
        return await dial(target, xfer.PORT)
    except Exception as exc:
        return None if _is_refused(exc) else exc


async def _standard_job(dial: Dial, target: Addr, path: Any, name: str | None, progress: Progress | None) -> list[Delivery]:
    src = _open_source(path, name)
    try:
        try:
            check_reference_limit(src.size, src.name)
        except TransferError as exc:
            return [Delivery(str(target), False, method="standard",
                             error=f"{exc} -- {target} is not a pilotgw node, and its data exchange accepts at most "
                                   f"{REFERENCE_MAX - len(src.name.encode('utf-8'))} bytes for this name")]
        try:
            reader, writer = await dial(target, PORT_DATA_EXCHANGE)
        except Exception as exc:
            return [Delivery(str(target), False, method="standard", error=f"cannot connect: {exc}")]
        try:
            return [await _send_standard(reader, writer, src, progress, str(target))]
        except (ConnectionError, OSError) as exc:
            return [Delivery(str(target), False, method="standard", error=f"send failed: {exc}")]
        finally:
            writer.close()
    finally:
        os.close(src.fd)


async def _bulk_job(
    dial: Dial, chain: list[Addr], first: tuple[Any, Any] | None, path: Any, name: str | None,
    progress: Progress | None, retries: int,
) -> list[Delivery]:
    conn: tuple[Any, Any] | None = first
    last_error = ""
    for attempt in range(retries + 1):
        if conn is None:
            await asyncio.sleep(RETRY_DELAY * attempt)
            try:
                conn = await dial(chain[0], xfer.PORT)
            except Exception as exc:
                last_error = f"cannot connect: {exc}"
                continue
        reader, writer = conn
        src = _open_source(path, name)
        try:
            return await _send_bulk(reader, writer, src, tuple(chain[1:]), progress, str(chain[0]))
        except TransferError as exc:
            return [Delivery(str(t), False, error=str(exc)) for t in chain]
        except (ConnectionError, OSError, asyncio.IncompleteReadError, DecodeError) as exc:
            last_error = f"transfer interrupted: {exc or type(exc).__name__}"
        finally:
            os.close(src.fd)
            writer.close()
            conn = None
    return [Delivery(str(t), False, error=last_error) for t in chain]
