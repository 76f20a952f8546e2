"""``pilotctl``: the drop-in command-line client (services-and-cli.md §A9-A21).

:mod:`pilotgw.cli.main` dispatches; each command group lives in
:mod:`pilotgw.cli.commands` and is imported only when used.
"""
