"""``python -m benchmarks``: see :mod:`benchmarks.suite.cli`."""

import sys

from benchmarks.suite.cli import main

sys.exit(main())
