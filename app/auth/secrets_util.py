"""Random tokens that are stored only as hashes.

API tokens and session ids are long random strings, so a fast SHA-256 is the right hash for
them (a slow password hash buys nothing against 256 bits of entropy and would cost every request).
"""

from __future__ import annotations

import hashlib
import secrets


def new_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
