"""Map a presented API key to its consumer group without leaking timing or the key itself."""

from __future__ import annotations

import os
from collections.abc import Mapping

from keeptrusts_authz.config.models import Config, ConsumerGroup
from keeptrusts_authz.credentials import DigestMatcher, bearer_token


class KeyRing:
    """sha256 digests of every group's key, matched in constant time (`credentials`)."""

    def __init__(self, matcher: DigestMatcher[ConsumerGroup]) -> None:
        self._matcher = matcher

    @classmethod
    def from_config(cls, cfg: Config, environ: Mapping[str, str] | None = None) -> KeyRing:
        env = dict(os.environ if environ is None else environ)
        return cls(DigestMatcher((g.key_digest(env), g) for g in cfg.consumer_groups))

    def lookup(self, presented: str | None) -> ConsumerGroup | None:
        return self._matcher.match(presented)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The caller's key: `Authorization: Bearer <key>` (OpenAI style) or `x-api-key` (Anthropic)."""
    token = bearer_token(headers.get("authorization"))
    if token is not None:
        return token
    key = headers.get("x-api-key", "").strip()
    return key or None
