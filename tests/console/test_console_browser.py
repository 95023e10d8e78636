"""The web console at /console through the real Envoy, driven by real Chromium: each role sees and
may do exactly what the wallet API allows it, money moves land once, the FOCUS download reconciles
with the ledger. Screenshots of every page: test-artifacts/console/."""

from __future__ import annotations

import csv
import io
import itertools
import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.api.conftest import TOKENS, Api
from tests.console.conftest import no_horizontal_overflow, shot, sign_in, wait_loaded

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(180)]

STATIC = Path(__file__).resolve().parents[2] / "keeptrusts_authz" / "console" / "static"
NAV = {
    "billing": ["Organization", "Team", "Chargeback", "Actions"],
    "viewer": ["Organization", "Team", "Chargeback", "Actions"],
    "multi": ["Organization", "Team", "Chargeback", "Actions"],
    "team": ["Team", "Actions"],
}
OTHER_TEAMS = ("team_support", "team_marketing", "team_legal", "team_research")


def _micros(text: str) -> int:
    return int(Decimal(text.replace(",", "")) * 1_000_000)


def _goto(page: Any, api: Api, name: str) -> None:
    page.goto(api.stack.url + f"/console#/{name}")
    wait_loaded(page)


def _ledger_spend(api: Api) -> int:
    return sum(int(e.get("cost", "0")) for e in api.ledger() if e["op"] in ("settle", "expire"))


# -- served files -----------------------------------------------------------------------------


def test_console_files_are_served_with_a_strict_policy(seeded: Api) -> None:
    page = seeded.call("GET", "/console", role=None)
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "connect-src 'self'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.raw == (STATIC / "index.html").read_bytes()
    js = seeded.call("GET", "/console/console.js", role=None)
    assert js.status == 200 and js.headers["content-type"].startswith("text/javascript")
    css = seeded.call("GET", "/console/console.css", role=None)
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    assert seeded.call("GET", "/console/secrets.txt", role=None).status == 404
    assert seeded.call("GET", "/console/a/b", role=None).status == 404
    assert seeded.call("POST", "/console", {}, role=None).status == 405
    # Offline: nothing is loaded from another origin.
    for name in ("index.html", "console.js", "console.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), name
        assert 'fetch("http' not in text and "@import" not in text, name


def test_whoami_reports_the_token_roles_and_teams(seeded: Api) -> None:
    me = seeded.ok("GET", "/v1/wallets/whoami", role="team")
    assert me["name"] == "eng-lead" and me["roles"] == ["team:team_engineering"]
    assert me["teams"] == ["team_engineering"] and not me["billing"] and not me["reads_all"]
    assert re.fullmatch(r"\d{4}-\d{2}", me["current_month"])
    assert re.fullmatch(r"\d{4}-Q[1-4]", me["current_quarter"])
    billing = seeded.ok("GET", "/v1/wallets/whoami", role="billing")
    assert billing["billing"] and billing["reads_all"] and "team_support" in billing["teams"]
    assert billing["currency"] == "USD" and billing["organization"] == "acme"
    assert seeded.call("GET", "/v1/wallets/whoami", role=None).status == 401


# -- roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["billing", "viewer", "team", "multi"])
def test_each_role_sees_exactly_what_it_may(page: Any, seeded: Api, role: str) -> None:
    sign_in(page, seeded.stack, role)
    assert page.locator("#nav a").all_inner_texts() == NAV[role]
    # The token is kept in this tab's session storage only: no cookie, never in the URL.
    assert page.evaluate("() => sessionStorage.getItem('keeptrusts.console.token')") == TOKENS[role]
    assert page.context.cookies() == []
    assert TOKENS[role] not in page.url
    for name in ("org", "team", "chargeback", "actions"):
        _goto(page, seeded, name)
        assert TOKENS[role] not in page.url
        text = page.locator("main").inner_text()
        if role == "team":
            # A team token never sees another team, whichever page it asks for.
            for other in OTHER_TEAMS:
                assert other not in text, (name, other)
            assert page.locator("#org-page, #chargeback-page").count() == 0
        shot(page, f"{name}-{role}-1280.png")
        no_horizontal_overflow(page)
    _goto(page, seeded, "team")
    options = page.locator("#team-picker option").all_inner_texts()
    if role == "team":
        assert options == ["team_engineering"]
        # And the API behind the page refuses it the other teams.
        status = page.evaluate(
            "async (t) => (await fetch('/v1/wallets/balance?team_id=team_support',"
            " {headers: {Authorization: 'Bearer ' + t}})).status",
            TOKENS[role],
        )
        assert status == 403
    else:
        assert set(options) >= {"team_engineering", *OTHER_TEAMS}
    _goto(page, seeded, "actions")
    forms = page.locator("#actions-page form").count()
    unlabelled = page.evaluate(
        "() => [...document.querySelectorAll('input, select')]"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))"
        ".map(e => e.id || e.name)"
    )
    assert not unlabelled, unlabelled
    if role == "billing":
        assert (
            page.locator("#credit-form, #allocate-form, #reclaim-form, #transfer-form").count() == 4
        )
        assert page.locator("form[data-ticket]").count() == 1  # the pending ticket's decision
        assert page.locator("#pending-topups").is_visible()
    elif role in ("team", "multi"):  # team leads: re-split and top-up requests, no decisions
        assert page.locator("#team-allocate-form, #team-reclaim-form, #topup-form").count() == 3
        assert page.locator("#allocate-form, #credit-form, #transfer-form").count() == 0
        assert page.locator("form[data-ticket], form[data-topup]").count() == 0
        lead = "team_engineering" if role == "team" else "team_support"
        assert page.locator("#topup-form").get_attribute("data-team") == lead
    else:
        assert forms == 0 and page.locator("#no-actions").is_visible()
    page.get_by_role("button", name="Sign out").click()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert page.locator("#signin").is_visible()


def test_a_wrong_token_is_refused_with_the_api_answer(page: Any, seeded: Api) -> None:
    page.goto(seeded.stack.url + "/console")
    page.get_by_label("Admin token").fill("kt_admin_not_a_token")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#signin-error:not(:empty)")
    assert "401" in page.locator("#signin-error").inner_text()
    assert page.locator("#nav").is_hidden()


# -- organization page ----------------------------------------------------------------------------


def test_organization_page_matches_the_api_with_rounded_ticks(page: Any, seeded: Api) -> None:
    wallets = {w["id"]: w for w in seeded.ok("GET", "/v1/wallets")["wallets"]}
    sign_in(page, seeded.stack, "billing")
    pool = page.locator("#kpi-pool .value").inner_text().removesuffix("USD").strip()
    assert _micros(pool) == _micros(wallets["org"]["balance"])
    spent = page.locator("#kpi-spent .value").inner_text().removesuffix("USD").strip()
    assert _micros(spent) == _ledger_spend(seeded) > 0
    # One number of decimals on the whole page; amounts right-aligned.
    amounts = page.locator("#org-page td.num[title]").all_inner_texts()
    amounts = [a for a in amounts if a != "—"]  # no budget period: nothing projected
    assert amounts and len({len(a.rpartition(".")[2]) for a in amounts}) == 1
    align = page.locator("#org-page td.num[title]").first.evaluate(
        "e => getComputedStyle(e).textAlign"
    )
    assert align == "right"
    # Teams by risk: every team, lowest available first among equally healthy teams.
    teams = page.locator("#org-page tr[data-team]").evaluate_all(
        "rs => rs.map(r => r.dataset.team)"
    )
    assert set(teams) == {w[5:] for w in wallets if w.startswith("team:")}
    assert teams[0] == "team_research"
    # Chart: one stacked bar part per team with spend, axis ticks at 1/2/5 x 10^k steps.
    assert page.locator("#spend-chart rect").count() >= 3
    ticks = [Decimal(t) for t in page.locator("#spend-chart text.tick").all_text_contents()]
    steps = {b - a for a, b in itertools.pairwise(ticks)}
    assert len(ticks) >= 3 and len(steps) == 1
    (step,) = steps
    mantissa = step.normalize().as_tuple().digits
    assert mantissa in ((1,), (2,), (5,)), step
    assert page.locator("#alerts").inner_text().count("cost ticket") == 1
    shot(page, "org-billing-chart-1280.png")


# -- money moves and tickets --------------------------------------------------------------------


def test_allocation_and_ticket_approval_change_the_wallet(page: Any, seeded: Api) -> None:
    (ticket,) = seeded.ok("GET", "/v1/wallets/tickets?status=pending")["tickets"]
    sign_in(page, seeded.stack, "billing")
    _goto(page, seeded, "actions")
    form = page.locator("#allocate-form")
    form.get_by_label("To wallet").select_option("team:team_research")
    form.get_by_label("Amount (USD)").fill("25")
    form.get_by_label("Description").fill("Research top-up")
    form.get_by_role("button", name="Allocate").click()
    page.wait_for_selector("#allocate-form-result .ok")
    assert "applied" in page.locator("#allocate-form-result").inner_text()
    balance = seeded.ok("GET", "/v1/wallets/balance?team_id=team_research")["wallet"]
    assert balance["balance"] == "25.000001"

    decision = page.locator(f"form[data-ticket='{ticket['id']}']")
    decision.get_by_label("Reason").fill("research demo approved")
    decision.get_by_role("button", name="Approve").click()
    page.wait_for_selector(f"form[data-ticket='{ticket['id']}'] .ok")
    (after,) = seeded.ok("GET", "/v1/wallets/tickets")["tickets"]
    assert after["status"] == "approved" and after["reason"] == "research demo approved"
    assert after["decided_by"] == "finance"

    _goto(page, seeded, "team/team_research")
    available = page.locator("#kpi-available .value").inner_text().removesuffix("USD").strip()
    assert _micros(available) == 25_000_001
    past = page.locator(f"tr[data-ticket='{ticket['id']}']")
    assert "approved" in past.inner_text() and "research demo approved" in past.inner_text()
    assert "Research top-up" in page.locator("#ledger").inner_text()
    shot(page, "team-after-approval-1280.png")


def test_double_click_moves_money_once(page: Any, seeded: Api) -> None:
    def allocations() -> int:
        return len(
            [e for e in seeded.ledger() if e["op"] == "allocate" and e.get("to", e["wallet"]) ==
             "team:team_legal" and e["amount"] == "7000000"]
        )  # fmt: skip

    sign_in(page, seeded.stack, "billing")
    _goto(page, seeded, "actions")
    form = page.locator("#allocate-form")
    form.get_by_label("To wallet").select_option("team:team_legal")
    form.get_by_label("Amount (USD)").fill("7")
    key = form.get_attribute("data-idempotency-key")
    form.get_by_role("button", name="Allocate").dblclick()
    page.wait_for_selector("#allocate-form-result .ok")
    page.wait_for_timeout(300)  # a second request, had one been sent, has landed by now
    assert allocations() == 1
    # Sending the unchanged form again replays the same Idempotency-Key: nothing moves.
    form.get_by_role("button", name="Allocate").click()
    page.wait_for_function(
        "() => document.querySelector('#allocate-form-result').textContent.includes('Already')"
    )
    assert allocations() == 1 and form.get_attribute("data-idempotency-key") == key
    # Editing the form is a new submission: a new key, a second move.
    form.get_by_label("Description").fill("second, on purpose")
    assert form.get_attribute("data-idempotency-key") != key
    form.get_by_role("button", name="Allocate").click()
    # ("Already applied" also says "applied": wait for the new move's own answer.)
    page.wait_for_function(
        "() => { const t = document.querySelector('#allocate-form-result').textContent;"
        " return t.includes('applied') && !t.startsWith('Already') }"
    )
    assert allocations() == 2


def _available(api: Api, **wallet: str) -> int:
    return _micros(api.ok("GET", "/v1/wallets/balance?" + urlencode(wallet))["wallet"]["balance"])


def _user_row(page: Any, user: str) -> list[str]:
    row = page.locator("#team-page section", has_text="Users' wallets").locator(
        "tr", has=page.locator("td", has_text=re.compile(f"^{user}$"))
    )
    return row.locator("td").all_inner_texts()


def test_team_lead_moves_money_within_its_own_team(page: Any, seeded: Api) -> None:
    # dave belongs to team_support: the engineering lead may not reach his wallet.
    seeded.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_support", "user_id": "dave", "amount": "5", "currency": "USD"},
    )
    team0 = _available(seeded, team_id="team_engineering")
    alice0 = _available(seeded, user_id="alice")
    sign_in(page, seeded.stack, "team")
    _goto(page, seeded, "actions")
    form = page.locator("#team-allocate-form")
    assert page.locator("#team-allocate-form-user_id-list option").evaluate_all(
        "os => os.map(o => o.value)"
    ) == ["alice"]  # the team's own users only
    form.get_by_label("User").fill("alice")
    form.get_by_label("Amount (USD)").fill("3")
    form.get_by_label("Description").fill("sprint budget")
    form.get_by_role("button", name="Allocate to a user").dblclick()
    page.wait_for_selector("#team-allocate-form-result .ok")
    page.wait_for_timeout(300)  # a second request, had one been sent, has landed by now
    assert "user:alice" in page.locator("#team-allocate-form-result").inner_text()
    assert _available(seeded, user_id="alice") == alice0 + 3_000_000
    assert _available(seeded, team_id="team_engineering") == team0 - 3_000_000
    moves = [e for e in seeded.ledger() if e.get("description") == "sprint budget"]
    assert len(moves) == 1 and moves[0]["actor"] == "eng-lead", moves

    reclaim = page.locator("#team-reclaim-form")
    reclaim.get_by_label("User").fill("alice")
    reclaim.get_by_label("Amount (USD)").fill("1.5")
    reclaim.get_by_role("button", name="Reclaim from a user").click()
    page.wait_for_selector("#team-reclaim-form-result .ok")
    assert _available(seeded, user_id="alice") == alice0 + 1_500_000
    assert _available(seeded, team_id="team_engineering") == team0 - 1_500_000
    shot(page, "actions-team-resplit-1280.png")

    # Another team's user: the API refuses, the page shows its answer, nothing moves.
    before = len(seeded.ledger())
    form.get_by_label("User").fill("dave")
    form.get_by_role("button", name="Allocate to a user").click()
    page.wait_for_selector("#team-allocate-form-result .error")
    message = page.locator("#team-allocate-form-result").inner_text()
    assert message.startswith("409") and "team_engineering" in message, message
    assert len(seeded.ledger()) == before
    assert _available(seeded, user_id="dave") == 5_000_000
    shot(page, "actions-team-refused-1280.png")
    no_horizontal_overflow(page)

    # The team page shows the wallets after the moves.
    _goto(page, seeded, "team")
    cells = _user_row(page, "alice")
    assert _micros(cells[2]) == alice0 + 1_500_000, cells
    available = page.locator("#kpi-available .value").inner_text().removesuffix("USD").strip()
    assert _micros(available) == team0 - 1_500_000
    ledger = page.locator("#ledger").inner_text()
    assert "sprint budget" in ledger and "team:team_engineering → user:alice" in ledger
    assert "user:alice → team:team_engineering" in ledger
    assert "dave" not in page.locator("main").inner_text()
    shot(page, "team-team-after-resplit-1280.png")


def test_team_lead_topup_is_approved_once_by_billing(page: Any, seeded: Api) -> None:
    team0 = _available(seeded, team_id="team_engineering")
    sign_in(page, seeded.stack, "team")
    _goto(page, seeded, "actions")
    form = page.locator("#topup-form")
    form.get_by_label("Amount (USD)").fill("50")
    form.get_by_label("Reason").fill("load test next week")
    form.get_by_role("button", name="Request a top-up").dblclick()
    page.wait_for_selector("#topup-form-result .ok")
    page.wait_for_timeout(300)
    # The API takes no Idempotency-Key for top-up requests: the console files exactly one.
    (topup,) = seeded.ok("GET", "/v1/wallets/topups")["topups"]
    assert topup["status"] == "pending" and topup["amount"] == "50.00"
    assert topup["description"] == "load test next week" and topup["requested_by"] == "eng-lead"
    assert form.get_by_label("Amount (USD)").input_value() == ""  # cleared: no accidental resend
    shot(page, "actions-team-topup-1280.png")
    _goto(page, seeded, "team")
    row = page.locator(f"#team-topups tr[data-topup='{topup['id']}']")
    assert "pending" in row.inner_text() and row.locator("form").count() == 0
    shot(page, "team-team-topup-pending-1280.png")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, seeded.stack, "billing")
    _goto(page, seeded, "actions")
    decision = page.locator(f"#pending-topups form[data-topup='{topup['id']}']")
    assert "load test next week" in page.locator("#pending-topups").inner_text()
    shot(page, "actions-billing-topups-1280.png")
    no_horizontal_overflow(page)
    decision.get_by_label("Reason").fill("planned in Q1")
    decision.get_by_role("button", name="Approve").dblclick()
    page.wait_for_selector(f"#pending-topups form[data-topup='{topup['id']}'] .ok")
    page.wait_for_timeout(300)
    entries = [e for e in seeded.ledger() if e.get("topup") == topup["id"]]
    assert len(entries) == 1, entries  # the team wallet grows exactly once
    assert _available(seeded, team_id="team_engineering") == team0 + 50_000_000
    (after,) = seeded.ok("GET", "/v1/wallets/topups")["topups"]
    assert after["status"] == "approved" and after["decided_by"] == "finance"
    assert after["reason"] == "planned in Q1"

    # A second request, denied with a reason, moves nothing.
    second = seeded.ok(
        "POST",
        "/v1/wallets/teams/team_engineering/topups",
        {"amount": "10", "currency": "USD", "description": "nice to have"},
        role="team",
    )
    _goto(page, seeded, "team/team_engineering")
    deny = page.locator(f"#team-topups form[data-topup='{second['id']}']")
    deny.get_by_label("Reason").fill("not this month")
    deny.get_by_role("button", name="Deny").click()
    page.wait_for_selector(f"#team-topups form[data-topup='{second['id']}'] .ok")
    assert _available(seeded, team_id="team_engineering") == team0 + 50_000_000
    page.wait_for_selector(
        f"#team-topups tr[data-topup='{second['id']}'] td:has-text('not this month')"
    )
    past = page.locator("#team-topups").inner_text()
    assert "planned in Q1" in past and "not this month" in past
    available = page.locator("#kpi-available .value").inner_text().removesuffix("USD").strip()
    assert _micros(available) == team0 + 50_000_000
    shot(page, "team-billing-topups-1280.png")
    no_horizontal_overflow(page)

    # The team lead sees both decisions on its team page.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, seeded.stack, "team")
    _goto(page, seeded, "team")
    past = page.locator("#team-topups").inner_text()
    assert "approved" in past and "denied" in past and "not this month" in past
    shot(page, "team-team-topups-1280.png")


# -- chargeback -----------------------------------------------------------------------------------


def test_chargeback_reconciles_and_the_focus_download_matches_the_ledger(
    page: Any, seeded: Api
) -> None:
    sign_in(page, seeded.stack, "billing")
    _goto(page, seeded, "chargeback")
    checks = page.locator("#reconciliation li")
    assert checks.count() >= 3
    assert page.locator("#reconciliation li.error").count() == 0
    total = page.locator("#chargeback tr.total td").all_inner_texts()
    head = page.locator("#chargeback thead th").all_inner_texts()
    assert head[1:3] == ["remaining", "% used"]  # what finance reads first
    spent_total = _micros(total[head.index("spent")])
    assert spent_total == _ledger_spend(seeded) > 0

    with page.expect_download() as info:
        page.locator("#download-focus").click()
    download = info.value
    assert download.suggested_filename.endswith("-focus.csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert rows and {r["ServiceCategory"] for r in rows} == {"AI and Machine Learning"}
    assert sum(_micros(r["BilledCost"]) for r in rows) == spent_total
    import pyarrow.parquet as pq

    with page.expect_download() as info:
        page.locator("#download-focus-parquet").click()
    assert info.value.suggested_filename.endswith("-focus.parquet")
    billed = pq.read_table(info.value.path()).column("BilledCost").to_pylist()
    assert sum(int(v * 1_000_000) for v in billed) == spent_total
    with page.expect_download() as info:
        page.locator("#download-csv").click()
    assert "team_engineering" in Path(info.value.path()).read_text()
    shot(page, "chargeback-billing-month-1280.png")

    # Quarter and another grouping.
    page.locator("#cb-kind").select_option("quarter")
    page.locator("#cb-group").select_option("model")
    page.get_by_role("button", name="Show").click()
    page.wait_for_function(
        "() => /-Q[1-4] by model/.test(document.getElementById('cb-out').textContent)"
    )
    assert "gpt-4o-mini" in page.locator("#chargeback").inner_text()
    assert page.locator("#reconciliation li.error").count() == 0
    shot(page, "chargeback-billing-quarter-model-1280.png")


@pytest.mark.parametrize("width", [1280, 1400])
def test_every_page_fits_the_window(page: Any, seeded: Api, width: int) -> None:
    sign_in(page, seeded.stack, "billing", width)
    for name in ("org", "team", "chargeback", "actions"):
        _goto(page, seeded, name)
        shot(page, f"{name}-billing-{width}.png")
        no_horizontal_overflow(page)


def test_keyboard_sign_in_and_every_control_is_labelled(page: Any, seeded: Api) -> None:
    page.goto(seeded.stack.url + "/console")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("() => document.activeElement.className") == "skip"
    page.get_by_label("Admin token").focus()
    page.keyboard.type(TOKENS["billing"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#nav:not([hidden])")
    wait_loaded(page)
    for name in ("org", "team", "chargeback", "actions"):
        _goto(page, seeded, name)
        unlabelled = page.evaluate(
            "() => [...document.querySelectorAll('input, select')]"
            ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))"
            ".map(e => e.id || e.name)"
        )
        assert not unlabelled, (name, unlabelled)
        nameless = page.evaluate(
            "() => [...document.querySelectorAll('button, a')]"
            ".filter(e => !e.textContent.trim()).map(e => e.outerHTML)"
        )
        assert not nameless, (name, nameless)
    # The nav is reachable and usable from the keyboard.
    page.locator("#nav a", has_text="Chargeback").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#chargeback-page")
