"""``python -m pilotgw.rendezvous`` == ``pilot-rendezvous``."""

import sys

from pilotgw.rendezvous.cli import main

sys.exit(main())
