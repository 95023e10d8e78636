"""Joins the wallet admin API to the service's gRPC server (server.register_extra_service).

Builds the servicer over the app's WalletService, the admin-token checker and the ticket store
(its own Redis client: pub/sub needs a dedicated connection anyway), and hands the `hold` path of
the gateway its ticket waiter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from keeptrusts_authz.api.auth import AdminAuth
from keeptrusts_authz.api.gen.keeptrusts.wallet.v1 import wallet_pb2, wallet_pb2_grpc
from keeptrusts_authz.api.servicer import WalletApiServicer
from keeptrusts_authz.api.tickets import Holds
from keeptrusts_authz.store.connection import connect
from keeptrusts_authz.store.tickets import TicketStore

if TYPE_CHECKING:
    from keeptrusts_authz.server import App

SERVICE_NAME = wallet_pb2.DESCRIPTOR.services_by_name["WalletService"].full_name


def register_wallet_api(app: App, server: grpc.aio.Server) -> list[str]:
    cfg = app.config
    tickets = TicketStore(connect(cfg.redis), cfg.organization.id)
    holds = Holds(app.wallets, tickets, cfg.enforcement.hold_timeout_seconds)
    app.extras["tickets"] = tickets
    app.extras["holds"] = holds
    app.admission.holds = holds
    servicer = WalletApiServicer(app.wallets, cfg, AdminAuth(cfg.admin.tokens), tickets)
    wallet_pb2_grpc.add_WalletServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    return [SERVICE_NAME]


__all__ = ["SERVICE_NAME", "register_wallet_api"]
