"""The decoder fuzzer: runs every present decoder clean and catches a broken one."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

from pilotgw.overlay.errors import DecodeError

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "fuzz_decoders.py"
OURS = {"address", "packet", "sack", "goread", "handshake", "handshake.stream", "dataexchange",
        "dataexchange.stream", "eventstream", "tasksubmit", "ipc", "ipc.stream"}  # fmt: skip


@pytest.fixture(scope="module")
def fuzz() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("fuzz_decoders", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_few_thousand_inputs_per_decoder_all_clean() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "3000", "--jobs", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = json.loads(proc.stdout)
    failures = {n: d["first_traceback"] for n, d in report["decoders"].items() if d["unexpected"]}
    assert proc.returncode == 0 and report["ok"], failures
    assert OURS <= set(report["decoders"]), report["skipped"]
    for name, d in report["decoders"].items():
        assert d["inputs"] == 3000
        assert d["accepted"] + d["decode_error"] == 3000
        # The mutations reach both outcomes (GCM makes accepted PILS frames rare).
        assert d["decode_error"] > 0, name
        assert d["accepted"] > 0 or name == "crypto.pils", name


def test_mutations_are_deterministic_and_varied(fuzz: ModuleType) -> None:
    target = next(t for t in fuzz.TARGETS if t.name == "ipc")
    _, seeds = target.build()
    rng_a, rng_b = random.Random(7), random.Random(7)
    assert [fuzz.mutate(rng_a, seeds, target) for _ in range(50)] == [fuzz.mutate(rng_b, seeds, target) for _ in range(50)]
    rng = random.Random(1)
    inputs = {fuzz.mutate(rng, seeds, target) for _ in range(500)}
    assert len(inputs) > 400
    assert any(len(i) > max(map(len, seeds)) for i in inputs)
    assert any(len(i) < min(map(len, seeds)) for i in inputs)
    assert len(inputs - set(seeds)) > 400


def test_unexpected_exception_is_reported_and_fails(fuzz: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def build() -> tuple[object, list[bytes]]:
        def decode(data: bytes) -> object:
            if len(data) < 2:
                raise DecodeError("short", "truncated")
            return data[2]  # IndexError for 2-byte inputs: the kind of bug we hunt

        return decode, [b"abcd"]

    broken = fuzz.Target("broken", "packet", build)
    monkeypatch.setattr(fuzz, "TARGETS", [broken])
    fuzz._BUILT.clear()
    status = fuzz.main(["--count", "2000", "--jobs", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 1 and not report["ok"]
    entry = report["decoders"]["broken"]
    assert entry["unexpected"] > 0 and "IndexError" in entry["first_traceback"]
    assert len(bytes.fromhex(entry["first_input_hex"])) == 2


def test_missing_module_is_skipped(fuzz: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ghost = fuzz.Target("ghost", "no_such_module", lambda: fuzz._mod("no_such_module"))
    monkeypatch.setattr(fuzz, "TARGETS", [ghost])
    assert fuzz.main(["--count", "10", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "ghost" in out and "skipped: module not present" in out
