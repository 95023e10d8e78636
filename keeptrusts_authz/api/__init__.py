"""Wallet admin API: keeptrusts.wallet.v1.WalletService (gRPC, REST through Envoy)."""
