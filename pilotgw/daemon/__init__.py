"""``pilot-daemon``: the node process (asyncio + uvloop).

One process, one event loop, one UDP socket. The modules are small and
named for what they hold: :mod:`~pilotgw.daemon.config` and
:mod:`~pilotgw.daemon.cli` (flags, config file), :mod:`~pilotgw.daemon.log`
(structured logs), :mod:`~pilotgw.daemon.endpoint` (the UDP socket),
:mod:`~pilotgw.daemon.peers` (peer table, key exchange, relay),
:mod:`~pilotgw.daemon.registry_client`, :mod:`~pilotgw.daemon.connections`
(connection table, one timer heap), :mod:`~pilotgw.daemon.ipc_server`,
:mod:`~pilotgw.daemon.services` and :mod:`~pilotgw.daemon.node`, which
composes them in the start order of trust-and-ipc.md §A3.3.
"""
