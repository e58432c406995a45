"""PyTorch eager: the baseline every speed-up is measured against."""

from __future__ import annotations

from typing import Any

from survey_bench.runners.base import Prepared, Runner, numpy_outputs


class EagerRunner(Runner):
    """`module(*inputs)` under `torch.no_grad()`."""

    name = "eager"
    label = "PyTorch eager"
    packages = ("torch",)

    def prepare(self, model_name: str, module: Any, inputs: tuple[Any, ...],
                threads: int) -> Prepared:
        import torch

        torch.set_num_threads(threads)
        module = module.eval()

        def call(*xs: Any) -> Any:
            with torch.no_grad():
                return module(*xs)

        return Prepared(call, inputs, numpy_outputs)
