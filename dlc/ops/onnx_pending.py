"""Ops the ONNX frontend needs that are waiting to move to their family module."""
