"""Task submit on virtual port 1003: frames, messages and task files
(services-and-cli.md §A5, C-1, C-3, C-6).

Frames share the data-exchange header -- ``type u32 | length u32 | JSON``,
at most 16 MiB -- so the header codec and the incremental reader are the
ones of :mod:`pilotgw.overlay.dataexchange`. Payloads are Go structs: fields
are written in declared order (``omitempty`` ones left out when empty or
zero) and read the way Go fills a struct (:mod:`pilotgw.overlay.goread`).

The task file (A5.4) and its time bookkeeping, the queue order and staging
(C-3, C-6), the polo reward (A5.6), task-ID and result-name validation (C-1)
and the allowed result extensions (A5.7) are here too: the daemon and
``pilotctl`` both apply them to the same files, so they must agree. All of
it is sans-IO; "now" is always passed in as Unix seconds.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import math
import re
import secrets
from dataclasses import dataclass, fields, replace
from typing import Any, Iterable, Union

from pilotgw.overlay import gojson, goread
from pilotgw.overlay.dataexchange import HEADER_LEN, MAX_LENGTH, Frame, FrameAssembler, decode, encode_header
from pilotgw.overlay.errors import DecodeError

__all__ = [
    "SUBMIT", "RESULT", "STATUS_UPDATE", "SEND_RESULTS", "MAX_LENGTH", "HEADER_LEN", "Frame", "FrameAssembler",
    "decode", "SubmitRequest", "SubmitResponse", "TaskStatusUpdate", "TaskResultMessage", "TaskResult",
    "TaskFile", "decode_message", "polo_reward", "new_task_id", "is_task_id", "safe_result_name",
    "result_file_allowed", "queue_order", "stage_head",
]  # fmt: skip

# Frame types (A5.1). SUBMIT is also the type of the submit response.
SUBMIT = 1
RESULT = 2
STATUS_UPDATE = 3
SEND_RESULTS = 4
_TYPE_NAMES = {SUBMIT: "SUBMIT", RESULT: "RESULT", STATUS_UPDATE: "STATUS_UPDATE", SEND_RESULTS: "SEND_RESULTS"}

# SubmitResponse.status
ACCEPTED_CODE = 200
REJECTED_CODE = 400

# Task statuses
NEW = "NEW"
ACCEPTED = "ACCEPTED"
DECLINED = "DECLINED"
EXECUTING = "EXECUTING"
COMPLETED = "COMPLETED"
SUCCEEDED = "SUCCEEDED"
CANCELLED = "CANCELLED"
EXPIRED = "EXPIRED"
STATUSES = frozenset({NEW, ACCEPTED, DECLINED, EXECUTING, COMPLETED, SUCCEEDED, CANCELLED, EXPIRED})

#: A NEW task must be accepted within this many seconds of its creation.
ACCEPT_TIMEOUT = 60.0
#: An ACCEPTED task may stay at the head of the queue this long.
HEAD_TIMEOUT = 3600.0

# Texts written into task files and status updates (A5.3, A5.5, A14).
JUST_CREATED = "A new task was created"
JUST_ACCEPTED = "Task accepted"
JUST_EXECUTING = "Task execution started"
JUST_RESULTS_SENT = "Results sent successfully"
JUST_SUCCEEDED = "Task completed successfully"
JUST_COMPLETED = "Task completed with results"
JUST_CANCELLED = "Task cancelled: no response within 1 minute"
JUST_EXPIRED_RECEIVER = "Task expired: at head of queue for over 1 hour"
JUST_EXPIRED_SUBMITTER = "Task expired: receiver did not execute within 1 hour"

MSG_RECEIVED = "Task received with status NEW"
MSG_POLO_UNVERIFIED = "Failed to verify polo score"

#: Result files (A5.7), checked on the lower-cased extension.
ALLOWED_RESULT_EXTENSIONS = frozenset(
    ".md .txt .rtf .docx .pdf .pptx .pth .pt .onnx .h5 .pb .ckpt .safetensors .bin .csv .parquet .xlsx .xls "
    ".jpg .jpeg .png .svg .gif .webp".split()
)

_TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Room left for ``<task_id>_`` in a 255-byte file name.
_RESULT_NAME_MAX = 255 - 37


def type_name(frame_type: int) -> str:
    """``SUBMIT`` ... ``SEND_RESULTS``, else ``UNKNOWN(n)`` (as logged)."""
    return _TYPE_NAMES.get(frame_type, f"UNKNOWN({frame_type})")


# --------------------------------------------------------------------------
# Task IDs and names (C-1)


def new_task_id(raw: bytes | None = None) -> str:
    """16 random bytes as lower-case hex in 8-4-4-4-12 groups (no UUID
    version bits, like the reference)."""
    data = secrets.token_bytes(16) if raw is None else raw
    if len(data) != 16:
        raise ValueError(f"a task ID needs 16 bytes, got {len(data)}")
    h = data.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_task_id(text: object) -> bool:
    """The only IDs we ever use in a file name: exactly the form the
    reference generates, so nothing else can reach the file system."""
    return isinstance(text, str) and _TASK_ID.fullmatch(text) is not None


def _extension(name: str) -> str:
    """Go's ``filepath.Ext``: from the last dot of the last element."""
    base = name.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[dot:] if dot >= 0 else ""


def result_file_allowed(name: str) -> bool:
    return _extension(name).lower() in ALLOWED_RESULT_EXTENSIONS


def result_extension(name: str) -> str:
    """The extension the ``file type "<ext>" not allowed`` error names."""
    return _extension(name)


def safe_result_name(name: str) -> str:
    """A result file name that cannot leave ``results/`` (C-1): the last
    element after ``/`` or ``\\``, control characters (NUL included) as
    ``_``, no leading dots, at most 218 UTF-8 bytes with the extension
    kept; ``result.bin`` when nothing usable is left."""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join("_" if ord(c) < 0x20 or c == "\x7f" else c for c in base).lstrip(".")
    base = base.encode("utf-8", "replace").decode("utf-8")
    if not base:
        return "result.bin"
    raw = base.encode("utf-8")
    if len(raw) > _RESULT_NAME_MAX:
        ext = _extension(base).encode("utf-8")
        ext = ext if len(ext) <= 32 else b""
        stem = raw[: _RESULT_NAME_MAX - len(ext)].decode("utf-8", "ignore")
        base = stem + ext.decode("utf-8")
    return base


# --------------------------------------------------------------------------
# Time


def format_time(now: float) -> str:
    """UTC RFC 3339 with seconds: ``2026-01-15T12:34:56Z``."""
    return _dt.datetime.fromtimestamp(math.floor(now), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """An RFC 3339 stamp (any offset, optional fraction) as Unix seconds."""
    if not isinstance(text, str) or not re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", text, re.ASCII
    ):
        raise DecodeError(f"invalid time {text!r} (expected RFC 3339)", "time")
    stamp = text.replace("Z", "+00:00")
    frac = 0.0
    if "." in stamp:
        head, rest = stamp.split(".", 1)
        digits = rest[:-6]
        frac = int(digits) / 10 ** len(digits)
        stamp = head + rest[-6:]
    try:
        return _dt.datetime.fromisoformat(stamp).timestamp() + frac
    except (ValueError, OverflowError) as exc:
        raise DecodeError(f"invalid time {text!r}: {exc}", "time") from None


def _elapsed_ms(now: float, since: str) -> int:
    """Go's ``now.Sub(t).Milliseconds()`` (truncated toward zero); 0 when
    ``since`` is not a valid stamp (a hand-edited file must not break a
    status change)."""
    try:
        return int((now - parse_time(since)) * 1000)
    except DecodeError:
        return 0


# --------------------------------------------------------------------------
# Messages


def _json(obj: dict[str, Any]) -> bytes:
    return gojson.dumpb(obj, sort_keys=False)


def encode_frame(frame_type: int, payload: bytes) -> bytes:
    """Header plus payload; ``ValueError`` past the 16 MiB limit."""
    return encode_header(frame_type, len(payload)) + payload


def _b64(field_name: str, value: Any) -> bytes:
    """Go's ``[]byte`` field: standard base64 with padding (CR/LF ignored)."""
    text = goread.string(field_name, value).replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"illegal base64 data in field {field_name}", "json") from None


def _any(field_name: str, value: Any) -> Any:
    return goread.plain(value)


def _fields(frame: Frame, schema: dict[str, goread.Reader]) -> dict[str, Any]:
    return goread.fields(goread.loads(frame.payload), schema)


def _expect(frame: Frame, frame_type: int) -> None:
    if frame.type != frame_type:
        raise DecodeError(f"expected {type_name(frame_type)} frame, got {type_name(frame.type)}", "type")


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    task_id: str
    task_description: str
    from_addr: str
    to_addr: str

    frame_type = SUBMIT

    def payload(self) -> bytes:
        return _json({"task_id": self.task_id, "task_description": self.task_description,
                      "from_addr": self.from_addr, "to_addr": self.to_addr})  # fmt: skip

    def encode(self) -> bytes:
        return encode_frame(SUBMIT, self.payload())

    @classmethod
    def decode(cls, frame: Frame) -> "SubmitRequest":
        _expect(frame, SUBMIT)
        s = goread.string
        f = _fields(frame, {"task_id": s, "task_description": s, "from_addr": s, "to_addr": s})
        return cls(f.get("task_id", ""), f.get("task_description", ""), f.get("from_addr", ""), f.get("to_addr", ""))


@dataclass(frozen=True, slots=True)
class SubmitResponse:
    """The answer to a submit, sent with frame type SUBMIT (Q5)."""

    task_id: str
    status: int
    message: str

    frame_type = SUBMIT

    @property
    def accepted(self) -> bool:
        return self.status == ACCEPTED_CODE

    def payload(self) -> bytes:
        return _json({"task_id": self.task_id, "status": self.status, "message": self.message})

    def encode(self) -> bytes:
        return encode_frame(SUBMIT, self.payload())

    @classmethod
    def decode(cls, frame: Frame) -> "SubmitResponse":
        """Any frame type, as the reference's response decoder."""
        s = goread.string
        f = _fields(frame, {"task_id": s, "status": goread.i64, "message": s})
        return cls(f.get("task_id", ""), f.get("status", 0), f.get("message", ""))


@dataclass(frozen=True, slots=True)
class TaskStatusUpdate:
    task_id: str
    status: str
    justification: str

    frame_type = STATUS_UPDATE

    def payload(self) -> bytes:
        return _json({"task_id": self.task_id, "status": self.status, "justification": self.justification})

    def encode(self) -> bytes:
        return encode_frame(STATUS_UPDATE, self.payload())

    @classmethod
    def decode(cls, frame: Frame) -> "TaskStatusUpdate":
        _expect(frame, STATUS_UPDATE)
        s = goread.string
        f = _fields(frame, {"task_id": s, "status": s, "justification": s})
        return cls(f.get("task_id", ""), f.get("status", ""), f.get("justification", ""))


@dataclass(frozen=True, slots=True)
class TaskResultMessage:
    """Results from the worker: text, or a file carried base64 in JSON."""

    task_id: str
    result_type: str  # "text" or "file"
    completed_at: str
    result_text: str = ""
    filename: str = ""
    file_data: bytes = b""
    time_idle_ms: int = 0
    time_staged_ms: int = 0
    time_cpu_ms: int = 0

    frame_type = SEND_RESULTS

    def payload(self) -> bytes:
        doc: dict[str, Any] = {"task_id": self.task_id, "result_type": self.result_type}
        if self.result_text:
            doc["result_text"] = self.result_text
        if self.filename:
            doc["filename"] = self.filename
        if self.file_data:
            doc["file_data"] = base64.b64encode(self.file_data).decode("ascii")
        doc["completed_at"] = self.completed_at
        for key in ("time_idle_ms", "time_staged_ms", "time_cpu_ms"):
            if getattr(self, key):
                doc[key] = getattr(self, key)
        return _json(doc)

    def encode(self) -> bytes:
        return encode_frame(SEND_RESULTS, self.payload())

    @classmethod
    def decode(cls, frame: Frame) -> "TaskResultMessage":
        _expect(frame, SEND_RESULTS)
        s, i = goread.string, goread.i64
        f = _fields(frame, {"task_id": s, "result_type": s, "result_text": s, "filename": s, "file_data": _b64,
                            "completed_at": s, "time_idle_ms": i, "time_staged_ms": i, "time_cpu_ms": i})  # fmt: skip
        return cls(**{"task_id": "", "result_type": "", "completed_at": "", **f})


@dataclass(frozen=True, slots=True)
class TaskResult:
    """The legacy RESULT message (type 2): decoded for completeness, never
    acted on by the daemon."""

    task_description: str
    status: str
    result: Any
    timestamp: str
    error: str = ""

    frame_type = RESULT

    def payload(self) -> bytes:
        doc: dict[str, Any] = {"task_description": self.task_description, "status": self.status, "result": self.result}
        if self.error:
            doc["error"] = self.error
        doc["timestamp"] = self.timestamp
        return _json(doc)

    def encode(self) -> bytes:
        return encode_frame(RESULT, self.payload())

    @classmethod
    def decode(cls, frame: Frame) -> "TaskResult":
        _expect(frame, RESULT)
        s = goread.string
        f = _fields(frame, {"task_description": s, "status": s, "result": _any, "error": s, "timestamp": s})
        return cls(f.get("task_description", ""), f.get("status", ""), f.get("result"), f.get("timestamp", ""),
                   f.get("error", ""))  # fmt: skip


Message = Union[SubmitRequest, TaskResult, TaskStatusUpdate, TaskResultMessage]
_BY_TYPE: dict[int, Any] = {SUBMIT: SubmitRequest, RESULT: TaskResult, STATUS_UPDATE: TaskStatusUpdate,
                            SEND_RESULTS: TaskResultMessage}  # fmt: skip


def decode_message(frame: Frame) -> Message:
    """A frame as the daemon reads it (SUBMIT is a request there)."""
    cls = _BY_TYPE.get(frame.type)
    if cls is None:
        raise DecodeError(f"unknown task frame type {type_name(frame.type)}", "type")
    return cls.decode(frame)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------
# Task files (A5.4)

_FILE_KEYS = (
    ("task_id", "task_id"), ("task_description", "task_description"), ("created_at", "created_at"),
    ("status", "status"), ("status_justification", "status_justification"), ("from", "from_addr"),
    ("to", "to_addr"), ("accepted_at", "accepted_at"), ("staged_at", "staged_at"),
    ("execute_started_at", "execute_started_at"), ("completed_at", "completed_at"),
    ("time_idle_ms", "time_idle_ms"), ("time_staged_ms", "time_staged_ms"), ("time_cpu_ms", "time_cpu_ms"),
)  # fmt: skip
_ALWAYS = 7  # the first seven keys have no omitempty


@dataclass(slots=True)
class TaskFile:
    """One ``tasks/{received,submitted}/<task_id>.json`` document."""

    task_id: str
    task_description: str
    created_at: str
    status: str
    status_justification: str
    from_addr: str
    to_addr: str
    accepted_at: str = ""
    staged_at: str = ""
    execute_started_at: str = ""
    completed_at: str = ""
    time_idle_ms: int = 0
    time_staged_ms: int = 0
    time_cpu_ms: int = 0

    @classmethod
    def new(cls, task_id: str, description: str, from_addr: str, to_addr: str, now: float) -> "TaskFile":
        return cls(task_id, description, format_time(now), NEW, JUST_CREATED, from_addr, to_addr)

    def to_json(self) -> bytes:
        """2-space indented Go-JSON in field order, no trailing newline."""
        doc: dict[str, Any] = {}
        for i, (key, attr) in enumerate(_FILE_KEYS):
            value = getattr(self, attr)
            if i < _ALWAYS or value:
                doc[key] = value
        return gojson.dumps(doc, sort_keys=False, indent=True).encode("utf-8", "replace")

    @classmethod
    def parse(cls, data: bytes) -> "TaskFile":
        s, i = goread.string, goread.i64
        schema = {key: (i if key.startswith("time_") else s) for key, _ in _FILE_KEYS}
        f = goread.fields(goread.loads(data), schema)
        values = {attr: f[key] for key, attr in _FILE_KEYS if key in f}
        defaults = {fl.name: ("" if fl.type == "str" else 0) for fl in fields(cls)}
        return cls(**{**defaults, **values})

    def copy(self) -> "TaskFile":
        return replace(self)

    def set_status(self, status: str, justification: str) -> None:
        self.status = status
        self.status_justification = justification

    def record_response(self, now: float) -> None:
        """Accept, decline or cancel: ``accepted_at`` and the idle time."""
        self.accepted_at = format_time(now)
        self.time_idle_ms = _elapsed_ms(now, self.created_at)

    def record_execution(self, now: float, staged_at: float | None = None) -> None:
        """Execute or expire: the time spent staged at the queue head."""
        if staged_at is not None:
            self.staged_at = format_time(staged_at)
        if self.staged_at:
            self.execute_started_at = format_time(now)
            self.time_staged_ms = _elapsed_ms(now, self.staged_at)

    def record_completion(self, now: float) -> None:
        if self.execute_started_at:
            self.completed_at = format_time(now)
            self.time_cpu_ms = _elapsed_ms(now, self.execute_started_at)


def _time_or_inf(text: str) -> float:
    try:
        return parse_time(text)
    except DecodeError:
        return math.inf


def queue_order(tasks: Iterable[TaskFile]) -> list[TaskFile]:
    """The ACCEPTED tasks, oldest acceptance first (C-6: FIFO, not file-name
    order); ties by creation time, then ID."""
    queued = [t for t in tasks if t.status == ACCEPTED]
    return sorted(queued, key=lambda t: (_time_or_inf(t.accepted_at), _time_or_inf(t.created_at), t.task_id))


def stage_head(tasks: Iterable[TaskFile], now: float) -> TaskFile | None:
    """C-3: the queue lives in the task files. When a task becomes head it
    gets ``staged_at`` = now; returns that task (to be saved) or ``None``
    when the head was already staged or the queue is empty."""
    queue = queue_order(tasks)
    if not queue or queue[0].staged_at:
        return None
    queue[0].staged_at = format_time(now)
    return queue[0]


def accept_expired(task: TaskFile, now: float) -> bool:
    """A NEW task past the one-minute accept deadline."""
    return task.status == NEW and now - _time_or_inf(task.created_at) > ACCEPT_TIMEOUT


def head_expired(task: TaskFile, now: float) -> bool:
    """A still-ACCEPTED head staged for over an hour (C-3: only ACCEPTED)."""
    return task.status == ACCEPTED and bool(task.staged_at) and now - _time_or_inf(task.staged_at) > HEAD_TIMEOUT


# --------------------------------------------------------------------------
# Polo reward (A5.6)


def polo_reward(time_cpu_ms: int, time_idle_ms: int, time_staged_ms: int) -> int:
    """The worker's reward: more for CPU time, less for making the submitter
    wait; always at least 1."""
    cpu_bonus = math.log2(1 + max(time_cpu_ms, 0) / 60000)
    idle_factor = min(max((time_idle_ms / 1000) / 60 * 0.3, 0.0), 0.3)
    staged_factor = min(max((time_staged_ms / 1000) / 600 * 0.3, 0.0), 0.3)
    efficiency = max(1 - idle_factor - staged_factor, 0.4)
    raw = (1 + cpu_bonus) * efficiency
    return max(int(raw + 0.5), 1)
