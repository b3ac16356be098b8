"""Market data adapters: a seedable simulator and CSV replay of real prices."""
