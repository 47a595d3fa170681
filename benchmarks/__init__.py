"""Benchmarks: the service against a hand-written floor and PostGraphile, on the same generated data."""
