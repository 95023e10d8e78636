import json

import pytest

from keeptrusts_authz.gateway.request_parsing import (
    TOKENS_PER_MESSAGE,
    TOKENS_PER_REQUEST,
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


def test_input_bound_covers_every_byte_of_the_body() -> None:
    msgs = [{"role": "system", "content": "héllo"}, {"role": "user", "content": "world"}]
    raw = body(model="gpt-4o", messages=msgs, max_tokens=50)
    p = parse_request("openai_chat", raw)
    assert p.input_tokens_bound == len(raw) + 2 * TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST
    assert p.output_bound == 50
    assert (p.model, p.stream, p.choices, p.images) == ("gpt-4o", False, 1, 0)


def test_structure_counts_too() -> None:
    """Tool schemas, response formats and long keys are prompt tokens as well."""
    schema = {"type": "object", "properties": {"k" * 500: {"type": "string"}}}
    plain = parse_request("openai_chat", body(model="gpt-4o", messages=[]))
    rich = parse_request(
        "openai_chat",
        body(
            model="gpt-4o",
            messages=[],
            tools=[{"type": "function", "function": {"name": "f", "parameters": schema}}],
            response_format={"type": "json_schema", "json_schema": {"schema": schema}},
        ),
    )
    assert rich.input_tokens_bound - plain.input_tokens_bound > 1000


def test_output_limits_per_api_take_the_largest() -> None:
    p = parse_request(
        "openai_chat", body(model="o3", messages=[], max_completion_tokens=7, max_tokens=9)
    )
    assert p.output_bound == 9
    p = parse_request("openai_responses", body(model="gpt-4.1", input="hi", max_output_tokens=3))
    assert p.output_bound == 3
    # max_tokens means nothing to the Responses API: the model's maximum applies.
    p = parse_request("openai_responses", body(model="gpt-4.1", input="hi", max_tokens=3))
    assert p.output_bound is None
    p = parse_request("openai_chat", body(model="gpt-4o", messages=[]))
    assert p.output_bound is None
    p = parse_request("openai_completions", body(model="gpt-4o", prompt="x"))
    assert p.output_bound == 16


def test_every_choice_is_reserved() -> None:
    p = parse_request("openai_chat", body(model="gpt-4o", messages=[], n=50, max_tokens=10))
    assert p.choices == 50
    p = parse_request("openai_completions", body(model="gpt-4o", prompt="x", n=2, best_of=5))
    assert p.choices == 5
    p = parse_request(
        "anthropic_messages", body(model="claude-sonnet-4", messages=[], n=9, max_tokens=1)
    )
    assert p.choices == 1  # not an Anthropic parameter


def test_images_history_and_predictions_are_flagged() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        {"type": "image_url", "image_url": {"url": "https://x/z.png"}},
    ]
    p = parse_request(
        "openai_chat",
        body(
            model="gpt-4o",
            messages=[{"role": "user", "content": content}],
            prediction={"type": "content", "content": "abcd"},
        ),
    )
    assert p.images == 2
    assert p.extra_output_tokens >= 4
    p = parse_request(
        "openai_responses", body(model="gpt-4.1", input="more", previous_response_id="resp_1")
    )
    assert p.server_history is True


def test_anthropic_requires_max_tokens() -> None:
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
        ("openai_chat", b"\xff\xfe", "invalid_encoding"),
        ("openai_chat", b"\xef\xbb\xbf{}", "invalid_encoding"),
        ("openai_chat", '{"model":"gpt-4o"}'.encode("utf-16-le"), "invalid_encoding"),
        ("openai_chat", b'{"model":"gpt-4o","model":"o1","messages":[]}', "duplicate_key"),
        ("openai_chat", b'{"model":"o1","messages":[{"a":1,"a":1}]}', "duplicate_key"),
        ("openai_chat", b'{"model":"o1","messages":[],"temperature":NaN}', "invalid_number"),
        ("openai_chat", b'{"model":"o1","messages":[],"temperature":Infinity}', "invalid_number"),
        ("openai_chat", b'{"model":"o1","messages":[],"temperature":-1e309}', "invalid_number"),
        ("openai_chat", b"[1,2]", "invalid_request"),
        ("openai_chat", body(messages=[]), "missing_model"),
        ("openai_chat", body(model="", messages=[]), "missing_model"),
        ("openai_chat", body(model=5, messages=[]), "invalid_request"),
        ("openai_chat", body(model="gpt-4o"), "invalid_request"),
        ("openai_chat", body(model="gpt-4o", messages=[], max_tokens=-1), "invalid_request"),
        ("openai_chat", body(model="gpt-4o", messages=[], max_tokens="10"), "invalid_request"),
        ("openai_chat", body(model="gpt-4o", messages=[], max_tokens=True), "invalid_request"),
        ("openai_chat", body(model="gpt-4o", messages=[], n=0), "invalid_request"),
        ("openai_chat", body(model="gpt-4o", messages=[], n=1000), "invalid_request"),
        ("openai_embeddings", body(model="text-embedding-3-small"), "invalid_request"),
    ],
)
def test_bad_requests_are_specific(api: str, raw: bytes, code: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_request(api, raw)  # type: ignore[arg-type]
    assert err.value.status == 400
    assert err.value.code == code
