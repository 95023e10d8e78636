"""Signed reservations: what lets the access-log consumer believe an entry (issue 9, C2).

The Check signs what a settlement may act on, i.e. the organization, the reservation id, the paying
wallet, the estimate (the most a settlement may charge without being a bound violation), an expiry,
the admission fields the settlement reads (model, priced model, input bound, output-bounded, extra
output, service tier) and the reservation's owners (team, consumer group, user: what a charge
recovered from the settlement journal is booked to), with HMAC-SHA256 under the server key, and
puts the signature and the key id into its dynamic metadata (`AUTHZ_SIGNATURE`, `AUTHZ_KEY_ID`).
Envoy copies that metadata into the access-log entry; the consumer settles or releases only an
entry whose signature verifies under a key it holds, whose org is its own, whose recorded
reservation header agrees, and that has not expired. Anything else is refused with one
low-cardinality reason and never reaches the store (so it can neither move money nor tombstone an
id).

What this does NOT authenticate: the usage the Lua filter reports (tokens, model). A caller that
can reach the service's gRPC port directly can get a signed reservation of its own from a Check
and report any usage for it; only the transport (mTLS or a private socket between Envoy and the
service) closes that. Signing binds every settlement to a reservation this service issued, with
its wallet and estimate, so a forged entry can no longer act on someone else's reservation id.

Key ids are derived from the key bytes (`key_id`), so nothing else needs configuring: rotation is
"new key in key_file, old key in previous_key_file", on every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from keeptrusts_authz import envoy_contract as ec
from keeptrusts_authz.config.models import Config, is_loopback

log = logging.getLogger(__name__)

MIN_KEY_BYTES: Final = 32
# Version tag of the signed message layout; a change of layout changes it.
_VERSION: Final = b"kt-resv-v2"

# The metadata fields the signature covers, in signing order.
SIGNED_FIELDS: Final = (
    ec.AUTHZ_ORG,
    ec.AUTHZ_RESERVATION_ID,
    ec.AUTHZ_WALLET,
    ec.AUTHZ_ESTIMATE_MICROS,
    ec.AUTHZ_EXPIRES_MS,
    ec.AUTHZ_MODEL,
    ec.AUTHZ_PRICED_MODEL,
    ec.AUTHZ_INPUT_BOUND_TOKENS,
    ec.AUTHZ_OUTPUT_BOUNDED,
    ec.AUTHZ_EXTRA_OUTPUT_TOKENS,
    ec.AUTHZ_SERVICE_TIER,
    ec.AUTHZ_TEAM,
    ec.AUTHZ_GROUP,
    ec.AUTHZ_USER,
)

# The previous layout (v1: without the owners), still verified so that entries of Checks signed
# before a deploy settle; their owners are not signed, so they are never journaled
# (`Verdict.owners_signed`).
_V1: Final = (b"kt-resv-v1", SIGNED_FIELDS[:11])
_LAYOUTS: Final = ((_VERSION, SIGNED_FIELDS), _V1)

#: Clock margin of `ReservationSigner.open_until_ms`.
OPEN_MARGIN_MS: Final = 30_000

RejectReason = Literal[
    "missing_signature", "bad_signature", "unknown_key", "field_mismatch", "expired"
]
REJECT_REASONS: Final[tuple[RejectReason, ...]] = (
    "missing_signature",
    "bad_signature",
    "unknown_key",
    "field_mismatch",
    "expired",
)


class SigningKeyError(Exception):
    """A configured key file cannot be used (missing, unreadable, too short)."""


def key_id(key: bytes) -> str:
    """A public name for a key (8 hex characters of a hash that reveals nothing of it)."""
    return hashlib.sha256(b"keeptrusts signing key id\x00" + key).hexdigest()[:8]


def _canonical(value: Any) -> bytes:
    # Length-prefixed, so no value (a client-chosen model name may hold any character) can shift
    # a boundary between fields; a missing field differs from an empty one.
    if value is None:
        return b"-"
    text = ("1" if value else "0") if isinstance(value, bool) else str(value)
    raw = text.encode("utf-8")
    return b"%d:%s" % (len(raw), raw)


def _message(
    fields: Mapping[str, Any],
    version: bytes = _VERSION,
    names: tuple[str, ...] = SIGNED_FIELDS,
) -> bytes:
    return b"\n".join([version, *(_canonical(fields.get(name)) for name in names)])


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: RejectReason | None = None
    estimate_micros: int = 0
    # Signed in the current layout, owners (team, group, user) included: what the settlement
    # journal may book a recovered charge to.
    owners_signed: bool = False


class ReservationSigner:
    """Signs on the Check, verifies on the access log. `keys[0]` signs; every key verifies."""

    def __init__(
        self,
        org: str,
        keys: list[bytes],
        lifetime_ms: int,
        *,
        ephemeral: bool = False,
        reservation_ttl_ms: int = 0,
    ) -> None:
        """`reservation_ttl_ms`: how long a reservation stays open (the first part of the
        lifetime); 0 = unknown, then no charge is ever taken as lost (`open_until_ms`)."""
        if not keys:
            raise ValueError("at least one key")
        self._org = org
        self._signing_kid = key_id(keys[0])
        # Keyed once: each signature copies the keyed state (saves the two key-pad hashes).
        self._macs = {key_id(k): hmac.new(k, digestmod=hashlib.sha256) for k in keys}
        self._signing_mac = self._macs[self._signing_kid]
        self._lifetime_ms = lifetime_ms
        self._reservation_ttl_ms = reservation_ttl_ms
        self.ephemeral = ephemeral

    @property
    def key_id(self) -> str:
        return self._signing_kid

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._macs)

    def sign(self, metadata: dict[str, str | bool], now: float | None = None) -> None:
        """Add org, expiry, key id and signature to a reservation's Check metadata (in place)."""
        now_ms = int((time.time() if now is None else now) * 1000)
        metadata[ec.AUTHZ_ORG] = self._org
        metadata[ec.AUTHZ_EXPIRES_MS] = str(now_ms + self._lifetime_ms)
        metadata[ec.AUTHZ_KEY_ID] = self._signing_kid
        mac = self._signing_mac.copy()
        mac.update(_message(metadata))
        metadata[ec.AUTHZ_SIGNATURE] = mac.hexdigest()

    def verify(
        self,
        authz: Mapping[str, Any],
        recorded_reservation: str | None = None,
        now: float | None = None,
    ) -> Verdict:
        """Whether an access-log entry's Check metadata may settle its reservation.
        `recorded_reservation`: the reservation header Envoy logged with the request, if any."""
        signature = authz.get(ec.AUTHZ_SIGNATURE)
        kid = authz.get(ec.AUTHZ_KEY_ID)
        if not isinstance(signature, str) or not signature or not isinstance(kid, str):
            return Verdict(False, "missing_signature")
        keyed = self._macs.get(kid)
        if keyed is None:
            return Verdict(False, "unknown_key")
        current = False
        for version, names in _LAYOUTS:
            mac = keyed.copy()
            mac.update(_message(authz, version, names))
            if hmac.compare_digest(mac.hexdigest(), signature):
                current = version == _VERSION
                break
        else:
            return Verdict(False, "bad_signature")
        rid = authz.get(ec.AUTHZ_RESERVATION_ID)
        if authz.get(ec.AUTHZ_ORG) != self._org or (
            recorded_reservation and recorded_reservation != rid
        ):
            return Verdict(False, "field_mismatch")
        try:
            expires_ms = int(str(authz.get(ec.AUTHZ_EXPIRES_MS)))
        except ValueError:
            return Verdict(False, "field_mismatch")
        now_ms = int((time.time() if now is None else now) * 1000)
        if now_ms > expires_ms:
            return Verdict(False, "expired")
        try:
            estimate = int(str(authz.get(ec.AUTHZ_ESTIMATE_MICROS) or 0))
        except ValueError:
            estimate = 0
        return Verdict(True, None, estimate, owners_signed=current)

    def admitted_ms(self, authz: Mapping[str, Any]) -> int:
        """When the Check signed a verified entry (its expiry minus the lifetime)."""
        try:
            return int(str(authz.get(ec.AUTHZ_EXPIRES_MS))) - self._lifetime_ms
        except ValueError:
            return 0

    def open_until_ms(self, authz: Mapping[str, Any]) -> int:
        """Until when a verified entry's reservation can be open in the store, minus
        `OPEN_MARGIN_MS` for the clocks of Redis (deadlines) and of this process (signing) to
        disagree; 0 when the reservation TTL is unknown."""
        if self._reservation_ttl_ms <= 0:
            return 0
        return self.admitted_ms(authz) + self._reservation_ttl_ms - OPEN_MARGIN_MS


def read_key(path: str, what: str) -> bytes:
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SigningKeyError(
            f"server.signing.{what}: cannot read {path}: {exc.strerror}"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"server.signing.{what}: {path} holds {len(key)} bytes; a signing key needs at least "
            f"{MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`)"
        )
    return key


def signature_lifetime_ms(cfg: Config) -> int:
    """How long a signature may settle its reservation: while the reservation can be open, plus
    while its closed record stays (a late real usage still corrects an estimate then). Past
    that the id is forgotten, and a replayed entry would only tombstone it."""
    e = cfg.enforcement
    return (e.reservation_ttl_seconds + e.closed_reservation_ttl_seconds) * 1000


def signer_from_config(cfg: Config) -> ReservationSigner:
    """The process's signer: the configured key (and the previous one during a rotation), or a
    random per-process key on a loopback bind, announced loudly."""
    s = cfg.server.signing
    lifetime = signature_lifetime_ms(cfg)
    open_ms = cfg.enforcement.reservation_ttl_seconds * 1000
    org = cfg.organization.id
    if s.key_file is None:
        if cfg.server.uds_path is None and not is_loopback(cfg.server.host):  # config refuses too
            raise SigningKeyError(
                "server.signing.key_file: required when the service is bound beyond loopback"
            )
        log.warning(
            "server.signing.key_file is not set: reservations are signed with a random key of "
            "this process only. Another replica (or this one after a restart) refuses their "
            "access-log entries and the sweeper charges those reservations their estimate. Set "
            "server.signing.key_file (or $KEEPTRUSTS_SIGNING_KEY_FILE) to one key shared by "
            "every replica."
        )
        return ReservationSigner(
            org, [secrets.token_bytes(32)], lifetime, ephemeral=True, reservation_ttl_ms=open_ms
        )
    keys = [read_key(s.key_file, "key_file")]
    if s.previous_key_file is not None:
        keys.append(read_key(s.previous_key_file, "previous_key_file"))
    signer = ReservationSigner(org, keys, lifetime, reservation_ttl_ms=open_ms)
    log.info(
        "reservation signing key id %s (verifying %s)", signer.key_id, ", ".join(signer.key_ids)
    )
    return signer
