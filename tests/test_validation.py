"""Validation of data input (issue 12): every bad file or setting ends in one line, never a wrong result."""

from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import assert_usage_error, run
from data_helpers import raises_one_line as one_line_error
from vaekit.data import load_source


# ---------------------------------------------------------------------------------------------
# tables: repeated column names, delimiters, encodings, label columns


def test_repeated_column_names_are_refused_in_csv_parquet_and_npz(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "d.csv").write_text("a,a,b\n1,2,3\n4,5,6\n")
    with one_line_error(r"2 columns named 'a'; rename them"):
        load_source(str(tmp_path / "d.csv"))
    t = pa.Table.from_arrays([pa.array([1.0, 2.0])] * 3, names=["a", "b", "b"])
    pq.write_table(t, tmp_path / "d.parquet")
    with one_line_error(r"2 columns named 'b'; rename them"):
        load_source(str(tmp_path / "d.parquet"))
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3), np.float32), y=np.random.rand(4, 2).astype(np.float32),
             y_names=np.array(["u", "u"]))
    with one_line_error(r"2 columns named 'u'; rename them"):
        load_source(str(tmp_path / "d.npz"))


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """A tiny run trained on a 3-column table with missing cells."""
    from vaekit import api

    root = tmp_path_factory.mktemp("tab")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).round(3)
    x[::7, 1] = np.nan
    lines = ["a,b,c"] + [",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in x]
    (root / "t.csv").write_text("\n".join(lines) + "\n")
    api.train(str(root / "t.csv"), root / "run", missing="mask", latent_dim=2, hidden=[8], epochs=1,
              batch_size=32, report=False)
    return root


def test_impute_and_condition_columns_refuse_a_repeated_header(table_run, tmp_path):
    bad = tmp_path / "dup.csv"
    bad.write_text("a,a,c\n1.0,2.0,\n3.0,,4.0\n")
    out = tmp_path / "filled.csv"
    r = run("impute", table_run / "run", "--data", bad, "--out", out)
    assert_usage_error(r, "2 columns named 'a'", "rename")
    assert not out.exists()
    r = run("train", "--data", bad, "--out", tmp_path / "r", "--condition-columns", "a", "--epochs", "1")
    assert_usage_error(r, "2 columns named 'a'", "rename")


def test_semicolon_and_tab_delimited_csv_are_read_and_imputed_in_their_own_delimiter(table_run, tmp_path):
    good = load_source(str(table_run / "t.csv"), allow_missing=True)
    for delim in (";", "\t"):
        text = (table_run / "t.csv").read_text().replace(",", delim)
        path = tmp_path / f"t{ord(delim)}.csv"
        path.write_text(text)
        ds = load_source(str(path), allow_missing=True)
        assert ds.columns == ["a", "b", "c"]
        assert np.array_equal(np.isnan(ds.x.numpy()), np.isnan(good.x.numpy()))
        assert np.allclose(np.nan_to_num(ds.x.numpy()), np.nan_to_num(good.x.numpy()))
        out = tmp_path / f"out{ord(delim)}.csv"
        r = run("impute", table_run / "run", "--data", path, "--out", out, "--k", "10")
        assert r.exit_code == 0, r.output
        rows = out.read_text().splitlines()
        src = text.splitlines()
        assert rows[0] == f"a{delim}b{delim}c" and len(rows) == len(src)
        for got, want in zip(rows[1:], src[1:]):  # observed cells kept verbatim, missing ones filled
            g, w = got.split(delim), want.split(delim)
            assert all(gv == wv for gv, wv in zip(g, w) if wv) and all(g)


def test_a_comma_csv_with_semicolons_in_a_text_column_stays_comma(tmp_path):
    (tmp_path / "t.csv").write_text("x,note\n1,a;b\n2,c;d\n")
    ds = load_source(str(tmp_path / "t.csv"))
    assert ds.x.shape == (2, 3) and ds.schema[1]["categories"] == ["a;b", "c;d"]


def test_decimal_commas_are_refused_with_a_hint(tmp_path):
    (tmp_path / "t.csv").write_text("x;y\n1,5;2\n2,25;3\n")
    with one_line_error(r"column 'x' holds numbers written with a decimal comma \('1,5'\).*decimal point"):
        load_source(str(tmp_path / "t.csv"))


def test_latin1_csv_is_refused_naming_the_file_and_the_byte(tmp_path):
    (tmp_path / "h.csv").write_bytes("caf\xe9,b\n1,2\n".encode("latin-1"))
    with one_line_error(r"h.csv is not UTF-8 text \(byte 0xe9 on line 1; probably Latin-1.*iconv"):
        load_source(str(tmp_path / "h.csv"))
    (tmp_path / "b.csv").write_bytes("a,b\n1,2\n3,4\n5,caf\xe9\n".encode("latin-1"))
    with one_line_error(r"b.csv is not UTF-8 text \(byte 0xe9 on line 4"):
        load_source(str(tmp_path / "b.csv"))
    (tmp_path / "ok.csv").write_bytes("\ufeffa,caf\xe9\n1,2\n".encode("utf-8"))  # UTF-8 with a BOM is fine
    assert load_source(str(tmp_path / "ok.csv")).columns == ["a", "caf\xe9"]


def test_continuous_label_column_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{v:.6f},{w:.6f}" for v, w in rng.normal(size=(1000, 2)))
    (tmp_path / "t.csv").write_text("x,w\n" + rows + "\n")
    with one_line_error(r"label column 'w' has 1000 distinct values in 1000 rows; a label column must be "
                        r"categorical.*--condition-columns"):
        load_source(str(tmp_path / "t.csv"), label_column="w")
    ids = "\n".join(f"{i},id{i}" for i in range(50))
    (tmp_path / "ids.csv").write_text("x,name\n" + ids + "\n")
    with one_line_error(r"label column 'name' has 50 distinct values in 50 rows"):
        load_source(str(tmp_path / "ids.csv"), label_column="name")
    # a categorical label with many classes, each on a few rows, still loads
    cls = "\n".join(f"{i},{i % 30}.0" for i in range(120))
    (tmp_path / "c.csv").write_text("x,k\n" + cls + "\n")
    assert len(load_source(str(tmp_path / "c.csv"), label_column="k").classes) == 30


# ---------------------------------------------------------------------------------------------
# arrays: members that are not arrays, headers that claim more than the file holds, memory


def test_npz_member_that_is_not_an_array_is_one_line(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as z:
        z.writestr("x", b"just some bytes")
    with one_line_error(r"'x' in .*raw.npz is not a NumPy array"):
        load_source(str(tmp_path / "raw.npz"))
    np.savez(tmp_path / "obj.npz", x=np.zeros((3, 2)), y=np.array([{"a": 1}, 2, 3], dtype=object))
    with one_line_error(r"'y' in .*obj.npz holds Python objects .*never unpickles"):
        load_source(str(tmp_path / "obj.npz"))


def _npy_claiming(path, shape, payload: bytes = b"\0" * 64):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(payload)


def test_npy_header_claiming_terabytes_is_refused_before_allocating(tmp_path, monkeypatch):
    _npy_claiming(tmp_path / "huge.npy", (10**7, 10**6))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load must not be reached"))
    with one_line_error(r"huge.npy is truncated or damaged: its header says shape \[10000000, 1000000\] of "
                        r"float32 \(36.4 TiB\) but the file holds 64 B"):
        load_source(str(tmp_path / "huge.npy"))
    import zipfile

    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        _npy_claiming(tmp_path / "m.npy", (10**9, 100))
        z.write(tmp_path / "m.npy", "x.npy")
    with one_line_error(r"'x' in .*huge.npz is truncated or damaged"):
        load_source(str(tmp_path / "huge.npz"))


def test_arrays_and_images_beyond_available_memory_are_refused(tmp_path, monkeypatch):
    from vaekit.data import _common

    np.save(tmp_path / "a.npy", np.zeros((100, 10), np.float32))
    assert load_source(str(tmp_path / "a.npy")).x.shape == (100, 10)
    monkeypatch.setattr(_common, "available_memory", lambda: 4000)
    with one_line_error(r"a.npy \(shape \[100, 10\], float32, loaded as float32\) would take 7.8 KiB of "
                        r"memory, more than the 3.9 KiB available; load a smaller subset"):
        load_source(str(tmp_path / "a.npy"))
    monkeypatch.setattr(_common, "available_memory", lambda: 10**8)
    with one_line_error(r"1797 images of 1024x1024 would take 7.0 GiB of memory, more than the 95.4 MiB "
                        r"available; pass a smaller --image-size"):
        load_source("digits", image_size=1024)
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / f"{i}.png")
    monkeypatch.setattr(_common, "available_memory", lambda: 1000)
    with one_line_error(r"3 images of 64x64 would take 96.0 KiB"):
        load_source(str(tmp_path), image_size=64)


# ---------------------------------------------------------------------------------------------
# images: unreadable folders, float TIFFs, symbolic-link loops


def _png(path, value: int = 0, size: int = 8):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)


def test_unreadable_class_folder_is_an_error_naming_it(tmp_path, monkeypatch):
    import os

    _png(tmp_path / "a" / "1.png")
    _png(tmp_path / "b" / "2.png")
    locked = tmp_path / "b"
    os.chmod(locked, 0)
    try:
        if os.access(locked, os.R_OK):  # root reads anyway: make scandir fail as it does for other users
            real = os.scandir

            def scandir(p="."):
                if os.fspath(p) == str(locked):
                    raise PermissionError(13, "Permission denied", str(locked))
                return real(p)

            monkeypatch.setattr(os, "scandir", scandir)
        with one_line_error(r"cannot read the folder .*/b: Permission denied; make it readable"):
            load_source(str(tmp_path))
    finally:
        os.chmod(locked, 0o755)


def test_float_tiffs_in_unit_range_load_and_others_are_refused(tmp_path):
    from PIL import Image

    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp, mode="F").save(tmp_path / "a.tif")
    Image.fromarray(ramp[::-1].copy(), mode="F").save(tmp_path / "b.tif")
    ds = load_source(str(tmp_path))
    assert ds.x.shape == (2, 1, 8, 8)
    assert np.array_equal(ds.x[0, 0].numpy(), ramp) and np.array_equal(ds.x[1, 0].numpy(), ramp[::-1])
    resized = load_source(str(tmp_path), image_size=4).x
    assert resized.shape == (2, 1, 4, 4) and 0.0 < float(resized.mean()) < 1.0
    Image.fromarray(ramp * 255, mode="F").save(tmp_path / "b.tif")
    with one_line_error(r"float image .*b.tif has values in \[0, 255\]; vaekit reads float images as "
                        r"intensities in \[0, 1\]; rescale"):
        load_source(str(tmp_path))
    Image.fromarray(np.full((8, 8), np.nan, np.float32), mode="F").save(tmp_path / "b.tif")
    with one_line_error(r"float image .*b.tif has values in \[nan, nan\]"):
        load_source(str(tmp_path))
    Image.fromarray(np.full((8, 8), 70000, np.int32), mode="I").save(tmp_path / "b.tif")
    with one_line_error(r"32-bit integer image .*b.tif has values in \[70000, 70000\]"):
        load_source(str(tmp_path))


def test_symlink_loop_is_refused_and_links_inside_class_folders_are_not_followed(tmp_path):
    import os

    root = tmp_path / "imgs"
    _png(root / "a" / "1.png")
    _png(root / "b" / "2.png")
    os.symlink("..", root / "a" / "up")  # inside a class folder: not followed, no duplicates
    ds = load_source(str(root))
    assert ds.classes == ["a", "b"] and len(ds.x) == 2
    os.symlink(".", root / "loop")
    with one_line_error(r"imgs/loop is a link to .*imgs, inside \(or above\) the image folder .*remove the link"):
        load_source(str(root))
    os.remove(root / "loop")
    os.symlink("a", root / "again")  # a second name for a class
    with one_line_error(r"imgs/again is a link to .*imgs/a, inside"):
        load_source(str(root))
    os.remove(root / "again")
    _png(tmp_path / "elsewhere" / "3.png")
    os.symlink(tmp_path / "elsewhere", root / "c")  # a class folder linked from outside still loads
    assert load_source(str(root)).classes == ["a", "b", "c"]


# ---------------------------------------------------------------------------------------------
# settings: finite floats, no booleans for numbers, no repeated YAML keys; weights: finite


@pytest.mark.parametrize("field, value", [("lr", float("nan")), ("min_delta", float("inf")),
                                          ("grad_clip", float("inf")), ("gaussian_std", float("nan")),
                                          ("beta", float("-inf"))])
def test_non_finite_float_settings_are_refused(field, value):
    from vaekit.config import make_config
    from vaekit.errors import UsageError

    with one_line_error(rf"invalid --{field.replace('_', '-')}=.*finite number", UsageError):
        make_config(**{field: value})


def test_cli_refuses_nan_flags(tmp_path):
    r = run("train", "--out", tmp_path / "r", "--min-delta", "nan")
    assert_usage_error(r, "--min-delta", "finite")
    assert not (tmp_path / "r").exists()


def test_booleans_are_not_numbers_but_numeric_strings_are(tmp_path):
    from vaekit.config import load_config_file, make_config
    from vaekit.errors import UsageError

    for field, value in [("latent_dim", True), ("lr", False), ("hidden", [True, 8]), ("patience", True)]:
        with one_line_error(rf"invalid --{field.replace('_', '-')}=.*not true/false", UsageError):
            make_config(**{field: value})
    (tmp_path / "c.yaml").write_text("latent_dim: true\n")
    with one_line_error(r"invalid --latent-dim=True", UsageError):
        make_config(load_config_file(tmp_path / "c.yaml"))
    (tmp_path / "c.yaml").write_text("latent_dim: '3'\nlr: 1e-3\ncompile: true\n")  # YAML 1.1: 1e-3 is a string
    cfg = make_config(load_config_file(tmp_path / "c.yaml"))
    assert (cfg.latent_dim, cfg.lr, cfg.compile) == (3, 1e-3, True)


def test_repeated_yaml_keys_are_refused_naming_key_and_lines(tmp_path):
    from vaekit.config import load_config_file
    from vaekit.errors import UsageError

    (tmp_path / "c.yaml").write_text("lr: 0.01\nepochs: 3\nlr: 0.1\n")
    with one_line_error(r"not valid YAML \(duplicate key 'lr' on line 3 \(first on line 1\)", UsageError):
        load_config_file(tmp_path / "c.yaml")
    (tmp_path / "m.yaml").write_text("base: &b {lr: 0.01, epochs: 3}\nrun:\n  <<: *b\n  lr: 0.1\n")
    assert load_config_file(tmp_path / "m.yaml")["run"] == {"lr": 0.1, "epochs": 3}  # a merge may be overridden
    from vaekit.space import load_space

    (tmp_path / "s.yaml").write_text("lr: {low: 0.001, high: 0.1, log: true}\nlr: {choices: [0.1]}\n")
    with pytest.raises(UsageError, match="duplicate key 'lr'"):
        load_space(tmp_path / "s.yaml")


def test_non_finite_weights_are_refused_on_load(tmp_path, tiny):
    import torch
    from safetensors.torch import load_file, save_file

    from vaekit import api
    from vaekit.errors import RunError

    api.train(out=tmp_path / "r", report=False, **{**tiny, "epochs": 1})
    weights = load_file(str(tmp_path / "r" / "model.safetensors"))
    name = sorted(weights)[0]
    weights[name] = weights[name].clone()
    weights[name].view(-1)[0] = float("nan")
    save_file(weights, str(tmp_path / "r" / "model.safetensors"))
    with one_line_error(rf"holds 1 NaN or infinite value\(s\) in '{name}'; the weights are damaged", RunError):
        api.load(tmp_path / "r")
    r = run("sample", tmp_path / "r", "--out", tmp_path / "s.png")
    assert_usage_error(r, "NaN or infinite")


def test_temperature_must_be_finite(tmp_path, tiny):
    from vaekit import api
    from vaekit.errors import UsageError

    trained = api.train(out=tmp_path / "r", report=False, **{**tiny, "epochs": 1})
    for t in (float("nan"), float("inf"), 0.0):
        with one_line_error(r"--temperature must be a positive finite number", UsageError):
            trained.sample(4, temperature=t)
    r = run("sample", tmp_path / "r", "--out", tmp_path / "s.png", "--temperature", "nan")
    assert_usage_error(r, "--temperature must be a positive finite number")
