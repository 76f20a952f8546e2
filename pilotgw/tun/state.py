"""State files: atomic writes, and the record of every kernel change.

The record is written *before* each change is made (intent first), so a run
killed at any instant leaves a file that names everything it may have added.
Replaying it in reverse with idempotent deletions (:func:`undo`) restores
the system, which is what :func:`cleanup_stale` does after a ``kill -9``.

The record also names its owner (pid, process start time, boot id): a
cleanup must never tear down the network of a gateway that is still
running, and a pid alone could have been reused by an unrelated process.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from pilotgw.tun.errors import KernelError
from pilotgw.tun.netlink import Netlink
from pilotgw.tun.nft import Nft

RECORD_VERSION = 1
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600) so readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks since boot, or ``None`` if no such
    process -- or only its zombie: a killed gateway whose parent never reaps
    it (an orphan in a container without an init) holds nothing any more."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def current_owner() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "start_ticks": _start_ticks(pid), "boot_id": _BOOT_ID.read_text().strip()}


def owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process that wrote a record is still running."""
    if owner.get("boot_id") != _BOOT_ID.read_text().strip():
        return False
    pid = owner.get("pid")
    return isinstance(pid, int) and pid > 0 and _start_ticks(pid) == owner.get("start_ticks")


def _check_item(item: Any) -> dict[str, Any]:
    """Validate one record entry; a state file is input like any other."""
    if not isinstance(item, dict):
        raise ValueError("entry is not an object")
    kind = item.get("kind")
    if kind in ("link", "nft_table"):
        if not isinstance(item.get("name"), str):
            raise ValueError(f"{kind} entry without a name")
    elif kind in ("route", "rule"):
        ipaddress.IPv4Network(item.get("dst"))
        if not isinstance(item.get("table"), int):
            raise ValueError(f"{kind} entry without a table")
        if kind == "rule" and not isinstance(item.get("priority"), int):
            raise ValueError("rule entry without a priority")
    else:
        raise ValueError(f"unknown entry kind {kind!r}")
    return item


class KernelRecord:
    """The state file listing what one gateway run added to the kernel."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.owner = current_owner()
        self.items: list[dict[str, Any]] = []
        self._claimed = False

    def _save(self) -> None:
        data = {"version": RECORD_VERSION, "owner": self.owner, "items": self.items}
        atomic_write(self.path, json.dumps(data, indent=1).encode())

    def begin(self) -> None:
        """Claim the file for this process, with nothing added yet."""
        self.items = []
        self._claimed = True
        self._save()

    def intend(self, item: dict[str, Any]) -> None:
        """Record ``item`` before it is added to the kernel."""
        self.items.append(_check_item(item))
        self._save()

    def finish(self) -> None:
        """Everything recorded has been removed: forget the file (only if ours)."""
        self.items = []
        if self._claimed:
            self.path.unlink(missing_ok=True)
            self._claimed = False


def load_record(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(owner, items)`` of a state file; :class:`KernelError` if unreadable."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise ValueError("unknown format")
        owner, items = data.get("owner"), data.get("items")
        if not isinstance(owner, dict) or not isinstance(items, list):
            raise ValueError("missing owner or items")
        return owner, [_check_item(item) for item in items]
    except (OSError, ValueError) as exc:
        raise KernelError(
            f"unreadable gateway state file {path}: {exc}",
            "internal",
            f"check what it lists by hand, then delete {path}",
        ) from exc


def undo(items: list[dict[str, Any]]) -> list[str]:
    """Remove ``items`` in reverse order of addition; return what was undone.

    Each deletion tolerates the object being gone already (TUN devices, and
    routes through them, vanish with their owner's descriptor).
    """
    done = []
    nft: Nft | None = None
    with Netlink() as netlink:
        for item in reversed(items):
            kind = item["kind"]
            if kind == "nft_table":
                nft = nft or Nft()
                nft.delete_table(item["name"])
                done.append(f"nft table {item['name']}")
            elif kind == "rule":
                dst = ipaddress.IPv4Network(item["dst"])
                netlink.delete_rule(dst, item["table"], item["priority"])
                done.append(f"rule to {dst} lookup {item['table']}")
            elif kind == "route":
                dst = ipaddress.IPv4Network(item["dst"])
                netlink.delete_route(dst, item["table"])
                done.append(f"route {dst} table {item['table']}")
            else:
                netlink.delete_link(item["name"])
                done.append(f"link {item['name']}")
    return done


def cleanup_stale(state_path: Path) -> list[str]:
    """Remove what a previous gateway run that died left behind.

    Returns descriptions of what was undone (empty when there was no state
    file). Raises :class:`KernelError` (``already_exists``) when the file's
    owner is still running, since its network is then in use. Blocking; needs
    CAP_NET_ADMIN.
    """
    state_path = Path(state_path)
    if not state_path.exists():
        return []
    owner, items = load_record(state_path)
    if owner_alive(owner):
        raise KernelError(
            f"gateway is already running (pid {owner.get('pid')})",
            "already_exists",
            "stop it first with: pilotctl gateway stop",
        )
    done = undo(items)
    state_path.unlink(missing_ok=True)
    return done
