"""A --mmap run after training (issue 20, item 3): its commands re-open the run's memory-mapped cache (never the data
in memory) and give the numbers of the same run in memory; sequential passes over a mapped split read ahead in
large requests with unchanged numbers; a 2-process --mmap run trains like one process."""

import json

import numpy as np
import pytest
import torch

import vaekit
from vaekit import api
from vaekit.data import load_source, split_dataset
from vaekit.runs import WEIGHTS, load_tensors

from cli_helpers import run

SETTINGS = dict(latent_dim=2, hidden=[32], batch_size=32, epochs=2, seed=3)
END = dict(report_iwae_k=5, report_examples=20)  # the report's IWAE plan given: the same in both runs


@pytest.fixture
def npy(tmp_path):
    x = np.random.default_rng(0).random((120, 12), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "x.npy"


def _forbid_in_memory(monkeypatch):
    """Loading an array file in memory fails from now on: what still works reads the memory-mapped cache."""
    from vaekit.data import sources

    def refused(*a, **k):
        raise AssertionError("the data were loaded in memory")

    monkeypatch.setattr(sources, "load_array_file", refused)


def _evaluation(run_dir):
    ev = json.loads((run_dir / "evaluation.json").read_text())
    ev.pop("report_plan", None)  # seconds (written at the end of training)
    return ev


def test_commands_reopen_the_runs_cache_with_the_same_numbers(npy, tmp_path, monkeypatch):
    tmp = npy.parent
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp / "default"))  # must stay unused: the run records its cache dir
    mem, mapped = tmp / "mem", tmp / "map"
    vaekit.train(data=str(npy), out=mem, **SETTINGS, **END)
    vaekit.train(data=str(npy), out=mapped, mmap=True, cache_dir=str(tmp / "cachedir"), **SETTINGS, **END)
    # the end of the --mmap run (ELBOs of the mapped splits, the report) gives the in-memory run's numbers
    assert json.loads((mapped / "results.json").read_text()) == json.loads((mem / "results.json").read_text())
    assert _evaluation(mapped) == _evaluation(mem)
    cache = json.loads((mapped / "config.json").read_text())["data"]["mmap_cache"]
    assert cache.startswith(str(tmp / "cachedir"))

    before = {
        "evaluate": vaekit.evaluate(mem, iwae_k=5),
        "score": run("score", mem, "--data", npy, "--split", "test", "--out", tmp / "mem.csv"),
        "reconstruct": run("reconstruct", mem, "--data", npy, "--split", "validation", "--out", tmp / "mem.npy"),
    }
    api.report(mem, iwae_k=5)
    _forbid_in_memory(monkeypatch)
    for rebuilt in (False, True):
        if rebuilt:  # the cache deleted: rebuilt from the source, under the same key (file name)
            for f in (tmp / "cachedir" / "outofcore").iterdir():
                f.unlink()
        assert vaekit.evaluate(mapped, iwae_k=5) == before["evaluate"]
        s = run("score", mapped, "--data", npy, "--split", "test", "--out", tmp / "map.csv", "--overwrite")
        assert s.exit_code == 0, s.output
        assert (tmp / "map.csv").read_text() == (tmp / "mem.csv").read_text()
        r = run("reconstruct", mapped, "--data", npy, "--split", "validation", "--out", tmp / "map.npy",
                "--overwrite")
        assert r.exit_code == 0, r.output
        assert np.array_equal(np.load(tmp / "map.npy"), np.load(tmp / "mem.npy"))
        api.report(mapped, iwae_k=5)
        assert _evaluation(mapped) == _evaluation(mem)
        assert (tmp / "cachedir" / "outofcore" / cache.rsplit("/", 1)[1]).is_file()
    assert not (tmp / "default").exists()
    # the file order is the data's: commands over all rows still read them in memory, as before
    monkeypatch.undo()
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp / "default"))
    for name in ("mem", "map"):
        e = run("encode", tmp / name, "--data", npy, "--out", tmp / f"z-{name}.npy")
        assert e.exit_code == 0, e.output
    assert np.array_equal(np.load(tmp / "z-map.npy"), np.load(tmp / "z-mem.npy"))


def test_sequential_passes_read_ahead_with_the_same_numbers(npy, tmp_path, monkeypatch):
    from vaekit.core.objectives import evaluate_elbo
    from vaekit.core.vae import build_model
    from vaekit.config import make_config
    from vaekit.data import mapped_reads

    ds = load_source(str(npy), mmap_plan=(3, 0.1, 0.1), cache_dir=tmp_path / "c")
    train = split_dataset(ds, val_fraction=0.1, test_fraction=0.1, seed=3)[0].x
    asked = []
    real = mapped_reads.read_ahead

    def spy(t):
        asked.append((t.data_ptr(), t.numel()))
        return real(t)

    monkeypatch.setattr(mapped_reads, "read_ahead", spy)
    monkeypatch.setattr(mapped_reads, "READ_AHEAD_BYTES", 10 * 48)  # windows of 10 rows (48 bytes each)
    assert real(train[:5]) and not real(train[:5].clone())  # madvise applies to views of the map only
    model = build_model(make_config(latent_dim=2, hidden=[32], likelihood="bernoulli"), (12,), 0)
    torch.manual_seed(0)
    ref = evaluate_elbo(model, train.clone(), batch_size=8)
    assert asked == []  # an in-memory tensor: a plain range
    torch.manual_seed(0)
    assert evaluate_elbo(model, train, batch_size=8) == ref
    start, end = train.data_ptr(), train.data_ptr() + train.numel() * 4
    covered = sorted((p, p + n * 4) for p, n in asked)
    assert covered[0][0] == start and max(e for _, e in covered) >= end  # every row asked for ahead, in order
    assert all(b[0] == a[1] for a, b in zip(covered, covered[1:]) if b[0] < end)
    assert len(asked) <= len(train) // 10 + 2


def test_two_processes_train_a_mapped_run_like_one(npy, tmp_path, monkeypatch):
    """`--mmap` with 2 gloo ranks: both map the same cache (written by both at once, atomically), and the
    loss curve and weights are one process's."""
    from ddp_helpers import free_port, train_rank, zero_noise

    monkeypatch.setattr(torch, "randn_like", torch.randn_like)  # restored after zero_noise below
    zero_noise()
    settings = dict(data=str(npy), mmap=True, **SETTINGS)
    one, two = tmp_path / "one", tmp_path / "two"
    vaekit.train(out=one, report=False, cache_dir=str(tmp_path / "c1"), **settings)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.multiprocessing.spawn(train_rank, nprocs=2, args=(2, free_port(), str(two), settings, None,
                                                            dict(report=False, cache_dir=str(tmp_path / "c2"))))
    rows = [[json.loads(s) for s in (r / "metrics.jsonl").read_text().splitlines()] for r in (one, two)]
    assert [r["epoch"] for r in rows[1]] == [1, 2]
    for a, b in zip(*rows):
        for key in ("train_loss", "train_recon", "train_kl", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key
    w1, w2 = load_tensors(one / WEIGHTS), load_tensors(two / WEIGHTS)
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
    assert len(list((tmp_path / "c2" / "outofcore").glob("*.npy"))) == 1
    assert not list((tmp_path / "c2" / "outofcore").glob(".tmp-*"))


def test_score_pads_only_the_last_block_with_the_same_numbers():
    """`score` of a mapped split: the whole blocks are scored in place (no padded copy of the split), with the
    numbers of padding it all (every network call has the same rows as before)."""
    from vaekit.config import make_config
    from vaekit.core.vae import build_model
    from vaekit.evaluation.metrics import importance_bounds, reconstruction_errors
    from vaekit.tasks.anomaly import common_noise, score_examples

    torch.manual_seed(0)
    model = build_model(make_config(latent_dim=2, hidden=[16], likelihood="bernoulli"), (12,), 0)
    for score, k, n, block in (("iwae", 512, 10, 4), ("elbo", 512, 9, 4), ("recon", 1, 300, 256)):
        x = torch.rand(n, 12)
        padded = torch.cat([x, x[:1].expand((-n) % block, 12)])
        if score == "recon":
            ref = -reconstruction_errors(model, padded, batch_size=256)[:n].double().numpy()
        else:
            iw, elbo = importance_bounds(model, padded, k, rows_per_chunk=2048, noise=common_noise(k, 2, 0))
            ref = (iw if score == "iwae" else elbo)[:n].double().numpy()
        np.testing.assert_array_equal(score_examples(model, x, score, k, 0), ref)


def test_resume_reads_the_cache_folder_the_run_recorded(npy, tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "default"))
    out = tmp_path / "run"

    class Stop(KeyboardInterrupt):
        pass

    def stop(row):
        raise Stop

    with pytest.raises(Stop):
        vaekit.train(data=str(npy), out=out, mmap=True, cache_dir=str(tmp_path / "chosen"), on_epoch_end=stop,
                     report=False, **SETTINGS)
    vaekit.train(out=out, resume=True, report=False)  # no --cache-dir: the one config.json records
    assert json.loads((out / "trainer_state.json").read_text())["finished"]
    assert not (tmp_path / "default").exists()
