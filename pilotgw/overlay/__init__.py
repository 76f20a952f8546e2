"""The Pilot Protocol core, sans-IO.

Nothing under this package opens a socket, reads a clock or imports asyncio:
every function takes bytes (and, where time matters, ``now``) and returns
bytes, typed messages or events. Decoders raise exactly one exception type for
malformed input, :class:`pilotgw.overlay.errors.DecodeError`, so callers on the
network path can catch it and drop the input without guessing.

Modules are imported explicitly (``from pilotgw.overlay import packet``); this
``__init__`` imports nothing so that loading one codec never loads the rest.
"""
