"""Budget periods: the finance calendar, recurring allocations and their rollover."""
