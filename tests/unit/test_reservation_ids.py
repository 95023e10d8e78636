"""Reservation ids derive from Envoy's per-request check id (admission.reservation_id_for)."""

from __future__ import annotations

import uuid

from keeptrusts_authz.gateway.admission import reservation_id_for
from keeptrusts_authz.wallets.models import RESERVATION_ID


def test_one_check_id_one_reservation_id() -> None:
    check = str(uuid.uuid4())
    first = reservation_id_for(check)
    assert first == reservation_id_for(check)  # every attempt of a retried Check
    assert first != reservation_id_for(str(uuid.uuid4()))
    assert RESERVATION_ID.match(first) and len(first) == 26


def test_without_a_well_formed_check_id_every_call_is_a_new_id() -> None:
    for value in (None, "", "not-a-uuid", "0F0F0F0F-0F0F-4F0F-8F0F-0F0F0F0F0F0F", "x" * 36):
        ids = {reservation_id_for(value) for _ in range(3)}
        assert len(ids) == 3, value
