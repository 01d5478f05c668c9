"""``python -m devnet.drill``: the fault drills without the ``ledger-devnet`` CLI."""

import sys

from devnet.drill.cli import main

sys.exit(main())
