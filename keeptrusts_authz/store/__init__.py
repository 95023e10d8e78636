"""Storage layer: the only code that imports redis (Lua scripts + RedisWalletStore)."""
