"""`vaekit explore`: the latent explorer's API through FastAPI's test client (map points, decode at a code or a
map point, examples, sweeps, interpolation, labels of conditional and M2 runs, table rows in the table's own
units, bad requests → 4xx while the server keeps serving, no file path from a request ever opened), the
command (one-line refusals, a real server on a free port). The page in a real browser: test_explorer_browser.py."""

import base64
import builtins
import io
import os
import signal
import socket
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit

from cli_helpers import assert_usage_error, run

pytestmark = [pytest.mark.skipif(find_spec("fastapi") is None or find_spec("uvicorn") is None or
                                 find_spec("httpx") is None,
                                 reason="the explorer needs fastapi and uvicorn (pip install 'vaekit[explore]'); "
                                        "its tests also need httpx"),
              pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")]
ROOT = Path(__file__).resolve().parents[1]
TINY = dict(hidden=[32], epochs=1, batch_size=128, report=False, seed=0)


def write_table(path, n: int = 240) -> None:
    """A CSV with 2 numeric columns on very different scales and a text column, driven by one latent."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=n)
    a, b = 3 * z + 10, -500 * z + 2000 + rng.normal(size=n)
    color = np.where(z < -0.5, "red", np.where(z < 0.5, "green", "blue"))
    path.write_text("a,b,color\n" + "".join(f"{x!r},{y!r},{k}\n" for x, y, k in zip(a.tolist(), b.tolist(), color)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs (1 epoch): images with a 3-D latent (PCA map), label-conditional with a 2-D latent, a mixed
    table, and M2."""
    tmp = tmp_path_factory.mktemp("explore")
    write_table(tmp / "t.csv")
    specs = {"image": ("digits", dict(latent_dim=3)), "cond": ("digits", dict(latent_dim=2, conditional=True)),
             "table": (str(tmp / "t.csv"), dict(latent_dim=2)),
             "m2": ("digits", dict(latent_dim=2, semi_supervised=True, labeled=50, hidden=[8]))}
    for name, (data, kw) in specs.items():
        vaekit.train(data, out=tmp / name, **{**TINY, **kw})
    return {name: tmp / name for name in specs}


def client(run_dir, **kw):
    from fastapi.testclient import TestClient

    from vaekit.explorer.app import create_app
    from vaekit.explorer.session import open_explorer

    ex = open_explorer(run_dir, **kw)
    return ex, TestClient(create_app(ex), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def image(runs):
    return client(runs["image"])


def pixels(b64: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))), dtype=np.float64)


# -- the API -------------------------------------------------------------------------------------------
def test_map_points_are_the_test_split_encoded(image):
    ex, c = image
    trained = ex.trained
    info, pts = c.get("/api/info").json(), c.get("/api/points").json()
    ds = trained.load_data("digits")
    test = trained.kind.split(ds, trained.config)[2]
    assert info["map"] == {"axis": "PC", "invertible": True, "n": len(test), "source": "digits", "split": "test"}
    assert len(pts["xy"]) == len(test) and pts["labels"] == test.y.tolist() and pts["classes"][:3] == ["0", "1", "2"]
    mu = trained.encode(test.x)
    kl = info["kl"]
    assert info["latent_dim"] == 3 and sorted(kl, reverse=True) == [kl[d] for d in info["kl_order"]]
    # the PCA map: centred means projected on two orthonormal directions
    xy = np.asarray(pts["xy"])
    assert abs(xy.mean(0)).max() < 1e-3 and np.corrcoef(xy.T)[0, 1] == pytest.approx(0, abs=1e-3)
    assert np.var(xy, 0).sum() <= np.var(mu.numpy(), 0).sum() * (1 + 1e-3)


def test_decode_a_code_and_a_map_point(image):
    ex, c = image
    z = [0.5, -1.0, 2.0]
    r = c.post("/api/decode", json={"z": z})
    assert r.status_code == 200 and r.json()["z"] == z
    want = ex.trained.decode(torch.tensor([z]))[0]  # the model's mean, in [0, 1]
    got = pixels(r.json()["images"][0]) / 255
    scale = got.shape[0] // 8  # digits are 8×8, enlarged by an integer factor
    assert got.shape == (8 * scale, 8 * scale)
    assert abs(got[::scale, ::scale] - want[0].numpy()).max() <= 0.5 / 255 + 1e-6
    # a map point decodes the point of the principal plane it stands for: at an example's coordinates that is
    # its mean's projection, so projecting back gives the same coordinates
    i = 7
    p = c.post("/api/decode", json={"point": ex.data.xy[i].tolist()}).json()
    zp = np.asarray(p["z"])
    inv = ex._inverse
    plane = inv[:2] / np.linalg.norm(inv[:2], axis=1, keepdims=True)
    assert p["nearest"] is None
    assert (zp - inv[2]) @ plane.T == pytest.approx((ex.data.mu[i].numpy() - inv[2]) @ plane.T, abs=1e-4)


def test_example_sweep_and_interpolation(image):
    ex, c = image
    e = c.get("/api/example/4").json()
    assert e["z"] == pytest.approx(ex.data.mu[4].tolist()) and e["label"] == int(ex.data.y[4])
    rec = c.post("/api/decode", json={"z": e["z"]}).json()
    assert e["reconstruction"]["images"] == rec["images"]
    sweep = c.post("/api/traverse", json={"z": e["z"], "dim": 2, "steps": 5, "span": 2.0}).json()
    assert sweep["values"] == pytest.approx([e["z"][2] + d for d in (-2, -1, 0, 1, 2)], abs=1e-5)
    assert len(sweep["images"]) == 5 and sweep["images"][2] == rec["images"][0]
    assert sweep["images"][0] != sweep["images"][4]
    path = c.post("/api/interpolate", json={"a": 4, "b": 9, "steps": 6, "method": "spherical"}).json()
    assert len(path["images"]) == 6 and path["images"][0] == rec["images"][0]
    assert path["z"][-1] == pytest.approx(ex.data.mu[9].tolist(), abs=1e-5)


def test_label_selection_of_a_conditional_run(runs):
    ex, c = client(runs["cond"])
    info = c.get("/api/info").json()
    assert info["condition"] == {"kind": "label", "classes": [str(k) for k in range(10)]}
    assert info["map"]["axis"] == "z" and info["map"]["invertible"]
    as3 = c.post("/api/decode", json={"z": [0.3, -0.2], "label": 3}).json()["images"][0]
    as8 = c.post("/api/decode", json={"z": [0.3, -0.2], "label": 8}).json()["images"][0]
    want = ex.trained.decode(torch.tensor([[0.3, -0.2]]), c=torch.nn.functional.one_hot(torch.tensor([8]), 10).float())
    assert as3 != as8 and abs(pixels(as8)[::12, ::12] / 255 - want[0, 0].numpy()).max() <= 0.5 / 255 + 1e-6
    # on a 2-D latent a map point is the code itself
    assert c.post("/api/decode", json={"point": [0.3, -0.2], "label": 8}).json()["images"][0] == as8
    r = c.post("/api/decode", json={"z": [0.3, -0.2]})
    assert r.status_code == 400 and "give label (0..9)" in r.json()["detail"]
    r = c.post("/api/decode", json={"z": [0.3, -0.2], "label": 10})
    assert r.status_code == 400 and "label must be between 0 and 9" in r.json()["detail"]
    # an example's own label by default, the chosen one when given
    e = c.get("/api/example/2").json()
    assert e["condition_label"] == e["label"]
    own = c.post("/api/interpolate", json={"a": 2, "b": 5, "steps": 3}).json()["images"]
    given = c.post("/api/interpolate", json={"a": 2, "b": 5, "steps": 3, "label": (e["label"] + 1) % 10}).json()
    assert own[0] == e["reconstruction"]["images"][0] and given["images"][0] != own[0]


def test_m2_run_has_a_label_selector(runs):
    ex, c = client(runs["m2"])
    info = c.get("/api/info").json()
    assert info["family"] == "m2" and info["condition"]["kind"] == "label"
    a = c.post("/api/decode", json={"z": [0.0, 0.0], "label": 1}).json()["images"][0]
    b = c.post("/api/decode", json={"z": [0.0, 0.0], "label": 7}).json()["images"][0]
    assert a != b


def test_unconditional_run_refuses_a_label(image):
    _, c = image
    r = c.post("/api/decode", json={"z": [0, 0, 0], "label": 1})
    assert r.status_code == 400 and r.json()["detail"] == "this run is not conditional: drop label/attributes"


def test_table_rows_in_the_tables_own_units(runs, tmp_path):
    ex, c = client(runs["table"])
    info = c.get("/api/info").json()
    assert info["view"] == "table" and info["columns"] == ["a", "b", "color"]
    r = c.post("/api/decode", json={"z": [0.4, -0.3]}).json()
    assert r["columns"] == ["a", "b", "color"] and len(r["rows"]) == 1
    want = ex.trained.decode(torch.tensor([[0.4, -0.3]]))[0]
    a, b, color = r["rows"][0]
    assert float(a) == pytest.approx(float(want[0]), rel=1e-4) and float(b) == pytest.approx(float(want[1]), rel=1e-4)
    assert 1000 < float(b) < 3000 and color in ("red", "green", "blue")  # b's own scale, a category's name
    e = c.get("/api/example/0").json()
    assert e["example"]["columns"] == ["a", "b", "color"] and e["example"]["rows"][0][2] in ("red", "green", "blue")


def test_data_flag_maps_another_source_all_rows(runs, tmp_path):
    write_table(tmp_path / "other.csv", n=30)
    ex, c = client(runs["table"], data=str(tmp_path / "other.csv"))
    info = c.get("/api/info").json()
    assert info["map"]["n"] == 30 and info["map"]["split"] == "all"


def test_attribute_conditioned_table_and_plain_arrays(tmp_path):
    rng = np.random.default_rng(1)
    z = rng.normal(size=200)
    rows = np.stack([2 * z + 5, rng.normal(size=200), 10 * z], 1)
    (tmp_path / "n.csv").write_text("a,b,c\n" + "".join(",".join(map(repr, r)) + "\n" for r in rows.tolist()))
    vaekit.train(str(tmp_path / "n.csv"), out=tmp_path / "attrs", latent_dim=2, condition_columns=["c"],
                 likelihood="gaussian", **TINY)
    ex, c = client(tmp_path / "attrs")
    info = c.get("/api/info").json()
    assert info["condition"]["kind"] == "attributes" and info["condition"]["columns"] == ["c"]
    assert info["columns"] == ["a", "b"] and len(info["condition"]["defaults"]) == 1
    lo = c.post("/api/decode", json={"z": [0, 0], "attributes": [-20.0]}).json()["rows"][0]
    hi = c.post("/api/decode", json={"z": [0, 0], "attributes": [20.0]}).json()["rows"][0]
    assert lo != hi
    r = c.post("/api/decode", json={"z": [0, 0], "attributes": [1.0, 2.0]})
    assert r.status_code == 400 and "attributes must hold 1 values (c)" in r.json()["detail"]
    assert c.post("/api/decode", json={"z": [0, 0], "label": 1}).status_code == 400
    # an array run without labels: grey points, the first 64 values of a decoded example
    np.save(tmp_path / "x.npy", rng.normal(size=(150, 80)).astype(np.float32))
    vaekit.train(str(tmp_path / "x.npy"), out=tmp_path / "arr", latent_dim=2, **TINY)
    ex, c = client(tmp_path / "arr")
    assert c.get("/api/points").json()["labels"] is None and c.get("/api/info").json()["view"] == "values"
    r = c.post("/api/decode", json={"z": [0.5, 0.5]}).json()
    assert r["columns"] == [str(i) for i in range(64)] and len(r["rows"][0]) == 64
    assert r["note"] == "the first 64 of 80 values"


def test_tsne_map_decodes_the_nearest_example(image):
    import dataclasses

    from vaekit.explorer.session import Explorer

    ex = Explorer(image[0].trained, dataclasses.replace(image[0].data, axis="t-SNE"))
    assert ex._inverse is None and ex.info()["map"]["invertible"] is False
    z, nearest = ex.z_at((ex.data.xy[11] + 1e-4).tolist())
    assert nearest == 11 and torch.equal(z[0], ex.data.mu[11])


def test_a_recommendation_run_is_refused_in_one_line(tmp_path):
    from test_interactions import write_interactions

    data = write_interactions(tmp_path / "r.csv", n_users=40, n_items=20, per_user=6)
    vaekit.train(str(data), out=tmp_path / "rec", family="mult-vae", hidden=[8], latent_dim=2, epochs=1,
                 batch_size=16, report=False)
    assert_usage_error(run("explore", tmp_path / "rec", "--port", 0), "mult-vae run (recommendation)",
                       "vaekit recommend")


BAD = [
    ("post", "/api/decode", {"z": [0, 0]}, 400, "z must hold 3 values"),
    ("post", "/api/decode", {"z": [0] * 5000}, 422, "at most 4096"),
    ("post", "/api/decode", {"z": [0, 0, 1e9]}, 422, "less than or equal to 50"),
    ("post", "/api/decode", b'{"z": [NaN, 0, 0]}', 422, "finite number"),
    ("post", "/api/decode", b'{"z": [Infinity, 0, 0]}', 422, "finite number"),
    ("post", "/api/decode", {"z": ["a", 0, 0]}, 422, "valid number"),
    ("post", "/api/decode", {}, 400, "exactly one of z"),
    ("post", "/api/decode", {"z": [0, 0, 0], "point": [0, 0]}, 400, "exactly one of z"),
    ("post", "/api/decode", {"point": [0, 0, 0]}, 422, "point"),
    ("post", "/api/decode", b"not json", 422, "JSON"),
    ("post", "/api/decode", {"z": [0, 0, 0], "path": "/etc/passwd"}, 422, "path: Extra inputs are not permitted"),
    ("post", "/api/traverse", {"z": [0, 0, 0], "dim": 3}, 400, "dim must be between 0 and 2"),
    ("post", "/api/traverse", {"z": [0, 0, 0], "dim": 0, "steps": 10 ** 9}, 422, "steps"),
    ("post", "/api/traverse", {"z": [0, 0, 0], "dim": 0, "span": 1e300}, 422, "span"),
    ("post", "/api/interpolate", {"a": 0, "b": 10 ** 6}, 400, "does not exist"),
    ("post", "/api/interpolate", {"a": -1, "b": 2}, 422, "greater than or equal to 0"),
    ("post", "/api/interpolate", {"a": 0, "b": 2, "steps": 10 ** 6}, 422, "less than or equal to 32"),
    ("post", "/api/interpolate", {"a": 0, "b": 2, "method": "cubic"}, 422, "method"),
    ("get", "/api/example/100000", None, 400, "does not exist"),
    ("get", "/api/example/-3", None, 400, "does not exist"),
    ("get", "/api/example/1e999", None, 422, "valid integer"),
    ("post", "/api/decode", b'{"z": [' + b"0," * 150_000 + b"0]}", 413, "over"),
]


def test_bad_requests_are_4xx_with_a_message_and_the_server_keeps_serving(image):
    _, c = image
    for method, path, body, status, needle in BAD:
        kw = {} if body is None else ({"content": body, "headers": {"content-type": "application/json"}}
                                      if isinstance(body, bytes) else {"json": body})
        r = getattr(c, method)(path, **kw)
        assert r.status_code == status, (path, body if not isinstance(body, bytes) else body[:40], r.text)
        detail = r.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and needle in detail, (needle, detail)
        assert c.post("/api/decode", json={"z": [0, 0, 0]}).status_code == 200  # still serving
    # a body sent in chunks without a length is cut off too
    r = c.post("/api/decode", content=iter([b'{"z": [' + b"0," * 50_000, b"0" * 200_000 + b"]}"]),
               headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_no_file_path_from_a_request_is_opened(image, tmp_path, monkeypatch):
    _, c = image
    secret = tmp_path / "secret.npz"
    secret.write_bytes(b"not data")
    opened = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *a, **kw):
        opened.append(str(file))
        return real_open(file, *a, **kw)

    def spy_os_open(path, *a, **kw):
        opened.append(str(path))
        return real_os_open(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    s = str(secret)
    probes = [c.get(f"/api/points?data={s}"), c.get(f"/api/info?run={s}"), c.get(f"/{s}"), c.get(f"/static/..{s}"),
              c.get(f"/api/example/{s}"), c.post("/api/decode", json={"z": [0, 0, 0], "data": s}),
              c.post("/api/interpolate", json={"a": s, "b": 0}), c.get("/static/index.html"),
              c.get("/docs"), c.get("/openapi.json")]
    assert all(r.status_code in (200, 404, 422) for r in probes), [r.status_code for r in probes]
    assert [r.status_code for r in probes[2:]] == [404, 404, 404, 422, 422, 404, 404, 404]
    assert not [p for p in opened if "secret" in p]
    # the query parameters are ignored: the answers are the run's own
    assert probes[0].json() == c.get("/api/points").json()


def test_only_loopback_host_headers_on_a_loopback_address(image):
    _, c = image
    assert c.get("/api/info", headers={"host": "evil.example"}).status_code == 400
    assert c.get("/api/info", headers={"host": "localhost:8000"}).status_code == 200
    assert c.get("/api/info", headers={"host": "[::1]:8000"}).status_code == 200
    assert c.get("/api/info", headers={"host": "127.0.0.1.evil.example:80"}).status_code == 400
    from fastapi.testclient import TestClient

    from vaekit.explorer.app import create_app, host_name

    assert [host_name(h) for h in ("[::1]:80", "::1", "localhost", "127.0.0.1:8000")] == \
        ["::1", "::1", "localhost", "127.0.0.1"]
    anywhere = TestClient(create_app(image[0], host="0.0.0.0"), base_url="http://192.0.2.7:8000")
    assert anywhere.get("/api/info").status_code == 200  # --host 0.0.0.0: asked for, any Host is answered


def test_page_is_self_contained(image):
    _, c = image
    html = c.get("/").text
    assert "<canvas" in html and "<script>" in html
    assert "http://" not in html and "https://" not in html and "src=\"/" not in html  # nothing fetched elsewhere


def test_page_is_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["vaekit.explorer"]
    static = ROOT / "src" / "vaekit" / "explorer"
    assert any(static.glob(g) for g in globs) and (static / "static" / "index.html").is_file()
    assert cfg["project"]["optional-dependencies"]["explore"] == ["fastapi>=0.110", "uvicorn>=0.29"]


# -- the command ---------------------------------------------------------------------------------------
def test_help_imports_no_web_packages():
    code = ("import sys; from vaekit.cli import app; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_missing_package_is_one_line(image, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import fails as if it were not installed
    assert_usage_error(run("explore", image[0].trained.run_dir, "--port", 0), "uvicorn",
                       "pip install 'vaekit[explore]'")


def test_command_mistakes_are_one_line(image, tmp_path):
    rd = image[0].trained.run_dir
    assert_usage_error(run("explore", rd, "--method", "umap"), "--method must be pca or tsne")
    assert_usage_error(run("explore", rd, "--limit", 1), "--limit")
    assert_usage_error(run("explore", rd, "--port", 70000), "--port must be between 0 and 65535")
    assert_usage_error(run("explore", tmp_path / "nope", "--port", 0), "nope")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert_usage_error(run("explore", rd, "--port", busy.getsockname()[1]), "cannot listen on 127.0.0.1",
                           "--port")


def test_command_serves_on_loopback_until_interrupted(runs):
    import httpx

    rd = runs["cond"]  # a 2-D latent: the map needs no PCA (scikit-learn's import alone takes seconds)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "vaekit", "explore", str(rd), "--port", "0"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith(f"exploring {rd}: 180 examples of digits at http://127.0.0.1:"), (line, p.poll())
        url = line.split(" at ")[1].split()[0]
        assert httpx.get(url + "api/info", timeout=30).json()["latent_dim"] == 2
        assert httpx.post(url + "api/decode", json={"z": [0]}, timeout=30).status_code == 400
        assert httpx.post(url + "api/decode", json={"z": [0, 1], "label": 4}, timeout=30).status_code == 200
        assert httpx.get(url, timeout=30).status_code == 200
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    assert p.returncode in (0, 130) and "Traceback" not in err, err  # 130: stopped by Ctrl-C, as shells expect
