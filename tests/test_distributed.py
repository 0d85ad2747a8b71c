"""Distributed training (issue 20): a 2-process gloo world on loopback trains like one process with the same
global batch and seed; rank 0 alone writes the run directory; a distributed run resumes exactly."""

import json
import os

import pytest
import torch

import vaekit
from vaekit.runs import WEIGHTS, load_tensors
from vaekit.training import distributed

from ddp_helpers import free_port, train_rank, zero_noise

SETTINGS = dict(data="digits", latent_dim=2, hidden=[32], batch_size=64, epochs=2, seed=0)
RUN_ARGS = dict(report_iwae_k=0)


def _metrics(run):
    return [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines() if s.strip()]


def test_two_processes_match_one_and_resume(tmp_path, monkeypatch):
    """The same loss curve and final weights as one process; rank 1 writes nothing (its writes raise); the
    2-process run is interrupted after epoch 1 and resumed, and still ends where one process does."""
    monkeypatch.setattr(torch, "randn_like", torch.randn_like)  # restored after zero_noise below
    zero_noise()
    one = tmp_path / "one"
    vaekit.train(out=one, report=False, **SETTINGS)
    two = tmp_path / "two"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for settings in (SETTINGS, None):  # stopped after epoch 1, then resumed (a fresh launch, as with torchrun)
        torch.multiprocessing.spawn(train_rank, args=(2, free_port(), str(two), settings, 1, RUN_ARGS), nprocs=2)
    m1, m2 = _metrics(one), _metrics(two)
    assert [r["epoch"] for r in m2] == [1, 2]
    for a, b in zip(m1, m2):
        for key in ("train_loss", "train_recon", "train_kl", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key
    w1, w2 = load_tensors(one / WEIGHTS), load_tensors(two / WEIGHTS)
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
    files = {p.name for p in two.iterdir()}
    assert {"report.html", "samples.png", "README.md", "trainer_state.json"} <= files
    state = json.loads((two / "trainer_state.json").read_text())
    assert state["finished"] and state["world_size"] == 2
    assert "world_size" not in json.loads((one / "trainer_state.json").read_text())  # one process: as before


def test_shard_batch_weights_make_the_global_mean():
    """Each rank's share of a global batch, weighted so DDP's average is the mean over the global batch,
    also for a last batch that does not split evenly or is smaller than the world."""
    from vaekit.data.batch import Batch

    x = torch.arange(10.0).reshape(5, 2)
    for world in (2, 3, 7):
        parts = [distributed.shard_batch(Batch(x, labels=torch.arange(5)), r, world) for r in range(world)]
        total = sum(w * b.x.sum(1).mean() for b, w in parts) / world
        assert float(total) == pytest.approx(float(x.sum(1).mean()))
        nonzero = [b for b, w in parts if w > 0]
        assert torch.equal(torch.cat([b.labels for b in nonzero]), torch.arange(5))
    (u, lab), w = distributed.shard_batch((Batch(x), Batch(x[:1])), 1, 2)  # a 1-row part stays whole
    assert len(u) == 3 and len(lab) == 1 and w == pytest.approx(2 * 3 / 5)


def test_world_errors_are_one_line(monkeypatch):
    from vaekit.errors import UsageError

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UsageError, match="--batch-size 64 does not split over 3 processes"):
        distributed.start(64, torch.device("cpu"))
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(UsageError, match="must be integers"):
        distributed.env_world()
    monkeypatch.delenv("WORLD_SIZE")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="nccl needs CUDA"):
            distributed.start(64, torch.device("cpu"), "nccl")
    with pytest.raises(UsageError, match="--dist-backend must be one of"):
        distributed.start(64, torch.device("cpu"), "mpi")
    with pytest.raises(UsageError, match="would put every process of this distributed run on one GPU"):
        distributed.rank_device(torch.device("cuda", 1), 0)
    assert distributed.rank_device(torch.device("cuda"), 3) == torch.device("cuda", 3)


def test_nproc_launches_the_world_and_a_bad_batch_is_one_line(tmp_path):
    """`vaekit train --nproc 2`: PyTorch's elastic launcher runs two ranks, rank 0 alone prints the summary;
    a batch the world does not divide is one line (from rank 0 only, no launcher log), exit 2."""
    import subprocess
    import sys

    base = [sys.executable, "-m", "vaekit", "train", "--data", "digits", "--epochs", "1", "--hidden", "32",
            "--latent-dim", "2", "--report-iwae-k", "0", "-q", "--nproc", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    bad = subprocess.run(base + ["--batch-size", "63", "--out", str(tmp_path / "bad")], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "error: --batch-size 63 does not split over 2 processes (each rank takes batch / world size); pick a "
        "batch size divisible by 2, e.g. 62"]
    ok = subprocess.run(base + ["--out", str(tmp_path / "run")], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("trained 1 epoch") == 1
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["world_size"] == 2
