"""The PyTorch frontend: torch.export (core ATen) to the dlc graph IR."""

from dlc.frontends.torch.importer import import_exported_program, import_module

__all__ = ["import_exported_program", "import_module"]
