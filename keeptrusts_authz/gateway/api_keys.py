"""Map a presented API key to its consumer group without leaking timing or the key itself."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from keeptrusts_authz.config.models import Config, ConsumerGroup


class KeyRing:
    """sha256 digests of every group's key; lookups compare against all of them in constant time."""

    def __init__(self, groups: list[tuple[bytes, ConsumerGroup]]) -> None:
        self._groups = groups

    @classmethod
    def from_config(cls, cfg: Config, environ: Mapping[str, str] | None = None) -> KeyRing:
        env = dict(os.environ if environ is None else environ)
        return cls([(bytes.fromhex(g.key_digest(env)), g) for g in cfg.consumer_groups])

    def lookup(self, presented: str | None) -> ConsumerGroup | None:
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: ConsumerGroup | None = None
        for candidate, group in self._groups:
            # No early exit: every lookup costs the same whatever key matches.
            if hmac.compare_digest(candidate, digest):
                found = group
        return found


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The caller's key: `Authorization: Bearer <key>` (OpenAI style) or `x-api-key` (Anthropic)."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None
