"""The schema migrations, `NNN_name.sql`, applied in number order by ledger/schema.py."""
