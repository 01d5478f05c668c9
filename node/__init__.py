"""The ledger node."""

from importlib.metadata import PackageNotFoundError, version


def release() -> str:
    """This installation's release (``ledger-node --version``), from the package metadata."""
    try:
        return version("ledger-node")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"
