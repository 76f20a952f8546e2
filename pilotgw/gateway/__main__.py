"""``python -m pilotgw.gateway``: the same as ``pilot-gateway``."""

import sys

from pilotgw.gateway.cli import main

sys.exit(main())
