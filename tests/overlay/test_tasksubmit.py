"""Task submit codec, task files, queue and reward (services-and-cli.md §A5, C-1, C-3, C-6)."""

from __future__ import annotations

import json
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import tasksubmit as ts
from pilotgw.overlay.errors import DecodeError

TID = "00010203-0405-0607-0809-0a0b0c0d0e0f"
NOW = 1736944496.0  # 2025-01-15T12:34:56Z


def frame(frame_type: int, payload: bytes) -> ts.Frame:
    return ts.decode(struct.pack(">II", frame_type, len(payload)) + payload)


# -- frames and messages --------------------------------------------------------------


def test_submit_request_bytes_in_field_order_with_go_escaping() -> None:
    req = ts.SubmitRequest(TID, "a <b> & c", "0:0000.0000.0001", "0:0000.0000.0002")
    payload = (b'{"task_id":"00010203-0405-0607-0809-0a0b0c0d0e0f","task_description":"a \\u003cb\\u003e \\u0026 c",'
               b'"from_addr":"0:0000.0000.0001","to_addr":"0:0000.0000.0002"}')
    assert req.encode() == struct.pack(">II", 1, len(payload)) + payload
    assert ts.decode_message(ts.decode(req.encode())) == req


def test_submit_response_is_a_type_1_frame_and_its_decoder_ignores_the_type() -> None:
    resp = ts.SubmitResponse(TID, 200, "Task received with status NEW")
    data = resp.encode()
    assert data[:4] == b"\x00\x00\x00\x01"
    assert data[8:] == b'{"task_id":"' + TID.encode() + b'","status":200,"message":"Task received with status NEW"}'
    assert ts.SubmitResponse.decode(frame(7, data[8:])) == resp
    assert resp.accepted and not ts.SubmitResponse(TID, 400, "no").accepted


def test_result_message_omits_empty_fields_and_base64_encodes_files() -> None:
    text = ts.TaskResultMessage(TID, "text", "2025-01-15T12:34:56Z", result_text="42")
    assert text.payload() == (b'{"task_id":"' + TID.encode() + b'","result_type":"text","result_text":"42",'
                              b'"completed_at":"2025-01-15T12:34:56Z"}')
    file = ts.TaskResultMessage(TID, "file", "2025-01-15T12:34:56Z", filename="a.png", file_data=b"\x00\xff",
                                time_idle_ms=1, time_staged_ms=2, time_cpu_ms=3)
    doc = json.loads(file.payload())
    assert list(doc) == ["task_id", "result_type", "filename", "file_data", "completed_at", "time_idle_ms",
                         "time_staged_ms", "time_cpu_ms"]
    assert doc["file_data"] == "AP8="
    assert file.encode()[:4] == b"\x00\x00\x00\x04"
    assert ts.decode_message(ts.decode(file.encode())) == file


def test_status_update_and_legacy_result_round_trip() -> None:
    upd = ts.TaskStatusUpdate(TID, "DECLINED", "too busy")
    assert upd.payload() == b'{"task_id":"' + TID.encode() + b'","status":"DECLINED","justification":"too busy"}'
    assert ts.decode_message(ts.decode(upd.encode())) == upd
    legacy = ts.TaskResult("d", "done", {"k": 1}, "2025-01-15T12:34:56Z")
    assert list(json.loads(legacy.payload())) == ["task_description", "status", "result", "timestamp"]
    assert ts.decode_message(ts.decode(legacy.encode())) == legacy


@pytest.mark.parametrize("cls,right", [(ts.SubmitRequest, 1), (ts.TaskStatusUpdate, 3), (ts.TaskResultMessage, 4),
                                       (ts.TaskResult, 2)])  # fmt: skip
def test_typed_decoders_reject_the_wrong_frame_type(cls: type, right: int) -> None:
    wrong = 1 if right != 1 else 3
    with pytest.raises(DecodeError) as err:
        cls.decode(frame(wrong, b"{}"))  # type: ignore[attr-defined]
    assert err.value.code == "type"
    cls.decode(frame(right, b"{}"))  # type: ignore[attr-defined]


def test_unknown_frame_type_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match=r"UNKNOWN\(9\)"):
        ts.decode_message(frame(9, b"{}"))


def test_go_struct_rules_when_reading() -> None:
    # Case-insensitive keys, unknown keys ignored, null = zero value.
    upd = ts.TaskStatusUpdate.decode(frame(3, b'{"TASK_ID":"x","Status":null,"extra":[1],"justification":"j"}'))
    assert upd == ts.TaskStatusUpdate("x", "", "j")
    with pytest.raises(DecodeError):  # a number where Go has a string
        ts.TaskStatusUpdate.decode(frame(3, b'{"task_id":5}'))
    with pytest.raises(DecodeError):  # 200.0 is not an int
        ts.SubmitResponse.decode(frame(1, b'{"status":200.0}'))
    with pytest.raises(DecodeError, match="base64"):
        ts.TaskResultMessage.decode(frame(4, b'{"file_data":"AP8"}'))
    with pytest.raises(DecodeError):
        ts.SubmitRequest.decode(frame(1, b"[]"))


def test_frame_limit_is_16_mib() -> None:
    with pytest.raises(DecodeError, match=f"frame too large: {ts.MAX_LENGTH + 1}"):
        ts.decode(struct.pack(">II", 1, ts.MAX_LENGTH + 1))
    with pytest.raises(ValueError):
        ts.encode_frame(ts.SEND_RESULTS, b"x" * (ts.MAX_LENGTH + 1))


def test_frame_assembler_handles_split_and_coalesced_frames() -> None:
    a = ts.TaskStatusUpdate(TID, "ACCEPTED", "Task accepted").encode()
    b = ts.TaskStatusUpdate(TID, "EXECUTING", "Task execution started").encode()
    asm = ts.FrameAssembler()
    data = a + b
    got = asm.feed(data[:5]) + asm.feed(data[5:30]) + asm.feed(data[30:])
    assert [ts.decode_message(f).status for f in got] == ["ACCEPTED", "EXECUTING"]  # type: ignore[union-attr]


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=300)
@given(task_id=text, result_type=text, result_text=text, filename=text, file_data=st.binary(max_size=64),
       completed_at=text, t=st.tuples(*[st.integers(-(2**63), 2**63 - 1)] * 3))  # fmt: skip
def test_result_message_round_trips(task_id: str, result_type: str, result_text: str, filename: str,
                                    file_data: bytes, completed_at: str, t: tuple[int, int, int]) -> None:
    msg = ts.TaskResultMessage(task_id, result_type, completed_at, result_text, filename, file_data, *t)
    assert ts.decode_message(ts.decode(msg.encode())) == msg


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_decoders_raise_only_decode_error(data: bytes) -> None:
    for attempt in (lambda: ts.decode_message(ts.decode(data)), lambda: ts.TaskFile.parse(data),
                    lambda: ts.SubmitResponse.decode(ts.Frame(1, data))):  # fmt: skip
        try:
            attempt()
        except DecodeError:
            pass


# -- IDs, names, extensions (C-1, A5.7) -------------------------------------------------


def test_task_ids() -> None:
    assert ts.new_task_id(bytes(range(16))) == TID
    fresh = {ts.new_task_id() for _ in range(50)}
    assert len(fresh) == 50 and all(ts.is_task_id(t) for t in fresh)
    for bad in ("", TID.upper(), TID + "0", "../../etc/passwd", TID.replace("-", ""), TID[:-1] + "/", 5, None):
        assert not ts.is_task_id(bad)


@pytest.mark.parametrize("name,safe", [
    ("report.pdf", "report.pdf"), ("../../.ssh/authorized_keys", "authorized_keys"), ("..", "result.bin"),
    ("a\\b\\..\\c.txt", "c.txt"), (".hidden.md", "hidden.md"), ("x\x00y\n.txt", "x_y_.txt"), ("dir/", "result.bin"),
])  # fmt: skip
def test_safe_result_name(name: str, safe: str) -> None:
    assert ts.safe_result_name(name) == safe


@settings(max_examples=400)
@given(st.text(max_size=400))
def test_safe_result_name_never_escapes(name: str) -> None:
    safe = ts.safe_result_name(name)
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert not safe.startswith(".") and safe not in (".", "..")
    assert len(safe.encode("utf-8")) <= 218


def test_long_result_name_keeps_its_extension() -> None:
    safe = ts.safe_result_name("é" * 300 + ".parquet")
    assert safe.endswith(".parquet") and len(safe.encode()) <= 218


def test_allowed_result_extensions() -> None:
    for ok in ("a.md", "A.PNG", "w.safetensors", "x.tar.csv", "dir.v2/r.Parquet"):
        assert ts.result_file_allowed(ok), ok
    for bad in ("a.sh", "a.py", "a", "a.txt/", "a.exe", ".bashrc", "dir.txt/run"):
        assert not ts.result_file_allowed(bad), bad
    assert ts.result_extension("x/run.SH") == ".SH" and ts.result_extension("Makefile") == ""


# -- task files (A5.4) --------------------------------------------------------------------


def test_task_file_golden() -> None:
    task = ts.TaskFile.new(TID, "sum <x>", "0:0000.0000.0001", "0:0000.0000.0002", NOW + 0.9)
    assert task.to_json() == (
        b'{\n  "task_id": "00010203-0405-0607-0809-0a0b0c0d0e0f",\n  "task_description": "sum \\u003cx\\u003e",\n'
        b'  "created_at": "2025-01-15T12:34:56Z",\n  "status": "NEW",\n'
        b'  "status_justification": "A new task was created",\n  "from": "0:0000.0000.0001",\n'
        b'  "to": "0:0000.0000.0002"\n}')
    assert ts.TaskFile.parse(task.to_json()) == task


def test_time_bookkeeping_through_a_whole_task() -> None:
    task = ts.TaskFile.new(TID, "d", "a", "b", NOW)
    task.record_response(NOW + 12.5)
    assert task.accepted_at == "2025-01-15T12:35:08Z" and task.time_idle_ms == 12500
    task.record_execution(NOW + 20)  # not staged: nothing recorded
    assert not task.execute_started_at and task.time_staged_ms == 0
    task.record_execution(NOW + 30, staged_at=NOW + 13)
    assert task.staged_at == "2025-01-15T12:35:09Z" and task.time_staged_ms == 17000
    task.record_completion(NOW + 90)
    assert task.completed_at == "2025-01-15T12:36:26Z" and task.time_cpu_ms == 60000
    doc = json.loads(task.to_json())
    assert list(doc)[7:] == ["accepted_at", "staged_at", "execute_started_at", "completed_at", "time_idle_ms",
                             "time_staged_ms", "time_cpu_ms"]
    assert ts.TaskFile.parse(task.to_json()) == task


def test_completion_without_execution_records_no_cpu_time() -> None:
    task = ts.TaskFile.new(TID, "d", "a", "b", NOW)
    task.record_completion(NOW + 5)
    assert not task.completed_at and task.time_cpu_ms == 0


def test_reference_task_files_parse() -> None:
    # A reference file: keys in any case/order, extra keys, local offsets.
    raw = (b'{"Task_ID":"' + TID.encode() + b'","status":"ACCEPTED","created_at":"2025-01-15T13:34:56+01:00",'
           b'"accepted_at":"2025-01-15T12:35:00.25Z","time_idle_ms":4000,"position":3}')
    task = ts.TaskFile.parse(raw)
    assert task.task_id == TID and task.status == "ACCEPTED" and task.from_addr == ""
    assert ts.parse_time(task.created_at) == NOW and ts.parse_time(task.accepted_at) == NOW + 4.25


@pytest.mark.parametrize("bad", ["", "2025-01-15", "2025-01-15T12:34:56", "yesterday", "2025-13-45T99:99:99Z"])
def test_parse_time_rejects_non_rfc3339(bad: str) -> None:
    with pytest.raises(DecodeError):
        ts.parse_time(bad)


# -- queue (C-3, C-6) and deadlines --------------------------------------------------------


def _accepted(n: int, accepted_at: float, created_at: float) -> ts.TaskFile:
    task = ts.TaskFile.new(ts.new_task_id(bytes([n]) * 16), f"t{n}", "a", "b", created_at)
    task.set_status(ts.ACCEPTED, ts.JUST_ACCEPTED)
    task.record_response(accepted_at)
    return task


def test_queue_is_fifo_by_acceptance_not_file_name() -> None:
    a, b, c = _accepted(9, NOW + 1, NOW), _accepted(1, NOW + 3, NOW), _accepted(5, NOW + 3, NOW - 5)
    new = ts.TaskFile.new(ts.new_task_id(bytes(16)), "n", "a", "b", NOW)
    assert ts.queue_order([b, new, c, a]) == [a, c, b]


def test_stage_head_only_once() -> None:
    a, b = _accepted(1, NOW + 1, NOW), _accepted(2, NOW + 2, NOW)
    head = ts.stage_head([b, a], NOW + 10)
    assert head is a and a.staged_at == ts.format_time(NOW + 10) and not b.staged_at
    assert ts.stage_head([b, a], NOW + 20) is None
    a.set_status(ts.EXECUTING, ts.JUST_EXECUTING)
    assert ts.stage_head([b, a], NOW + 30) is b and b.staged_at == ts.format_time(NOW + 30)
    assert ts.stage_head([], NOW) is None


def test_deadlines() -> None:
    task = ts.TaskFile.new(TID, "d", "a", "b", NOW)
    assert not ts.accept_expired(task, NOW + 60) and ts.accept_expired(task, NOW + 61)
    task.set_status(ts.ACCEPTED, "")
    assert not ts.accept_expired(task, NOW + 600)
    assert not ts.head_expired(task, NOW + 10**6)  # never staged
    task.staged_at = ts.format_time(NOW)
    assert not ts.head_expired(task, NOW + 3600) and ts.head_expired(task, NOW + 3601)
    task.set_status(ts.SUCCEEDED, "")  # C-3: only a still-ACCEPTED head expires
    assert not ts.head_expired(task, NOW + 10**6)


# -- polo reward (A5.6) ------------------------------------------------------------------


@pytest.mark.parametrize("cpu_ms,idle_ms,staged_ms,reward", [
    (60_000, 0, 0, 2), (180_000, 30_000, 0, 3), (420_000, 10**9, 10**9, 2), (63 * 60_000, 0, 0, 7),
    (0, 0, 0, 1), (0, 10**9, 10**9, 1), (-(10**9), 0, 0, 1),
])  # fmt: skip
def test_polo_reward(cpu_ms: int, idle_ms: int, staged_ms: int, reward: int) -> None:
    assert ts.polo_reward(cpu_ms, idle_ms, staged_ms) == reward


@settings(max_examples=300)
@given(st.integers(0, 10**10), st.integers(0, 10**10), st.integers(0, 10**10))
def test_reward_is_at_least_one_and_grows_with_cpu(cpu: int, idle: int, staged: int) -> None:
    r = ts.polo_reward(cpu, idle, staged)
    assert 1 <= r <= math.ceil(1 + math.log2(1 + cpu / 60000))
    assert ts.polo_reward(cpu + 600_000, idle, staged) >= r
    assert ts.polo_reward(cpu, 0, 0) >= r

