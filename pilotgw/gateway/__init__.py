"""The gateway process: ``pilot-gateway`` and what ``pilotctl gateway`` talks to.

* :mod:`.overlay_adapter` — the proxy's ``Overlay`` over the daemon's IPC
  socket (one session per connection and per UDP flow).
* :mod:`.control` — the local control socket (JSON lines, 0600).
* :mod:`.service` — :class:`GatewayService`: daemon + kernel side + proxy +
  control socket + signals + PID file.
* :mod:`.cli` — the ``pilot-gateway`` entry point.

The kernel side and the bridging themselves live in :mod:`pilotgw.tun` and
:mod:`pilotgw.proxy`; the other direction (publishing a local TCP service on
a pilot port) is a daemon service, :mod:`pilotgw.daemon.services.expose`.
"""
