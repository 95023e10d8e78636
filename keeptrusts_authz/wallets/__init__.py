"""Wallet domain: models, WalletService (validation, cascade, currency) and the ledger audit."""
