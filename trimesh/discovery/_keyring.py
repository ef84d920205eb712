"""The mesh keyring: AES-GCM keys for gossip packets, with rotation as Serf does it. PURE.

Serf's keyring (``serf keys -install/-use/-remove``, memberlist ``keyring.go``) keeps several keys:
packets are *sealed* with the primary key and *opened* by trying every installed key, so a new key
can be rolled out in three steps without a partition — install it everywhere, make it primary
everywhere, remove the old one. This module keeps that contract with AES-GCM from ``cryptography``
(128/192/256-bit keys). Nonces are supplied by the caller (the wire layer draws them from its
``rng``), so this module has no randomness of its own.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12  # AES-GCM standard nonce (NIST SP 800-38D §8.2)
TAG_SIZE = 16  # AES-GCM authentication tag appended by AESGCM.encrypt
KEY_SIZES = (16, 24, 32)


class KeyringError(ValueError):
    """A key of the wrong size, or an operation the keyring cannot do (remove the primary)."""


def _check(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) not in KEY_SIZES:
        raise KeyringError(f"a gossip key must be 16, 24 or 32 bytes, got "
                           f"{len(key) if isinstance(key, (bytes, bytearray)) else type(key).__name__}")
    return bytes(key)


class Keyring:
    """Installed keys, the first of which is primary (used to seal)."""

    def __init__(self, primary: bytes, others: tuple[bytes, ...] | list[bytes] = ()) -> None:
        self._keys: list[bytes] = []
        self._aead: dict[bytes, AESGCM] = {}
        self.install(primary)
        for key in others:
            self.install(key)
        self._opened_with_secondary = 0

    @property
    def primary(self) -> bytes:
        return self._keys[0]

    @property
    def keys(self) -> tuple[bytes, ...]:
        return tuple(self._keys)

    def install(self, key: bytes) -> None:
        """Add a key used for opening (no effect if present)."""
        key = _check(key)
        if key not in self._aead:
            self._keys.append(key)
            self._aead[key] = AESGCM(key)

    def use(self, key: bytes) -> None:
        """Make an installed key the primary one."""
        key = _check(key)
        if key not in self._aead:
            raise KeyringError("cannot use a key that is not installed; install it first")
        self._keys.remove(key)
        self._keys.insert(0, key)

    def remove(self, key: bytes) -> None:
        """Forget a key; the primary key cannot be removed (``use`` another first)."""
        key = _check(key)
        if key == self._keys[0]:
            raise KeyringError("cannot remove the primary key; use another key first")
        if key in self._aead:
            self._keys.remove(key)
            del self._aead[key]

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Ciphertext with its tag, sealed with the primary key."""
        return self._aead[self._keys[0]].encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes | None:
        """The plaintext, or ``None`` if no installed key authenticates it."""
        for i, key in enumerate(self._keys):
            try:
                plain = self._aead[key].decrypt(nonce, ciphertext, aad)
            except InvalidTag:
                continue
            if i:
                self._opened_with_secondary += 1
            return plain
        return None

    def statistics(self) -> dict[str, int]:
        return {"keys": len(self._keys), "opened_with_secondary": self._opened_with_secondary}

    def __repr__(self) -> str:
        return f"<Keyring {len(self._keys)} key(s), primary {len(self._keys[0]) * 8}-bit>"
