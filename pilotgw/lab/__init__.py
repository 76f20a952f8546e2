"""Network-namespace labs: simulated internets with NAT routers of every kind.

Used by the integration tests, the benchmarks and the demo, and by users to
try Pilot before deploying it. A :class:`Topology` (public hosts, NAT routers
with hosts behind them, impaired links) becomes a running :class:`Lab` of
network namespaces::

    from pilotgw.lab import Lab, builtin

    with Lab(builtin("basic")) as lab:
        lab.host("pr1").run(["python", "-m", "pilotgw.lab.probe", "query", "198.51.100.10:3478"])

The ``pilot-lab`` command (:mod:`pilotgw.lab.cli`) brings labs up and down
from a shell, including the leftovers of a crashed one.
"""

from pilotgw.lab.errors import LabError
from pilotgw.lab.lab import Lab
from pilotgw.lab.node import Node
from pilotgw.lab.topology import Host, Link, NatKind, NatRouter, Topology, builtin

__all__ = ["Host", "Lab", "LabError", "Link", "NatKind", "NatRouter", "Node", "Topology", "builtin"]
