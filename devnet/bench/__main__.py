"""``python -m devnet.bench``: the benchmark without the ``ledger-devnet`` CLI."""

import sys

from devnet.bench.cli import main

sys.exit(main())
