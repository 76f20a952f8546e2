"""Task submit on port 1003: the daemon's side (services-and-cli.md §A5.3-A5.6).

Wire behaviour is the reference's -- a SUBMIT is answered with one frame of
type SUBMIT carrying 200 or 400, STATUS_UPDATE and SEND_RESULTS get no reply,
anything else is logged and dropped -- with the Part C repairs:

* C-1: only well-formed task IDs reach a path (others: ``400 Invalid task
  ID``, or the frame is dropped) and result file names are reduced to a
  safe base name;
* C-2: ``from`` is the connection's real source (a ``from_addr`` naming
  another node is rejected); status updates and results are taken only
  from the node the task was submitted to, and only for tasks we submitted;
  results are taken once (a replay cannot farm polo points) and the times
  they claim are capped by the task's real age;
* C-3: the queue lives in the task files (:mod:`pilotgw.client.tasks`):
  only ACCEPTED tasks are queued, the head gets ``staged_at``, and only a
  still-ACCEPTED head expires;
* C-4: cancellation and expiry are reported to the submitter;
* C-5: several frames per connection are read, until EOF;
* bounded: frame sizes per type, frames per connection, bytes buffered
  over all connections, submissions per peer per minute, description and
  justification lengths.

Trust is enforced before a connection reaches this service (the node's
inbound policy, trust-and-ipc.md D-5). Nothing here runs any command.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from pilotgw.client.tasks import RECEIVED, SUBMITTED, TaskStore
from pilotgw.daemon.log import Log
from pilotgw.daemon.ratelimit import TokenBucket
from pilotgw.overlay import registry as reg
from pilotgw.overlay import tasksubmit as ts
from pilotgw.overlay.address import PORT_TASK_SUBMIT, Addr, SocketAddr, parse_addr
from pilotgw.overlay.dataexchange import HEADER_LEN, decode_header
from pilotgw.overlay.errors import DecodeError

if TYPE_CHECKING:  # pragma: no cover
    from pilotgw.daemon.node import Node

log = Log("tasks")

#: Cancel check (NEW tasks past their minute) and expiry check periods.
CANCEL_INTERVAL = 10.0
EXPIRE_INTERVAL = 30.0
#: Largest SEND_RESULTS frame (the wire limit) and largest other frame.
MAX_RESULTS_FRAME = ts.MAX_LENGTH
MAX_CONTROL_FRAME = 256 * 1024
MAX_DESCRIPTION = 64 * 1024
MAX_JUSTIFICATION = 4096
MAX_FRAMES_PER_CONN = 16
#: Payload bytes being received over all connections at once.
BUFFER_BUDGET = 48 * 1024 * 1024
#: A connection that sends nothing for this long is closed.
READ_IDLE = 30.0
#: Submissions accepted per peer: a burst, then one every 3 s.
SUBMIT_BURST = 20
SUBMIT_RATE = 1 / 3
#: How long telling a submitter about a cancel/expiry may take.
NOTIFY_TIMEOUT = 20.0
READ_CHUNK = 256 * 1024

Dial = Callable[[Addr, int], Awaitable[tuple[Any, Any]]]


class Registry(Protocol):
    async def request(self, msg: dict[str, Any]) -> dict[str, Any]: ...


class Reader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class _Closed(Exception):
    """The peer ended or broke a frame; stop reading this connection."""


class TaskService:
    """``handle`` serves one accepted connection; ``monitor`` runs the
    cancel/expiry checks for the life of the daemon."""

    port = PORT_TASK_SUBMIT

    def __init__(
        self,
        store: TaskStore,
        *,
        me: Callable[[], Addr],
        dial: Dial,
        registry: Registry | None = None,
        spawn: Callable[[Awaitable[Any]], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._me = me
        self._dial = dial
        self._registry = registry
        self._clock = clock
        self._buffered = 0
        self._buckets: dict[int, TokenBucket] = {}
        self._bg: set[asyncio.Task[Any]] = set()
        self._spawn = spawn or self._track
        self.dropped = 0

    # -- connections -------------------------------------------------------------

    async def handle(self, reader: Reader, writer: Writer, remote: SocketAddr) -> None:
        buf = bytearray()
        try:
            for _ in range(MAX_FRAMES_PER_CONN):
                frame = await self._read_frame(reader, buf)
                if frame is None:
                    return
                reply = await self._dispatch(frame, remote)
                if reply is not None:
                    writer.write(reply.encode())
                    await writer.drain()
        except _Closed as exc:
            if str(exc):
                log.info("task connection closed", remote=str(remote), reason=str(exc))
        except DecodeError as exc:
            self.dropped += 1
            log.info("bad task frame; closing", remote=str(remote), error=str(exc))

    async def _read_some(self, reader: Reader, limit: int) -> bytes:
        try:
            return await asyncio.wait_for(reader.read(limit), READ_IDLE)
        except asyncio.TimeoutError:
            raise _Closed("idle") from None

    async def _read_frame(self, reader: Reader, buf: bytearray) -> ts.Frame | None:
        """The next frame, ``None`` at a clean EOF. Payloads are buffered
        (16 MiB at most) within :data:`BUFFER_BUDGET` over all connections."""
        while len(buf) < HEADER_LEN:
            chunk = await self._read_some(reader, READ_CHUNK)
            if not chunk:
                if buf:
                    raise _Closed("truncated header")
                return None
            buf += chunk
        frame_type, length = decode_header(buf)
        limit = MAX_RESULTS_FRAME if frame_type == ts.SEND_RESULTS else MAX_CONTROL_FRAME
        if length > limit:
            raise DecodeError(f"{ts.type_name(frame_type)} frame of {length} bytes exceeds {limit}", "oversize")
        if self._buffered + length > BUFFER_BUDGET:
            raise _Closed("receive budget exhausted")
        self._buffered += length
        try:
            end = HEADER_LEN + length
            while len(buf) < end:
                chunk = await self._read_some(reader, min(READ_CHUNK, end - len(buf)))
                if not chunk:
                    raise _Closed("truncated frame")
                buf += chunk
            frame = ts.Frame(frame_type, bytes(buf[HEADER_LEN:end]))
            del buf[:end]
        finally:
            self._buffered -= length
        return frame

    async def _dispatch(self, frame: ts.Frame, remote: SocketAddr) -> ts.SubmitResponse | None:
        if frame.type == ts.SUBMIT:
            return await self._submit(ts.SubmitRequest.decode(frame), remote.addr)
        if frame.type == ts.STATUS_UPDATE:
            self._status_update(ts.TaskStatusUpdate.decode(frame), remote.addr)
        elif frame.type == ts.SEND_RESULTS:
            await self._results(ts.TaskResultMessage.decode(frame), remote.addr)
        else:
            self.dropped += 1
            log.info("task frame dropped", remote=str(remote), type=ts.type_name(frame.type))
        return None

    # -- submit --------------------------------------------------------------------

    async def _submit(self, req: ts.SubmitRequest, peer: Addr) -> ts.SubmitResponse:
        def reject(message: str) -> ts.SubmitResponse:
            log.info("task rejected", peer=str(peer), task_id=req.task_id[:64], reason=message)
            return ts.SubmitResponse(req.task_id, ts.REJECTED_CODE, message)

        if not ts.is_task_id(req.task_id):
            return reject("Invalid task ID")
        try:
            claimed = parse_addr(req.from_addr)
        except DecodeError:
            claimed = None
        if claimed != peer:
            return reject("from_addr does not match the sending node")
        if len(req.task_description) > MAX_DESCRIPTION:
            return reject(f"Task description too long (max {MAX_DESCRIPTION} characters)")
        now = self._clock()
        bucket = self._buckets.get(peer.node)
        if bucket is None:
            if len(self._buckets) >= 4096:
                self._buckets.clear()
            bucket = self._buckets[peer.node] = TokenBucket(SUBMIT_RATE, now, capacity=SUBMIT_BURST)
        if not bucket.take(now):
            return reject("Too many tasks submitted; try again later")
        if self._registry is not None:
            try:
                submitter, receiver = await asyncio.gather(self._score(peer.node), self._score(self._me().node))
            except Exception as exc:  # any failure: the reference's single message
                log.info("polo score check failed", peer=str(peer), error=str(exc))
                return reject(ts.MSG_POLO_UNVERIFIED)
            if submitter < receiver:
                return reject(f"Polo score too low: submitter={submitter}, receiver={receiver}")
        task = ts.TaskFile.new(req.task_id, req.task_description, str(peer), str(self._me()), self._clock())
        try:
            with self.store.locked():
                if self.store.exists(RECEIVED, req.task_id):
                    return reject("Duplicate task ID")
                self.store.save(RECEIVED, task)
        except OSError as exc:
            log.error("task not saved", task_id=req.task_id, error=str(exc))
            return reject("Failed to save task")
        log.info("task received", peer=str(peer), task_id=req.task_id)
        return ts.SubmitResponse(req.task_id, ts.ACCEPTED_CODE, ts.MSG_RECEIVED)

    async def _score(self, node: int) -> int:
        assert self._registry is not None
        reply = await self._registry.request(reg.get_polo_score(node))
        score = reply.get("polo_score", 0)
        if isinstance(score, bool) or not isinstance(score, int):
            raise ValueError(f"bad polo_score {score!r}")
        return score

    # -- what the worker tells us about tasks we submitted -----------------------------

    def _from_worker(self, task: ts.TaskFile, peer: Addr) -> bool:
        """C-2: only the node the task was submitted to speaks for it."""
        try:
            return parse_addr(task.to_addr) == peer
        except DecodeError:
            return False

    def _status_update(self, upd: ts.TaskStatusUpdate, peer: Addr) -> None:
        if not ts.is_task_id(upd.task_id) or upd.status not in ts.STATUSES:
            self.dropped += 1
            log.info("status update dropped", peer=str(peer), task_id=upd.task_id[:64], status=upd.status[:32])
            return
        accepted = False

        def change(task: ts.TaskFile) -> bool:
            nonlocal accepted
            if not self._from_worker(task, peer):
                return False
            accepted = True
            task.set_status(upd.status, upd.justification[:MAX_JUSTIFICATION])
            return True

        try:
            self.store.update(SUBMITTED, upd.task_id, change)
        except OSError as exc:
            log.error("status update not saved", task_id=upd.task_id, error=str(exc))
            return
        if not accepted:
            self.dropped += 1
            log.info("status update for a task we did not submit to this node", peer=str(peer), task_id=upd.task_id)
        else:
            log.info("task status", task_id=upd.task_id, status=upd.status)

    async def _results(self, msg: ts.TaskResultMessage, peer: Addr) -> None:
        if not ts.is_task_id(msg.task_id):
            self.dropped += 1
            log.info("results dropped: invalid task ID", peer=str(peer))
            return
        now = self._clock()
        updated: ts.TaskFile | None = None

        def change(task: ts.TaskFile) -> bool:
            nonlocal updated
            # Results are taken once, and only while the task is still open.
            if not self._from_worker(task, peer) or task.status not in (ts.NEW, ts.ACCEPTED, ts.EXECUTING):
                return False
            if msg.result_type == "file" and msg.file_data:
                self.store.save_result(msg.task_id, msg.filename, msg.file_data)
            else:
                self.store.save_result(msg.task_id, None, msg.result_text.encode("utf-8", "replace"))
            task.set_status(ts.COMPLETED, ts.JUST_COMPLETED)
            age_ms = max(int((now - ts.parse_time(task.created_at)) * 1000), 0) if task.created_at else 0
            task.time_idle_ms = min(max(msg.time_idle_ms, 0), age_ms)
            task.time_staged_ms = min(max(msg.time_staged_ms, 0), age_ms)
            task.time_cpu_ms = min(max(msg.time_cpu_ms, 0), age_ms)
            updated = task
            return True

        try:
            self.store.update(SUBMITTED, msg.task_id, change)
        except (OSError, DecodeError) as exc:
            log.error("results not saved", task_id=msg.task_id, error=str(exc))
            return
        if updated is None:
            self.dropped += 1
            log.info("results dropped: unknown, closed or foreign task", peer=str(peer), task_id=msg.task_id)
            return
        log.info("task results received", task_id=msg.task_id, type=msg.result_type)
        if self._registry is not None:
            reward = ts.polo_reward(updated.time_cpu_ms, updated.time_idle_ms, updated.time_staged_ms)
            await self._polo(updated.from_addr, -1)
            if reward > 0:
                await self._polo(updated.to_addr, reward)

    async def _polo(self, addr_text: str, delta: int) -> None:
        if self._registry is None:
            return
        try:
            node = parse_addr(addr_text).node
            await self._registry.request(reg.update_polo_score(node, delta))
        except Exception as exc:  # a polo update is a hint (R-D5); never fail the task for it
            log.warning("polo score update failed", address=addr_text, delta=delta, error=str(exc))

    # -- monitors (A5.5) ---------------------------------------------------------------

    async def monitor(self) -> None:
        """Every 10 s cancel NEW tasks past their minute; every 30 s expire a
        head staged for over an hour. Runs until cancelled."""
        last_expire = self._clock()
        while True:
            await asyncio.sleep(CANCEL_INTERVAL)
            now = self._clock()
            notes = self.sweep_new(now)
            if now - last_expire >= EXPIRE_INTERVAL - 0.5:
                last_expire = now
                expired = self.sweep_head(now)
                notes += expired
                for _ in expired:
                    await self._polo(str(self._me()), -1)
            for task, status, justification in notes:
                self._spawn(self._notify(task, status, justification))

    def _copy_to_submitted(self, task_id: str, status: str, justification: str, apply: Callable[[ts.TaskFile], None]) -> None:
        """A task submitted to ourselves has a local submitted copy too."""
        def change(sub: ts.TaskFile) -> bool:
            sub.set_status(status, justification)
            apply(sub)
            return True

        self.store.update(SUBMITTED, task_id, change)

    def sweep_new(self, now: float) -> list[tuple[ts.TaskFile, str, str]]:
        """Cancel every received NEW task older than a minute; returns what
        to tell the submitters."""
        out: list[tuple[ts.TaskFile, str, str]] = []
        try:
            with self.store.locked():
                for task in self.store.scan(RECEIVED) or []:
                    if not ts.accept_expired(task, now):
                        continue
                    task.set_status(ts.CANCELLED, ts.JUST_CANCELLED)
                    task.record_response(now)
                    self.store.save(RECEIVED, task)
                    self._copy_to_submitted(task.task_id, ts.CANCELLED, ts.JUST_CANCELLED, lambda t: t.record_response(now))
                    log.info("task cancelled: not accepted within 1 minute", task_id=task.task_id)
                    out.append((task, ts.CANCELLED, ts.JUST_CANCELLED))
        except OSError as exc:
            log.error("task cancel check failed", error=str(exc))
        return out

    def sweep_head(self, now: float) -> list[tuple[ts.TaskFile, str, str]]:
        """Expire the queue head if it has been there over an hour, and
        stage the next one."""
        out: list[tuple[ts.TaskFile, str, str]] = []
        try:
            with self.store.locked():
                self.store.restage(now)
                queue = ts.queue_order(self.store.scan(RECEIVED) or [])
                if queue and ts.head_expired(queue[0], now):
                    task = queue[0]
                    task.set_status(ts.EXPIRED, ts.JUST_EXPIRED_RECEIVER)
                    task.record_execution(now)
                    self.store.save(RECEIVED, task)
                    staged = task.staged_at
                    self._copy_to_submitted(task.task_id, ts.EXPIRED, ts.JUST_EXPIRED_SUBMITTER,
                                            lambda t: t.record_execution(now, ts.parse_time(staged)))  # fmt: skip
                    log.info("task expired: at the head of the queue for over 1 hour", task_id=task.task_id)
                    out.append((task, ts.EXPIRED, ts.JUST_EXPIRED_SUBMITTER))
                    self.store.restage(now)
        except OSError as exc:
            log.error("task expiry check failed", error=str(exc))
        return out

    def _track(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _notify(self, task: ts.TaskFile, status: str, justification: str) -> None:
        """C-4: tell the submitter, best effort (not ourselves: the local
        submitted copy was already updated)."""
        try:
            addr = parse_addr(task.from_addr)
        except DecodeError:
            return
        if addr == self._me():
            return
        frame = ts.TaskStatusUpdate(task.task_id, status, justification).encode()
        try:
            async with asyncio.timeout(NOTIFY_TIMEOUT):
                _, writer = await self._dial(addr, PORT_TASK_SUBMIT)
                try:
                    writer.write(frame)
                    await writer.drain()
                finally:
                    writer.close()
        except Exception as exc:
            log.info("submitter not notified", task_id=task.task_id, status=status, error=str(exc) or type(exc).__name__)


def install(node: "Node", home: Any, dial: Dial) -> TaskService:
    """Bind port 1003 and start the monitors (stopped with the node)."""
    service = TaskService(TaskStore(home), me=lambda: node.address, dial=dial, registry=node.registry,
                          spawn=node._spawn)
    node.add_service(service)
    node._spawn(service.monitor())
    return service
