"""The import cache: a second import of the same model skips torch.export, never a
different model's graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import dlc
from dlc.frontends.torch import cache


class Net(torch.nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))


class Wrap(torch.nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DLC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("DLC_NO_CACHE", raising=False)
    return tmp_path


def count_exports(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import dlc.frontends.torch as frontend

    calls: list[int] = []
    real = frontend.import_module

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(frontend, "import_module", counting)
    return calls


def test_second_import_is_parsed_back_with_shared_weights(
        fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_exports(monkeypatch)
    torch.manual_seed(0)
    model, x = Net(), torch.randn(3, 4)
    first = dlc.import_model(model, (x,))
    second = dlc.import_model(model, (x,))
    assert len(calls) == 1
    assert str(first) == str(second)
    weight = next(c for c in second.constant_values() if c.name == "fc.weight")
    assert np.shares_memory(weight.data, model.fc.weight.detach().numpy())


def test_other_weights_or_shapes_miss(fresh_cache: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_exports(monkeypatch)
    torch.manual_seed(0)
    dlc.import_model(Net(), (torch.randn(3, 4),))
    torch.manual_seed(1)
    dlc.import_model(Net(), (torch.randn(3, 4),))  # other weights
    dlc.import_model(Net(), (torch.randn(5, 4),))  # other shape
    dlc.import_model(Net(16), (torch.randn(5, 4),))  # other settings
    assert len(calls) == 4


def test_modules_holding_functions_are_never_cached(fresh_cache: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_exports(monkeypatch)
    x = torch.randn(3)
    a = dlc.import_model(Wrap(torch.exp), (x,))
    b = dlc.import_model(Wrap(torch.sin), (x,))
    assert len(calls) == 2
    assert "ew.exp" in str(a) and "ew.sin" in str(b)
    assert cache.import_key(Wrap(torch.exp), (x,), None) is None
