"""Image folders larger than memory (issue 20, item 3): `--mmap` on a folder of images decodes it once, in chunks,
into the split-ordered memory-mapped cache, with the same fingerprint, labels, splits, batches and trained
weights as the folder loaded in memory; the cache is reused, rebuilt when an image changes, and a corrupt image
is a one-line error naming it."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit.data import load_source, split_dataset
from vaekit.errors import DataError
from vaekit.runs import CONFIG, RESULTS, WEIGHTS, load_tensors

from cli_helpers import assert_usage_error, run

PLAN = (3, 0.1, 0.1)  # seed, validation and test fractions
SETTINGS = dict(latent_dim=2, hidden=[32], batch_size=16, epochs=1, seed=3, report=False)


def _png(path, rng, colour: bool, size=(8, 8)):
    shape = (size[1], size[0], 3) if colour else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)


@pytest.fixture
def folders(tmp_path):
    """A labelled folder (3 classes, 42 images; grayscale first, colour ones later: the channel count is found
    partway) and a flat grayscale one (20 images)."""
    rng = np.random.default_rng(0)
    labelled = tmp_path / "labelled"
    for c, name in enumerate(("cat", "dog", "emu")):
        (labelled / name).mkdir(parents=True)
        for i in range(14):
            _png(labelled / name / f"{i:02d}.png", rng, colour=c == 1 and i % 3 == 0)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(20):
        _png(flat / f"{i:02d}.png", rng, colour=False, size=(7, 9))
    return tmp_path, labelled, flat


def _splits(ds):
    return split_dataset(ds, val_fraction=PLAN[1], test_fraction=PLAN[2], seed=PLAN[0])


def _caches(cache):
    return sorted((cache / "outofcore").glob("*.npy"))


def test_mapped_image_folder_is_the_in_memory_one(folders, monkeypatch):
    from vaekit.data import outofcore

    chunk = 4 * 3 * 64 * 3  # 3 colour 8x8 images a chunk: many chunks and shuffle buckets
    monkeypatch.setattr(outofcore, "CHUNK_BYTES", chunk)
    seen = []
    add = outofcore._Buckets.add
    monkeypatch.setattr(outofcore._Buckets, "add", lambda self, at, rows: (seen.append(rows.nbytes), add(self, at, rows)))
    tmp, labelled, flat = folders
    cache = tmp / "cache"
    for folder, size in ((labelled, None), (flat, None), (flat, 5)):
        ref = load_source(str(folder), image_size=size)
        mapped = load_source(str(folder), image_size=size, mmap_plan=PLAN, cache_dir=cache)
        assert mapped.split_order is not None and mapped.kind == "image"
        assert mapped.fingerprint() == ref.fingerprint() == mapped.__class__(x=ref.x, y=ref.y, kind="image").fingerprint()
        assert tuple(mapped.x.shape) == tuple(ref.x.shape)
        assert mapped.classes == ref.classes
        assert (mapped.y is None) == (ref.y is None) and (ref.y is None or torch.equal(mapped.y, ref.y))
        assert mapped.known_in_unit is True
        for a, b in zip(_splits(ref), _splits(mapped)):
            assert torch.equal(a.x, b.x)
            assert (a.y is None) or torch.equal(a.y, b.y)
            idx = torch.tensor([1, 0, 1])  # a batch gathers its rows from the memory map
            assert torch.equal(a.x[idx], b.x[idx])
        assert torch.equal(split_dataset(mapped, seed=9)[0].x, split_dataset(ref, seed=9)[0].x)  # another seed
    assert tuple(load_source(str(labelled)).x.shape[1:]) == (3, 8, 8)  # the colour images made it RGB
    assert seen and max(seen) <= chunk  # decoded a chunk at a time, never the whole folder
    assert len(_caches(cache)) == 3  # one per (folder, --image-size)
    assert not list((cache / "outofcore").glob(".tmp-*"))  # the restart at the first colour image left nothing


def test_mapped_image_run_trains_the_same_weights(folders, tmp_path, monkeypatch):
    tmp, labelled, _ = folders
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp / "cache"))
    vaekit.train(data=str(labelled), out=tmp_path / "mem", **SETTINGS)
    vaekit.train(data=str(labelled), out=tmp_path / "map", mmap=True, **SETTINGS)
    w, other = load_tensors(tmp_path / "mem" / WEIGHTS), load_tensors(tmp_path / "map" / WEIGHTS)
    assert all(torch.equal(w[k], other[k]) for k in w)
    assert len(_caches(tmp / "cache")) == 1
    results = [json.loads((tmp_path / name / RESULTS).read_text()) for name in ("mem", "map")]
    assert results[0]["test"] == results[1]["test"]
    assert [json.loads((tmp_path / name / CONFIG).read_text())["data"]["fingerprint"] for name in ("mem", "map")] \
        == [load_source(str(labelled)).fingerprint()] * 2


def test_image_cache_is_reused_and_rebuilt_when_an_image_changes(folders, monkeypatch):
    from vaekit.data import outofcore_images

    tmp, labelled, _ = folders
    cache = tmp / "cache"
    first = load_source(str(labelled), mmap_plan=PLAN, cache_dir=cache)
    [written] = _caches(cache)
    stamp = written.stat().st_mtime_ns
    again = load_source(str(labelled), mmap_plan=PLAN, cache_dir=cache)
    assert [f.stat().st_mtime_ns for f in _caches(cache)] == [stamp]  # reused, not decoded again
    assert again.fingerprint() == first.fingerprint()

    image = labelled / "emu" / "05.png"
    os.utime(image, ns=(stamp, stamp + 10**9))  # touched: same pixels, new modification time
    touched = load_source(str(labelled), mmap_plan=PLAN, cache_dir=cache)
    assert len(_caches(cache)) == 2 and touched.fingerprint() == first.fingerprint()

    _png(image, np.random.default_rng(7), colour=False)  # modified
    monkeypatch.setattr(outofcore_images, "_workers", lambda: 3)  # decoded on 3 threads: the same rows
    changed = load_source(str(labelled), mmap_plan=PLAN, cache_dir=cache)
    assert len(_caches(cache)) == 3 and changed.fingerprint() != first.fingerprint()
    assert changed.fingerprint() == load_source(str(labelled)).fingerprint()
    assert torch.equal(_splits(changed)[0].x, _splits(load_source(str(labelled)))[0].x)


def test_bad_images_are_one_line_errors(folders, tmp_path, monkeypatch):
    from vaekit.data import outofcore_images

    tmp, labelled, flat = folders
    cache = tmp / "cache"
    bad = labelled / "emu" / "09.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (labelled / "emu" / "11.png").write_bytes(b"")  # a later bad file: the first in order is named
    for workers in (1, 3):
        monkeypatch.setattr(outofcore_images, "_workers", lambda: workers)
        with pytest.raises(DataError, match=r"cannot read image .*emu/09.png"):
            load_source(str(labelled), mmap_plan=PLAN, cache_dir=cache)
    assert not _caches(cache) and not list((cache / "outofcore").glob(".tmp-*"))  # nothing half-written
    monkeypatch.setenv("VAEKIT_CACHE", str(cache))
    assert_usage_error(run("train", "--data", labelled, "--out", tmp_path / "r", "--mmap", "--epochs", 1, "-q"),
                       "cannot read image", "09.png")
    assert not (tmp_path / "r" / WEIGHTS).exists()

    _png(flat / "10.png", np.random.default_rng(1), colour=False, size=(8, 8))  # the others are 7x9
    with pytest.raises(DataError, match=r"images have different sizes: .*00.png is 7x9 and .*10.png is 8x8"):
        load_source(str(flat), mmap_plan=PLAN, cache_dir=cache)
    assert not _caches(cache)
