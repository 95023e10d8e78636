"""`jwt_issuers` and `user_source` in the strict config."""

from __future__ import annotations

from typing import Any

import pytest

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.config.loader import ConfigError


def _cfg(issuer: dict[str, Any] | None = None, **group: Any) -> dict[str, Any]:
    issuers = [issuer] if issuer is not None else []
    return {
        "consumer_groups": [
            {"name": "eng", "api_key": "kt_x", "wallet_team_id": "team_eng", **group}
        ],
        "jwt_issuers": issuers,
    }


ISSUER = {"name": "corp_sso", "issuer": "https://sso", "jwks_file": "/etc/jwks.json"}


def test_a_jwt_group_reads_the_claim_header_envoy_writes() -> None:
    cfg = parse_config(_cfg(ISSUER, user_source="jwt", jwt_issuer="corp_sso"))
    group = cfg.group("eng")
    assert cfg.user_header_for(group) == "x-keeptrusts-jwt-user-corp-sso"
    plain = parse_config(_cfg(ISSUER))
    assert plain.user_header_for(plain.group("eng")) == "x-keeptrusts-user"


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (_cfg(ISSUER, user_source="jwt"), "jwt_issuer: required"),
        (_cfg(ISSUER, jwt_issuer="corp_sso"), "only with user_source: jwt"),
        (_cfg(ISSUER, user_source="jwt", jwt_issuer="other"), "is not in jwt_issuers"),
        (_cfg({**ISSUER, "jwks_uri": "https://x/jwks"}), "exactly one of jwks_file"),
        (_cfg({"name": "a", "issuer": "i"}), "exactly one of jwks_file"),
        (_cfg({**ISSUER, "jwks_file": None, "jwks_uri": "ftp://x"}), "jwks_uri"),
        (_cfg({**ISSUER, "token_header": "authorization"}), "consumer key"),
        (_cfg({**ISSUER, "unknown": 1}), "unknown"),
    ],
)
def test_bad_jwt_config_is_refused_naming_the_field(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    assert message in str(info.value)


def test_duplicate_issuer_names_are_refused() -> None:
    cfg = _cfg(ISSUER)
    cfg["jwt_issuers"].append(dict(ISSUER))
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    assert "duplicate issuer name" in str(info.value)
