"""The web console at /console through the real Envoy, driven by real Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api
from tests.console.conftest import no_horizontal_overflow, shot, sign_in, wait_loaded

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(180)]


@pytest.mark.parametrize("width", [1280, 1400])
def test_billing_sees_every_page(page: Any, seeded: Api, width: int) -> None:
    sign_in(page, seeded.stack, "billing", width)
    nav = page.locator("#nav a").all_inner_texts()
    assert nav == ["Organization", "Team", "Chargeback", "Actions"]
    for name in ("org", "team", "chargeback", "actions"):
        page.goto(seeded.stack.url + f"/console#/{name}")
        wait_loaded(page)
        shot(page, f"{name}-billing-{width}.png")
        no_horizontal_overflow(page)
