"""bench/gpu.py on the CPU with tiny sizes (issue 20): the result file's structure, every number positive and
finite, the classic recipe's FLOPs as bench.common counts them, the budget skipping configurations, and a bad
variant as one line. No timing assertions (the numbers are the bench's job, on a GPU)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, where bench/ lives
from bench import common as C  # noqa: E402
from bench import gpu  # noqa: E402

TINY = ["--device", "cpu", "--data", "synthetic", "--n-train", "128", "--n-val", "32", "--image-size", "16",
        "--epochs", "1", "--batch-size", "32", "--conv-batch-size", "32", "--matmul-n", "64", "--matmul-s", "0.01"]


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "RESULTS_DIR", tmp_path)
    return tmp_path


def test_cpu_run_writes_every_config_with_positive_numbers(results, capsys):
    payload = gpu.main([*TINY, "--variants", "fp32,bf16"])
    saved = json.loads((results / "gpu.json").read_text())
    assert saved["benchmark"] == "gpu" and saved["complete"] is True and saved["skipped"] == []
    assert saved["device"] == "cpu" and saved["gpus"] == 0 and saved["ddp"] is None
    assert set(saved["matmul_tflops"]) == {"fp32", "bf16"}  # TF32 exists on CUDA only
    assert all(_positive(v) for v in saved["matmul_tflops"].values())
    assert saved["data"] == {"mlp": "synthetic uniform [0, 1], 1x28x28", "conv": "synthetic uniform [0, 1], 1x16x16"}
    got = {(r["model"], r["variant"]) for r in saved["configs"]}
    assert got == {(m, v) for m in ("classic MLP 784-400-20", "conv [1, 16, 16]") for v in ("fp32", "bf16")}
    for r in saved["configs"]:
        assert r["data_route"] == "resident on cpu" and r["n_train"] == 128 and r["epochs_timed"] == 1
        assert r["vs"] == r["precision"] and r["compiled"] is False
        for key in ("examples_per_s", "flops_per_example", "achieved_tflops", "of_matmul", "warmup_s", "fit_s",
                    "final_val_loss"):
            assert _positive(r[key]), (r["model"], r["variant"], key, r[key])
        assert r["achieved_tflops"] == pytest.approx(r["examples_per_s"] * r["flops_per_example"] / 1e12)
        assert r["of_matmul"] == pytest.approx(r["achieved_tflops"] / saved["matmul_tflops"][r["vs"]])
    mlp = [r for r in saved["configs"] if r["model"].startswith("classic")]
    # the counted forward + backward of the recipe = the hand count (3.28 MFLOP: no input grad for layer 1)
    assert all(r["flops_per_example"] == pytest.approx(C.train_flops_per_example()) for r in mlp)
    assert payload["configs"] == saved["configs"]
    assert "training examples/s" in capsys.readouterr().out


def test_budget_skips_configs_but_keeps_the_matmul_rate(results):
    saved = gpu.main([*TINY, "--models", "mlp", "--variants", "fp32,compile", "--budget-s", "0"])
    assert saved["configs"] == [] and saved["complete"] is True
    assert [s["what"] for s in saved["skipped"]] == ["mlp fp32", "mlp compile"]
    assert all(_positive(v) for v in saved["matmul_tflops"].values())
    assert json.loads((results / "gpu.json").read_text())["skipped"] == saved["skipped"]


def test_unknown_variant_is_one_line(results, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu.main([*TINY, "--variants", "fp16"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown variant or model fp16;") and "\n" not in err
