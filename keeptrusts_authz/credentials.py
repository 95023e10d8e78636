"""Presented credentials: Bearer parsing and constant-time matching against sha256 digests.

The one owner of both rules for the gateway's consumer-group API keys (`gateway.api_keys`) and the
wallet API's admin tokens (`api.auth`). Secrets are held only as sha256 digests; a presented
secret is hashed and compared with EVERY stored digest (hmac.compare_digest, no early exit), so
timing reveals neither which digest matched nor how much of it. Nothing here logs or keeps the
presented secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value (scheme case-insensitive), or None."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def secret_digest(secret: str) -> bytes:
    """sha256 of a presented secret (undecodable bytes kept as they came, never an exception)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


class DigestMatcher(Generic[T]):
    """sha256 digests, each with what it grants; `match` costs the same whichever one matches."""

    def __init__(self, entries: Iterable[tuple[str, T]]) -> None:
        """`entries`: (sha256 hex digest, value) pairs."""
        self._entries = [(bytes.fromhex(digest), value) for digest, value in entries]

    def match(self, presented: str | None) -> T | None:
        """The value of the first digest equal to sha256(presented), or None."""
        if not presented:
            return None
        digest = secret_digest(presented)
        found: T | None = None
        for expected, value in self._entries:
            # No early exit: every lookup compares against every digest.
            if hmac.compare_digest(expected, digest) and found is None:
                found = value
        return found


__all__ = ["DigestMatcher", "bearer_token", "secret_digest"]
