"""Benchmarks (`make bench`, `python -m bench`): each writes its own section of BENCHMARKS.md."""
