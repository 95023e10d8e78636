"""After traffic through Envoy: the scraped usage counters equal the ledger sums, labelled with
the priced model name (a dated snapshot the provider reports does not become its own label)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from keeptrusts_authz.pricing import PriceTable
from testing.redis_server import RedisServer
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

USD = 1_000_000
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, provider: FakeProvider) -> Iterator[Stack]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    with Stack(stack_config(redis_server.url, provider.url)) as s:
        yield s


def scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    port = stack.cfg.server.metrics_port
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_scraped_counters_equal_ledger_sums(stack: Stack) -> None:
    stack.fund("team_engineering", 50 * USD)
    requests = [
        ("gpt-4o-mini", "1000,200,0"),
        ("gpt-4o-mini", "10,20,5"),
        ("gpt-4o", "500,100,0"),
    ]
    for model, usage in requests:
        body = {"model": model, "max_tokens": 300, "messages": [{"role": "user", "content": "hi"}]}
        status, _, raw = stack.post(CHAT, body, headers={"x-fake-usage": usage})
        assert status == 200, raw
    wallet = stack.wait_settled("team:team_engineering")
    assert wallet.reserved == 0
    entries = stack.wallets(lambda w: w.ledger(count=100))
    settles = [e for e in entries if e.op == "settle"]
    assert len(settles) == len(requests)
    table = PriceTable.from_config(stack.cfg)
    by_model: dict[str, int] = {}
    for e in settles:
        hit = table.lookup(e.fields["model"])  # the ledger keeps the reported model name
        assert hit is not None
        by_model[hit.name] = by_model.get(hit.name, 0) + int(e.fields["cost"])
    time.sleep(1.1)  # past the scrape cache of an earlier scrape
    found = scrape(stack)
    got: dict[str, float] = {}
    requests_by_model: dict[str, float] = {}
    for (name, labels), value in found.items():
        lv = dict(labels)
        if name == "keeptrusts_spend_total":
            assert (lv["team"], lv["consumer_group"]) == ("team_engineering", "engineering")
            got[lv["model"]] = got.get(lv["model"], 0.0) + value
        if name == "keeptrusts_settled_requests_total":
            requests_by_model[lv["model"]] = value
    assert set(got) == set(by_model) <= {"gpt-4o", "gpt-4o-mini"}
    for model, micros in by_model.items():
        assert got[model] == pytest.approx(micros / USD, abs=1e-9)
    assert requests_by_model == {"gpt-4o-mini": 2.0, "gpt-4o": 1.0}
    assert sum(got.values()) == pytest.approx(wallet.spent_total / USD, abs=1e-9)
    input_tokens = sum(
        v
        for (name, labels), v in found.items()
        if name == "keeptrusts_tokens_total" and dict(labels)["kind"] == "input"
    )
    assert input_tokens == sum(int(e.fields["input_tokens"]) for e in settles)
