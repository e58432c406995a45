"""Converters (to be filled)."""

from dlc.frontends.torch.registry import torch_op  # noqa: F401
