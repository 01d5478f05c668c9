"""Why a genesis document was refused: one stable code per kind of mistake."""

from __future__ import annotations

from node.errors import CodedError

UNREADABLE = "bad-genesis-file"
BAD_JSON = "bad-genesis-json"
UNKNOWN_FIELD = "bad-genesis-unknown-field"
MISSING_FIELD = "bad-genesis-missing-field"
DUPLICATE_FIELD = "bad-genesis-duplicate-field"
WRONG_TYPE = "bad-genesis-type"
BAD_CHAIN_ID = "bad-genesis-chain-id"
BAD_TIME = "bad-genesis-time"
NO_VALIDATORS = "bad-genesis-no-validators"
TOO_MANY_VALIDATORS = "bad-genesis-too-many-validators"
BAD_VALIDATOR_NAME = "bad-genesis-validator-name"
DUPLICATE_VALIDATOR = "bad-genesis-duplicate-validator"
BAD_POWER = "bad-genesis-power"
TOTAL_POWER_TOO_LARGE = "bad-genesis-total-power"
BAD_PUBLIC_KEY = "bad-genesis-public-key"
BAD_ADDRESS = "bad-genesis-address"
BAD_ADDRESS_CHECKSUM = "bad-genesis-address-checksum"
BAD_AMOUNT = "bad-genesis-amount"
SUPPLY_TOO_LARGE = "bad-genesis-supply"
BAD_PARAMS = "bad-genesis-params"


class GenesisError(CodedError, ValueError):
    """A genesis document that cannot start a chain; ``code`` is stable, ``message`` names the field."""

    code_in_str = True
