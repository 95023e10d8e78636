"""Chargeback/showback reports built from the ledger."""
