"""Passes: graph-IR optimizations and tensor-IR lowering and scheduling."""
