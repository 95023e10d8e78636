"""L2: the amount parser accepted "1_000", Arabic-Indic digits, " 5", "5 ", "+5" (Decimal()'s
grammar). Through the real gateway (Envoy's transcoder -> the wallet API), each is now a 400 that
names `amount` and moves no money; JSON numbers and plain digit strings still work."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import Api

BAD = ["1_000", "\u0661\u0662", " 5", "5 ", "+5", "1e3", "0x10", "5.", ".5", "NaN", "1,5"]


@pytest.mark.parametrize("amount", BAD)
def test_non_plain_amount_strings_are_refused_and_change_nothing(api: Api, amount: str) -> None:
    before = api.snapshot()
    res = api.call("POST", "/v1/wallets/credit", {"amount": amount, "currency": "USD"})
    assert res.status == 400, res.raw
    assert "amount" in json.dumps(res.json)
    assert api.snapshot() == before


@pytest.mark.parametrize("amount", ["12", "12.5", "0.000001", 12, 12.5])
def test_plain_amounts_still_credit(api: Api, amount: object) -> None:
    res = api.call("POST", "/v1/wallets/credit", {"amount": amount, "currency": "USD"})
    assert res.status == 200, res.raw
