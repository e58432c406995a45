"""The diffusion and GAN zoo models: deterministic, input-dependent, exportable; the sampler."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from survey_bench.zoo.registry import ZOO  # noqa: E402
from survey_bench.zoo.sampling import (  # noqa: E402
    ddpm_sample,
    linear_alphabar,
    torch_denoiser,
)

MODULES = {"ddpm_unet": "ddpm_unet", "uvit_bidiffuser": "uvit", "soda": "soda",
           "compositional_gan": "compositional_gan"}
for _module in MODULES.values():
    importlib.import_module(f"survey_bench.zoo.{_module}")

NAMES = sorted(MODULES)
Tiny = tuple[str, torch.nn.Module, tuple[torch.Tensor, ...]]


def _outputs(model: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = model(*args)
    return out if isinstance(out, tuple) else (out,)


@pytest.fixture(scope="module", params=NAMES)
def tiny(request: pytest.FixtureRequest) -> Tiny:
    model, args = ZOO[request.param].factory("tiny")
    return request.param, model, args


def test_tiny_builds_deterministically(tiny: Tiny) -> None:
    name, model, args = tiny
    model2, args2 = ZOO[name].factory("tiny")
    for a, b in zip(args, args2):
        assert torch.equal(a, b)
    for a, b in zip(_outputs(model, args), _outputs(model2, args2)):
        assert torch.equal(a, b)


def test_tiny_is_small_and_finite(tiny: Tiny) -> None:
    name, model, args = tiny
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) < 100_000, "tiny must stay tiny"
    for out in _outputs(model, args):
        assert torch.isfinite(out).all()
        assert out.std() > 1e-3, f"{name} gives a near-constant output"


def test_tiny_depends_on_every_input(tiny: Tiny) -> None:
    name, model, args = tiny
    base = _outputs(model, args)
    for i, arg in enumerate(args):
        changed = list(args)
        # images and embeddings move by 0.5; timesteps f32[B] move by 250 steps
        changed[i] = (arg + 250.0) % 1000.0 if arg.dim() == 1 else arg + 0.5
        outs = _outputs(model, tuple(changed))
        assert any(not torch.allclose(a, b) for a, b in zip(base, outs)), \
            f"{name} ignores its input {i}"


def test_registry_entry_matches_forward(tiny: Tiny) -> None:
    name, model, args = tiny
    entry = ZOO[name]
    params = list(inspect.signature(model.forward).parameters)
    assert entry.input_names == tuple(params) and len(args) == len(params)
    assert entry.paper and entry.task and entry.dynamic_shapes is not None


def _export_and_check(name: str, size: str, other_batch: int = 0) -> None:
    """Export with the registered symbolic batch; compare with eager (at `other_batch` too)."""
    model, args = ZOO[name].factory(size)
    with torch.no_grad():
        ep = torch.export.export(model, args, dynamic_shapes=ZOO[name].dynamic_shapes(),
                                 strict=False).run_decompositions()
    kinds = {spec.kind.name for spec in ep.graph_signature.output_specs}
    assert kinds == {"USER_OUTPUT"}, f"{name} mutates state in eval mode: {kinds}"
    runs = [args]
    if other_batch:
        runs.append(tuple(torch.cat([a] * other_batch)[:other_batch] for a in args))
    for inputs in runs:
        got = ep.module()(*inputs)
        got = got if isinstance(got, tuple) else (got,)
        for a, b in zip(got, _outputs(model, inputs)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_tiny_exports_with_symbolic_batch(tiny: Tiny) -> None:
    _export_and_check(tiny[0], "tiny", other_batch=3)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_bench_exports(name: str) -> None:
    _export_and_check(name, "bench")


def test_ddpm_sample_with_eager_unet_is_finite_and_deterministic() -> None:
    model, _ = ZOO["ddpm_unet"].factory("tiny")
    denoiser = torch_denoiser(model)
    steps: list[int] = []
    a = ddpm_sample(denoiser, steps=4, seed=0, on_step=lambda t, x: steps.append(t))
    b = ddpm_sample(denoiser, steps=4, seed=0)
    c = ddpm_sample(denoiser, steps=4, seed=1)
    assert a.shape == (2, 3, 8, 8) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert steps == [999, 666, 333, 0]


@pytest.mark.parametrize("steps", [1000, 10])
def test_ddpm_sample_marginals_for_a_point_mass(steps: int) -> None:
    """With the exact denoiser for data = c, each x_{t'} ~ N(sqrt(abar_t') c, 1 - abar_t')."""
    c = 0.7
    abar = linear_alphabar()
    kept = np.linspace(0, 999, steps).round().astype(np.int64)
    abar_next = {int(kept[i]): abar[kept[i - 1]] if i > 0 else 1.0 for i in range(steps)}

    def exact(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        a = abar[t.astype(np.int64)][:, None]
        return (x - np.sqrt(a) * c) / np.sqrt(1.0 - a)

    seen: list[int] = []

    def check(t: int, x: np.ndarray) -> None:
        seen.append(t)
        a = abar_next[t]
        assert abs(x.mean() - np.sqrt(a) * c) < 0.03, f"mean after t={t}"
        assert abs(x.std() - np.sqrt(1.0 - a)) < 0.03, f"std after t={t}"

    out = ddpm_sample(exact, steps=steps, shape=(20_000, 1), seed=0, on_step=check)
    assert seen == [int(t) for t in kept[::-1]]
    np.testing.assert_allclose(out, c, atol=1e-4)
