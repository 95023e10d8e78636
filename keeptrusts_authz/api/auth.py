"""Admin-token authentication and role checks for the wallet API.

Tokens live in the config only as sha256 digests (`admin.tokens[].sha256`) with a name and roles.
The presented token (`authorization: Bearer <token>`) is hashed and compared with EVERY configured
digest in constant time (`keeptrusts_authz.credentials`, shared with the gateway's API keys).
The token itself is never logged or stored; the ledger records the token's `name` as the actor.

Roles:
- `billing`: money moves (credit, allocate, reclaim, transfer) and ticket approve/deny; it also
  reads everything (whoever moves money must see the balances it moves).
- `viewer`: reads everything.
- `team:<team_id>`: reads its own team wallet, the wallets of the team's users (membership from
  the wallet records and the config, never from the ledger), their transactions, the team's
  tickets; re-splits the team's budget among its users and requests top-ups (team_moves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from keeptrusts_authz.config.models import AdminToken
from keeptrusts_authz.credentials import DigestMatcher, bearer_token
from keeptrusts_authz.errors import KeeptrustsError

_MAX_TOKEN = 4096


class Unauthenticated(KeeptrustsError):
    def __init__(self, message: str = "missing or invalid admin token") -> None:
        super().__init__("unauthenticated", message, 401)


class PermissionDenied(KeeptrustsError):
    def __init__(self, message: str) -> None:
        super().__init__("permission_denied", message, 403)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: the token's configured name and roles."""

    name: str
    roles: frozenset[str]

    @property
    def billing(self) -> bool:
        return "billing" in self.roles

    @property
    def reads_all(self) -> bool:
        return "billing" in self.roles or "viewer" in self.roles

    @property
    def teams(self) -> frozenset[str]:
        return frozenset(r[5:] for r in self.roles if r.startswith("team:"))

    def require_billing(self, action: str) -> None:
        if not self.billing:
            raise PermissionDenied(f"{action} needs the billing role")

    def require_read_all(self, what: str) -> None:
        if not self.reads_all:
            raise PermissionDenied(f"reading {what} needs the viewer or billing role")

    def may_read_team(self, team_id: str) -> bool:
        return self.reads_all or team_id in self.teams

    def may_read_wallet(self, wallet_id: str, user_teams: Mapping[str, str]) -> bool:
        """`user_teams`: user id -> the team it belongs to (wallet records and config; only
        consulted for team roles)."""
        if self.reads_all:
            return True
        scope, _, owner = wallet_id.partition(":")
        if scope == "team":
            return owner in self.teams
        if scope == "user":
            return user_teams.get(owner, "") in self.teams
        return False

    def require_team_lead(self, team_id: str, action: str) -> None:
        """Team moves (re-split, top-up request): the team's own token, or billing."""
        if not (self.billing or team_id in self.teams):
            raise PermissionDenied(f"{action} for team {team_id} needs the team:{team_id} role")


class AdminAuth:
    def __init__(self, tokens: Iterable[AdminToken]) -> None:
        self._matcher = DigestMatcher(
            (t.sha256, Principal(t.name, frozenset(t.roles))) for t in tokens
        )

    def authenticate(self, metadata: Mapping[str, str]) -> Principal:
        """Principal for the `authorization` metadata; Unauthenticated (401) otherwise."""
        token = bearer_token(metadata.get("authorization"))
        if token is None or len(token) > _MAX_TOKEN:
            raise Unauthenticated()
        found = self._matcher.match(token)
        if found is None:
            raise Unauthenticated()
        return found


__all__ = ["AdminAuth", "PermissionDenied", "Principal", "Unauthenticated"]
