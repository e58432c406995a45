"""Tensor-IR passes: lowering fused groups to loop nests, and scheduling them."""
