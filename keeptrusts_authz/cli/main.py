"""Entry point: builds the argparse tree from the command modules and dispatches.

Each command module exposes `register(subparsers)`; a subcommand sets `func(args) -> int` as its
handler. Exit codes: 0 ok, 1 a check failed (audit, check-config), 2 usage or bad input,
3 store unreachable, 4 not found/conflict.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

_COMMAND_MODULES = (
    "keeptrusts_authz.cli.config_cmds",  # check-config
    "keeptrusts_authz.cli.envoy_cmds",  # render-envoy
    "keeptrusts_authz.cli.wallet_cmds",  # credit allocate reclaim transfer balance ledger audit
    "keeptrusts_authz.cli.serve_cmd",  # serve
    "keeptrusts_authz.cli.report_cmd",  # report
    "keeptrusts_authz.cli.periods_cmd",  # periods status/run
    "keeptrusts_authz.cli.db_cmds",  # db migrate
    "keeptrusts_authz.cli.restore_cmd",  # restore
    "keeptrusts_authz.cli.team_cmds",  # team-allocate team-reclaim topup-* topups
    "keeptrusts_authz.cli.prices_cmd",  # prices
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keeptrusts-authz",
        description="Team budget allocation for AI spend, enforced at the Envoy gateway.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a command module not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result: int = func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
