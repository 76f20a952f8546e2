"""Lab state files, and teardown from them: what makes ``pilot-lab down`` work after a crash.

Before a lab creates anything it writes ``<state_dir>/<id>.json`` (atomic
rename, mode 0600) listing its topology, every namespace it is about to
create and its owner process (pid plus start time, so a recycled pid is not
mistaken for the owner). Everything a lab creates lives inside those
namespaces -- veths are created in them, nft tables and qdiscs are per
namespace -- so removing the namespaces (after killing the processes inside,
which would otherwise pin them) removes the whole lab. The state file goes
last, so an interrupted teardown can be run again.

A lab built by ``pilot-lab up`` has no owner (it is meant to outlive the
command); one built by :class:`~pilotgw.lab.lab.Lab` in a test is owned by
the test process, and :func:`down_all` leaves it alone while that process
lives unless forced.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotgw.lab import netns
from pilotgw.lab.errors import LabError
from pilotgw.lab.topology import LAB_ID_RE, NETNS_PREFIX, Topology

DEFAULT_STATE_DIR = Path("/run/pilotgw-lab")
LAB_NETNS_RE = re.compile(rf"^{NETNS_PREFIX}([0-9a-f]{{6}})-")


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parens: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


@dataclass
class LabRecord:
    """What a lab created (or is about to), as stored in its state file."""

    lab_id: str
    topology: Topology
    namespaces: list[str]
    owner_pid: int | None = None
    owner_start: int | None = None
    created: float = field(default_factory=time.time)

    def owner_alive(self) -> bool:
        """True while the process that owns the lab runs (always False for detached labs)."""
        if self.owner_pid is None:
            return False
        return process_start_time(self.owner_pid) == self.owner_start

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.lab_id,
            "topology": self.topology.to_dict(),
            "namespaces": self.namespaces,
            "owner_pid": self.owner_pid,
            "owner_start": self.owner_start,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> LabRecord:
        """Validate a decoded state file; :class:`LabError` ``"bad-state"`` on anything odd."""

        def bad(why: str) -> LabError:
            return LabError(f"state file {where}: {why}", "bad-state")

        if not isinstance(data, dict):
            raise bad("not a JSON object")
        lab_id = data.get("id")
        if not isinstance(lab_id, str) or not LAB_ID_RE.match(lab_id):
            raise bad(f"bad lab id {lab_id!r}")
        names = data.get("namespaces")
        prefix = f"{NETNS_PREFIX}{lab_id}-"
        # Only this lab's own namespaces may be removed on the file's word.
        if not isinstance(names, list) or not all(isinstance(n, str) and n.startswith(prefix) and "/" not in n for n in names):
            raise bad(f"namespaces must be a list of names starting with {prefix}")
        pid, start, created = data.get("owner_pid"), data.get("owner_start"), data.get("created", 0.0)
        for key, value in (("owner_pid", pid), ("owner_start", start)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise bad(f"{key} must be an integer or null")
        if isinstance(created, bool) or not isinstance(created, (int, float)):
            raise bad("created must be a number")
        try:
            topology = Topology.from_dict(data.get("topology"))
        except LabError as exc:
            raise bad(str(exc)) from None
        return cls(lab_id, topology, list(names), pid, start, float(created))


def state_path(state_dir: Path, lab_id: str) -> Path:
    return Path(state_dir) / f"{lab_id}.json"


def stack_dir(state_dir: Path, lab_id: str) -> Path:
    """Where the programs run in lab ``lab_id`` keep their files (homes, sockets, logs)."""
    return Path(state_dir) / lab_id


def save(record: LabRecord, state_dir: Path) -> None:
    """Write the record atomically (temp file + rename, 0600)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = state_path(state_dir, record.lab_id)
    tmp = final.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record.to_json(), f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)


def load(path: Path) -> LabRecord:
    """Read one state file; :class:`LabError` ``"bad-state"`` if unreadable or invalid."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"state file {path}: {exc}", "bad-state") from None
    return LabRecord.from_json(data, str(path))


def load_all(state_dir: Path) -> tuple[list[LabRecord], list[LabError]]:
    """Every lab recorded in ``state_dir``, oldest first, plus the errors of unreadable files."""
    records, errors = [], []
    try:
        paths = sorted(Path(state_dir).glob("*.json"))
    except OSError:
        paths = []
    for path in paths:
        try:
            records.append(load(path))
        except LabError as exc:
            errors.append(exc)
    records.sort(key=lambda r: r.created)
    return records, errors


def find(lab_id: str, state_dir: Path) -> LabRecord:
    """The record of lab ``lab_id``; :class:`LabError` ``"unknown-lab"`` if there is none."""
    path = state_path(state_dir, lab_id)
    if not LAB_ID_RE.match(lab_id) or not path.exists():
        raise LabError(f"no lab {lab_id!r} in {state_dir}", "unknown-lab")
    return load(path)


def new_lab_id(state_dir: Path) -> str:
    """A random lab id used by no state file and no namespace."""
    taken = {m.group(1) for n in netns.list_all() if (m := LAB_NETNS_RE.match(n))}
    while True:
        lab_id = secrets.token_hex(3)
        if lab_id not in taken and not state_path(state_dir, lab_id).exists():
            return lab_id


def teardown(record: LabRecord, state_dir: Path) -> list[str]:
    """Kill the lab's processes, delete its namespaces and the files of what
    ran in it (:func:`stack_dir`), then its state file.

    Idempotent: namespaces already gone are skipped. Returns the namespaces
    that were removed.
    """
    netns.kill_processes(record.namespaces)
    removed = [ns for ns in reversed(record.namespaces) if netns.remove(ns)]
    shutil.rmtree(stack_dir(state_dir, record.lab_id), ignore_errors=True)
    state_path(state_dir, record.lab_id).unlink(missing_ok=True)
    return removed


def orphan_namespaces(state_dir: Path) -> list[str]:
    """Lab namespaces (``plab-<id>-*``) whose lab has no state file: leftovers of a lost lab.

    A lab writes its state file before creating any namespace, so a live lab
    never shows up here.
    """
    out = []
    for name in netns.list_all():
        m = LAB_NETNS_RE.match(name)
        if m and not state_path(state_dir, m.group(1)).exists():
            out.append(name)
    return out


@dataclass
class DownReport:
    """What :func:`down_all` did: labs removed, labs kept (live owner), orphans, bad files."""

    removed: dict[str, list[str]] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def down_all(state_dir: Path, *, force: bool = False) -> DownReport:
    """Remove every lab's leftovers: recorded labs, then orphan namespaces.

    Labs whose owner process still runs (a test in progress) are kept unless
    ``force``. A state file that cannot be parsed is reported, not deleted:
    its namespaces are then removed as orphans only if the file is gone.
    """
    report = DownReport()
    records, errors = load_all(state_dir)
    report.errors = [str(e) for e in errors]
    for record in records:
        if record.owner_alive() and not force:
            report.kept.append(record.lab_id)
            continue
        report.removed[record.lab_id] = teardown(record, state_dir)
    for name in orphan_namespaces(state_dir):
        if netns.remove(name):
            report.orphans.append(name)
    return report
