"""The wallet file: one secp256k1 key, encrypted with a passphrase.

The key is sealed with AES-256-GCM under a key stretched from the passphrase
by scrypt (memory-hard, so guessing passphrases offline is slow); the address
is bound in as associated data, so a ciphertext moved into another wallet file
does not open.  A wrong passphrase fails the GCM tag check: it is refused, never
turned into a wrong key.  Devnet wallets may be written without a passphrase
(``--no-passphrase``): the key is then stored in the clear, still mode 0600.

The file also pins the genesis the wallet trusts (see ``wallet.trust``)::

    {"format": "ledger-wallet", "version": 1, "name": "alice",
     "address": "lg1...", "public_key": "02...",
     "encryption": {"kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "...",
                    "cipher": "aes-256-gcm", "nonce": "...", "ciphertext": "..."},
     "trusted_genesis": {"chain_id": "devnet", "genesis_hash": "..."}}
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from node.crypto import (
    CryptoError,
    address_hash,
    address_of,
    check_private_key,
    decode_address,
    derive_public_key,
    generate_private_key,
)
from node.errors import CodedError

FORMAT = "ledger-wallet"
VERSION = 1
SCRYPT_N = 2**15
"""scrypt cost: 32 MiB and about a tenth of a second per guess on a laptop."""
SCRYPT_R = 8
SCRYPT_P = 1
SALT_SIZE = 16
NONCE_SIZE = 12


class KeystoreError(CodedError):
    """A wallet file that cannot be used; ``code`` is stable."""


def _kdf(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    maxmem = 128 * r * n * 2 + 1024 * 1024
    return hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=maxmem)


def encrypt_private_key(private_key: bytes, passphrase: str, address: str, n: int = SCRYPT_N) -> dict:
    check_private_key(private_key)
    if not passphrase:
        raise KeystoreError("empty-passphrase", "the passphrase is empty; choose one, or use --no-passphrase")
    salt = os.urandom(SALT_SIZE)
    nonce = os.urandom(NONCE_SIZE)
    key = _kdf(passphrase, salt, n, SCRYPT_R, SCRYPT_P)
    ciphertext = AESGCM(key).encrypt(nonce, private_key, address.encode("ascii"))
    return {"kdf": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex(),
            "cipher": "aes-256-gcm", "nonce": nonce.hex(), "ciphertext": ciphertext.hex()}


def decrypt_private_key(encryption: dict, passphrase: str, address: str) -> bytes:
    try:
        if encryption["kdf"] != "scrypt" or encryption["cipher"] != "aes-256-gcm":
            raise KeystoreError("unsupported-keystore",
                                f"unsupported kdf/cipher {encryption['kdf']}/{encryption['cipher']}")
        n, r, p = int(encryption["n"]), int(encryption["r"]), int(encryption["p"])
        if n < 2 or n & (n - 1) or n > 2**22 or not 1 <= r <= 32 or not 1 <= p <= 16:
            raise KeystoreError("bad-keystore", "scrypt parameters out of range")
        salt = bytes.fromhex(encryption["salt"])
        nonce = bytes.fromhex(encryption["nonce"])
        ciphertext = bytes.fromhex(encryption["ciphertext"])
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreError("bad-keystore", f"encryption section is malformed: {exc}") from None
    key = _kdf(passphrase, salt, n, r, p)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, address.encode("ascii"))
    except InvalidTag:
        raise KeystoreError("wrong-passphrase", "wrong passphrase (or the wallet file was altered)") from None


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` atomically with mode 0600 (never readable by others, not even briefly)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class Keystore:
    """A loaded wallet file (the key stays sealed until ``unlock``)."""

    path: Path
    """Where the file lives."""
    data: dict
    """The file's JSON object."""

    @property
    def address(self) -> str:
        return self.data["address"]

    @property
    def name(self) -> str:
        return self.data.get("name") or self.path.stem

    @property
    def encrypted(self) -> bool:
        return self.data.get("encryption") is not None

    @property
    def trusted_genesis(self) -> dict | None:
        return self.data.get("trusted_genesis")

    def unlock(self, passphrase: str | None) -> bytes:
        """The private key; refuses a wrong passphrase and a key that does not match the address."""
        if self.encrypted:
            if passphrase is None:
                raise KeystoreError("passphrase-required", f"{self.path} is encrypted: a passphrase is needed")
            key = decrypt_private_key(self.data["encryption"], passphrase, self.address)
        else:
            try:
                key = bytes.fromhex(self.data["private_key"])
            except (KeyError, TypeError, ValueError):
                raise KeystoreError("bad-keystore", f"{self.path} holds no readable private key") from None
        try:
            public_key = derive_public_key(key)
        except CryptoError as exc:
            raise KeystoreError("bad-keystore", f"{self.path}: {exc.message}") from None
        if address_of(public_key) != self.address:
            raise KeystoreError("bad-keystore", f"{self.path}: the key does not match the address {self.address}")
        return key

    def save(self) -> None:
        write_private_file(self.path, json.dumps(self.data, indent=2) + "\n")

    def pin_genesis(self, chain_id: str, genesis_hash_hex: str) -> None:
        self.data["trusted_genesis"] = {"chain_id": chain_id, "genesis_hash": genesis_hash_hex}
        self.save()


def create_keystore(path: Path, private_key: bytes | None = None, passphrase: str | None = None, *,
                    name: str | None = None, trusted_genesis: dict | None = None, overwrite: bool = False,
                    scrypt_n: int = SCRYPT_N) -> Keystore:
    """Write a new wallet file; ``passphrase=None`` stores the key unencrypted (devnets only)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeystoreError("wallet-exists", f"{path} already exists; refusing to overwrite a wallet")
    key = private_key if private_key is not None else generate_private_key()
    check_private_key(key)
    public_key = derive_public_key(key)
    address = address_of(public_key)
    data: dict = {"format": FORMAT, "version": VERSION, "name": name or path.stem, "address": address,
                  "public_key": public_key.hex()}
    if passphrase is None:
        data["encryption"] = None
        data["private_key"] = key.hex()
    else:
        data["encryption"] = encrypt_private_key(key, passphrase, address, scrypt_n)
    data["trusted_genesis"] = trusted_genesis
    store = Keystore(path, data)
    store.save()
    return store


def load_keystore(path: Path) -> Keystore:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeystoreError("no-wallet", f"no wallet file at {path}: create one with `ledger-wallet new "
                                         f"--wallet {path}`") from None
    except OSError as exc:
        raise KeystoreError("unreadable-wallet", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeystoreError("bad-keystore", f"{path} is not a wallet file: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise KeystoreError("bad-keystore", f"{path} is not a ledger-wallet file")
    if data.get("version") != VERSION:
        raise KeystoreError("unsupported-keystore",
                            f"{path} has version {data.get('version')}; this wallet reads {VERSION}")
    address = data.get("address")
    try:
        public_key = bytes.fromhex(data.get("public_key", ""))
        ok = isinstance(address, str) and address_hash(public_key) == decode_address(address)
    except (ValueError, CryptoError):
        ok = False
    if not ok:
        raise KeystoreError("bad-keystore", f"{path}: address and public key do not match")
    return Keystore(path, data)

