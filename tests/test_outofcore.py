"""Data larger than memory (issue 20, item 3): a memory-mapped ``.npy`` and a folder of shards give the same
splits, batches, fingerprint and trained weights as the same data in memory; the split-ordered cache is reused,
rebuilt when a file changes, and bad shards are one-line errors."""

import numpy as np
import pytest
import torch

import vaekit
from vaekit.data import load_source, split_dataset
from vaekit.errors import DataError
from vaekit.runs import WEIGHTS, load_tensors

from cli_helpers import assert_usage_error, run

PLAN = (3, 0.1, 0.1)  # seed, validation and test fractions
SETTINGS = dict(latent_dim=2, hidden=[32], batch_size=32, epochs=1, seed=3, report=False)


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((120, 12), dtype=np.float32)
    y = rng.integers(0, 3, 120)
    np.save(tmp_path / "x.npy", x)
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, (a, b) in enumerate(((0, 50), (50, 70), (70, 120))):  # names sort in order
        np.savez(shards / f"part-{i}.npz", x=x[a:b], y=y[a:b])
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    return tmp_path, x


def _splits(ds):
    return split_dataset(ds, val_fraction=PLAN[1], test_fraction=PLAN[2], seed=PLAN[0])


def test_mapped_and_sharded_splits_are_the_in_memory_ones(data, monkeypatch):
    from vaekit.data import outofcore

    monkeypatch.setattr(outofcore, "CHUNK_BYTES", 200)  # chunks of 4 rows: many chunks and shuffle buckets
    tmp, x = data
    cache = tmp / "cache"
    ref = load_source(str(tmp / "x.npy"))
    mapped = load_source(str(tmp / "x.npy"), mmap_plan=PLAN, cache_dir=cache)
    assert mapped.fingerprint() == ref.fingerprint()
    assert mapped.known_in_unit is True  # found while streaming: no scan of the map for the likelihood
    for a, b in zip(_splits(ref), _splits(mapped)):
        assert torch.equal(a.x, b.x)
        idx = torch.tensor([5, 0, 3])  # a batch gathers its rows from the memory map
        assert torch.equal(a.x[idx], b.x[idx])
    train = _splits(mapped)[0].x
    assert train.untyped_storage().data_ptr() == mapped.x.untyped_storage().data_ptr()  # a view, not a copy
    # another seed than the cache was written for: gathered, still the in-memory split
    other = split_dataset(mapped, seed=9)[0].x
    assert torch.equal(other, split_dataset(ref, seed=9)[0].x)

    whole = load_source(str(tmp / "xy.npz"))
    for sharded in (load_source(str(tmp / "shards")), load_source(str(tmp / "shards"), mmap_plan=PLAN,
                                                                  cache_dir=cache)):
        assert sharded.fingerprint() == whole.fingerprint()
        assert torch.equal(sharded.y, whole.y)
        for a, b in zip(_splits(whole), _splits(sharded)):
            assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_mapped_run_trains_the_same_weights(data, tmp_path, monkeypatch):
    tmp, _ = data
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp / "cache"))
    vaekit.train(data=str(tmp / "x.npy"), out=tmp_path / "mem", **SETTINGS)
    vaekit.train(data=str(tmp / "x.npy"), out=tmp_path / "map", mmap=True, **SETTINGS)
    vaekit.train(data=str(tmp / "shards"), out=tmp_path / "shard", mmap=True, **SETTINGS)
    w = load_tensors(tmp_path / "mem" / WEIGHTS)
    for name in ("map", "shard"):
        other = load_tensors(tmp_path / name / WEIGHTS)
        assert all(torch.equal(w[k], other[k]) for k in w), name


def test_cache_is_reused_and_rebuilt_when_a_file_changes(data):
    tmp, x = data
    cache = tmp / "cache"
    load_source(str(tmp / "shards"), mmap_plan=PLAN, cache_dir=cache)
    files = sorted((cache / "outofcore").glob("*.npy"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = load_source(str(tmp / "shards"), mmap_plan=PLAN, cache_dir=cache)
    assert [f.stat().st_mtime_ns for f in sorted((cache / "outofcore").glob("*.npy"))] == [stamp]  # reused
    first = again.fingerprint()
    changed = x[:50].copy()
    changed[0, 0] = 0.5
    np.savez(tmp / "shards" / "part-0.npz", x=changed, y=np.zeros(50, dtype=np.int64))
    ds = load_source(str(tmp / "shards"), mmap_plan=PLAN, cache_dir=cache)
    assert ds.fingerprint() != first
    assert len(list((cache / "outofcore").glob("*.npy"))) == 2
    assert not list((cache / "outofcore").glob(".tmp-*"))  # written atomically: no leftovers
    assert torch.equal(_splits(ds)[0].x, _splits(load_source(str(tmp / "shards")))[0].x)


def test_bad_shards_are_one_line_errors(tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "a.npy", np.zeros((5, 4), np.float32))
    np.save(bad / "b.npy", np.zeros((5, 3), np.float32))
    for plan in (None, PLAN):
        with pytest.raises(DataError, match=r"shards of .* disagree: a.npy has examples of shape \[4\].*b.npy \[3\]"):
            load_source(str(bad), mmap_plan=plan, cache_dir=tmp_path / "c")
    (bad / "b.npy").write_bytes(b"not an array")
    for plan in (None, PLAN):
        with pytest.raises(DataError, match="cannot read .*b.npy"):
            load_source(str(bad), mmap_plan=plan, cache_dir=tmp_path / "c")
    (bad / "b.npy").unlink()
    x = np.zeros((5, 4), np.float32)
    x[2, 1] = np.nan
    np.save(bad / "a.npy", x)
    with pytest.raises(DataError, match="NaN or infinite"):
        load_source(str(bad), mmap_plan=PLAN, cache_dir=tmp_path / "c")
    (bad / "b.npy").write_bytes(b"not an array")
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "c"))
    assert_usage_error(run("train", "--data", bad, "--out", tmp_path / "r", "--mmap", "--epochs", 1, "-q"),
                       "cannot read")
    assert_usage_error(run("train", "--data", "digits", "--out", tmp_path / "r", "--mmap", "--epochs", 1, "-q"),
                       "--mmap reads a .npy file")


def test_a_split_beyond_half_the_memory_is_not_pinned(monkeypatch):
    """On CUDA, a training split that does not fit on the GPU is pinned in host memory only when it takes at
    most half of the memory available: a memory-mapped split larger than that stays where it is."""
    from vaekit.data import _common
    from vaekit.training.parts import may_pin

    t = torch.zeros(1000)  # 4000 bytes
    monkeypatch.setattr(_common, "available_memory", lambda: 8000)
    assert may_pin(t) and not may_pin(None)
    monkeypatch.setattr(_common, "available_memory", lambda: 7999)
    assert not may_pin(t)
