"""The benchmark suite: interleaving, ratios, skip/failure rows, table and JSON, profile mode.

Synthetic scenarios are tiny Python scripts written to a temp dir and run
as real subprocesses, exactly as the suite runs the real benchmarks.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmarks.suite import cli, registry
from benchmarks.suite.model import Goal, Metric, Program, Scenario, lookup, parse_json
from benchmarks.suite.profile import OUT_DIR, profile, top_functions
from benchmarks.suite.report import COLUMNS, number, table
from benchmarks.suite.runner import ROOT, RunError, execute, run_scenario
from benchmarks.suite.stats import ratio, summarize

# Appends "<role>" to a log file and prints {"v": <next value from a list>}.
FAKE = textwrap.dedent(
    """
    import json, sys
    log, role, *values = sys.argv[1:]
    with open(log, "a") as f:
        f.write(role + "\\n")
    n = sum(1 for line in open(log) if line.strip() == role) - 1
    print("warming up")
    print(json.dumps({"v": float(values[n % len(values)]), "nested": {"w": 2.0}}))
    """
)


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    return script, tmp_path / "log"


def _program(script: Path, log: Path, role: str, *values: float, **kw: object) -> Program:
    return Program(str(script), (str(log), role, *map(str, values)), size="tiny", **kw)  # type: ignore[arg-type]


def test_scenario_and_baseline_run_interleaved_and_the_ratio_is_median_over_median(fake: tuple[Path, Path]) -> None:
    script, log = fake
    scenario = Scenario(
        "synthetic",
        _program(script, log, "A", 10, 30, 20),
        (Metric("value", "u", "v", "v", Goal(">=", 3, on="ratio")), Metric("other", "u", "nested.w", None, Goal("<", 1))),
        baseline=_program(script, log, "B", 4, 5, 6),
        baseline_label="fake baseline",
    )
    lines: list[str] = []
    rows, runs = run_scenario(scenario, repeat=3, quick=False, is_root=False, progress=lines.append)
    assert log.read_text().split() == ["A", "B", "A", "B", "A", "B"]
    assert [(r.role, r.index) for r in runs] == [("scenario", 0), ("baseline", 0), ("scenario", 1), ("baseline", 1), ("scenario", 2), ("baseline", 2)]
    assert len(lines) == 6 and lines[0].startswith("synthetic [scenario 1/3]") and lines[1].startswith("synthetic [baseline 1/3]")
    value, other = rows
    assert (value.status, value.samples, value.baseline_samples) == ("ok", [10.0, 30.0, 20.0], [4.0, 5.0, 6.0])
    assert (value.median, value.min, value.max, value.baseline_median) == (20.0, 10.0, 30.0, 5.0)
    assert value.ratio == pytest.approx(4.0) and value.met is True and value.goal == "ratio >= 3x"
    assert (other.median, other.ratio, other.met, other.goal) == (2.0, None, False, "< 1 u")


def test_baseline_key_without_baseline_program_reads_the_scenario_own_output(fake: tuple[Path, Path]) -> None:
    script, log = fake
    scenario = Scenario("same-run", _program(script, log, "A", 3), (Metric("w over v", "u", "nested.w", "v"),))
    (row,), runs = run_scenario(scenario, repeat=2, quick=False, is_root=False)
    assert len(runs) == 2 and row.baseline_median == 3.0 and row.ratio == pytest.approx(2 / 3)


def test_quick_uses_quick_arguments_and_a_fixed_repeat_wins(fake: tuple[Path, Path]) -> None:
    script, log = fake
    program = Program(str(script), (str(log), "full", "1"), (str(log), "quick", "2"), size="big", quick_size="small")
    scenario = Scenario("q", program, (Metric("v", "u", "v"),), repeat=1)
    (row,), runs = run_scenario(scenario, repeat=5, quick=True, is_root=False)
    assert log.read_text().split() == ["quick"] and len(runs) == 1
    assert (row.size, row.median) == ("small", 2.0)


@pytest.mark.parametrize(
    ("program_kw", "is_root", "quick", "scenario_quick", "reason"),
    [
        ({"script": "benchmarks/does_not_exist.py"}, True, False, True, "skipped: benchmarks/does_not_exist.py not in the tree yet"),
        ({"needs_root": True}, False, False, True, "skipped: needs root (network namespaces)"),
        ({"requires": ("no-such-command-xyz",)}, True, False, True, "skipped: command 'no-such-command-xyz' not found"),
        ({"requires": ("pilotgw/nope.py",)}, True, False, True, "skipped: pilotgw/nope.py not in the tree yet"),
        ({}, True, True, False, "skipped: full run only (not in --quick)"),
    ],
)
def test_scenarios_that_cannot_run_give_skipped_rows_with_the_reason(
    fake: tuple[Path, Path], program_kw: dict[str, object], is_root: bool, quick: bool, scenario_quick: bool, reason: str
) -> None:
    script, log = fake
    kw = {"script": str(script), "args": (str(log), "A", "1"), **program_kw}
    scenario = Scenario("s", Program(**kw), (Metric("a", "u", "v", goal=Goal(">=", 1)), Metric("b", "u", "v")), quick=scenario_quick)  # type: ignore[arg-type]
    rows, runs = run_scenario(scenario, repeat=3, quick=quick, is_root=is_root)
    assert runs == [] and not log.exists()
    assert [(r.metric, r.status, r.note, r.median) for r in rows] == [("a", "skipped", reason, None), ("b", "skipped", reason, None)]
    assert rows[0].goal == ">= 1 u"


def test_missing_baseline_program_skips_the_whole_scenario(fake: tuple[Path, Path]) -> None:
    script, log = fake
    scenario = Scenario("s", _program(script, log, "A", 1), (Metric("a", "u", "v", "v"),), baseline=Program("benchmarks/nope.py"))
    (row,), runs = run_scenario(scenario, repeat=2, quick=False, is_root=True)
    assert runs == [] and row.note == "skipped: benchmarks/nope.py not in the tree yet"


def test_a_failing_program_stops_its_scenario_with_the_stderr_tail(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("import sys\nprint('step 1', file=sys.stderr)\nprint('boom: no peer', file=sys.stderr)\nsys.exit(3)\n")
    scenario = Scenario("bad", Program(str(script)), (Metric("a", "u", "v"),))
    (row,), runs = run_scenario(scenario, repeat=3, quick=False, is_root=False)
    assert len(runs) == 1 and runs[0].error is not None
    assert row.status == "failed" and row.note.startswith("failed: exit 3") and "boom: no peer" in row.note


def test_a_failing_baseline_keeps_the_scenario_figures_and_says_so(fake: tuple[Path, Path], tmp_path: Path) -> None:
    script, log = fake
    bad = tmp_path / "bad.py"
    bad.write_text("raise SystemExit('baseline broke')\n")
    scenario = Scenario("s", _program(script, log, "A", 7), (Metric("a", "u", "v", "v"),), baseline=Program(str(bad)))
    (row,), runs = run_scenario(scenario, repeat=3, quick=False, is_root=False)
    assert [r.role for r in runs] == ["scenario", "baseline", "scenario", "scenario"]
    assert row.status == "ok" and row.median == 7.0 and row.ratio is None
    assert "baseline failed" in row.note and "baseline broke" in row.note


def test_a_missing_output_key_fails_only_that_metric_and_names_what_exists(fake: tuple[Path, Path]) -> None:
    script, log = fake
    scenario = Scenario("s", _program(script, log, "A", 1), (Metric("good", "u", "v"), Metric("bad", "u", "mb_per_s")))
    good, bad = run_scenario(scenario, repeat=1, quick=False, is_root=False)[0]
    assert good.status == "ok" and bad.status == "failed"
    assert "'mb_per_s'" in bad.note and "nested, v" in bad.note


def test_nonzero_exit_with_figures_counts_as_a_run(tmp_path: Path) -> None:
    script = tmp_path / "missed.py"
    script.write_text("import sys\nprint('{\"v\": 1}')\nsys.exit(1)\n")
    assert execute(Program(str(script)), quick=False) == {"v": 1}


def test_timeout_ends_the_program_and_everything_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = tmp_path / "hang.py"
    script.write_text(
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen(['sleep', '60'])\nopen({str(pidfile)!r}, 'w').write(str(p.pid))\ntime.sleep(60)\n"
    )
    start = time.monotonic()
    with pytest.raises(RunError, match="timed out after 1 s"):
        execute(Program(str(script), timeout=1.0), quick=False)
    assert time.monotonic() - start < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cli_prints_the_table_and_writes_the_same_rows_as_json(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script, log = fake
    scenarios = (
        Scenario("syn", _program(script, log, "A", 8), (Metric("value", "MB/s", "v", "v", Goal(">=", 300)),), baseline=_program(script, log, "B", 4)),
        Scenario("later", Program("benchmarks/not_yet.py"), (Metric("x", "s", "x"),)),
    )
    monkeypatch.setattr(registry, "SCENARIOS", scenarios)
    out = tmp_path / "result.json"
    assert cli.main(["--json", str(out), "--repeat", "2"]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0].split()
    assert header == list(COLUMNS)
    syn = next(line for line in text.splitlines() if line.startswith("syn "))
    assert syn.split()[:10] == ["syn", "value", "MB/s", "tiny", "8.00", "8.00", "8.00", "4.00", "2.00x", ">="]
    assert syn.split()[-1] == "NO"
    assert "skipped: benchmarks/not_yet.py not in the tree yet" in text
    doc = json.loads(out.read_text())
    assert doc["repeat"] == 2 and doc["quick"] is False and doc["machine"]["cpus"] == os.cpu_count()
    assert [r["scenario"] for r in doc["rows"]] == ["syn", "later"]
    row = doc["rows"][0]
    assert row["samples"] == [8.0, 8.0] and row["baseline_samples"] == [4.0, 4.0] and row["ratio"] == 2.0 and row["met"] is False
    assert [(r["role"], r["index"]) for r in doc["runs"]] == [("scenario", 0), ("baseline", 0), ("scenario", 1), ("baseline", 1)]


def test_cli_json_to_stdout_is_pure_json_and_only_filters(
    fake: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script, log = fake
    scenarios = tuple(Scenario(n, _program(script, log, n, 1), (Metric("v", "u", "v"),)) for n in ("one", "two"))
    monkeypatch.setattr(registry, "SCENARIOS", scenarios)
    assert cli.main(["--json", "-", "--only", "two", "--repeat", "1"]) == 0
    captured = capsys.readouterr()
    assert [r["scenario"] for r in json.loads(captured.out)["rows"]] == ["two"] and captured.err == ""
    assert cli.main(["--only", "three"]) == 2
    assert "unknown scenario(s) three" in capsys.readouterr().err


def test_lookup_and_parse_json_give_clear_errors() -> None:
    assert lookup({"a": {"b": 3}}, "a.b") == 3.0
    with pytest.raises(KeyError, match="found: b"):
        lookup({"a": {"b": 3}}, "a.c")
    with pytest.raises(KeyError, match="not a number"):
        lookup({"a": True}, "a")
    assert parse_json('progress...\n{"x": 1}\n') == {"x": 1}
    assert parse_json('{\n  "x": 2\n}\n') == {"x": 2}
    with pytest.raises(ValueError):
        parse_json("MB/s: 12\n")


def test_stats_and_goals() -> None:
    s = summarize([3.0, 1.0, 2.0, 10.0])
    assert s is not None and (s.median, s.min, s.max, s.n) == (2.5, 1.0, 10.0, 4)
    assert summarize([]) is None
    assert ratio(3.0, 2.0) == 1.5 and ratio(None, 2.0) is None and ratio(3.0, 0.0) is None and ratio(3.0, None) is None
    assert Goal("<=", 1.5, on="ratio").met(100.0, 1.5) is True
    assert Goal("<=", 1.5, on="ratio").met(100.0, None) is None
    assert Goal("<", 150).met(150.0, None) is False
    assert [number(x) for x in (1724.06, 49.63, 4.981, 0.03372, None)] == ["1724", "49.6", "4.98", "0.0337", "-"]


def test_table_keeps_columns_aligned() -> None:
    from benchmarks.suite.runner import Row

    rows = [Row("a", "m", "u", "1 GiB", "ok", 1.0, 1.0, 1.0), Row("long-scenario-name", "m", "u", "", "skipped", note="skipped: why")]
    lines = table(rows).splitlines()
    starts = {line.index(" m ") for line in lines[2:]}
    assert len(lines) == 4 and len(starts) == 1 and lines[-1].endswith("skipped: why")


def test_stream_cpu_text_is_parsed_into_figures() -> None:
    text = (
        "batched ACKs            715.2 MB/s    5.73 µs per 4096-byte segment\n"
        "batched ACKs         best: 5.73 µs per segment, sender + receiver (target < 10)\n"
        "ACK per 2 segments   best: 4.14 µs per segment, sender + receiver (target < 10)\n"
    )
    assert registry.parse_stream_cpu(text) == {"batched_us": 5.73, "ack_per_2_us": 4.14}
    with pytest.raises(ValueError, match="ack_per_2_us"):
        registry.parse_stream_cpu(text.splitlines()[1])


def test_registry_names_are_unique_and_by_name_keeps_registry_order() -> None:
    names = [s.name for s in registry.SCENARIOS]
    assert len(names) == len(set(names))
    assert [s.name for s in registry.by_name(["echo", "stream-loopback"])] == ["stream-loopback", "echo"]
    with pytest.raises(KeyError, match="nope"):
        registry.by_name(["nope"])


@pytest.mark.parametrize(
    ("script", "args", "keys"),
    [("benchmarks/tcp_loopback.py", ["--mib", "8"], {"mb_per_s", "seconds"}), ("benchmarks/udp_echo.py", ["--count", "200"], {"p50_ms", "p99_ms"})],
)
def test_baseline_scripts_print_the_keys_the_registry_reads(script: str, args: list[str], keys: set[str]) -> None:
    got = execute(Program(script, (*args, "--json"), timeout=30), quick=False)
    assert keys <= set(got) and all(got[k] > 0 for k in keys)


def test_top_functions_sums_self_and_total_samples_per_function() -> None:
    collapsed = (
        'process 1:"python x.py";<module> (x.py:9);work (x.py:3);inner (x.py:5) 6\n'
        'process 1:"python x.py";<module> (x.py:9);work (x.py:4) 3\n'
        'process 2:"daemon";loop (d.py:1) 1\n'
    )
    samples, costs = top_functions(collapsed)
    assert samples == 10
    assert [(c.function, c.self_samples, c.total_samples) for c in costs] == [
        ("inner (x.py)", 6, 6),
        ("work (x.py)", 3, 9),
        ("loop (d.py)", 1, 1),
    ]


def test_profile_mode_saves_a_profile_and_finds_the_hot_function(tmp_path: Path) -> None:
    if not (Path(sys.executable).parent / "py-spy").exists():
        pytest.skip("py-spy is not installed (pip install py-spy)")
    script = tmp_path / "busy.py"
    script.write_text("import time\ndef spin_here():\n    end = time.time() + 1.0\n    while time.time() < end:\n        pass\nspin_here()\nprint('{\"v\": 1}')\n")
    scenario = Scenario("busy-test", Program(str(script)), (Metric("v", "u", "v"),))
    path, stdout, samples, costs = profile(scenario, quick=False, rate=100)
    try:
        assert path.parent == OUT_DIR and path.name.startswith("busy-test-") and path.stat().st_size > 0
        assert json.loads(stdout) == {"v": 1} and samples > 20
        assert any(c.function == f"spin_here ({script})" or c.function.startswith("spin_here") for c in costs[:3])
    finally:
        path.unlink()
    assert ROOT in path.parents
