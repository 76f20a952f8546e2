"""``~/.pilot/tasks``: the task files that the task-submit service (port
1003) and ``pilotctl task`` share (services-and-cli.md §A5.4, §A14).

``received/<id>.json`` are tasks others submitted to this node,
``submitted/<id>.json`` tasks this node submitted, ``results/`` what
workers sent back. The daemon writes new received tasks, status changes
reported by workers and results; the local user (``pilotctl task accept``
...) changes received tasks. Both sides go through :class:`TaskStore`, so:

* every write is atomic (temporary file, ``fsync``, rename; mode 0600 in
  0700 folders), so a reader never sees half a file;
* every read-modify-write holds an exclusive ``flock`` on ``tasks/.lock``,
  so the daemon's monitors and a concurrent ``pilotctl`` never lose each
  other's update;
* only well-formed task IDs reach a path (C-1);
* the queue is the set of ACCEPTED files ordered by ``accepted_at`` and its
  head carries ``staged_at`` (C-3, C-6), so CLI and daemon see one queue.

The operations below raise :class:`~pilotgw.client.errors.PilotError` with
the contract's codes and texts, so ``pilotctl`` prints them unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from pilotgw.client.errors import ConnectionFailed, InvalidArgument, NotFound, PilotError
from pilotgw.overlay import tasksubmit as ts
from pilotgw.overlay.address import Addr, parse_addr
from pilotgw.overlay.errors import DecodeError

RECEIVED = "received"
SUBMITTED = "submitted"
CATEGORIES = (RECEIVED, SUBMITTED)

#: Largest result file: its base64 must fit one 16 MiB frame with the JSON around it.
MAX_RESULT_FILE = (ts.MAX_LENGTH - 64 * 1024) // 4 * 3


def default_dir() -> str:
    home = os.environ.get("HOME") or os.path.expanduser("~")
    if not home or home == "~":
        raise PilotError("cannot determine home directory", "internal")
    return os.path.join(home, ".pilot")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class TaskStore:
    """The task folders under one ``.pilot`` directory.

    A store object caches parsed files by (mtime, size), so the daemon's
    periodic scans read only files that changed since the last scan.
    """

    def __init__(self, pilot_dir: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(pilot_dir if pilot_dir is not None else default_dir()) / "tasks"
        self.results = self.root / "results"
        self._cache: dict[Path, tuple[int, int, ts.TaskFile]] = {}
        self._lock_depth = 0

    def folder(self, category: str) -> Path:
        if category not in CATEGORIES:
            raise ValueError(f"unknown task category {category!r}")
        return self.root / category

    def ensure_dirs(self) -> None:
        """``submitted/`` and ``received/`` (0700), created together."""
        for category in CATEGORIES:
            path = self.folder(category)
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if path.is_symlink() or not path.is_dir():
                raise OSError(f"{path} is not a directory")

    def path(self, category: str, task_id: str) -> Path:
        if not ts.is_task_id(task_id):
            raise ValueError(f"invalid task ID {task_id!r}")
        return self.folder(category) / f"{task_id}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes for one read-modify-write; re-entrant
        within this store (a second ``flock`` on a new descriptor would
        wait for ourselves)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            yield
        finally:
            self._lock_depth = 0
            os.close(fd)  # releases the lock

    def exists(self, category: str, task_id: str) -> bool:
        return self.path(category, task_id).exists()

    def load(self, category: str, task_id: str) -> ts.TaskFile:
        """``FileNotFoundError`` when absent, ``ValueError`` for a bad ID,
        :class:`DecodeError` for a file that is not a task."""
        path = self.path(category, task_id)
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as fh:
            return ts.TaskFile.parse(fh.read(1 << 24))

    def save(self, category: str, task: ts.TaskFile) -> None:
        self.ensure_dirs()
        _write_atomic(self.path(category, task.task_id), task.to_json())

    def scan(self, category: str) -> list[ts.TaskFile] | None:
        """Every valid task file in file-name order (copies, safe to modify);
        ``None`` when the folder does not exist. Unreadable files are skipped."""
        folder = self.folder(category)
        try:
            entries = sorted((e for e in os.scandir(folder) if e.name.endswith(".json")), key=lambda e: e.name)
        except FileNotFoundError:
            return None
        out: list[ts.TaskFile] = []
        seen: set[Path] = set()
        for entry in entries:
            if not ts.is_task_id(entry.name[: -len(".json")]):
                continue
            path = Path(entry.path)
            try:
                st = entry.stat(follow_symlinks=False)
                cached = self._cache.get(path)
                if cached is not None and cached[:2] == (st.st_mtime_ns, st.st_size):
                    task = cached[2]
                else:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    task = ts.TaskFile.parse(path.read_bytes())
                    self._cache[path] = (st.st_mtime_ns, st.st_size, task)
            except (OSError, DecodeError):
                continue
            seen.add(path)
            out.append(task.copy())
        for stale in [p for p in self._cache if p.parent == folder and p not in seen]:
            del self._cache[stale]
        return out

    def update(self, category: str, task_id: str, change: Callable[[ts.TaskFile], bool]) -> ts.TaskFile | None:
        """Load, apply ``change`` and save if it returned True, under the
        lock; ``None`` when the task does not exist or does not parse."""
        with self.locked():
            try:
                task = self.load(category, task_id)
            except (OSError, DecodeError):
                return None
            if change(task):
                self.save(category, task)
            return task

    def restage(self, now: float) -> ts.TaskFile | None:
        """Give the queue head its ``staged_at`` if it has none (call with
        the lock held, after any change that can move the head)."""
        head = ts.stage_head(self.scan(RECEIVED) or [], now)
        if head is not None:
            self.save(RECEIVED, head)
        return head

    def save_result(self, task_id: str, filename: str | None, data: bytes) -> Path:
        """``results/<task_id>_<safe name>`` (or ``_result.txt`` for text), 0600."""
        if not ts.is_task_id(task_id):
            raise ValueError(f"invalid task ID {task_id!r}")
        self.results.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{task_id}_{ts.safe_result_name(filename) if filename is not None else 'result.txt'}"
        path = self.results / name
        _write_atomic(path, data)
        return path


# --------------------------------------------------------------------------
# What pilotctl task ... does locally (A14). Each returns what the caller
# needs to notify the submitter afterwards.


def _write_failed(exc: OSError) -> PilotError:
    return PilotError(f"failed to update task status: {exc}", "internal_error")


def _load_received(store: TaskStore, task_id: str) -> ts.TaskFile:
    try:
        return store.load(RECEIVED, task_id)
    except (OSError, ValueError, DecodeError):
        raise NotFound(f"task not found: {task_id}", hint="check pilotctl task list --type received") from None


def _change_received(store: TaskStore, task_id: str, now: float, change: Callable[[ts.TaskFile], None]) -> ts.TaskFile:
    """Load under the lock, let ``change`` check and modify, save, restage."""
    try:
        with store.locked():
            task = _load_received(store, task_id)
            change(task)
            store.save(RECEIVED, task)
            store.restage(now)
    except OSError as exc:
        raise _write_failed(exc) from None
    return task


def _require_new(task: ts.TaskFile) -> None:
    if task.status != ts.NEW:
        raise PilotError(f"task {task.task_id} is already {task.status}", "invalid_state")


def accept(store: TaskStore, task_id: str, now: float) -> ts.TaskFile:
    def change(task: ts.TaskFile) -> None:
        _require_new(task)
        if ts.accept_expired(task, now):
            raise PilotError(f"task {task_id} has expired (accept deadline was 1 minute after creation)", "expired")
        task.set_status(ts.ACCEPTED, ts.JUST_ACCEPTED)
        task.record_response(now)

    return _change_received(store, task_id, now, change)


def decline(store: TaskStore, task_id: str, justification: str, now: float) -> ts.TaskFile:
    def change(task: ts.TaskFile) -> None:
        _require_new(task)
        task.set_status(ts.DECLINED, justification)
        task.record_response(now)

    return _change_received(store, task_id, now, change)


def execute(store: TaskStore, now: float) -> ts.TaskFile:
    """Start the head of the queue (FIFO by acceptance, C-6)."""
    try:
        with store.locked():
            store.restage(now)
            tasks = store.scan(RECEIVED)
            if tasks is None:
                raise NotFound("no received tasks found")
            queue = ts.queue_order(tasks)
            if not queue:
                raise NotFound("no accepted tasks to execute")
            task = queue[0]
            task.set_status(ts.EXECUTING, ts.JUST_EXECUTING)
            task.record_execution(now, None if task.staged_at else now)
            store.save(RECEIVED, task)
            store.restage(now)
    except OSError as exc:
        raise _write_failed(exc) from None
    return task


@dataclass(frozen=True)
class Results:
    """What ``send-results`` sends and reports."""

    task: ts.TaskFile
    message: ts.TaskResultMessage
    data: dict[str, Any]


def read_result_file(path: str) -> tuple[str, bytes]:
    """The file's base name and bytes, checked against A5.7 and the frame limit."""
    if not ts.result_file_allowed(path):
        raise InvalidArgument(f'file type "{ts.result_extension(path)}" not allowed for results')
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_RESULT_FILE:
                raise InvalidArgument(f"file too large: {size} bytes (max {MAX_RESULT_FILE})")
            data = fh.read(MAX_RESULT_FILE + 1)
    except OSError as exc:
        raise PilotError(f"failed to read file: {_go_path_error(exc, path)}", "internal_error") from None
    if len(data) > MAX_RESULT_FILE:
        raise InvalidArgument(f"file too large: {len(data)} bytes (max {MAX_RESULT_FILE})")
    return os.path.basename(path), data


def _go_path_error(exc: OSError, path: str) -> str:
    """Go's ``open <path>: <reason>`` wording."""
    reason = (exc.strerror or str(exc)).lower()
    return f"open {path}: {reason}"


def prepare_results(store: TaskStore, task_id: str, text: str, file_path: str, now: float) -> Results:
    """Check the task and the result, mark it SUCCEEDED and build the message
    (``file_path`` wins over ``text``)."""
    task = _load_received(store, task_id)
    if task.status not in (ts.EXECUTING, ts.ACCEPTED):
        raise PilotError(f"task {task_id} cannot receive results (status: {task.status})", "invalid_state")
    filename, data = read_result_file(file_path) if file_path else ("", b"")

    def change(task: ts.TaskFile) -> None:
        if task.status not in (ts.EXECUTING, ts.ACCEPTED):
            raise PilotError(f"task {task_id} cannot receive results (status: {task.status})", "invalid_state")
        task.set_status(ts.SUCCEEDED, ts.JUST_RESULTS_SENT)
        task.record_completion(now)

    task = _change_received(store, task_id, now, change)
    common = {"task_id": task_id, "completed_at": ts.format_time(now), "time_idle_ms": task.time_idle_ms,
              "time_staged_ms": task.time_staged_ms, "time_cpu_ms": task.time_cpu_ms}  # fmt: skip
    out: dict[str, Any] = {"sent_to": task.from_addr, "status": ts.SUCCEEDED, "task_id": task_id}
    if file_path:
        message = ts.TaskResultMessage(result_type="file", filename=filename, file_data=data, **common)
        out.update(file_size=len(data), filename=filename, sent_type="file")
    else:
        message = ts.TaskResultMessage(result_type="text", result_text=text, **common)
        out["sent_type"] = "text"
    return Results(task, message, out)


def submitted(store: TaskStore, task_id: str, description: str, me: str, target: str, now: float) -> ts.TaskFile:
    """Record a task the target accepted (``submitted/<id>.json``)."""
    task = ts.TaskFile.new(task_id, description, me, target, now)
    try:
        with store.locked():
            store.save(SUBMITTED, task)
    except OSError as exc:
        raise _write_failed(exc) from None
    return task


def list_tasks(store: TaskStore, category: str = "") -> list[dict[str, Any]]:
    """``task list`` entries: received, then submitted, each in file-name order."""
    if category not in ("",) + CATEGORIES:
        raise InvalidArgument(f'invalid --type "{category}" (expected received or submitted)')
    out = []
    for cat in CATEGORIES:
        if category and cat != category:
            continue
        for t in store.scan(cat) or []:
            out.append({"category": cat, "created_at": t.created_at, "description": t.task_description,
                        "from": t.from_addr, "status": t.status, "task_id": t.task_id, "to": t.to_addr})  # fmt: skip
    return out


def queue(store: TaskStore) -> list[dict[str, Any]]:
    """``task queue`` entries, head first."""
    return [{"created_at": t.created_at, "description": t.task_description, "from": t.from_addr,
             "task_id": t.task_id} for t in ts.queue_order(store.scan(RECEIVED) or [])]  # fmt: skip


# --------------------------------------------------------------------------
# Talking to the other node (shared by the blocking and the asyncio client)

#: How long ``submit`` waits for the receiver's answer (the reference waits forever, C-14).
SUBMIT_TIMEOUT = 30.0
#: How long a status update or results delivery may take to go out.
NOTIFY_TIMEOUT = 30.0


def submitter(task: ts.TaskFile) -> Addr:
    """The node to notify: the task's ``from``."""
    try:
        return parse_addr(task.from_addr)
    except DecodeError as exc:
        raise InvalidArgument(f"invalid from address: {exc}") from None


def submit_request(me: str, target: Addr, description: str) -> ts.SubmitRequest:
    """A SUBMIT with a fresh ID; ``invalid_argument`` if it cannot fit a frame."""
    request = ts.SubmitRequest(ts.new_task_id(), description, me, str(target))
    if len(request.payload()) > ts.MAX_LENGTH:
        raise InvalidArgument(f"task description too large: {len(description.encode())} bytes")
    return request


def dial_failed(target: Addr) -> ConnectionFailed:
    return ConnectionFailed(
        f"cannot connect to {target} (task submit port 1003)", hint=f"check that {target} is reachable: pilotctl ping {target}"
    )


def submitter_unreachable(target: Addr) -> ConnectionFailed:
    return ConnectionFailed(f"cannot connect to submitter {target}", hint=f"check that {target} is reachable")


class ResponseReader:
    """Collects the one frame a submit is answered with."""

    def __init__(self) -> None:
        self._frames = ts.FrameAssembler()

    def feed(self, data: bytes) -> ts.SubmitResponse | None:
        """The response once complete; :class:`DecodeError` if malformed."""
        frames = self._frames.feed(data)
        return ts.SubmitResponse.decode(frames[0]) if frames else None

    @property
    def partial(self) -> bool:
        return not self._frames.at_boundary


def submit_reply(request: ts.SubmitRequest, response: ts.SubmitResponse) -> dict[str, Any]:
    return {"accepted": response.accepted, "message": response.message, "status": response.status,
            "target": request.to_addr, "task": request.task_description, "task_id": request.task_id}  # fmt: skip


def record_submitted(request: ts.SubmitRequest, response: ts.SubmitResponse, pilot_dir: str | None, now: float) -> None:
    if response.accepted:
        submitted(TaskStore(pilot_dir), request.task_id, request.task_description, request.from_addr,
                  request.to_addr, now)  # fmt: skip


def accept_reply(task: ts.TaskFile, notified: bool) -> dict[str, Any]:
    message = "Task accepted" if notified else "Task accepted (submitter notification failed)"
    return {"message": message, "status": ts.ACCEPTED, "task_id": task.task_id}


def decline_reply(task: ts.TaskFile, notified: bool) -> dict[str, Any]:
    message = "Task declined" if notified else "Task declined (submitter notification failed)"
    return {"justification": task.status_justification, "message": message, "status": ts.DECLINED,
            "task_id": task.task_id}  # fmt: skip


def execute_reply(task: ts.TaskFile) -> dict[str, Any]:
    return {"from": task.from_addr, "status": ts.EXECUTING, "task_description": task.task_description,
            "task_id": task.task_id}  # fmt: skip
