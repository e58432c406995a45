"""dlc: a deep-learning compiler and IR toolkit in Python.

    import dlc
    graph = dlc.import_model(model, (x,))          # torch.nn.Module -> graph IR
    print(graph)                                   # the textual IR (parses back)
    compiled = dlc.compile(model, (x,))            # a callable CompiledModel
    y = compiled(x)                                # NumPy out
"""

from dlc.api import compile, import_model
from dlc.compiled import CompiledModel
from dlc.errors import DLCError, InputError, UnsupportedOpError
from dlc.ir.graph import Graph
from dlc.runtime import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "CompiledModel", "DLCError", "Graph", "InputError", "UnsupportedOpError", "__version__",
    "compile", "get_num_threads", "import_model", "set_num_threads",
]
