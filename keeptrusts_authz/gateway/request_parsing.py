"""Parse an LLM API request body into what a reservation needs: model, output bound, input bound.

The reservation is a strict upper bound, not a guess, so that requests in flight can never
overspend a wallet: OpenAI's and Anthropic's tokenizers are byte-level BPE, so the prompt a body
produces never has more tokens than the body has bytes (keys, tool schemas, response formats and
JSON escapes included), plus a few template tokens per message. What the body does not show is
added as allowances: images (per image part; model-specific) and the server-side history a
Responses request pulls in. The output bound is the request's limit (the model's maximum when
absent) times the number of choices it asks for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from keeptrusts_authz.gateway.unbounded_inputs import unbounded_inputs

ApiKind = Literal[
    "openai_chat",
    "openai_completions",
    "openai_responses",
    "openai_embeddings",
    "anthropic_messages",
]

ROUTES: dict[str, ApiKind] = {
    "/v1/chat/completions": "openai_chat",
    "/v1/completions": "openai_completions",
    "/v1/responses": "openai_responses",
    "/v1/embeddings": "openai_embeddings",
    "/v1/messages": "anthropic_messages",
}

# Template tokens a chat format adds per message (role markers, separators), and once per request
# (the assistant priming, the tools preamble).
TOKENS_PER_MESSAGE = 8
TOKENS_PER_REQUEST = 64
# Output limit fields each API honours; where several are given the largest counts.
OUTPUT_FIELDS: dict[ApiKind, tuple[str, ...]] = {
    "openai_chat": ("max_completion_tokens", "max_tokens"),
    "openai_completions": ("max_tokens",),
    "openai_responses": ("max_output_tokens",),
    "openai_embeddings": (),
    "anthropic_messages": ("max_tokens",),
}
# The legacy completions API generates 16 tokens when max_tokens is absent.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
IMAGE_PART_TYPES = frozenset({"image_url", "image", "input_image"})
MAX_CHOICES = 128


class RequestError(Exception):
    """A request we refuse before reserving: `status` and `code` go into the JSON error body,
    with `extra` (e.g. the duplicated key) beside the message."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


# Byte-order marks of the encodings json.loads would otherwise detect on bytes by itself.
_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xef\xbb\xbf", "UTF-8 with a byte-order mark"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: refuse an object that names a key twice, at any depth. A parser that
    keeps the first copy (some providers and proxies do) would otherwise serve another model or
    limit than the one this gateway priced and allowed."""
    body = dict(pairs)
    if len(body) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key if len(key) <= 64 else key[:64] + "..."
                raise RequestError(
                    400,
                    "duplicate_key",
                    f"request body names the key {shown!r} twice in one object; send each key once",
                    key=shown,
                )
            seen.add(key)
    return body


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise RequestError(
            400, "invalid_number", f"request body holds a number out of range ({text[:32]})"
        )
    return value


def _no_constant(name: str) -> Any:
    raise RequestError(
        400, "invalid_number", f"request body holds {name}, which is not JSON; send a number"
    )


def decode_json_body(raw: bytes) -> Any:
    """The body as JSON, strictly: UTF-8 without a byte-order mark (json.loads would guess
    UTF-16/32 on bytes), no key twice in an object, no NaN/Infinity, no number out of range."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise RequestError(
                400, "invalid_encoding", f"request body must be UTF-8 JSON; it starts as {name}"
            )
    if b"\x00" in raw[:4]:  # RFC 4627 section 3: how UTF-16/32 without a mark begins
        raise RequestError(
            400, "invalid_encoding", "request body must be UTF-8 JSON; it looks like UTF-16/32"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(
            400,
            "invalid_encoding",
            f"request body must be UTF-8 JSON; byte {exc.start} is not UTF-8",
        ) from None
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise RequestError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None


@dataclass(frozen=True)
class ParsedRequest:
    api: ApiKind
    model: str
    output_bound: int | None  # per choice, as asked; None -> the model's maximum
    input_tokens_bound: int  # text and structure; images and history are added per model
    stream: bool
    choices: int = 1  # completions generated (n, best_of): each is billed
    images: int = 0  # image parts, each charged the model's image allowance
    server_history: bool = False  # previous_response_id / conversation: unseen input
    extra_output_tokens: int = 0  # predicted-output content, billed as output when rejected
    # Asks for reasoning the provider may bill without streaming it (Anthropic `thinking`,
    # summarised; OpenAI `reasoning` / `reasoning_effort`).
    reasoning: bool = False
    # Anthropic betas the request names (`anthropic-beta`); some raise the model's output limit.
    betas: tuple[str, ...] = ()
    # The OpenAI `service_tier` the request asks for (priced per tier); None when absent.
    service_tier: str | None = None
    # Inputs the body only points at, (feature, occurrences): see gateway/unbounded_inputs.
    unbounded: tuple[tuple[str, int], ...] = ()


def api_kind(path: str) -> ApiKind | None:
    """Which LLM API a request path names (query string and a trailing slash ignored)."""
    clean = path.split("?", 1)[0].rstrip("/")
    return ROUTES.get(clean)


def _count_images(value: Any) -> int:
    if isinstance(value, list):
        return sum(_count_images(v) for v in value)
    if isinstance(value, dict):
        own = 1 if value.get("type") in IMAGE_PART_TYPES else 0
        return own + sum(_count_images(v) for v in value.values())
    return 0


def _count_messages(body: dict[str, Any]) -> int:
    for name in ("messages", "input"):
        value = body.get(name)
        if isinstance(value, list):
            return len(value)
    return 1


def _bytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    if name not in body or body[name] is None:
        return None
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RequestError(400, "invalid_request", f"{name} must be a positive integer")
    return value


def _output_bound(api: ApiKind, body: dict[str, Any]) -> int | None:
    given = [v for name in OUTPUT_FIELDS[api] if (v := _positive_int(body, name)) is not None]
    if given:
        return max(given)
    if api == "openai_completions":
        return COMPLETIONS_DEFAULT_MAX_TOKENS
    return None


def _choices(api: ApiKind, body: dict[str, Any]) -> int:
    if api not in ("openai_chat", "openai_completions"):
        return 1
    counts = [v for name in ("n", "best_of") if (v := _positive_int(body, name)) is not None]
    choices = max(counts, default=1)
    if choices > MAX_CHOICES:
        raise RequestError(400, "invalid_request", f"n/best_of must be at most {MAX_CHOICES}")
    return choices


def _embedding_input_bound(value: Any) -> int:
    # Token-id arrays count one token per id; text by bytes.
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return len(value)
    if isinstance(value, list):
        return sum(_embedding_input_bound(v) for v in value)
    return _bytes(value)


def _asks_for_reasoning(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
        return True
    return body.get("reasoning") is not None or body.get("reasoning_effort") is not None


ANTHROPIC_BETA_HEADER = "anthropic-beta"


def parse_request(api: ApiKind, raw: bytes, anthropic_beta: str = "") -> ParsedRequest:
    """`anthropic_beta`: the request's `anthropic-beta` header (comma-separated names)."""
    if not raw:
        raise RequestError(400, "invalid_request", "request body is empty; expected JSON")
    body = decode_json_body(raw)
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_request", "request body must be a JSON object")
    model = body.get("model")
    if model is None or model == "":
        raise RequestError(400, "missing_model", "request body has no 'model'")
    if not isinstance(model, str) or len(model) > 200:
        raise RequestError(400, "invalid_request", "'model' must be a string")
    stream = body.get("stream") is True

    if api == "openai_embeddings":
        if "input" not in body:
            raise RequestError(400, "invalid_request", "request body has no 'input'")
        return ParsedRequest(api, model, 0, _embedding_input_bound(body["input"]), False)
    if api in ("openai_chat", "anthropic_messages") and "messages" not in body:
        raise RequestError(400, "invalid_request", "request body has no 'messages'")
    output = _output_bound(api, body)
    if api == "anthropic_messages" and output is None:
        raise RequestError(400, "invalid_request", "max_tokens is required for /v1/messages")
    prediction = body.get("prediction") if api == "openai_chat" else None
    return ParsedRequest(
        api=api,
        model=model,
        output_bound=output,
        # Every prompt token comes from some byte of the body; the body's bytes bound them all.
        input_tokens_bound=len(raw)
        + TOKENS_PER_MESSAGE * _count_messages(body)
        + TOKENS_PER_REQUEST,
        stream=stream,
        choices=_choices(api, body),
        images=_count_images(body),
        server_history=api == "openai_responses"
        and bool(body.get("previous_response_id") or body.get("conversation")),
        extra_output_tokens=_bytes(prediction),
        reasoning=_asks_for_reasoning(body),
        betas=tuple(b.strip() for b in anthropic_beta.split(",") if b.strip())
        if api == "anthropic_messages"
        else (),
        service_tier=_service_tier(api, body),
        unbounded=unbounded_inputs(api, body),
    )


def _service_tier(api: ApiKind, body: dict[str, Any]) -> str | None:
    # Anthropic's `service_tier` (auto | standard_only) picks no priced tier of its own.
    tier = body.get("service_tier") if api != "anthropic_messages" else None
    return tier if isinstance(tier, str) and tier else None
