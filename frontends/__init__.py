"""Frontends: import PyTorch (torch.export) and ONNX models into the graph IR."""
