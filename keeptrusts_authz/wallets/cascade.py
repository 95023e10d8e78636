"""The wallet cascade: which wallets fund a consumer group's request, in which order, and which
wallet takes a warn/showback overdraft. The gateway's admission and the wallet API's balance view
both read it from here.

Users belong to teams: the user step names `user:<user>` whatever the user header says, and the
reservation carries the group's team (`member_team`); reserve.lua refuses the whole request when
that user wallet exists for another team (or none), in the same script that would fund it, so a
cascade never reaches another team's user and never falls through to its own wallets instead."""

from __future__ import annotations

from dataclasses import dataclass

from keeptrusts_authz.config.models import Config, ConsumerGroup
from keeptrusts_authz.wallets.models import Scope


@dataclass(frozen=True)
class CascadeStep:
    scope: Scope
    #: The wallet of this scope, or None when the request names none (a user scope without a
    #: user header, or a team scope of a group without a team wallet).
    wallet: str | None


@dataclass(frozen=True)
class Cascade:
    steps: tuple[CascadeStep, ...]
    #: Wallet ids the reservation tries in order (never empty: the overdraft wallet backstops).
    candidates: tuple[str, ...]
    #: The wallet a warn/showback overdraft is charged to: the team wallet, else the org pool.
    overdraft: str


def member_team(group: ConsumerGroup) -> str:
    """The team whose users this group's cascade may reach ('' for a group without a team,
    whose cascade is the org pool only)."""
    return group.wallet_team_id or ""


def overdraft_wallet(group: ConsumerGroup) -> str:
    return f"team:{group.wallet_team_id}" if group.wallet_team_id else "org"


def _wallet_of(scope: Scope, group: ConsumerGroup, user: str | None) -> str | None:
    if scope == "user":
        return f"user:{user}" if user else None
    if scope == "team":
        return f"team:{group.wallet_team_id}" if group.wallet_team_id else None
    return "org"


def cascade_for(config: Config, group: ConsumerGroup, user: str | None) -> Cascade:
    """The cascade of `group` for a request by `user` (None: no user header)."""
    steps = tuple(CascadeStep(s, _wallet_of(s, group, user)) for s in config.cascade_for(group))
    overdraft = overdraft_wallet(group)
    candidates = tuple(step.wallet for step in steps if step.wallet is not None)
    return Cascade(steps, candidates or (overdraft,), overdraft)


__all__ = ["Cascade", "CascadeStep", "cascade_for", "member_team", "overdraft_wallet"]
