"""The official `openai` and `anthropic` SDKs through the real gateway (Envoy, the authz service,
Redis; only the provider is faked): what a client written against the provider sees is what the
provider sent, and the wallet is charged exactly the usage the provider reported."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from keeptrusts_authz.pricing import PriceTable
from testing.redis_server import RedisServer, empty_keeping_epochs
from testing.stack import Stack
from tests.stack_fixtures import provider_fixture, stack_fixture  # noqa: F401

if TYPE_CHECKING:
    import anthropic
    import openai

pytestmark = pytest.mark.envoy

USD = 1_000_000
KEY = "kt_cg_engineering_prod"
TEAM = "team:team_engineering"
USAGE = (1234, 321, 200)
HEADERS = {"x-fake-usage": ",".join(map(str, USAGE)), "x-fake-chunk": "5"}
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "hello there"}]


@pytest.fixture(autouse=True)
def _funded(redis_server: RedisServer, stack: Stack) -> None:
    empty_keeping_epochs(redis_server.url)  # the module's services keep running
    stack.fund("team_engineering", 10 * USD)


# The SDKs are imported where a test uses them: importing both costs ~2 s, which every
# `make unit` run would pay at collection time otherwise.


def _openai(stack: Stack) -> openai.OpenAI:
    import openai

    return openai.OpenAI(base_url=stack.url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def _async_openai(stack: Stack) -> openai.AsyncOpenAI:
    import openai

    return openai.AsyncOpenAI(base_url=stack.url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def _anthropic(stack: Stack) -> anthropic.Anthropic:
    import anthropic

    return anthropic.Anthropic(base_url=stack.url, api_key=KEY, max_retries=0, timeout=30)


def _async_anthropic(stack: Stack) -> anthropic.AsyncAnthropic:
    import anthropic

    return anthropic.AsyncAnthropic(base_url=stack.url, api_key=KEY, max_retries=0, timeout=30)


def _charged_exactly(stack: Stack, model: str, usage: tuple[int, int, int] = USAGE) -> None:
    wallet = stack.wait_settled(TEAM)
    cost = PriceTable.from_config(stack.cfg).cost_micros(model, *usage)
    assert wallet.reserved == 0
    assert wallet.spent_total == cost > 0
    settles = [e for e in stack.wallets(lambda w: w.ledger(count=10)) if e.op == "settle"]
    assert [s.fields["estimated"] for s in settles] == ["0"]


# --------------------------------------------------------------------------- OpenAI chat


def test_chat_json(stack: Stack) -> None:
    reply = _openai(stack).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=256, extra_headers=HEADERS
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.prompt_tokens == USAGE[0]
    _charged_exactly(stack, "gpt-4o-mini")


def test_chat_stream_choices_loop_without_include_usage(stack: Stack) -> None:
    """The common loop indexes choices[0] on every chunk: the usage-only chunk the gateway asked
    for on the client's behalf must not reach it (the usage is still read and charged)."""
    stream = _openai(stack).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=256, stream=True, extra_headers=HEADERS
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "tok0 tok1 tok2 "
    _charged_exactly(stack, "gpt-4o-mini")


def test_chat_stream_with_include_usage_keeps_the_usage_chunk(stack: Stack) -> None:
    chunks = list(
        _openai(stack).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=256,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=HEADERS,
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == USAGE[1]
    _charged_exactly(stack, "gpt-4o-mini")


def test_chat_stream_helper(stack: Stack) -> None:
    with _openai(stack).chat.completions.stream(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=256, extra_headers=HEADERS
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "tok0 tok1 tok2 "
    _charged_exactly(stack, "gpt-4o-mini")


def test_async_chat_stream(stack: Stack) -> None:
    async def go() -> str:
        client = _async_openai(stack)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=256,
            stream=True,
            extra_headers=HEADERS,
        )
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream]
        await client.close()
        return "".join(parts)

    assert asyncio.run(go()) == "tok0 tok1 tok2 "
    _charged_exactly(stack, "gpt-4o-mini")


def test_completions_stream_without_include_usage(stack: Stack) -> None:
    stream = _openai(stack).completions.create(
        model="gpt-4o-mini", prompt="hi", max_tokens=256, stream=True, extra_headers=HEADERS
    )
    assert "".join(chunk.choices[0].text for chunk in stream) == "t0t1t2"
    _charged_exactly(stack, "gpt-4o-mini")


# --------------------------------------------------------------------------- OpenAI responses


def test_responses_json_and_stream(stack: Stack) -> None:
    client = _openai(stack)
    reply = client.responses.create(
        model="gpt-4.1", input="hi", max_output_tokens=300, extra_headers=HEADERS
    )
    assert reply.output_text == "Hi there"
    _charged_exactly(stack, "gpt-4.1")
    events = list(
        client.responses.create(
            model="gpt-4.1", input="hi", max_output_tokens=300, stream=True, extra_headers=HEADERS
        )
    )
    assert events[-1].type == "response.completed"
    wallet = stack.wait_settled(TEAM)
    cost = PriceTable.from_config(stack.cfg).cost_micros("gpt-4.1", *USAGE)
    assert wallet.spent_total == 2 * cost


def test_async_responses_stream(stack: Stack) -> None:
    async def go() -> str:
        client = _async_openai(stack)
        stream = await client.responses.create(
            model="gpt-4.1", input="hi", max_output_tokens=300, stream=True, extra_headers=HEADERS
        )
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        await client.close()
        return "".join(deltas)

    assert asyncio.run(go()) == "w0 w1 w2 "
    _charged_exactly(stack, "gpt-4.1")


# --------------------------------------------------------------------------- Anthropic messages


def test_messages_json(stack: Stack) -> None:
    reply = _anthropic(stack).messages.create(
        model="claude-sonnet-4", max_tokens=300, messages=MESSAGES, extra_headers=HEADERS
    )
    assert reply.content[0].type == "text"
    _charged_exactly(stack, "claude-sonnet-4")


def test_messages_stream_helper(stack: Stack) -> None:
    with _anthropic(stack).messages.stream(
        model="claude-sonnet-4", max_tokens=300, messages=MESSAGES, extra_headers=HEADERS
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "c0c1c2"
    assert final.usage.output_tokens == USAGE[1]
    _charged_exactly(stack, "claude-sonnet-4")


def test_async_messages_stream(stack: Stack) -> None:
    async def go() -> str:
        client = _async_anthropic(stack)
        stream = await client.messages.create(
            model="claude-sonnet-4",
            max_tokens=300,
            messages=MESSAGES,
            stream=True,
            extra_headers=HEADERS,
        )
        parts = [
            e.delta.text
            async for e in stream
            if e.type == "content_block_delta" and e.delta.type == "text_delta"
        ]
        await client.close()
        return "".join(parts)

    assert asyncio.run(go()) == "c0c1c2"
    _charged_exactly(stack, "claude-sonnet-4")


# --------------------------------------------------------------------------- refusals


def test_402_message_names_team_amounts_and_currency(
    redis_server: RedisServer, stack: Stack
) -> None:
    """SDKs show only `error.message`: it alone must say who cannot pay what."""
    import openai

    empty_keeping_epochs(redis_server.url)  # the module's services keep running
    stack.fund("team_engineering", 1)  # one micro
    with pytest.raises(openai.APIStatusError) as caught:
        _openai(stack).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=256
        )
    assert caught.value.status_code == 402
    text = str(caught.value)
    body = caught.value.body
    assert isinstance(body, dict)
    requested = body["requested"] if "requested" in body else body["error"]["requested"]
    assert "team_engineering" in text
    assert "0.000001 USD available" in text
    assert f"{requested} USD" in text
