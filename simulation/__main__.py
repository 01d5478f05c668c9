"""``python -m simulation``: the same as ``ledger-node simulate``."""

import sys

from simulation.cli import main

sys.exit(main())
