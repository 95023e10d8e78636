"""The web console in real Chromium (Debian's /usr/bin/chromium driven by Python Playwright; no
browser download) against the real stack: Envoy rendered from the config, the `serve`
subprocess, Redis. Screenshots go to test-artifacts/console/ (gitignored)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from testing.redis_server import RedisServer, empty_keeping_epochs
from testing.stack import Stack
from tests.api.conftest import HOLD_KEY, TOKENS, Api, admin_stack

CHROMIUM = os.environ.get("KT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHAT = {"model": "gpt-4o-mini", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def wait_settled(api: Api, wallet: str, timeout: float = 15.0) -> None:
    """Nothing reserved in `wallet` any more (read from Redis: the Playwright session keeps an
    event loop running in this thread, so no asyncio.run here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(api.wallet_hashes().get(wallet, {}).get("reserved", "0") or 0) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"{wallet} still has money reserved")


def chromium_or_skip() -> str:
    """Path of Chromium; skip (fail under CI, where .ci/run installs it) when it is missing."""
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        message = (
            f"Chromium not found at {CHROMIUM}: install Debian's package (`apt-get install "
            "chromium`; .ci/run does this) to run the browser tests"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    path = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="kt-chromium-")
    with sync_playwright() as pw:
        # A persistent context is the way to give Chromium a fresh user-data dir of our own.
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=path,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    p = browser.new_page()
    p.set_viewport_size({"width": 1280, "height": 900})
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield p
    finally:
        p.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="package")
def console_stack(redis_server: RedisServer) -> Iterator[Stack]:
    # the wallet API's stack, with holds that time out after a second
    with admin_stack(redis_server.url, hold_timeout=1) as stack:
        yield stack


def chat(api: Api, key: str, user: str | None = None, **headers: str) -> tuple[int, Any]:
    if user:
        headers["x-keeptrusts-user"] = user
    status, _, raw = api.stack.post("/v1/chat/completions", CHAT, key=key, headers=headers)
    return status, json.loads(raw) if raw else None


@pytest.fixture
def seeded(console_stack: Stack, redis_server: RedisServer) -> Iterator[Api]:
    """Money and spend to look at: a funded pool, four teams, a user wallet, settled requests of
    three teams and one pending ticket (a held request of team_research that timed out)."""
    empty_keeping_epochs(redis_server.url)
    api = Api(console_stack, redis_server.url)
    api.fund("team_engineering", "1200", credit="5000")
    for team, amount in (("team_support", "300"), ("team_marketing", "0.50"), ("team_legal", "40")):
        api.ok(
            "POST", "/v1/wallets/allocate", {"team_id": team, "amount": amount, "currency": "USD"}
        )
    api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_engineering", "user_id": "alice", "amount": "20", "currency": "USD"},
    )
    api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_research", "amount": "0.000001", "currency": "USD"},
    )
    with ThreadPoolExecutor(4) as pool:
        calls = [("kt_cg_engineering_prod", "alice")] * 3 + [("kt_cg_engineering_prod", "bob")] * 2
        calls += [("kt_cg_support_prod", "carol")] * 2 + [("kt_cg_marketing_prod", None)] * 2
        results = list(pool.map(lambda c: chat(api, c[0], c[1])[0], calls))
    assert results.count(200) >= 7, results
    status, body = chat(api, HOLD_KEY)  # held for hold_timeout, then 402 with its ticket
    assert status == 402 and body["error"]["ticket_id"], body
    for wallet in (
        "team:team_engineering",
        "team:team_support",
        "team:team_marketing",
        "user:alice",
    ):
        wait_settled(api, wallet)
    try:
        yield api
    finally:
        api.redis.close()


def sign_in(page: Any, stack: Stack, role: str, width: int = 1280) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(stack.url + "/console")
    page.get_by_label("Admin token").fill(TOKENS[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#nav:not([hidden])")
    wait_loaded(page)


def wait_loaded(page: Any) -> None:
    page.wait_for_function(
        "() => { const p = document.getElementById('page');"
        " return p && p.children.length && !p.textContent.startsWith('Loading') &&"
        " !(document.getElementById('cb-out')||{textContent:''})"
        ".textContent.startsWith('Loading') }"
    )


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def no_horizontal_overflow(page: Any) -> None:
    """Nothing hides off the right edge: the page never scrolls sideways and no table is cut."""
    width = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 0, f"page overflows the window by {width} px"
    cut = page.evaluate(
        "() => [...document.querySelectorAll('.tablewrap')]"
        ".filter(w => w.scrollWidth > w.clientWidth + 1).map(w => w.querySelector('table').id"
        " || w.closest('section').querySelector('h2').textContent)"
    )
    assert not cut, f"tables wider than their box (scrolled, partly hidden): {cut}"
