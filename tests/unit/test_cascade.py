"""The wallet cascade (wallets/cascade.py), the one rule admission and the balance view share."""

from __future__ import annotations

from keeptrusts_authz.config import Config, parse_config
from keeptrusts_authz.wallets.cascade import cascade_for


def config(**enforcement: object) -> Config:
    return parse_config(
        {
            "organization": {"id": "acme"},
            "consumer_groups": [
                {"name": "eng", "api_key": "kt_e", "wallet_team_id": "team_eng"},
                {"name": "ops", "api_key": "kt_o"},
                {
                    "name": "sup",
                    "api_key": "kt_s",
                    "wallet_team_id": "team_sup",
                    "cascade": ["team", "org"],
                },
            ],
            "enforcement": enforcement,
        }
    )


def test_user_then_team_then_org_in_configured_order() -> None:
    cfg = config(cascade=["user", "team", "org"])
    eng = cfg.consumer_groups[0]
    c = cascade_for(cfg, eng, "alice")
    assert c.candidates == ("user:alice", "team:team_eng", "org")
    assert c.overdraft == "team:team_eng"
    assert [(s.scope, s.wallet) for s in c.steps] == [
        ("user", "user:alice"),
        ("team", "team:team_eng"),
        ("org", "org"),
    ]


def test_no_user_header_skips_the_user_scope_but_keeps_the_step() -> None:
    cfg = config(cascade=["user", "team"])
    eng = cfg.consumer_groups[0]
    c = cascade_for(cfg, eng, None)
    assert c.candidates == ("team:team_eng",)
    assert [(s.scope, s.wallet) for s in c.steps] == [("user", None), ("team", "team:team_eng")]


def test_only_a_user_scope_without_a_user_falls_back_to_the_overdraft_wallet() -> None:
    cfg = config(cascade=["user"])
    eng = cfg.consumer_groups[0]
    assert cascade_for(cfg, eng, None).candidates == ("team:team_eng",)


def test_group_without_team_wallet_is_funded_by_the_org_pool() -> None:
    cfg = config(cascade=["user", "team", "org"])
    ops = cfg.consumer_groups[1]
    c = cascade_for(cfg, ops, "bob")
    assert (c.candidates, c.overdraft) == (("org",), "org")


def test_group_cascade_overrides_the_default() -> None:
    cfg = config(cascade=["user", "team", "org"])
    sup = cfg.consumer_groups[2]
    assert cascade_for(cfg, sup, "alice").candidates == ("team:team_sup", "org")
