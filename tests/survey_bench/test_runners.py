"""survey_bench's peer runners, the results schema, and the report renderers.

Each peer runs one tiny zoo model in this process through `harness.measure` (XLA in a
spawned worker) and must match PyTorch eager; a peer whose package is missing is skipped
with the reason. Nothing here
tunes TVM: the tuned runner is only checked for its "no log" and "foreign log" answers.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("torch")

from survey_bench import report  # noqa: E402
from survey_bench.harness import Policy, Result, measure, measure_in_worker  # noqa: E402
from survey_bench.runners import PEERS, make_runner  # noqa: E402

POLICY = Policy(warmup=1, repeat=2, min_repeat=2, budget_s=1.0, threads=1)

# (runner spec, model, packages it needs); torch.compile's cold compile takes ~45 s here.
PEER_CASES = [
    pytest.param("onnxruntime", "kge_transe", ("onnxruntime", "onnxscript"), id="onnxruntime"),
    pytest.param("onnxruntime", "aica_cnn", ("onnxruntime", "onnxscript"),
                 id="onnxruntime-cnn"),
    pytest.param("tvm-untuned", "kge_transe", ("tvm",), id="tvm-untuned"),
    pytest.param("xla", "kge_transe", ("jax", "torchax"), id="xla"),
    pytest.param("torch-compile", "kge_transe", (), id="torch-compile",
                 marks=pytest.mark.slow),
    pytest.param("tvm-untuned", "aica_cnn", ("tvm",), id="tvm-untuned-cnn",
                 marks=pytest.mark.slow),
    pytest.param("xla", "aica_cnn", ("jax", "torchax"), id="xla-cnn", marks=pytest.mark.slow),
    # buffers outside the state_dict (torchax's extract_jax failed on them), unbind,
    # upsample_nearest2d; and index_add (gcn): the exported-program path and our rewrites
    pytest.param("xla", "ddpm_unet", ("jax", "torchax"), id="xla-unet", marks=pytest.mark.slow),
    pytest.param("xla", "gcn", ("jax", "torchax"), id="xla-gcn", marks=pytest.mark.slow),
]


@pytest.fixture(autouse=True)
def _restore_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runners set thread and trial variables; monkeypatch puts them back afterwards."""
    monkeypatch.setenv("TVM_NUM_THREADS", "1")
    monkeypatch.setenv("DLC_BENCH_TVM_TRIALS", "0")


@pytest.mark.parametrize(("spec", "model", "packages"), PEER_CASES)
def test_peer_matches_eager(spec: str, model: str, packages: tuple[str, ...]) -> None:
    for package in packages:  # find_spec, not import: torchax needs the runner's shim
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"package {package!r} is not installed")
    # torchax changes PyTorch process-wide (the privateuse1 backend becomes "jax", and
    # torch.compile fails afterwards), so XLA runs in a spawned worker, as the harness does.
    run = measure_in_worker if spec == "xla" else measure
    result = run(model, "tiny", spec, POLICY)
    assert result.status == "ok", f"{result.reason}\n{result.notes}"
    assert result.max_rel_error is not None and result.max_rel_error < 1e-4
    assert result.compile_s is not None and result.compile_s > 0
    assert result.runs == 2 and result.latency_ms["median"] > 0
    assert result.label == make_runner(spec).label


def test_every_peer_module_provides_its_runner() -> None:
    for spec in PEERS:
        runner = make_runner(spec)
        assert runner.name == spec and runner.label, spec


def test_onnxruntime_reports_a_sparse_model_unavailable() -> None:
    pytest.importorskip("onnxruntime")
    result = measure("gcn_sparse", "tiny", "onnxruntime", POLICY)
    assert result.status == "unavailable"
    assert "cannot be exported to ONNX" in result.reason


def test_xla_reports_a_sparse_model_unavailable() -> None:
    for package in ("jax", "torchax"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"package {package!r} is not installed")
    result = measure_in_worker("gcn_sparse", "tiny", "xla", POLICY)
    assert result.status == "unavailable"
    assert "sparse tensor" in result.reason


def test_tvm_tuned_without_a_log_is_unavailable(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tvm")
    from survey_bench.runners import tvm as tvm_runners

    monkeypatch.setattr(tvm_runners, "TUNING_DIR", tmp_path)
    result = measure("kge_transe", "tiny", "tvm-tuned", POLICY)
    assert result.status == "unavailable"
    assert "no tuning log" in result.reason and "--tune N" in result.reason
    assert str(tmp_path / "kge_transe_tiny") in result.reason


def test_tvm_tuned_refuses_a_log_for_another_target(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tvm")
    from survey_bench.runners import tvm as tvm_runners

    monkeypatch.setattr(tvm_runners, "TUNING_DIR", tmp_path)
    work_dir = tmp_path / "kge_transe_tiny"
    work_dir.mkdir()
    (work_dir / tvm_runners.RECORDS).write_text('[0, [[], [1.0], 0, 0, 0, 0]]\n')
    (work_dir / tvm_runners.TARGET_FILE).write_text('{"kind":"llvm","mcpu":"other"}\n')
    result = measure("kge_transe", "tiny", "tvm-tuned", POLICY)
    assert result.status == "unavailable"
    assert "is for target" in result.reason and '"mcpu":"other"' in result.reason


def test_tvm_trials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from survey_bench.runners.tvm import tuning_trials

    monkeypatch.setenv("DLC_BENCH_TVM_TRIALS", "64")
    assert tuning_trials() == 64
    monkeypatch.delenv("DLC_BENCH_TVM_TRIALS")
    assert tuning_trials() == 0
    monkeypatch.setenv("DLC_BENCH_TVM_TRIALS", "many")
    with pytest.raises(ValueError, match="whole number"):
        tuning_trials()


def test_tvm_tuning_budget_is_shared_by_all_tasks() -> None:
    """One round-robin round must reach every task: MetaSchedule's default batch (64)
    would spend a 736-trial budget on about the first half of aica_cnn's 23 tasks."""
    from survey_bench.runners.tvm import trials_per_round

    assert trials_per_round(736, 23) == 32
    assert trials_per_round(10_000, 23) == 64  # never above TVM's default batch
    assert trials_per_round(100, 70) == 8  # never below 8 candidates per task
    assert trials_per_round(5, 0) == 8


# --- results schema and reports -------------------------------------------------------

RESULT_KEYS = {"model", "size", "runner", "label", "status", "reason", "compile_s",
               "latency_ms", "runs", "peak_rss_mb", "max_rel_error", "notes"}


def _ok(model: str, runner: str, label: str, median: float, compile_s: float) -> dict:
    result = Result(model, "tiny", runner, label, "ok", compile_s=compile_s,
                    latency_ms={"median": median, "p25": median * 0.9,
                                "p75": median * 1.1, "min": median * 0.8},
                    runs=5, peak_rss_mb=300.0, max_rel_error=1e-7)
    return dataclasses.asdict(result)


def fake_run() -> dict:
    """A small run as `python -m survey_bench` writes it (two models, five runners)."""
    results = []
    for model, base in (("kge_transe", 1.0), ("aica_cnn", 4.0)):
        results += [
            _ok(model, "eager", "PyTorch eager", base, 0.0),
            _ok(model, "onnxruntime", "ONNX Runtime", base / 2, 3.0),
            _ok(model, "dlc-llvm-O3", "dlc llvm O3", base / 1.5, 2.0),
            _ok(model, "dlc-llvm-O3-no-fuse", "dlc llvm O3 without fuse", base, 1.5),
            dataclasses.asdict(Result(model, "tiny", "tvm-tuned", "TVM tuned (MetaSchedule)",
                                      "unavailable", "no tuning log in x; run with --tune N")),
        ]
    results.append(dataclasses.asdict(Result("aica_cnn", "tiny", "xla", "XLA via torchax",
                                             "failed", "RuntimeError: boom")))
    return {"date": "2026-01-01T00:00:00",
            "machine": {"cpu": "test CPU", "cores": 2, "packages": {"torch": "x"}},
            "config": {"size": "tiny", "threads": 2, "repeat": 5, "warmup": 1,
                       "runners": ["eager", "onnxruntime", "dlc-llvm-O3",
                                   "dlc-llvm-O3-no-fuse", "tvm-tuned", "xla"],
                       "models": ["kge_transe", "aica_cnn"]},
            "results": results}


def test_result_schema_is_what_the_reports_read() -> None:
    run = fake_run()
    assert json.loads(json.dumps(run)) == run
    for r in run["results"]:
        assert set(r) == RESULT_KEYS
    assert {f.name for f in dataclasses.fields(Result)} == RESULT_KEYS


def test_markdown_table() -> None:
    table = report.markdown(fake_run())
    lines = table.splitlines()
    assert lines[0].startswith("| model | PyTorch eager | ONNX Runtime |")
    assert "| kge_transe | 1.00 ms (1.00x), compile 0.0 s | 0.50 ms (2.00x), compile 3.0 s" \
        in table
    assert "unavailable: no tuning log" in table and "failed: RuntimeError: boom" in table
    geomean = next(line for line in lines if line.startswith("| geomean"))
    assert "2.00x (2/2)" in geomean
    assert "test CPU" in table


def test_csv_rows(tmp_path: Path) -> None:
    import csv

    path = tmp_path / "run.csv"
    report.write_csv(fake_run(), path)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == len(fake_run()["results"])
    ort = next(r for r in rows if r["model"] == "kge_transe" and r["runner"] == "onnxruntime")
    assert math.isclose(float(ort["speedup_vs_eager"]), 2.0)
    assert float(ort["median_ms"]) == 0.5


def test_plots_render(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    written = report.plot(fake_run(), tmp_path, "fake")
    assert {p.name for p in written} == {"fake_speedup.png", "fake_speedup.svg",
                                         "fake_compile_vs_latency.png",
                                         "fake_compile_vs_latency.svg"}
    assert all(p.stat().st_size > 0 for p in written)


def test_ablation_table() -> None:
    table = report.ablation_markdown(fake_run(), "dlc-llvm-O3")
    assert table.splitlines()[0] == "| model | without fuse |"
    assert "| kge_transe | 1.50x |" in table and "| aica_cnn | 1.50x |" in table


def test_command_line_writes_every_output(tmp_path: Path) -> None:
    """`python -m survey_bench` end to end on one model, eager only (one spawned worker)."""
    pytest.importorskip("rich")
    pytest.importorskip("matplotlib")
    from survey_bench.__main__ import main

    assert main(["--size", "tiny", "--models", "kge_transe", "--runners", "eager",
                 "--repeat", "2", "--warmup", "1", "--threads", "1", "--tune", "7",
                 "--out", str(tmp_path), "--name", "t"]) == 0
    import os

    assert os.environ["DLC_BENCH_TVM_TRIALS"] == "7"  # --tune reaches the workers' env
    run = json.loads((tmp_path / "t.json").read_text())
    assert set(run) == {"date", "machine", "config", "results"}
    assert run["config"]["models"] == ["kge_transe"] and run["config"]["threads"] == 1
    (result,) = run["results"]
    assert set(result) == RESULT_KEYS and result["status"] == "ok", result["reason"]
    for name in ("t.md", "t.csv", "t_speedup.png", "t_compile_vs_latency.svg"):
        assert (tmp_path / name).exists(), name


def test_command_line_refuses_negative_trials() -> None:
    from survey_bench.__main__ import main

    with pytest.raises(SystemExit):
        main(["--tune", "-1"])


def test_dlc_runner_reports_its_largest_kernels() -> None:
    result = measure("aica_cnn", "tiny", "dlc-llvm-O3", POLICY)
    assert result.status == "ok", result.reason
    assert result.max_rel_error is not None and result.max_rel_error < 1e-4
    assert "largest GEMM k" in result.notes and "largest conv k" in result.notes
    assert "GFLOP/s" in result.notes


def test_markdown_lists_runner_notes() -> None:
    run = fake_run()
    run["results"][2]["notes"] = "largest conv k3 0.1 GFLOP at 150 GFLOP/s"
    table = report.markdown(run)
    assert "- kge_transe / dlc llvm O3: largest conv k3 0.1 GFLOP at 150 GFLOP/s" in table
