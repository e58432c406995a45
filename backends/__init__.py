"""Backends: turn the optimized IR into something that runs."""
