"""Reservation signatures (gateway/signing.py): what verifies and why the rest does not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from keeptrusts_authz import envoy_contract as ec
from keeptrusts_authz.config import ConfigError, load_config, parse_config
from keeptrusts_authz.gateway.signing import (
    SIGNED_FIELDS,
    ReservationSigner,
    SigningKeyError,
    key_id,
    signer_from_config,
)

KEY_A = b"a" * 32
KEY_B = b"b" * 32
NOW = 1_800_000_000.0


def _meta() -> dict[str, str | bool]:
    return {
        ec.AUTHZ_RESERVATION_ID: "r_" + "1" * 24,
        ec.AUTHZ_WALLET: "team:team_eng",
        ec.AUTHZ_ESTIMATE_MICROS: "5000",
        ec.AUTHZ_MODEL: "gpt-4o",
        ec.AUTHZ_PRICED_MODEL: "gpt-4o",
        ec.AUTHZ_INPUT_BOUND_TOKENS: "120",
        ec.AUTHZ_OUTPUT_BOUNDED: True,
        ec.AUTHZ_EXTRA_OUTPUT_TOKENS: "0",
        "team": "team_eng",
    }


def _signed(signer: ReservationSigner | None = None) -> dict[str, str | bool]:
    meta = _meta()
    (signer or ReservationSigner("acme", [KEY_A], 60_000)).sign(meta, now=NOW)
    return meta


def test_a_signed_reservation_verifies_and_carries_its_estimate() -> None:
    signer = ReservationSigner("acme", [KEY_A], 60_000)
    meta = _signed(signer)
    assert meta[ec.AUTHZ_KEY_ID] == key_id(KEY_A)
    verdict = signer.verify(meta, meta[ec.AUTHZ_RESERVATION_ID], now=NOW + 1)  # type: ignore[arg-type]
    assert verdict.ok and verdict.estimate_micros == 5000


@pytest.mark.parametrize("field", [f for f in SIGNED_FIELDS])
def test_changing_any_signed_field_breaks_the_signature(field: str) -> None:
    signer = ReservationSigner("acme", [KEY_A], 60_000)
    meta = _signed(signer)
    original = meta.get(field)
    meta[field] = (not original) if isinstance(original, bool) else f"{original}9"
    assert signer.verify(meta, now=NOW).reason == "bad_signature"


def test_a_removed_field_differs_from_an_empty_one() -> None:
    signer = ReservationSigner("acme", [KEY_A], 60_000)
    meta = _signed(signer)
    meta[ec.AUTHZ_WALLET] = ""
    assert signer.verify(meta, now=NOW).reason == "bad_signature"
    meta = _signed(signer)
    del meta[ec.AUTHZ_MODEL]
    assert signer.verify(meta, now=NOW).reason == "bad_signature"


def test_a_model_name_cannot_shift_a_field_boundary() -> None:
    signer = ReservationSigner("acme", [KEY_A], 60_000)
    meta = _meta()
    meta[ec.AUTHZ_MODEL] = "gpt\n6:gpt-4o"
    meta[ec.AUTHZ_PRICED_MODEL] = ""
    signer.sign(meta, now=NOW)
    meta[ec.AUTHZ_MODEL], meta[ec.AUTHZ_PRICED_MODEL] = "gpt", "gpt-4o"
    assert signer.verify(meta, now=NOW).reason == "bad_signature"


def test_refusal_reasons() -> None:
    signer = ReservationSigner("acme", [KEY_A], 60_000)
    unsigned = _meta()
    assert signer.verify(unsigned, now=NOW).reason == "missing_signature"
    other = _signed(ReservationSigner("acme", [KEY_B], 60_000))
    assert signer.verify(other, now=NOW).reason == "unknown_key"
    foreign_org = _signed(ReservationSigner("globex", [KEY_A], 60_000))
    assert signer.verify(foreign_org, now=NOW).reason == "field_mismatch"
    meta = _signed(signer)
    assert signer.verify(meta, "r_" + "2" * 24, now=NOW).reason == "field_mismatch"
    assert signer.verify(meta, None, now=NOW + 61).reason == "expired"


def test_the_previous_key_verifies_and_the_current_one_signs() -> None:
    old = ReservationSigner("acme", [KEY_A], 60_000)
    rotated = ReservationSigner("acme", [KEY_B, KEY_A], 60_000)
    assert rotated.verify(_signed(old), now=NOW).ok
    assert _signed(rotated)[ec.AUTHZ_KEY_ID] == key_id(KEY_B)
    assert not ReservationSigner("acme", [KEY_B], 60_000).verify(_signed(old), now=NOW).ok


def test_key_ids_are_stable_and_reveal_nothing() -> None:
    assert key_id(KEY_A) == key_id(KEY_A) != key_id(KEY_B)
    assert len(key_id(KEY_A)) == 8 and key_id(KEY_A) != "a" * 8


def test_no_key_on_loopback_is_an_ephemeral_key_said_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        signer = signer_from_config(parse_config({}))
    assert signer.ephemeral
    assert "server.signing.key_file is not set" in caplog.text


def test_beyond_loopback_a_shared_key_is_required() -> None:
    server = {"host": "0.0.0.0", "allow_plaintext_non_loopback": True}
    with pytest.raises(ConfigError) as err:
        parse_config({"server": server})
    assert any(e.startswith("server.signing.key_file: required") for e in err.value.errors)


def test_previous_key_needs_a_current_one() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"server": {"signing": {"previous_key_file": "/x"}}})
    assert "server.signing.previous_key_file" in str(err.value.errors)


def test_short_or_missing_key_files_are_refused(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("too short\n")
    cfg = parse_config({"server": {"signing": {"key_file": str(short)}}})
    with pytest.raises(SigningKeyError, match="at least 32"):
        signer_from_config(cfg)
    cfg = parse_config({"server": {"signing": {"key_file": str(tmp_path / "absent")}}})
    with pytest.raises(SigningKeyError, match="cannot read"):
        signer_from_config(cfg)


def test_environment_names_the_key_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "keeptrusts.yaml"
    config.write_text("server:\n  host: 0.0.0.0\n  allow_plaintext_non_loopback: true\n")
    current, previous = tmp_path / "key", tmp_path / "old"
    current.write_text("c" * 64 + "\n")
    previous.write_text("p" * 64)
    monkeypatch.setenv("KEEPTRUSTS_SIGNING_KEY_FILE", str(current))
    monkeypatch.setenv("KEEPTRUSTS_SIGNING_PREVIOUS_KEY_FILE", str(previous))
    cfg = load_config(config)  # the non-loopback check sees the override
    signer = signer_from_config(cfg)
    assert signer.key_id == key_id(b"c" * 64)
    assert signer.key_ids == (key_id(b"c" * 64), key_id(b"p" * 64))


def test_owners_are_signed_and_the_previous_layout_still_verifies_without_them() -> None:
    """Layout v2 signs team, group and user (what a charge recovered from the settlement journal
    is booked to); an entry of a Check signed before the deploy (v1) still settles, but its
    owners are not vouched for (`owners_signed` False: never journaled)."""
    import hashlib
    import hmac

    from keeptrusts_authz.gateway import signing

    signer = ReservationSigner("acme", [KEY_A], 60_000, reservation_ttl_ms=40_000)
    meta = _signed(signer)
    assert signer.verify(meta, now=NOW).owners_signed
    assert signer.admitted_ms(meta) == int(NOW * 1000)
    assert signer.open_until_ms(meta) == int(NOW * 1000) + 40_000 - signing.OPEN_MARGIN_MS
    assert ReservationSigner("acme", [KEY_A], 60_000).open_until_ms(meta) == 0  # TTL unknown
    old = dict(meta)
    version, names = signing._V1
    old[ec.AUTHZ_SIGNATURE] = hmac.new(
        KEY_A, signing._message(old, version, names), hashlib.sha256
    ).hexdigest()
    verdict = signer.verify(old, now=NOW)
    assert verdict.ok and not verdict.owners_signed
    # v1 does not cover the owners: changing them keeps a v1 entry valid (and unjournaled);
    # a v2 entry's owners cannot be changed.
    old[ec.AUTHZ_TEAM] = "team_other"
    assert signer.verify(old, now=NOW).ok and not signer.verify(old, now=NOW).owners_signed
    meta[ec.AUTHZ_TEAM] = "team_other"
    assert signer.verify(meta, now=NOW).reason == "bad_signature"
