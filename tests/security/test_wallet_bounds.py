"""L1: balance_after passed through a Lua double, so above 2^53 micros it was rounded (and the
audit failed); near 2^63 transfer.lua could debit the source and then fail on the destination.
Through the real gateway (Envoy -> the wallet API -> Lua on real Redis), a move that would take a
wallet past 2^53 - 1 micros is now a 400 `balance_limit` naming the wallet and field, and
changes nothing; up to the bound balance_after is exact."""

from __future__ import annotations

import json

from tests.api.conftest import Api

MAX_WALLET_MICROS = 2**53 - 1


def test_credit_past_the_bound_is_a_400_that_changes_nothing(api: Api) -> None:
    for _ in range(9):
        api.ok("POST", "/v1/wallets/credit", {"amount": "1000000000", "currency": "USD"})
    api.ok("POST", "/v1/wallets/credit", {"amount": "7199254.740991", "currency": "USD"})
    assert int(api.ledger()[-1]["balance_after"]) == MAX_WALLET_MICROS
    before = api.snapshot()
    res = api.call("POST", "/v1/wallets/credit", {"amount": "0.000001", "currency": "USD"})
    assert res.status == 400, res.raw
    # The wallet API's error shape (google.rpc.Status today) names the code, wallet and field.
    text = json.dumps(res.json)
    assert "balance_limit" in text.lower(), text
    assert "org balance would exceed" in text and "2^53 - 1 micros" in text
    assert api.snapshot() == before
