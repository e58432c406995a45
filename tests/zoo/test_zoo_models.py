"""The zoo's non-diffusion models at tiny size: deterministic, finite, input-dependent,
exportable, and faithful to the formulas their papers give."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from survey_bench import zoo  # noqa: E402
from survey_bench.zoo import gcn as gcn_module  # noqa: E402
from survey_bench.zoo import graphs, kge, mobileclip, vim_mllm  # noqa: E402

MODELS = ("mobileclip", "gcn", "gcn_sparse", "adagcn", "adagcn_sparse", "kge_rescal",
          "kge_transe", "kge_complex", "kge_conve", "kge_tucker", "easygen_bridge",
          "vim_mllm.prefill", "vim_mllm.decode_step", "aica_cnn")


def _outputs(model: torch.nn.Module, args: tuple) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = model(*args)
    return out if isinstance(out, tuple) else (out,)


def _perturbed(arg: torch.Tensor) -> torch.Tensor:
    """A different but still valid input: noise for floats, shifted ids for integers."""
    if arg.is_sparse:
        return torch.sparse_coo_tensor(arg.indices(), arg.values() * 1.5, arg.shape).coalesce()
    if arg.dtype == torch.int64:
        return (arg + 1) % (int(arg.max()) + 1)
    return arg + 0.5 * torch.randn(arg.shape, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module", params=MODELS)
def tiny(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module, tuple]:
    model, args = zoo.get(request.param, "tiny")
    return request.param, model, args


def test_tiny_builds_deterministically(tiny) -> None:
    name, model, args = tiny
    model2, args2 = zoo.get(name, "tiny")
    for a, b in zip(args, args2):
        assert torch.equal(a.to_dense(), b.to_dense())
    state, state2 = model.state_dict(), model2.state_dict()
    assert state.keys() == state2.keys()
    assert all(torch.equal(state[k], state2[k]) for k in state)
    for a, b in zip(_outputs(model, args), _outputs(model2, args2)):
        assert torch.equal(a, b)


def test_tiny_is_small_eval_and_finite(tiny) -> None:
    name, model, args = tiny
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) < 100_000, "tiny must stay tiny"
    for arg in args:
        if arg.dtype == torch.int64:
            assert int(arg.min()) >= 0
    for out in _outputs(model, args):
        assert out.is_floating_point() or out.dtype == torch.int64
        if out.is_floating_point():
            assert torch.isfinite(out).all(), name
            assert out.std() > 1e-4, f"{name} gives a near-constant output"


def test_tiny_depends_on_every_input(tiny) -> None:
    name, model, args = tiny
    base = _outputs(model, args)
    for index, arg in enumerate(args):
        changed = list(args)
        changed[index] = _perturbed(arg)
        outs = _outputs(model, tuple(changed))
        assert any(not torch.allclose(a, b) for a, b in zip(base, outs)), \
            f"{name}: output ignores input {index}"


def test_tiny_exports_and_matches_eager(tiny) -> None:
    name, model, args = tiny
    program = torch.export.export(model, args, dynamic_shapes=zoo.dynamic_shapes(name),
                                  strict=False)
    decomposed = program.run_decompositions()
    for got, want in zip(_outputs(decomposed.module(), args), _outputs(model, args)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_no_state_mutation_in_forward(tiny) -> None:
    name, model, args = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _outputs(model, args)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- graphs and GCNs ---------------------------------------------------------------------


@pytest.mark.parametrize("size", ["tiny", "bench", "large"])
def test_synthetic_graph_has_the_dataset_sizes(size: str) -> None:
    spec = graphs.SPECS[size]
    graph = graphs.synthetic_graph(spec)
    assert graph.edge_index.shape == (2, spec.num_edges)
    assert graph.features.shape == (spec.num_nodes, spec.num_features)
    src, dst = graph.edge_index
    assert (src != dst).all()
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert len(pairs) == spec.num_edges and all((d, s) in pairs for s, d in pairs)  # undirected
    degree = np.bincount(dst, minlength=spec.num_nodes)
    assert degree.max() > 5 * np.median(degree)  # heavy-tailed, as a power law is
    np.testing.assert_allclose(graph.features.sum(axis=1), 1.0, rtol=1e-5)


def test_gcn_normalization_is_symmetric_with_self_loops() -> None:
    graph = graphs.synthetic_graph(graphs.SPECS["tiny"])
    edge_index, weight = graphs.gcn_normalized_edges(graph.edge_index, graph.num_nodes)
    n = graph.num_nodes
    dense = np.zeros((n, n))
    np.add.at(dense, (edge_index[1], edge_index[0]), weight)
    adjacency = np.zeros((n, n))
    adjacency[graph.edge_index[1], graph.edge_index[0]] = 1
    adjacency += np.eye(n)
    d = adjacency.sum(1) ** -0.5
    np.testing.assert_allclose(dense, d[:, None] * adjacency * d[None, :], rtol=1e-6)


@pytest.mark.parametrize("edges, sparse", [("gcn", "gcn_sparse"), ("adagcn", "adagcn_sparse")])
def test_edge_list_and_sparse_forms_agree(edges: str, sparse: str) -> None:
    model, args = zoo.get(edges, "tiny")
    sparse_model, sparse_args = zoo.get(sparse, "tiny")
    assert sparse_args[1].is_sparse and sparse_args[1].layout == torch.sparse_coo
    torch.testing.assert_close(_outputs(model, args)[0],
                               _outputs(sparse_model, sparse_args)[0], rtol=1e-4, atol=1e-5)


def test_gcn_matches_dense_formula() -> None:
    model, (x, edge_index, weight) = zoo.get("gcn", "tiny")
    n = x.shape[0]
    a_hat = torch.zeros(n, n).index_put_((edge_index[1], edge_index[0]), weight, accumulate=True)
    h = torch.relu(a_hat @ x @ model.conv1.weight + model.conv1.bias)
    want = torch.log_softmax(a_hat @ h @ model.conv2.weight + model.conv2.bias, dim=-1)
    torch.testing.assert_close(_outputs(model, (x, edge_index, weight))[0], want,
                               rtol=1e-4, atol=1e-5)


def test_adagcn_uses_one_classifier_per_hop() -> None:
    model, _ = zoo.get("adagcn", "tiny")
    assert isinstance(model, gcn_module.AdaGCN)
    assert len(model.classifiers) == gcn_module.ADAGCN_HOPS["tiny"] + 1
    assert (model.alpha > 0).all()  # SAMME weights of better-than-chance learners


# --- knowledge-graph embeddings -------------------------------------------------------------


def _as_complex(v: torch.Tensor) -> torch.Tensor:
    """Real and imaginary halves side by side -> a complex tensor."""
    real, imaginary = v.chunk(2, dim=-1)
    return torch.complex(real, imaginary)


def test_kge_scores_match_the_papers_formulas() -> None:
    for name in ("kge_rescal", "kge_transe", "kge_complex"):
        model, (heads, relations) = zoo.get(name, "tiny")
        scores = _outputs(model, (heads, relations))[0]
        assert scores.shape == (heads.shape[0], kge.SIZES["tiny"].entities)
        e, r, t = model.entity(heads), model.relation(relations), model.entity.weight
        if name == "kge_rescal":
            want = torch.einsum("bi,bij,tj->bt", e, r.view(-1, e.shape[1], e.shape[1]), t)
        elif name == "kge_transe":
            want = -torch.linalg.vector_norm(e[:, None, :] + r[:, None, :] - t[None], dim=-1)
        else:
            want = (_as_complex(e) * _as_complex(r) @ _as_complex(t).conj().T).real
        torch.testing.assert_close(scores, want, rtol=1e-4, atol=1e-4)


def test_kge_bench_is_codex_m_sized() -> None:
    assert (kge.SIZES["bench"].entities, kge.SIZES["bench"].relations) == (17_050, 51)
    assert kge.SIZES["bench"].batch == 128


# --- MobileCLIP ------------------------------------------------------------------------------


def test_mobileclip_keeps_the_train_time_branches() -> None:
    model, _ = zoo.get("mobileclip", "tiny")
    spec = mobileclip.SIZES["tiny"]
    blocks = [m for m in model.modules() if isinstance(m, mobileclip.MobileOneBlock)]
    assert blocks and all(len(b.convs) == spec.branches for b in blocks)
    assert any(b.identity is not None for b in blocks)
    assert any(b.scale is not None for b in blocks)


def test_mobileclip_logits_are_scaled_cosines_at_end_of_text() -> None:
    model, (image, ids) = zoo.get("mobileclip", "tiny")
    logits = _outputs(model, (image, ids))[0]
    assert logits.shape == (image.shape[0], ids.shape[0])
    assert (logits.abs() <= model.logit_scale.exp() + 1e-4).all()
    # tokens after the end-of-text token must not matter (causal attention)
    end = ids.argmax(-1)
    padded = ids.clone()
    for row, position in enumerate(end.tolist()):
        padded[row, position + 1:] = 1
    torch.testing.assert_close(_outputs(model, (image, padded))[0], logits)


# --- VIM's multimodal LLM and greedy generation -----------------------------------------------


def _numpy_callable(module: torch.nn.Module):
    def run(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.no_grad():
            outs = module(*(torch.from_numpy(np.asarray(a)) for a in arrays))
        return tuple(o.numpy() for o in outs)
    return run


def _eager_greedy(model: vim_mllm.MultimodalLLM, image: torch.Tensor, ids: torch.Tensor,
                  n_tokens: int) -> np.ndarray:
    """Greedy decoding with no cache: rerun the whole sequence for every token."""
    tokens = []
    with torch.no_grad():
        for _ in range(n_tokens):
            nxt = model.all_logits(image, ids)[:, -1].argmax(-1)
            tokens.append(nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
    return torch.stack(tokens, dim=1).numpy()


def test_generate_equals_eager_greedy_loop() -> None:
    model, image, ids = vim_mllm.build("tiny")
    prefill = _numpy_callable(vim_mllm.Prefill(model))
    decode = _numpy_callable(vim_mllm.DecodeStep(model.llm))
    tokens = zoo.generate(prefill, decode, image.numpy(), ids.numpy(), 6)
    assert tokens.shape == (ids.shape[0], 6) and tokens.dtype == np.int64
    np.testing.assert_array_equal(tokens, _eager_greedy(model, image, ids, 6))


def test_one_exported_decode_graph_serves_every_step() -> None:
    prefill, prefill_args = zoo.get("vim_mllm.prefill", "tiny")
    decode, decode_args = zoo.get("vim_mllm.decode_step", "tiny")
    decode_program = torch.export.export(decode, decode_args, strict=False,
                                         dynamic_shapes=zoo.dynamic_shapes("vim_mllm.decode_step"))
    prefill_program = torch.export.export(prefill, prefill_args, strict=False)
    image, ids = (a.numpy() for a in prefill_args)
    tokens = zoo.generate(_numpy_callable(prefill_program.module()),
                          _numpy_callable(decode_program.run_decompositions().module()),
                          image, ids, 5)
    np.testing.assert_array_equal(tokens, zoo.generate(_numpy_callable(prefill),
                                                       _numpy_callable(decode), image, ids, 5))


def test_caches_are_stacked_over_layers() -> None:
    prefill, (image, ids) = zoo.get("vim_mllm.prefill", "tiny")
    spec = vim_mllm.SIZES["tiny"]
    logits, k_cache, v_cache = _outputs(prefill, (image, ids))
    length = spec.vision.patches + ids.shape[1]
    shape = (spec.llm.layers, spec.batch, spec.llm.heads, length, spec.llm.head_dim)
    assert logits.shape == (spec.batch, spec.llm.vocab_size)
    assert k_cache.shape == shape and v_cache.shape == shape
