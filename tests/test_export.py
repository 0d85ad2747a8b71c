"""ONNX export (`vaekit export RUN --format onnx --out DIR`): onnxruntime gives PyTorch's numbers (max abs
difference < 1e-5 at batch 1 and 64, encoder and decoder) for an MLP image run, a conv run, a label-conditional
run, a Gaussian table run, a mixed-type table run and an M2 run (with its classifier); model.json's
preprocessing and output recipes, applied in numpy to raw data, give what TrainedVAE.reconstruct gives; the
CLI's mistakes are one line with exit 2, and --overwrite replaces only an earlier export."""

from importlib.util import find_spec

import numpy as np
import pytest
import torch

import vaekit
from vaekit.export import export_onnx, read_export
from vaekit.errors import UsageError

from cli_helpers import assert_usage_error, run

needs_onnx = pytest.mark.skipif(find_spec("onnx") is None, reason="ONNX export needs the onnx package "
                                "(pip install 'vaekit[onnx]')")
needs_ort = pytest.mark.skipif(find_spec("onnxruntime") is None or find_spec("onnx") is None,
                               reason="the parity checks need onnx and onnxruntime (pip install 'vaekit[onnx]')")
TINY = dict(latent_dim=2, hidden=[32], epochs=1, batch_size=128, report=False)
TOL = 1e-5


def write_table(path, n: int = 300, text: bool = False) -> None:
    """A CSV with 3 numeric columns driven by one latent (and a text column with ``text``)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=n)
    num = np.stack([3 * z + 10, -50 * z + rng.normal(size=n), rng.normal(size=n)], 1)
    color = np.where(z < -0.5, "red", np.where(z < 0.5, "green", "blue"))
    lines = ["a,b,c" + (",color" if text else "")]
    lines += [",".join(f"{v!r}" for v in row.tolist()) + (f",{k}" if text else "") for row, k in zip(num, color)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs of every kind the export handles (1 epoch each), trained once for the module."""
    tmp = tmp_path_factory.mktemp("export")
    write_table(tmp / "t.csv")
    write_table(tmp / "m.csv", text=True)
    specs = {
        "mlp": ("digits", {}),
        "conv": ("digits", {"model": "conv"}),
        "cond": ("digits", {"conditional": True}),
        "table": (str(tmp / "t.csv"), {"likelihood": "gaussian"}),
        "mixed": (str(tmp / "m.csv"), {}),
        "attrs": (str(tmp / "t.csv"), {"condition_columns": ["c"], "likelihood": "gaussian"}),
        "m2": ("digits", {"semi_supervised": True, "labeled": 50, "hidden": [8]}),
    }
    out = {}
    for name, (data, kw) in specs.items():
        vaekit.train(data, out=tmp / name, **{**TINY, **kw})
        out[name] = (tmp / name, data)
    return out


def session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def model_inputs(trained, data):
    """(x in model units, c or None) of the first 64 examples of the run's data."""
    ds = trained.load_data(data)
    ds.x, ds.y = ds.x[:64], (ds.y[:64] if ds.y is not None else None)
    return trained.dataset_inputs(ds)


@needs_ort
@pytest.mark.parametrize("name", ["mlp", "conv", "cond", "table", "mixed", "attrs", "m2"])
def test_onnxruntime_matches_pytorch_at_batch_1_and_64(runs, name, tmp_path):
    run_dir, data = runs[name]
    spec = export_onnx(run_dir, tmp_path / "ex")
    trained = vaekit.load(run_dir)
    x, c = model_inputs(trained, data)
    enc, dec = session(tmp_path / "ex" / "encoder.onnx"), session(tmp_path / "ex" / "decoder.onnx")
    assert [i.name for i in enc.get_inputs()] == (["x", "c"] if c is not None else ["x"])
    for b in (1, 64):
        feeds = {"x": x[:b].numpy()} | ({"c": c[:b].numpy()} if c is not None else {})
        mean, log_var = enc.run(["mean", "log_var"], feeds)
        with torch.no_grad():
            mu, lv = trained.model.posterior_params(x[:b], None if c is None else c[:b])
        assert mean.shape == (b, 2) and np.abs(mean - mu.numpy()).max() < TOL
        assert np.abs(log_var - lv.numpy()).max() < TOL
        z = mu + torch.randn(mu.shape, generator=torch.Generator().manual_seed(b))  # sampling stays outside
        out_name = spec["graphs"]["decoder"]["outputs"][0]["name"]
        (params,) = dec.run([out_name], {"z": z.numpy()} | ({"c": c[:b].numpy()} if c is not None else {}))
        with torch.no_grad():
            want = trained.model.decoder_params(z, None if c is None else c[:b])
        assert params.shape == (b, *trained.shape) and np.abs(params - want.numpy()).max() < TOL
    assert max(spec["check"]["max_abs_diff"].values()) < TOL  # export's own check agrees


@needs_ort
def test_m2_classifier_matches_and_model_json_names_classes(runs, tmp_path):
    run_dir, data = runs["m2"]
    spec = export_onnx(run_dir, tmp_path / "ex")
    trained = vaekit.load(run_dir)
    x, _ = model_inputs(trained, data)
    (logits,) = session(tmp_path / "ex" / "classifier.onnx").run(["logits"], {"x": x.numpy()})
    probs = torch.softmax(torch.from_numpy(logits), 1)
    assert (probs - trained.predict_proba(x)).abs().max() < TOL
    assert spec["run"]["family"] == "m2" and spec["condition"]["classes"] == [str(i) for i in range(10)]
    assert sorted(spec["graphs"]) == ["classifier", "decoder", "encoder"]


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


@needs_ort
def test_model_json_recipe_reconstructs_a_conditional_image_run(runs, tmp_path):
    """Only model.json and the graphs: one-hot c from the class names, sigmoid of the logits = vaekit's
    reconstruction."""
    run_dir, _ = runs["cond"]
    export_onnx(run_dir, tmp_path / "ex")
    spec = read_export(tmp_path / "ex")
    assert spec["latent_dim"] == 2 and spec["likelihood"]["name"] == "bernoulli"
    assert spec["likelihood"]["mean"] == "sigmoid(logits)"
    assert spec["data"]["shape"] == [1, 8, 8] and spec["data"]["value_range"] == [0.0, 1.0]
    assert spec["data"]["channels"] == "grayscale"
    enc_in = spec["graphs"]["encoder"]["inputs"]
    assert [(i["name"], i["shape"], i["dtype"]) for i in enc_in] == [
        ("x", ["batch", 1, 8, 8], "float32"), ("c", ["batch", 10], "float32")]
    trained = vaekit.load(run_dir)
    ds = trained.load_data("digits")
    x = ds.x[:16].numpy()
    names = [ds.classes[int(y)] for y in ds.y[:16]]
    c = np.zeros((16, 10), np.float32)
    c[np.arange(16), [spec["condition"]["classes"].index(n) for n in names]] = 1
    mean, _ = session(tmp_path / "ex" / "encoder.onnx").run(None, {"x": x, "c": c})
    (logits,) = session(tmp_path / "ex" / "decoder.onnx").run(None, {"z": mean, "c": c})
    want = trained.reconstruct(ds.x[:16], c=c).numpy()
    assert np.abs(sigmoid(logits) - want).max() < TOL
    assert spec["torch_version"] == torch.__version__ and spec["vaekit_version"] == vaekit.__version__
    assert spec["onnx_opset"] == 17


@needs_ort
@pytest.mark.parametrize("name", ["table", "mixed"])
def test_model_json_recipe_reconstructs_table_rows_in_their_units(runs, name, tmp_path):
    """The scaler in model.json standardizes raw rows; decoder outputs (softmax on the text column's block)
    un-standardized give TrainedVAE.reconstruct's values; the learned log-std is the model's."""
    run_dir, data = runs[name]
    export_onnx(run_dir, tmp_path / "ex")
    spec = read_export(tmp_path / "ex")
    trained = vaekit.load(run_dir)
    raw = trained.load_data(data).x[:32]
    mean, std = (np.array(spec["data"]["scaler"][k], np.float32) for k in ("mean", "std"))
    (mu, _) = session(tmp_path / "ex" / "encoder.onnx").run(None, {"x": (raw.numpy() - mean) / std})
    (params,) = session(tmp_path / "ex" / "decoder.onnx").run(None, {"z": mu})
    lik = spec["likelihood"]
    out = params.copy()
    for blk in lik.get("blocks", []):
        e = np.exp(params[:, blk["start"]:blk["stop"]])
        out[:, blk["start"]:blk["stop"]] = e / e.sum(1, keepdims=True)
    rows = out * std + mean
    want = trained.reconstruct(raw).numpy()
    assert np.abs(rows - want).max() < 1e-4 * max(1.0, float(np.abs(want).max()))
    assert np.allclose(lik["log_std"]["values"], trained.model.likelihood.log_scale.detach().numpy().ravel())
    assert lik["log_std"]["learned"] is True
    if name == "mixed":
        assert lik["name"] == "mixed" and lik["numeric"] == [0, 1, 2]
        assert lik["blocks"] == [{"column": "color", "start": 3, "stop": 6, "categories": ["blue", "green", "red"]}]
        assert spec["data"]["columns"] == ["a", "b", "c", "color=blue", "color=green", "color=red"]
        assert spec["data"]["schema"][3]["categories"] == ["blue", "green", "red"]
    else:
        assert lik["name"] == "gaussian" and spec["data"]["columns"] == ["a", "b", "c"]


@needs_onnx
@needs_onnx
def test_attribute_condition_is_described_with_its_scaler(runs, tmp_path):
    spec = export_onnx(vaekit.load(runs["attrs"][0]), tmp_path / "ex")  # a loaded run works as well
    trained = vaekit.load(runs["attrs"][0])
    cond = spec["condition"]
    assert cond["kind"] == "attributes" and cond["columns"] == ["c"] and cond["dim"] == 1
    assert np.allclose(cond["scaler"]["mean"], trained.conditioning.scaler.mean.numpy())
    assert spec["data"]["columns"] == ["a", "b"] and len(spec["data"]["scaler"]["mean"]) == 2
    assert [i["name"] for i in spec["graphs"]["decoder"]["inputs"]] == ["z", "c"]


def test_export_without_onnxruntime_writes_unchecked_graphs(runs, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if it were not installed
    r = run("export", runs["mlp"][0], "--out", tmp_path / "ex")
    assert r.exit_code == 0, r.output
    assert "not checked" in r.output
    assert read_export(tmp_path / "ex")["check"]["onnxruntime"] is None


@needs_onnx
def test_cli_writes_then_refuses_and_overwrites_only_an_export(runs, tmp_path):
    out = tmp_path / "ex"
    r = run("export", runs["conv"][0], "--format", "onnx", "--out", out)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "encoder.onnx", "model.json"]
    assert "max abs difference" in r.output or "not checked" in r.output
    before = (out / "encoder.onnx").read_bytes()
    assert_usage_error(run("export", runs["mlp"][0], "--out", out), str(out), "--overwrite")
    assert (out / "encoder.onnx").read_bytes() == before  # nothing touched
    r = run("export", runs["mlp"][0], "--out", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert (out / "encoder.onnx").read_bytes() != before
    assert read_export(out)["graphs"]["encoder"]["inputs"][0]["shape"] == ["batch", 1, 8, 8]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ex"]  # no temporary folders left beside it
    # --overwrite never deletes the files of a folder that is not an earlier export
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert_usage_error(run("export", runs["mlp"][0], "--out", other, "--overwrite"), "not an earlier vaekit export")
    assert (other / "keep.txt").read_text() == "mine"


def test_cli_one_line_errors(runs, tmp_path):
    assert_usage_error(run("export", tmp_path / "missing", "--out", tmp_path / "ex"), "run directory not found")
    assert_usage_error(run("export", runs["mlp"][0], "--format", "tflite", "--out", tmp_path / "ex"),
                       "--format must be onnx", "'tflite'")
    assert_usage_error(run("export", runs["mlp"][0], "--out", tmp_path / "ex", "--opset", "3"), "--opset")
    existing = tmp_path / "file.txt"
    existing.write_text("x")
    assert_usage_error(run("export", runs["mlp"][0], "--out", existing), "already exists", "--overwrite")
    assert_usage_error(run("export", runs["mlp"][0], "--out", existing, "--overwrite"), "not a folder")
    assert existing.read_text() == "x"
    assert not (tmp_path / "ex").exists()
    with pytest.raises(UsageError, match="not a vaekit ONNX export"):
        read_export(tmp_path)
