"""The reservation is an upper bound of what the provider can bill for the request."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.gateway.estimation import reservation_micros, reservation_tokens
from keeptrusts_authz.gateway.request_parsing import parse_request
from keeptrusts_authz.pricing import PriceTable

CFG = parse_config({})
PRICES = PriceTable.from_config(CFG)


def tokens(
    body: dict[str, object], api: str = "openai_chat", model: str = "gpt-4o"
) -> tuple[int, int]:
    parsed = parse_request(api, json.dumps(body).encode())  # type: ignore[arg-type]
    return reservation_tokens(parsed, PRICES.resolve(model), CFG.enforcement)


def test_choices_multiply_the_output_bound() -> None:
    one = tokens({"model": "gpt-4o-mini", "messages": [], "max_tokens": 1000}, model="gpt-4o-mini")
    fifty = tokens(
        {"model": "gpt-4o-mini", "messages": [], "max_tokens": 1000, "n": 50}, model="gpt-4o-mini"
    )
    assert one[1] == 1000
    assert fifty[1] == 50_000


def test_output_is_capped_by_the_model_maximum() -> None:
    _, out = tokens({"model": "gpt-4o", "messages": [], "max_tokens": 10**9})
    assert out == PRICES.resolve("gpt-4o").price.max_output_tokens


def test_image_allowance_is_model_specific() -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 1}
    mini_in, _ = tokens({**body, "model": "gpt-4o-mini"}, model="gpt-4o-mini")
    big_in, _ = tokens({**body, "model": "gpt-4o"}, model="gpt-4o")
    text_in, _ = tokens({**body, "model": "gpt-4o", "messages": []})
    assert mini_in - len("-mini") - big_in == 48169 - CFG.enforcement.image_input_tokens
    assert big_in > text_in + CFG.enforcement.image_input_tokens


def test_server_history_is_reserved() -> None:
    plain, _ = tokens({"model": "gpt-4.1", "input": "x"}, api="openai_responses", model="gpt-4.1")
    chained, _ = tokens(
        {"model": "gpt-4.1", "input": "x", "previous_response_id": "resp_1"},
        api="openai_responses",
        model="gpt-4.1",
    )
    # server_history_tokens unset: the model's context window (genai-prices: 1M for gpt-4.1),
    # no longer a fixed 200k that a long chain could exceed.
    assert CFG.enforcement.server_history_tokens is None
    window = PRICES.resolve("gpt-4.1").price.context_window
    assert window == 1_000_000
    assert chained - plain >= window
    configured = parse_config({"enforcement": {"server_history_tokens": 5000}})
    parsed = parse_request(
        "openai_responses",
        json.dumps({"model": "gpt-4.1", "input": "x", "previous_response_id": "r"}).encode(),
    )
    fixed, _ = reservation_tokens(parsed, PRICES.resolve("gpt-4.1"), configured.enforcement)
    assert fixed - plain == 5000 + len(', "previous_response_id": "r"')


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(min_size=0, max_size=200), min_size=1, max_size=8),
    max_tokens=st.integers(min_value=1, max_value=20_000),
    n=st.integers(min_value=1, max_value=8),
)
def test_bound_covers_any_text_prompt(texts: list[str], max_tokens: int, n: int) -> None:
    """A byte-level BPE never yields more tokens than UTF-8 bytes: the worst the provider can bill
    is one token per byte of every message plus template tokens, and max_tokens per choice."""
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": t} for t in texts],
        "max_tokens": max_tokens,
        "n": n,
    }
    parsed = parse_request("openai_chat", json.dumps(body).encode())
    priced = PRICES.resolve("gpt-4o")
    worst_input = sum(len(t.encode()) + 4 for t in texts) + 3
    worst_output = min(max_tokens, priced.price.max_output_tokens) * n
    worst = PRICES.cost_micros(priced, worst_input, worst_output)
    assert reservation_micros(parsed, priced, PRICES, CFG.enforcement) >= worst


def test_an_output_beta_raises_the_output_bound() -> None:
    """Claude 3.7 answers up to 128k tokens with `anthropic-beta: output-128k-2025-02-19`: the
    reservation must cover it (capped at 64k, three such requests overspent a $3 block wallet)."""
    body = {"model": "claude-3-7-sonnet", "max_tokens": 128_000, "messages": []}
    raw = json.dumps(body).encode()
    priced = PRICES.resolve("claude-3-7-sonnet")
    plain = parse_request("anthropic_messages", raw)
    beta = parse_request(
        "anthropic_messages",
        raw,
        anthropic_beta="prompt-caching-2024-07-31, output-128k-2025-02-19",
    )
    assert reservation_tokens(plain, priced, CFG.enforcement)[1] == 64_000
    assert reservation_tokens(beta, priced, CFG.enforcement)[1] == 128_000
    # A beta the model does not have changes nothing; the request's own limit still caps it.
    other = parse_request(
        "anthropic_messages",
        json.dumps({**body, "model": "claude-sonnet-4"}).encode(),
        anthropic_beta="output-128k-2025-02-19",
    )
    assert reservation_tokens(other, PRICES.resolve("claude-sonnet-4"), CFG.enforcement)[1] == (
        PRICES.resolve("claude-sonnet-4").price.max_output_tokens
    )
    small = parse_request(
        "anthropic_messages",
        json.dumps({**body, "max_tokens": 100}).encode(),
        anthropic_beta="output-128k-2025-02-19",
    )
    assert reservation_tokens(small, priced, CFG.enforcement)[1] == 100


def test_history_nothing_bounds_is_an_unbounded_input() -> None:
    """A chained Responses request on a model with no context window (and no configured
    server_history_tokens) is refused under the default policy, reserved with the allowance."""
    from keeptrusts_authz.gateway.estimation import unbounded_refusal

    cfg = parse_config(
        {
            "consumer_groups": [
                {"name": "a", "api_key": "k1"},
                {
                    "name": "b",
                    "api_key": "k2",
                    "unbounded_inputs": "allowance",
                    "unbounded_allowance_tokens": 777,
                },
            ],
            "pricing": {
                "models": {
                    "mine": {"input_per_1m": "1", "output_per_1m": "1", "max_output_tokens": 5}
                }
            },
        }
    )
    prices = PriceTable.from_config(cfg)
    priced = prices.resolve("mine")
    body = {"model": "mine", "input": "x", "previous_response_id": "r"}
    parsed = parse_request("openai_responses", json.dumps(body).encode())
    refusal = unbounded_refusal(cfg, cfg.consumer_groups[0], parsed, priced)
    assert refusal is not None and refusal.status == 400 and "server_history" in refusal.message
    assert unbounded_refusal(cfg, cfg.consumer_groups[1], parsed, priced) is None
    plain = parse_request("openai_responses", json.dumps({"model": "mine", "input": "x"}).encode())
    with_history, _ = reservation_tokens(parsed, priced, cfg.enforcement, 777)
    without, _ = reservation_tokens(plain, priced, cfg.enforcement, 777)
    assert with_history - without == 777 + len(', "previous_response_id": "r"')
