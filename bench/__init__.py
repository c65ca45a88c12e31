"""Benchmarks run against a live local stack (not tests): see bench/ingest.py."""
