"""Parse an LLM API request body into what a reservation needs: model, output bound, input size.

The input estimate is a strict upper bound rather than a guess: OpenAI's and Anthropic's tokenizers
are byte-level BPE, so a text never has more tokens than UTF-8 bytes. Reserving at that bound (plus
a fixed allowance per message and per image) is what lets a wallet never be overspent by requests
in flight; settlement then charges the real usage and returns the difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

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

# Fixed allowances, in tokens: role/separator tokens per message, and the most a single image
# input can cost (OpenAI high-detail tiles and Anthropic's ~1.6k tokens per 1.15 MP image).
TOKENS_PER_MESSAGE = 8
TOKENS_PER_IMAGE = 2_000
OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


class RequestError(Exception):
    """A request we refuse before reserving: `status` and `code` go into the JSON error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ParsedRequest:
    api: ApiKind
    model: str
    output_bound: int | None  # what the client asked for; None -> the model's maximum
    input_tokens_bound: int
    stream: bool


def api_kind(path: str) -> ApiKind | None:
    """Which LLM API a request path names (query string and a trailing slash ignored)."""
    clean = path.split("?", 1)[0].rstrip("/")
    return ROUTES.get(clean)


def _content_bound(value: Any) -> int:
    """Token upper bound of message content: text by bytes, images by allowance, recursively."""
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (int, float)):
        return 1
    if isinstance(value, list):
        return sum(_content_bound(v) for v in value)
    if isinstance(value, dict):
        kind = value.get("type")
        if kind in ("image_url", "image", "input_image", "input_audio", "document", "file"):
            return TOKENS_PER_IMAGE
        return sum(_content_bound(v) for k, v in value.items() if k != "type")
    return 0


def _messages_bound(messages: Any) -> int:
    if not isinstance(messages, list):
        return _content_bound(messages)
    return sum(TOKENS_PER_MESSAGE + _content_bound(m) for m in messages)


def _embedding_input_bound(value: Any) -> int:
    # Token-id arrays count one token per id; strings by bytes.
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return len(value)
    if isinstance(value, list):
        return sum(_embedding_input_bound(v) for v in value)
    return _content_bound(value)


def _output_bound(body: dict[str, Any]) -> int | None:
    for name in OUTPUT_FIELDS:
        if name not in body or body[name] is None:
            continue
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise RequestError(400, "invalid_request", f"{name} must be a positive integer")
        return value
    return None


def parse_request(api: ApiKind, raw: bytes) -> ParsedRequest:
    if not raw:
        raise RequestError(400, "invalid_request", "request body is empty; expected JSON")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
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

    output = _output_bound(body)
    if api == "openai_chat":
        if "messages" not in body:
            raise RequestError(400, "invalid_request", "request body has no 'messages'")
        bound = _messages_bound(body["messages"])
    elif api == "openai_completions":
        bound = _embedding_input_bound(body.get("prompt", ""))
    elif api == "openai_responses":
        bound = _messages_bound(body.get("input", "")) + _content_bound(body.get("instructions"))
    else:  # anthropic_messages
        if "messages" not in body:
            raise RequestError(400, "invalid_request", "request body has no 'messages'")
        if output is None:
            raise RequestError(400, "invalid_request", "max_tokens is required for /v1/messages")
        bound = _messages_bound(body["messages"]) + _content_bound(body.get("system"))
    # Tool definitions are sent to the model as prompt tokens too.
    bound += _content_bound(body.get("tools")) + _content_bound(body.get("tool_choice"))
    return ParsedRequest(api, model, output, bound + TOKENS_PER_MESSAGE, stream)
