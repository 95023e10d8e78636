import hashlib

import yaml

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.gateway.api_keys import KeyRing, presented_key

CFG = """
consumer_groups:
- name: engineering
  api_key: kt_cg_engineering_prod
  wallet_team_id: team_engineering
- name: support
  api_key_env: SUPPORT_KEY
  wallet_team_id: team_support
- name: legal
  api_key_sha256: {digest}
  wallet_team_id: team_legal
"""


def ring() -> KeyRing:
    digest = hashlib.sha256(b"kt_cg_legal").hexdigest()
    cfg = parse_config(yaml.safe_load(CFG.format(digest=digest)))
    return KeyRing.from_config(cfg, {"SUPPORT_KEY": "kt_cg_support_env"})


def test_every_key_source_resolves() -> None:
    keys = ring()
    assert keys.lookup("kt_cg_engineering_prod").name == "engineering"  # type: ignore[union-attr]
    assert keys.lookup("kt_cg_support_env").name == "support"  # type: ignore[union-attr]
    assert keys.lookup("kt_cg_legal").name == "legal"  # type: ignore[union-attr]


def test_unknown_and_missing_keys() -> None:
    keys = ring()
    assert keys.lookup("kt_cg_engineering_prod2") is None
    assert keys.lookup("") is None
    assert keys.lookup(None) is None


def test_presented_key_styles() -> None:
    assert presented_key({"authorization": "Bearer abc"}) == "abc"
    assert presented_key({"authorization": "bearer  abc "}) == "abc"
    assert presented_key({"x-api-key": "xyz"}) == "xyz"
    assert presented_key({"authorization": "Basic abc"}) is None
    assert presented_key({"authorization": "Bearer "}) is None
    assert presented_key({}) is None
