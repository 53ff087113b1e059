"""The fleet overview: aggregated health, cost and operations, live."""
