import json

import pytest

from keeptrusts_authz.gateway.request_parsing import (
    TOKENS_PER_IMAGE,
    TOKENS_PER_MESSAGE,
    RequestError,
    api_kind,
    parse_request,
)


def body(**kw: object) -> bytes:
    return json.dumps(kw).encode()


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v1/chat/completions", "openai_chat"),
        ("/v1/chat/completions/", "openai_chat"),
        ("/v1/chat/completions?x=1", "openai_chat"),
        ("/v1/completions", "openai_completions"),
        ("/v1/responses", "openai_responses"),
        ("/v1/embeddings", "openai_embeddings"),
        ("/v1/messages", "anthropic_messages"),
        ("/v1/models", None),
        ("/v1/wallets/allocate", None),
    ],
)
def test_api_kind(path: str, kind: str | None) -> None:
    assert api_kind(path) == kind


def test_chat_bound_is_bytes_plus_allowances() -> None:
    msgs = [{"role": "system", "content": "héllo"}, {"role": "user", "content": "world"}]
    p = parse_request("openai_chat", body(model="gpt-4o", messages=msgs, max_tokens=50))
    text_bytes = len("system") + len("héllo".encode()) + len("user") + len("world")
    assert p.input_tokens_bound == text_bytes + 2 * TOKENS_PER_MESSAGE + TOKENS_PER_MESSAGE
    assert p.output_bound == 50
    assert p.model == "gpt-4o"
    assert p.stream is False


def test_output_field_priority_and_absence() -> None:
    p = parse_request(
        "openai_chat", body(model="o3", messages=[], max_completion_tokens=7, max_tokens=9)
    )
    assert p.output_bound == 7
    p = parse_request("openai_responses", body(model="gpt-4.1", input="hi", max_output_tokens=3))
    assert p.output_bound == 3
    p = parse_request("openai_chat", body(model="gpt-4o", messages=[]))
    assert p.output_bound is None


def test_images_get_a_fixed_allowance() -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]
    p = parse_request(
        "openai_chat", body(model="gpt-4o", messages=[{"role": "user", "content": content}])
    )
    assert p.input_tokens_bound >= TOKENS_PER_IMAGE


def test_anthropic_requires_max_tokens_and_counts_system() -> None:
    with pytest.raises(RequestError) as err:
        parse_request("anthropic_messages", body(model="claude-sonnet-4", messages=[]))
    assert err.value.status == 400
    p = parse_request(
        "anthropic_messages",
        body(model="claude-sonnet-4", system="x" * 100, messages=[], max_tokens=5, stream=True),
    )
    assert p.input_tokens_bound >= 100
    assert p.stream is True


def test_embeddings_token_arrays_and_strings() -> None:
    p = parse_request("openai_embeddings", body(model="text-embedding-3-small", input=[[1, 2, 3]]))
    assert p.input_tokens_bound == 3
    assert p.output_bound == 0
    p = parse_request("openai_embeddings", body(model="text-embedding-3-small", input=["ab", "c"]))
    assert p.input_tokens_bound == 3


@pytest.mark.parametrize(
    ("api", "raw", "code"),
    [
        ("openai_chat", b"", "invalid_request"),
        ("openai_chat", b"{not json", "invalid_json"),
        ("openai_chat", b"\xff\xfe", "invalid_json"),
        ("openai_chat", b"[1,2]", "invalid_request"),
        ("openai_chat", body(messages=[]), "missing_model"),
        ("openai_chat", body(model="", messages=[]), "missing_model"),
        ("openai_chat", body(model=5, messages=[]), "invalid_request"),
        ("openai_chat", body(model="gpt-4o"), "invalid_request"),
        ("openai_chat", body(model="gpt-4o", messages=[], max_tokens=-1), "invalid_request"),
        ("openai_chat", body(model="gpt-4o", messages=[], max_tokens="10"), "invalid_request"),
        ("openai_chat", body(model="gpt-4o", messages=[], max_tokens=True), "invalid_request"),
        ("openai_embeddings", body(model="text-embedding-3-small"), "invalid_request"),
    ],
)
def test_bad_requests_are_specific(api: str, raw: bytes, code: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_request(api, raw)  # type: ignore[arg-type]
    assert err.value.status == 400
    assert err.value.code == code
