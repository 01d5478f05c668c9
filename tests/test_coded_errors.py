"""Every typed error derives from the one ``CodedError``: a stable ``code`` and a ``message`` for people."""

from __future__ import annotations

import pytest

from genesis.errors import GenesisError as GenesisDocumentError
from node.address_history import HistoryError
from node.api.app import ApiError
from node.attestation import AttestationError
from node.consensus.certificate import CertificateError
from node.consensus.driver import ConsensusError
from node.consensus.signer import DoubleSignError, SignerError
from node.consensus.wal import WALError
from node.crypto import CryptoError
from node.errors import CodedError
from node.events import EventsError
from node.ledger.errors import BlockError, GenesisAllocationError, LedgerError, StoreError, TxError
from node.mempool import AlreadyCommitted, MempoolConflict, MempoolError, MempoolFull
from node.types.validators import ValidatorSetError
from wallet.amounts import AmountError
from wallet.cli import CliError
from wallet.client import NodeError
from wallet.coins import SelectionError
from wallet.keystore import KeystoreError
from wallet.quorum import QuorumError
from wallet.verify import VerificationError

PLAIN = [SignerError, DoubleSignError, ConsensusError, CertificateError, ValidatorSetError, WALError, CryptoError,
         MempoolError, MempoolFull, MempoolConflict, AlreadyCommitted, VerificationError, KeystoreError,
         SelectionError, AmountError, HistoryError, AttestationError, QuorumError,
         EventsError]
CODE_FIRST = [LedgerError, TxError, BlockError, GenesisAllocationError, StoreError, GenesisDocumentError]


@pytest.mark.parametrize("cls", PLAIN + CODE_FIRST, ids=lambda c: c.__name__)
def test_code_and_message(cls):
    error = cls("some-code", "what to do")
    assert isinstance(error, CodedError)
    assert (error.code, error.message) == ("some-code", "what to do")
    assert str(error) == ("some-code: what to do" if cls in CODE_FIRST else "what to do")


def test_value_errors_stay_value_errors():
    for cls in (CryptoError, ValidatorSetError, AmountError, GenesisDocumentError):
        with pytest.raises(ValueError):
            raise cls("c", "m")


def test_errors_with_more_to_say():
    api = ApiError(404, "tx-not-found", "no such transaction", txid="ab")
    assert (api.status, api.code, api.message, api.details) == (404, "tx-not-found", "no such transaction",
                                                                 {"txid": "ab"})
    cli = CliError("bad-amount", "not a number", exit_code=2, given="x")
    assert (cli.exit_code, cli.details) == (2, {"given": "x"})
    node = NodeError(409, "txn-mempool-conflict", "spent by a pending one", {"conflicting_txid": "cd"}, url="u")
    assert (node.status, node.code, node.details, node.url) == (409, "txn-mempool-conflict",
                                                                {"conflicting_txid": "cd"}, "u")
    block = BlockError("bad-txns-sig", "transaction 3: bad", tx_index=3)
    assert isinstance(block, LedgerError) and block.tx_index == 3 and block.tx_error is None
    selection = SelectionError("insufficient-funds", "need more", needed=5, available=3)
    assert selection.details == {"needed": 5, "available": 3}
