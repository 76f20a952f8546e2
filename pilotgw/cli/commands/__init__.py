"""pilotctl command groups, one module each, imported on demand by
:mod:`pilotgw.cli.main`. Every command is ``fn(ctx, args) -> None | int``
and reports failures by raising :class:`~pilotgw.client.errors.PilotError`."""
