"""The one exception type that :mod:`pilotgw.lab` raises for its own failures.

A lab is driven by tests, benchmarks and a CLI; each of them wants to tell a
bad topology file from a missing ``nft`` binary from a kernel refusing a
namespace without parsing messages. ``code`` carries that distinction.
"""

from __future__ import annotations


class LabError(RuntimeError):
    """A lab could not be described, built, inspected or torn down.

    ``code`` is short and stable: ``"bad-topology"`` (the description is
    invalid), ``"bad-state"`` (a state file is unreadable), ``"not-root"``,
    ``"no-netns"`` (the kernel or ``/run/netns`` refuses namespaces),
    ``"missing-tool"`` (``nft`` or ``ip`` is not installed), ``"nft"`` (a
    ruleset was rejected), ``"netlink"`` (a link/address/route/qdisc request
    failed), ``"unknown-lab"``, ``"unknown-node"``, ``"busy"`` (the lab's id
    or one of its namespace names is already taken), ``"usage"`` (contradictory CLI arguments).
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
