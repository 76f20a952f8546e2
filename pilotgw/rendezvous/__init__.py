"""pilot-rendezvous: the registry (TCP, length-prefixed JSON) and the beacon
(UDP) in one asyncio/uvloop process (rendezvous.md).

Pure logic and I/O are kept apart so the rules can be tested without sockets:

* :mod:`.records`, :mod:`.registry_service` -- node records and the request
  handlers (``RegistryService.handle(msg, conn, now)``);
* :mod:`.snapshot`, :mod:`.store` -- the persisted state and the store
  interface with its atomic JSON-file implementation;
* :mod:`.beacon_service` -- discover/punch/relay rules;
* :mod:`.ratelimit`, :mod:`.metrics` -- token buckets, counters;
* :mod:`.server`, :mod:`.http`, :mod:`.tls` -- asyncio protocols, the
  persistence and reaper tasks, the status endpoints, certificates;
* :mod:`.cli` -- the ``pilot-rendezvous`` command.
"""
