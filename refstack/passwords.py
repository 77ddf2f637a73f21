"""Password hashing with scrypt, a deliberately slow, memory-hard KDF from the stdlib."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

# 16 MiB and ~25 ms a hash on a laptop core: slow for an attacker, tolerable for a login.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str) -> str:
    """Return a self-describing hash: scrypt$n$r$p$salt$digest (base64)."""
    salt = os.urandom(16)
    digest = _scrypt(password, salt, _N, _R, _P)
    return "$".join(("scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str | None) -> bool:
    """Check a password; a missing or unreadable hash never matches (but costs the same)."""
    try:
        scheme, n, r, p, salt, digest = (stored or "").split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        # Spend the same time as a real check so response time does not reveal which
        # accounts exist or have a password.
        _scrypt(password, b"refstack-dummy-salt", _N, _R, _P)
        return False
    return hmac.compare_digest(expected, actual)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_DKLEN)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
