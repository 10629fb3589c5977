"""Benchmarks: `make bench` runs them all, prints a table and writes bench/results/latest.json."""
