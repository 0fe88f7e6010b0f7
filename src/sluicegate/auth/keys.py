"""Virtual key secrets: generation, hashing, display prefix (SPEC §10).

A key is `sk-sg-` followed by 32 random bytes from `secrets`, written in base62 (43 characters,
no `-` or `_`, so a double-click selects all of it). Only its SHA-256 is stored. A fast hash is
the right one here: a slow password hash (bcrypt, argon2) protects low-entropy secrets against
guessing, but 256 random bits cannot be guessed at any speed, and a slow hash would put
milliseconds of CPU on every cache miss. The prefix `sk-sg-` + the first 8 characters identifies
a key in lists and logs; it carries 48 of the 256 bits, leaving 208 unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "sk-sg-"
SECRET_BYTES = 32
_DISPLAY_CHARS = 8
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 62**43 > 2**256: every 32-byte value fits in 43 base62 digits.
_BASE62_LEN = 43


def _base62(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    for _ in range(_BASE62_LEN):
        number, rem = divmod(number, 62)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def generate_secret() -> str:
    """A new key secret: `sk-sg-` + 43 base62 characters (256 random bits)."""
    return KEY_PREFIX + _base62(secrets.token_bytes(SECRET_BYTES))


def hash_secret(secret: str) -> str:
    """The stored form of a secret: SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def display_prefix(secret: str) -> str:
    """What lists show for a key, e.g. `sk-sg-AbCd1234`."""
    return secret[: len(KEY_PREFIX) + _DISPLAY_CHARS]


def hashes_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(a.encode(), b.encode())


def new_id(prefix: str) -> str:
    """A random public id such as `key_3f9a0c1d5e7b2a48` (not a secret; 64 bits, unique in practice)."""
    return f"{prefix}_{secrets.token_hex(8)}"
