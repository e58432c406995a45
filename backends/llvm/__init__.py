"""The LLVM backend: tensor IR -> LLVM IR (llvmlite) -> JIT or shared library."""
