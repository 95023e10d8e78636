"""Free read-only endpoints: path recognition and the glob -> Lua pattern translation the Lua
filter filters `GET /v1/models` with (the Lua side runs through Envoy in tests/security)."""

from __future__ import annotations

import fnmatch
import re

import pytest

from keeptrusts_authz.gateway.free_endpoints import (
    count_tokens_model,
    free_kind,
    free_path,
    lua_pattern,
    models_filter,
)


def _lua_to_re(pattern: str) -> str:
    """Just enough of Lua patterns for what lua_pattern emits: %x literal, . and .*"""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "%":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(c if c in "^$.*" else re.escape(c))
        i += 1
    return "".join(out)


NAMES = ["claude-3-5-haiku", "gpt-4o", "gpt-4o-mini", "o1", "gpt-4.1-nano", "gpt-401", "a+b(c)%"]


@pytest.mark.parametrize("glob", ["claude-*", "gpt-4o", "o?", "gpt-4.1-*", "a+b(c)%", "*"])
@pytest.mark.parametrize("name", NAMES)
def test_lua_pattern_matches_what_fnmatch_matches(glob: str, name: str) -> None:
    lua = lua_pattern(glob)
    assert lua.startswith("^") and lua.endswith("$")
    assert bool(re.fullmatch(_lua_to_re(lua), name)) == fnmatch.fnmatchcase(name, glob)


def test_paths_and_kinds() -> None:
    assert free_path("/v1/models") == "/v1/models"
    assert free_path("/v1/models/?limit=5") == "/v1/models"
    assert free_path("/v1/models/gpt-4o") is None
    assert free_path("/v1/messages/count_tokens") == "/v1/messages/count_tokens"
    assert free_path("/v1/messages") is None
    assert free_kind("/v1/models", anthropic_version=False) == "openai_models"
    assert free_kind("/v1/models", anthropic_version=True) == "anthropic_models"
    assert free_kind("/v1/messages/count_tokens", anthropic_version=True) == (
        "anthropic_count_tokens"
    )
    assert models_filter(["a*", "b"]) == "^a.*$\n^b$"


@pytest.mark.parametrize(
    ("body", "model"),
    [
        (b'{"model":"claude-3-5-haiku","messages":[]}', "claude-3-5-haiku"),
        (b'{"messages":[]}', None),
        (b'{"model":7}', None),
        (b"[1]", None),
        (b"\xff", None),
        (b"", None),
    ],
)
def test_count_tokens_model(body: bytes, model: str | None) -> None:
    assert count_tokens_model(body) == model
