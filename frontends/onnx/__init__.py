"""The ONNX frontend: an ONNX ModelProto (or .onnx file) to the dlc graph IR."""

from dlc.frontends.onnx.builder import DynamicInputError
from dlc.frontends.onnx.importer import import_onnx, load_model
from dlc.frontends.onnx.model import OnnxModel

__all__ = ["DynamicInputError", "OnnxModel", "import_onnx", "load_model"]
