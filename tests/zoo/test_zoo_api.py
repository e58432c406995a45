"""The zoo's public API: names, get, dynamic_shapes, catalogue, ops, ONNX export."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from survey_bench import zoo  # noqa: E402
from survey_bench.zoo import onnx_export  # noqa: E402

EXPECTED = {"mobileclip", "gcn", "adagcn", "gcn_sparse", "adagcn_sparse", "kge_rescal",
            "kge_transe", "kge_complex", "kge_conve", "kge_tucker", "easygen_bridge",
            "vim_mllm.prefill", "vim_mllm.decode_step", "aica_cnn", "ddpm_unet",
            "uvit_bidiffuser", "soda", "compositional_gan"}


def test_names_lists_every_model_sorted() -> None:
    names = zoo.names()
    assert names == sorted(names)
    assert EXPECTED <= set(names)


def test_unknown_name_is_a_key_error_listing_the_names() -> None:
    with pytest.raises(KeyError) as caught:
        zoo.get("mobileclipp")
    message = str(caught.value)
    assert "mobileclipp" in message and "mobileclip," in message and "kge_tucker" in message
    with pytest.raises(KeyError):
        zoo.dynamic_shapes("nope")


def test_unknown_size_names_the_sizes() -> None:
    with pytest.raises(ValueError, match="tiny, bench"):
        zoo.get("kge_transe", "huge")


def test_get_returns_an_eval_module_and_a_tuple() -> None:
    module, inputs = zoo.get("kge_transe")
    assert isinstance(module, torch.nn.Module) and not module.training
    assert isinstance(inputs, tuple) and all(a.dtype == torch.int64 for a in inputs)


def test_dynamic_shapes_only_for_the_decode_step() -> None:
    spec = zoo.dynamic_shapes("vim_mllm.decode_step")
    assert set(spec) == {"token", "k_cache", "v_cache", "position"}
    assert spec["k_cache"][3].__name__ == "S" and spec["v_cache"][3].__name__ == "S"
    assert zoo.dynamic_shapes("mobileclip") is None


def test_input_names_match_forward_arguments() -> None:
    import inspect

    for name in ("mobileclip", "gcn", "gcn_sparse", "kge_conve", "easygen_bridge",
                 "vim_mllm.prefill", "vim_mllm.decode_step", "aica_cnn"):
        module, inputs = zoo.get(name)
        parameters = list(inspect.signature(module.forward).parameters)
        assert list(zoo.info(name).input_names) == parameters == parameters[:len(inputs)]


def test_catalogue_without_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    # Counting every bench model's parameters takes seconds; the counts are tested below.
    monkeypatch.setattr(zoo, "parameter_count", lambda name, size: len(name))
    entries = {e["name"]: e for e in zoo.catalogue(with_ops=False)}
    assert set(entries) == set(zoo.names())
    gcn = entries["gcn"]
    assert gcn["sizes"] == ["tiny", "bench", "large"] and "Kipf" in gcn["paper"]
    assert gcn["parameters"] == len("gcn")
    assert entries["gcn_sparse"]["onnx_exportable"] is False
    assert all(e["task"] and e["paper"] and "ops" not in e for e in entries.values())


def test_parameter_counts_at_bench_size() -> None:
    assert zoo.parameter_count("gcn", "bench") == 1_433 * 16 + 16 + 16 * 7 + 7
    assert zoo.parameter_count("kge_transe", "bench") == (17_050 + 51) * 256
    assert zoo.parameter_count("gcn", "tiny") < zoo.parameter_count("gcn", "large")


def test_ops_used_are_decomposed_aten_ops() -> None:
    ops = zoo.ops_used("kge_transe")
    assert ops == tuple(sorted(ops)) and all(op.startswith("aten.") for op in ops)
    assert "aten.sqrt.default" in ops and "aten.mm.default" in ops
    assert "aten.embedding.default" in ops
    assert "aten._sparse_addmm.default" in zoo.ops_used("gcn_sparse")
    assert "aten.index_put.default" in zoo.ops_used("gcn")


def test_reexports() -> None:
    from survey_bench.zoo.sampling import ddpm_sample
    from survey_bench.zoo.vim_mllm import generate

    assert zoo.generate is generate and zoo.ddpm_sample is ddpm_sample


# --- ONNX ------------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DLC_CACHE_DIR", str(tmp_path))
    return tmp_path / "onnx"


def test_export_onnx_writes_a_checked_file_and_caches_it(cache: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    onnx = pytest.importorskip("onnx")
    path = onnx_export.export_onnx("kge_transe", "tiny")
    assert path.is_file() and path.is_relative_to(cache) and "kge_transe-tiny-" in str(path)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["heads", "relations"]

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached model must not be exported again")

    monkeypatch.setattr(torch.onnx, "export", fail)
    assert onnx_export.export_onnx("kge_transe", "tiny") == path
    assert [p.name for p in cache.iterdir()] == [path.parent.name]  # no staging folder left


def test_export_onnx_refuses_sparse_models(cache: Path) -> None:
    with pytest.raises(onnx_export.OnnxExportError, match="gcn_sparse.*cannot be exported"):
        onnx_export.export_onnx("gcn_sparse", "tiny")
    assert not cache.exists() or not any(cache.iterdir())


def test_cache_dir_defaults_to_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLC_CACHE_DIR", raising=False)
    assert onnx_export.cache_dir() == Path.home() / ".cache" / "dlc" / "onnx"


EXPORTABLE = [n for n in sorted(EXPECTED) if zoo.info(n).onnx_exportable]
# torch.onnx's note that a dynamic axis keeps the name the exporter gave it is not a problem.
QUIET_RENAME = pytest.mark.filterwarnings("ignore:.*axis name.*will not be used:UserWarning")


@pytest.mark.slow
@QUIET_RENAME
@pytest.mark.parametrize("name", EXPORTABLE)
def test_every_exportable_model_exports_to_onnx(name: str, cache: Path) -> None:
    onnx = pytest.importorskip("onnx")
    path = onnx_export.export_onnx(name, "tiny")
    model = onnx.load(str(path))
    expected = list(zoo.info(name).input_names)
    if expected:
        assert [i.name for i in model.graph.input] == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.names())
def test_every_model_exports_at_bench_size_with_the_tiny_op_set(name: str) -> None:
    assert zoo.ops_used(name, "bench") == zoo.ops_used(name, "tiny")
