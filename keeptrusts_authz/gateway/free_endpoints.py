"""Free read-only provider endpoints: authenticated by the `kt_` key, passed through with no
reservation (no wallet change, no ledger entry), because the provider bills nothing for them.

- `GET /v1/models` (OpenAI's model list; Anthropic's when the request names `anthropic-version`)
- `POST /v1/messages/count_tokens` (Anthropic's token counter)

Everything else that is not an LLM route stays 404 `unsupported_endpoint` (admission).

`GET /v1/models` for a group with `allowed_models`: the Check cannot know the provider's list, so
it passes the group's patterns to Envoy in its dynamic metadata (`AUTHZ_MODELS_FILTER`, one Lua
pattern per line, translated here from the fnmatch patterns admission matches models with), and
the Lua filter rewrites the response's `data` array to the models whose `id` matches (an
unreadable body becomes an empty list: fail closed). Answering from the Check instead would
invent a list the provider never sent (a model may be allowed by pattern yet not offered), and
would need the provider key in the service, which issue 9 item 1 removed.
"""

from __future__ import annotations

import json
from typing import Literal

FreeKind = Literal["openai_models", "anthropic_models", "anthropic_count_tokens"]

MODELS_PATH = "/v1/models"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
# The method each free path answers (another method: 405 naming it).
FREE_PATHS: dict[str, str] = {MODELS_PATH: "GET", COUNT_TOKENS_PATH: "POST"}


def free_path(path: str) -> str | None:
    """The free endpoint a request path names (query string and a trailing slash ignored)."""
    clean = path.split("?", 1)[0].rstrip("/")
    return clean if clean in FREE_PATHS else None


def free_kind(path: str, anthropic_version: bool) -> FreeKind:
    if path == COUNT_TOKENS_PATH:
        return "anthropic_count_tokens"
    return "anthropic_models" if anthropic_version else "openai_models"


def lua_pattern(glob: str) -> str:
    """An fnmatch-style model pattern (`*`, `?`) as an anchored Lua pattern. Every other
    character is literal (`%` escapes any non-alphanumeric character in Lua patterns);
    fnmatch's `[...]` classes are matched literally."""
    out = []
    for c in glob:
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c.isalnum():
            out.append(c)
        else:
            out.append("%" + c)
    return "^" + "".join(out) + "$"


def models_filter(allowed_models: list[str]) -> str:
    """The metadata value the Lua filter reads: one anchored Lua pattern per line."""
    return "\n".join(lua_pattern(p) for p in allowed_models)


def count_tokens_model(body: bytes) -> str | None:
    """The `model` a count_tokens body names, or None when the body is not a JSON object with a
    string model (the request is refused before it reaches the provider)."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    model = obj.get("model") if isinstance(obj, dict) else None
    return model if isinstance(model, str) and model else None
