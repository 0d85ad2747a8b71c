"""Tests of the data layer: every source on real files written under tmp_path, no network."""

from __future__ import annotations

import json
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
    split_dataset,
)
from vaekit.errors import DataError, UsageError

from data_helpers import raises_one_line


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
