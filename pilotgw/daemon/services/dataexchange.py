"""Data exchange: the reference service on port 1001 and our bulk-transfer
extension on :data:`pilotgw.services.xfer.PORT` (services-and-cli.md §A3, C-9, C-10).

Port 1001 behaves as the reference on the wire -- one TEXT ACK per frame,
``ACK <TYPE> <n> bytes`` or ``ERR <TYPE> save failed: <error>``, silent close
on a bad frame -- with the C-9 repairs on the receiving side:

* a FILE payload streams to a temporary file (never held in memory) that is
  moved into ``received/`` only once complete, without ever overwriting:
  a taken name gets ``-1``, ``-2`` ... before the extension;
* the name is reduced to a base name (the reference's rule) and then made
  safe: control characters and NUL become ``_``, the result never names a
  directory or a special file, and it is shortened to fit the file system's
  255-byte limit (the timestamp is always part of it, so ``.``/``..`` cannot
  result);
* BINARY messages keep their exact bytes in ``inbox-raw/`` next to the lossy
  reference-format inbox JSON;
* bounded concurrency (per peer and overall) and a free-space reserve.

The extension (see :mod:`pilotgw.services.xfer`) adds files of any size
written disk to disk with bounded memory, SHA-256 verification, resume of an
interrupted transfer from the bytes already on disk, and chain forwarding so
one sender can reach N receivers with one copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Iterator

from pilotgw.daemon.log import Log
from pilotgw.daemon.trust import format_time
from pilotgw.daemon.webhooks import Webhooks
from pilotgw.overlay import dataexchange as dx
from pilotgw.overlay import gojson, goread
from pilotgw.overlay.address import Addr, SocketAddr
from pilotgw.overlay.errors import DecodeError
from pilotgw.services import xfer

log = Log("dataexchange")

READ_CHUNK = 256 * 1024
#: Free space that incoming files must leave on the file system.
MIN_FREE = 64 * 1024 * 1024
MAX_CONNS = 64
MAX_CONNS_PER_PEER = 8
#: Forget interrupted bulk transfers not resumed within this time.
PARTIAL_TTL = 7 * 24 * 3600.0
NAME_MAX = 255
#: Bytes kept free in a name for a collision suffix such as ``-12``.
_SUFFIX_ROOM = 8
PROGRESS_INTERVAL = 0.25
#: How long a hop waits for the receivers after it to report, after END.
DOWNSTREAM_RESULT_WAIT = 600.0

Dial = Callable[[Addr, int], Awaitable[tuple[Any, Any]]]


def safe_name(raw: bytes) -> str:
    """The base name a file is saved under (before the timestamp).

    Reference rule first (A3.4): everything up to the last ``/`` is dropped,
    trailing slashes ignored, ``\\`` is not a separator, empty becomes
    ``.``. Then ours: invalid UTF-8 becomes U+FFFD and control characters
    (NUL included) become ``_``."""
    text = goread.go_string(raw).rstrip("/")
    base = text.rsplit("/", 1)[-1] or "."
    return "".join("_" if ord(c) < 0x20 or c == "\x7f" else c for c in base)


def split_ext(name: str) -> tuple[str, str]:
    """``archive.tar.gz`` -> (``archive.tar``, ``.gz``); ``.bashrc`` -> (``""``, ``.bashrc``)."""
    dot = name.rfind(".")
    return (name, "") if dot < 0 else (name[:dot], name[dot:])


def _cut(text: str, limit: int) -> str:
    """``text`` shortened to at most ``limit`` UTF-8 bytes on a character boundary."""
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


def timestamp(now: float) -> str:
    """Local ``YYYYMMDD-HHMMSS.mmm``."""
    ms = int(now * 1000) % 1000
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f".{ms:03d}"


def received_names(name: str, now: float) -> Iterator[str]:
    """Candidate destination names: ``<stem>-<ts><ext>``, then with ``-1``,
    ``-2`` ... before the extension; each at most 255 bytes."""
    stem, ext = split_ext(name)
    ts = timestamp(now)
    budget = NAME_MAX - _SUFFIX_ROOM - len(ts) - 1
    ext = _cut(ext, max(budget // 2, budget - len(stem.encode("utf-8", "surrogateescape"))))
    stem = _cut(stem, budget - len(ext.encode("utf-8", "surrogateescape")))
    yield f"{stem}-{ts}{ext}"
    n = 1
    while True:
        yield f"{stem}-{ts}-{n}{ext}"
        n += 1


def _exclusive(directory: Path, names: Iterable[str], data: bytes | None = None, source: Path | None = None) -> Path:
    """Create the first free name in ``directory``: write ``data`` to it
    (O_EXCL, 0600) or hard-link ``source`` to it. Never overwrites, never
    follows a symlink planted under the name."""
    for candidate in names:
        dest = directory / candidate
        try:
            if source is not None:
                os.link(source, dest)
            else:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                try:
                    view = memoryview(data or b"")
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
            return dest
        except FileExistsError:
            continue
    raise AssertionError("unreachable: the name generator is infinite")


class Storage:
    """The daemon's ``~/.pilot`` folders used by data exchange (A3.6)."""

    def __init__(self, home: str | os.PathLike[str], *, min_free: int = MIN_FREE) -> None:
        self.home = Path(home)
        self.received = self.home / "received"
        self.inbox = self.home / "inbox"
        self.inbox_raw = self.home / "inbox-raw"
        self.partial = self.received / ".partial"
        self.min_free = min_free

    def _dir(self, path: Path) -> Path:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.is_symlink() or not path.is_dir():
            raise OSError(f"{path} is not a directory")
        return path

    def check_space(self, size: int) -> None:
        st = os.statvfs(self._dir(self.received))
        free = st.f_bavail * st.f_frsize
        if free - size < self.min_free:
            raise OSError(f"not enough disk space: {size} bytes offered, {free} free")

    def temp_file(self) -> tuple[int, Path]:
        directory = self._dir(self.partial)
        while True:
            path = directory / f"incoming-{os.urandom(8).hex()}.tmp"
            try:
                return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), path
            except FileExistsError:
                continue

    def partial_file(self, peer: int, ident: str) -> Path:
        return self._dir(self.partial) / f"{peer}-{ident}.part"

    def place(self, temp: Path, name: str, now: float) -> Path:
        """Move a complete temporary file into ``received/`` under a free name."""
        dest = _exclusive(self._dir(self.received), received_names(name, now), source=temp)
        os.unlink(temp)
        return dest

    def save_message(self, type_name: str, payload: bytes, sender: Addr, now: float) -> Path:
        """The reference inbox file, plus exact bytes of BINARY messages (C-9)."""
        doc = {
            "bytes": len(payload),
            "data": goread.go_string(payload),
            "from": str(sender),
            "received_at": format_time(now),
            "type": type_name,
        }
        ts = timestamp(now)
        names = (f"{type_name}-{ts}{'' if n == 0 else f'-{n}'}.json" for n in range(1 << 30))
        dest = _exclusive(self._dir(self.inbox), names, gojson.dumpb(doc))
        if type_name == "BINARY":
            raw = self._dir(self.inbox_raw) / (dest.name[: -len(".json")] + ".bin")
            _exclusive(raw.parent, iter([raw.name]), payload)
        return dest

    def sweep_partials(self, now: float) -> None:
        try:
            entries = list(os.scandir(self.partial))
        except FileNotFoundError:
            return
        for entry in entries:
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > PARTIAL_TTL:
                    os.unlink(entry.path)
            except OSError:
                continue


def _hash_prefix(fd: int, length: int) -> "hashlib._Hash":
    digest = hashlib.sha256()
    pos = 0
    while pos < length:
        chunk = os.pread(fd, min(READ_CHUNK * 4, length - pos), pos)
        if not chunk:
            break
        digest.update(chunk)
        pos += len(chunk)
    return digest


class DataExchange:
    """Both data-exchange services of one daemon.

    ``me`` returns the daemon's text address (for results it reports);
    ``dial`` opens a stream to another node (for chain forwarding), returning
    an asyncio-style ``(reader, writer)`` pair; readers need ``read`` and
    ``readexactly``, writers ``write``, ``drain`` and ``close``.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        webhooks: Webhooks | None = None,
        me: Callable[[], str] = lambda: "",
        dial: Dial | None = None,
        max_conns: int = MAX_CONNS,
        max_conns_per_peer: int = MAX_CONNS_PER_PEER,
    ) -> None:
        self.storage = storage
        self._webhooks = webhooks
        self._me = me
        self._dial = dial
        self._max_conns = max_conns
        self._max_per_peer = max_conns_per_peer
        self._active: dict[int, int] = {}

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        if self._webhooks is not None:
            self._webhooks.emit(event, data)

    def _admit(self, node: int) -> bool:
        if sum(self._active.values()) >= self._max_conns or self._active.get(node, 0) >= self._max_per_peer:
            log.warning("data-exchange connection refused: too many", peer=node)
            return False
        self._active[node] = self._active.get(node, 0) + 1
        return True

    def _release(self, node: int) -> None:
        left = self._active[node] - 1
        if left:
            self._active[node] = left
        else:
            del self._active[node]

    # -- port 1001 ---------------------------------------------------------------

    async def handle(self, reader: Any, writer: Any, remote: SocketAddr) -> None:
        """One port-1001 connection: frames until EOF or a bad frame."""
        node = remote.addr.node
        if not self._admit(node):
            writer.close()
            return
        try:
            await self._frames(reader, writer, remote)
        except (DecodeError, ConnectionError, OSError) as exc:
            log.info("data-exchange connection ended", remote=str(remote), error=str(exc))
        finally:
            self._release(node)
            writer.close()

    async def _frames(self, reader: Any, writer: Any, remote: SocketAddr) -> None:
        parser = dx.StreamReader()
        state: _Incoming | None = None
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                if state is not None:
                    state.abort()
                return
            try:
                for event in parser.feed(data):
                    if isinstance(event, dx.FrameStart):
                        state = _Incoming(self.storage, event)
                    elif isinstance(event, dx.FrameData):
                        assert state is not None
                        state.write(event.data)
                    else:
                        assert state is not None
                        ack = self._finish(state, remote)
                        state = None
                        writer.write(dx.encode(ack))
                await writer.drain()
                parser.feed(b"")  # raises a bad header that followed complete frames
            except BaseException:
                if state is not None:
                    state.abort()
                raise

    def _finish(self, state: "_Incoming", remote: SocketAddr) -> dx.Frame:
        start = state.start
        now = time.time()
        if state.error is not None:
            state.abort()
            return dx.save_failed(start.type, state.error)
        try:
            if start.type == dx.FILE and start.filename:
                name = safe_name(start.filename)
                path = state.commit(name, now)
                self._emit("file.received", {"filename": name, "path": str(path), "size": start.data_length})
                log.info("file received", peer=str(remote.addr), name=name, path=str(path), size=start.data_length)
            elif start.type in (dx.TEXT, dx.JSON, dx.BINARY):
                kind = dx.type_name(start.type)
                self.storage.save_message(kind, state.payload(), remote.addr, now)
                self._emit("message.received", {"from": str(remote.addr), "size": start.data_length, "type": kind})
        except OSError as exc:
            state.abort()
            log.warning("save failed", peer=str(remote.addr), error=str(exc))
            return dx.save_failed(start.type, exc.strerror or str(exc))
        return dx.ack(start.type, start.data_length)

    # -- bulk extension --------------------------------------------------------

    async def handle_bulk(self, reader: Any, writer: Any, remote: SocketAddr) -> None:
        """One extension connection (a sender or the hop before us)."""
        node = remote.addr.node
        if not self._admit(node):
            writer.close()
            return
        hop = _Hop(self, reader, writer, remote)
        try:
            await hop.run()
        except (DecodeError, ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            log.info("bulk transfer ended early", remote=str(remote), error=str(exc) or type(exc).__name__)
        finally:
            hop.cleanup()
            self._release(node)
            writer.close()


class _Incoming:
    """One port-1001 frame being received: FILE data to a temp file, a
    message into a bounded buffer, anything else discarded."""

    def __init__(self, storage: Storage, start: dx.FrameStart) -> None:
        self.start = start
        self.error: str | None = None
        self._buf: bytearray | None = None
        self._fd = -1
        self._path: Path | None = None
        if start.type == dx.FILE and start.filename:
            try:
                storage.check_space(start.data_length)
                self._fd, self._path = storage.temp_file()
            except OSError as exc:
                self.error = exc.strerror or str(exc)
        elif start.type in (dx.TEXT, dx.JSON, dx.BINARY):
            self._buf = bytearray()
        self._storage = storage
        self._written = 0

    def write(self, data: Any) -> None:
        if self._buf is not None:
            self._buf += data
        elif self._fd >= 0 and self.error is None:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                self._written += len(data)
            except OSError as exc:
                self.error = exc.strerror or str(exc)

    def payload(self) -> bytes:
        return bytes(self._buf or b"")

    def commit(self, name: str, now: float) -> Path:
        assert self._path is not None
        if self._written != self.start.data_length:
            raise OSError(f"short file: {self._written} of {self.start.data_length} bytes")
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        path, self._path = self._path, None
        return self._storage.place(path, name, now)

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._path is not None:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass
            self._path = None


class _Downstream:
    """The connection to the next receiver of a chain, plus the task that
    relays its PROGRESS/RESULT messages upstream."""

    def __init__(self, writer: Any, frames: xfer.FrameReader, nodes: list[str]) -> None:
        self.writer = writer
        self.frames = frames
        self.waiting = set(nodes)  # receivers whose RESULT has not come back
        self.task: asyncio.Task[None] | None = None
        self.failed = False


class _DiskSink:
    """Writes and hashes one transfer's bytes in order.

    A failed write does not stop the hop: it keeps forwarding to the rest of
    the chain, and :attr:`error` goes into its own RESULT. Blocks are written
    and hashed on the event loop (a worker thread per block cost more CPU in
    GIL hand-offs than it saved); only the long one-off steps -- hashing a
    resumed prefix of possibly many GB, and the final fsync -- run on a
    thread, on a duplicate descriptor the thread owns, so that the daemon's
    other connections are not held up and a cancelled hop can close its file.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0  # end of the bytes received
        self.saved = 0  # end of the bytes on disk
        self.error: OSError | None = None
        self.digest = hashlib.sha256()

    async def hash_prefix(self, length: int) -> str:
        """Make the digest that of the file's first ``length`` bytes (what a
        resume offers); returns it in hex."""
        self.digest = await _on_thread(self.fd, _hash_prefix, length)
        return self.digest.hexdigest()

    def start(self, offset: int) -> None:
        """Drop what follows ``offset`` and append from there."""
        os.ftruncate(self.fd, offset)
        self.pos = self.saved = offset

    def put(self, data: bytes) -> None:
        pos = self.pos
        self.pos += len(data)
        if self.error is not None:
            return
        self.digest.update(data)
        try:
            view = memoryview(data)
            while view:
                view = view[os.pwrite(self.fd, view, pos + len(data) - len(view)) :]
        except OSError as exc:
            self.error = exc
            return
        self.saved = self.pos

    async def sync(self) -> None:
        await _on_thread(self.fd, os.fsync)


async def _on_thread(fd: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(dup_of_fd, *args)`` on a worker thread, which closes its duplicate."""
    dup = os.dup(fd)

    def run() -> Any:
        try:
            return fn(dup, *args)
        finally:
            os.close(dup)

    return await asyncio.to_thread(run)


class _Hop:
    """The receiver side of one bulk transfer, forwarding to the rest of
    the chain when there is one."""

    def __init__(self, service: DataExchange, reader: Any, writer: Any, remote: SocketAddr) -> None:
        self.svc = service
        self.frames = xfer.FrameReader(reader)
        self.writer = writer
        self.remote = remote
        self.me = service._me()
        self.fd = -1
        self.sink: _DiskSink | None = None
        self.partial: Path | None = None
        self.down: _Downstream | None = None

    def send_up(self, data: bytes) -> None:
        self.writer.write(data)

    async def run(self) -> None:
        got = await self.frames.next()
        if got is None:
            return
        kind, payload = got
        if kind != xfer.OFFER:
            raise DecodeError("bulk transfer must start with an offer", "state")
        offer = xfer.Offer.decode(payload)
        storage = self.svc.storage
        name = safe_name(offer.name.encode("utf-8", "surrogateescape"))
        try:
            storage.sweep_partials(time.time())
            self.partial = storage.partial_file(self.remote.addr.node, offer.id)
            self.fd = os.open(self.partial, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            own = min(os.fstat(self.fd).st_size, offer.size)
            storage.check_space(offer.size - own)
        except OSError as exc:
            self.send_up(xfer.refused(f"cannot receive: {exc.strerror or exc}"))
            await self.writer.drain()
            self._close_partial(remove=False)
            return
        sink = self.sink = _DiskSink(self.fd)
        ready = await self._open_downstream(offer)
        agreed = own if ready is None else min(own, ready.offset)
        prefix = await sink.hash_prefix(agreed)
        if ready is not None and agreed == ready.offset and prefix != ready.prefix_sha256:
            agreed = 0
            prefix = await sink.hash_prefix(0)
        self.send_up(xfer.Ready(agreed, prefix).encode())
        await self.writer.drain()

        got = await self.frames.next()
        if got is None or got[0] != xfer.START:
            raise DecodeError("expected START", "state")
        offset = xfer.parse_start(got[1])
        if offset > agreed:
            raise DecodeError(f"START offset {offset} beyond READY offset {agreed}", "state")
        if offset < agreed:
            await sink.hash_prefix(offset)
        sink.start(offset)
        if self.down is not None:
            await self._down_send(xfer.start(offset))
        claimed = await self._receive(offer.size)
        if self.down is not None:
            await self._down_send(xfer.end(claimed))
        self.send_up(xfer.progress(self.me, sink.saved))
        self.send_up((await self._complete(name, offer.size, claimed)).encode())
        await self.writer.drain()
        if self.down is not None and self.down.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.down.task), DOWNSTREAM_RESULT_WAIT)
            except asyncio.TimeoutError:
                self.down.task.cancel()
                self._report_missing("no result from the next receiver")
                await self.writer.drain()

    async def _receive(self, size: int) -> str:
        """DATA frames until END: each is forwarded first, then queued for
        the disk. Returns the SHA-256 the sender claims in END."""
        sink = self.sink
        assert sink is not None
        last_progress = 0.0
        loop = asyncio.get_running_loop()
        while True:
            got = await self.frames.next()
            if got is None:
                raise asyncio.IncompleteReadError(b"", None)  # interrupted: keep the partial file
            kind, payload = got
            if kind == xfer.END:
                return xfer.parse_end(payload)
            if kind != xfer.DATA:
                raise DecodeError(f"unexpected transfer frame 0x{kind:08X}", "state")
            if sink.pos + len(payload) > size:
                raise DecodeError("more data than offered", "state")
            down = self.down
            if down is not None and not down.failed:
                self._down_write(xfer.data_header(len(payload)))
                self._down_write(payload)
            sink.put(payload)
            if down is not None:
                await self._down_drain()
            now = loop.time()
            if now - last_progress >= PROGRESS_INTERVAL:
                last_progress = now
                self.send_up(xfer.progress(self.me, sink.saved))
                await self.writer.drain()

    async def _complete(self, name: str, size: int, claimed: str) -> xfer.Result:
        sink = self.sink
        assert sink is not None
        pos = sink.pos
        if sink.error is not None:
            log.warning("bulk transfer not saved", peer=str(self.remote.addr), name=name, error=str(sink.error))
            return xfer.Result(self.me, False, sink.saved, error=f"save failed: {sink.error.strerror or sink.error}")
        if pos != size or sink.digest.hexdigest() != claimed:
            self._close_partial(remove=True)
            log.warning("bulk transfer failed verification", peer=str(self.remote.addr), name=name)
            return xfer.Result(self.me, False, pos, error=f"SHA-256 mismatch ({pos} of {size} bytes)")
        try:
            await sink.sync()
            self._close_partial(remove=False)
            assert self.partial is not None
            path = self.svc.storage.place(self.partial, name, time.time())
            self.partial = None
        except OSError as exc:
            return xfer.Result(self.me, False, pos, error=f"save failed: {exc.strerror or exc}")
        self.svc._emit("file.received", {"filename": name, "path": str(path), "size": size})
        log.info("file received (bulk)", peer=str(self.remote.addr), name=name, path=str(path), size=size)
        return xfer.Result(self.me, True, size, path=str(path))

    async def _open_downstream(self, offer: xfer.Offer) -> xfer.Ready | None:
        """Connect to the first reachable receiver of the chain and forward
        the offer. Receivers that cannot be reached get a failed RESULT."""
        chain = list(offer.chain)
        while chain:
            head, rest = chain[0], chain[1:]
            try:
                if self.svc._dial is None:
                    raise OSError("this node cannot forward")
                reader, writer = await self.svc._dial(head, xfer.PORT)
                frames = xfer.FrameReader(reader)
                writer.write(xfer.Offer(offer.name, offer.size, offer.id, tuple(rest)).encode())
                await writer.drain()
                got = await frames.next()
                if got is None:
                    raise OSError("connection closed")
                if got[0] == xfer.REFUSED:
                    writer.close()
                    raise OSError(xfer.parse_refused(got[1]))
                if got[0] != xfer.READY:
                    writer.close()
                    raise OSError("unexpected answer to offer")
                ready = xfer.Ready.decode(got[1])
            except Exception as exc:  # any failure of this receiver skips it
                self.send_up(xfer.Result(str(head), False, 0, error=f"{xfer.UNREACHABLE}: {exc}").encode())
                chain = rest
                continue
            self.down = _Downstream(writer, frames, [str(a) for a in chain])
            self.down.task = asyncio.get_running_loop().create_task(self._relay_up(self.down))
            return ready
        return None

    def _down_write(self, data: bytes) -> None:
        down = self.down
        if down is None or down.failed:
            return
        try:
            down.writer.write(data)
        except (ConnectionError, OSError) as exc:
            down.failed = True
            log.info("next receiver lost", error=str(exc))

    async def _down_drain(self) -> None:
        down = self.down
        if down is None or down.failed:
            return
        try:
            await down.writer.drain()
        except (ConnectionError, OSError) as exc:
            down.failed = True
            log.info("next receiver lost", error=str(exc))

    async def _down_send(self, data: bytes) -> None:
        self._down_write(data)
        await self._down_drain()

    async def _relay_up(self, down: _Downstream) -> None:
        try:
            while True:
                got = await down.frames.next()
                if got is None:
                    break
                kind, payload = got
                if kind == xfer.RESULT:
                    down.waiting.discard(xfer.Result.decode(payload).node)
                elif kind != xfer.PROGRESS:
                    raise DecodeError(f"unexpected frame 0x{kind:08X} from the next receiver", "state")
                self.send_up(xfer.frame(kind, payload))
                if not down.waiting:
                    break
        except (DecodeError, ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            log.info("next receiver connection ended", error=str(exc) or type(exc).__name__)
        if down.waiting:
            down.failed = True
            self._report_missing("connection to the next receiver lost")

    def _report_missing(self, why: str) -> None:
        down = self.down
        if down is None:
            return
        for node in sorted(down.waiting):
            self.send_up(xfer.Result(node, False, 0, error=why).encode())
        down.waiting.clear()

    def _close_partial(self, *, remove: bool) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if remove and self.partial is not None:
            try:
                os.unlink(self.partial)
            except FileNotFoundError:
                pass
            self.partial = None

    def cleanup(self) -> None:
        """Whatever happened: close files (an incomplete partial stays for
        resume), drop the downstream connection."""
        self._close_partial(remove=False)
        down = self.down
        if down is not None:
            if down.task is not None and not down.task.done():
                down.task.cancel()
            down.writer.close()
