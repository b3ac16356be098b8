"""Backtests: scenario files, the seeded workload generator, the replay engine that accounts
each strategy at real prices, and the HTML report."""
