"""The wallet-semantics suite on the in-memory store (tests/unit/conftest.py's `backend`): the
same tests run on real Redis in tests/wallets, so the twin is held to the Lua scripts."""

from __future__ import annotations

from tests.wallets.test_backends import (
    test_idempotency_key_replays_and_refuses_another_request,
    test_one_sequence_one_ledger,
    test_policies_overdraft_and_denial_counters,
)
from tests.wallets.test_concurrency import (
    test_600_concurrent_reserves_from_asyncio_tasks,
    test_concurrent_reserve_settle_release_keep_the_books,
)
from tests.wallets.test_service import (
    test_bad_input_leaves_balances_and_ledger_untouched,
    test_currency_is_case_insensitive_but_never_converted,
    test_insufficient_funds_names_what_is_available,
    test_ledger_paging_and_wallet_filter,
    test_status_healthy_low_depleted,
    test_wallets_listing_and_status_from_config_ratio,
)
from tests.wallets.test_stateful import test_wallet_state_machine

__all__ = [
    "test_600_concurrent_reserves_from_asyncio_tasks",
    "test_bad_input_leaves_balances_and_ledger_untouched",
    "test_concurrent_reserve_settle_release_keep_the_books",
    "test_currency_is_case_insensitive_but_never_converted",
    "test_idempotency_key_replays_and_refuses_another_request",
    "test_insufficient_funds_names_what_is_available",
    "test_ledger_paging_and_wallet_filter",
    "test_one_sequence_one_ledger",
    "test_policies_overdraft_and_denial_counters",
    "test_status_healthy_low_depleted",
    "test_wallet_state_machine",
    "test_wallets_listing_and_status_from_config_ratio",
]
