"""Latent-space tools and the HTML report."""

import base64
import io
import re

import pytest
import torch
from PIL import Image

import vaekit
from vaekit.config import make_config
from vaekit.latent import lerp, manifold, project_2d, slerp, traversal
from vaekit.model import build_model


def test_lerp_and_slerp_endpoints_and_norms():
    z0, z1 = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 3.0, 0.0])
    for f in (lerp, slerp):
        p = f(z0, z1, 5)
        torch.testing.assert_close(p[0], z0)
        torch.testing.assert_close(p[-1], z1)
    # spherical keeps the norm of equal-norm endpoints; linear cuts the corner
    torch.testing.assert_close(slerp(z0, z1, 5).norm(dim=1), torch.full((5,), 3.0))
    assert lerp(z0, z1, 5)[2].norm() < 2.2
    torch.testing.assert_close(slerp(z0, 2 * z0, 3), lerp(z0, 2 * z0, 3))  # parallel: falls back to the line


def test_traversal_moves_one_dimension_at_a_time():
    model = build_model(make_config(latent_dim=3, hidden=[], likelihood="gaussian", gaussian_std=1.0), (4,))
    out = traversal(model, dims=[2, 0], steps=5, span=3.0)
    assert out.shape == (10, 4)
    W, b = model.decoder.head.weight.detach(), model.decoder.head.bias.detach()
    values = torch.linspace(-3, 3, 5)
    torch.testing.assert_close(out[:5], values[:, None] * W[:, 2] + b)  # linear decoder: row r sweeps dim dims[r]
    torch.testing.assert_close(out[5:], values[:, None] * W[:, 0] + b)


def test_manifold_and_projection():
    model = build_model(make_config(latent_dim=2, hidden=[8], likelihood="bernoulli"), (1, 4, 4))
    assert manifold(model, 5).shape == (25, 1, 4, 4)
    mu = torch.randn(50, 2)
    xy, axis = project_2d(mu)
    assert axis == "z" and (xy == mu.numpy()).all()
    xy, axis = project_2d(torch.randn(50, 6))
    assert axis == "PC" and xy.shape == (50, 2)


def _images(html):
    return re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)


@pytest.mark.parametrize("latent_dim", [2, 5])
def test_report_renders_every_section(tmp_path, latent_dim):
    vaekit.train("digits", out=tmp_path / "r", latent_dim=latent_dim, hidden=[32], batch_size=64, epochs=3,
                 report_iwae_k=20)
    html = (tmp_path / "r" / "report.html").read_text()
    for section in ("warnings", "metrics", "curves", "samples", "reconstructions", "interpolations",
                    "traversals", "latent-map", "kl-per-dim", "config"):
        assert f'id="{section}"' in html, section
    assert ('id="manifold"' in html) == (latent_dim == 2)
    images = _images(html)
    assert len(images) == html.count("<img ")  # every image is embedded, none points elsewhere
    for b64 in images:
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.verify()
        assert img.size[0] > 20 and img.size[1] > 20
    assert "IWAE k=20" in html and "http" not in html.replace("http-equiv", "")
    ev = (tmp_path / "r" / "evaluation.json").read_text()
    assert '"iwae_k": 20' in ev


def test_report_command_and_interpolate_command(tmp_path):
    from typer.testing import CliRunner

    from vaekit.cli import app

    vaekit.train("digits", out=tmp_path / "r", latent_dim=3, hidden=[16], batch_size=256, epochs=1, report=False)
    assert not (tmp_path / "r" / "report.html").exists()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "r"), "--iwae-k", "5"])
    assert r.exit_code == 0, r.output
    assert len(_images((tmp_path / "r" / "report.html").read_text())) >= 7
    out = tmp_path / "i.npy"
    r = CliRunner().invoke(app, ["interpolate", str(tmp_path / "r"), "--data", "digits", "--from", "0", "--to", "9",
                                 "--steps", "6", "--out", str(out), "--method", "spherical"])
    assert r.exit_code == 0, r.output
    import numpy as np

    path = np.load(out)
    loaded = vaekit.load(tmp_path / "r")
    x = loaded.load_data("digits").x
    ends = loaded.decode(loaded.encode(x[[0, 9]]))
    np.testing.assert_allclose(path[[0, -1]], ends.numpy(), atol=1e-5)
    r = CliRunner().invoke(app, ["interpolate", str(tmp_path / "r"), "--data", "digits", "--from", "0", "--to",
                                 "5000", "--out", str(tmp_path / "j.png")])
    assert r.exit_code == 2 and "out of range" in r.stderr


def test_traverse_and_latent_map_commands(tmp_path):
    from typer.testing import CliRunner

    from vaekit.cli import app

    vaekit.train("digits", out=tmp_path / "r", latent_dim=3, hidden=[16], batch_size=256, epochs=1, report=False)
    run = str(tmp_path / "r")
    r = CliRunner().invoke(app, ["traverse", run, "--dims", "0,2", "--steps", "5", "--out", str(tmp_path / "t.npy")])
    assert r.exit_code == 0, r.output
    import numpy as np

    assert np.load(tmp_path / "t.npy").shape == (10, 1, 8, 8)
    r = CliRunner().invoke(app, ["traverse", run, "--dims", "7", "--out", str(tmp_path / "t.png")])
    assert r.exit_code == 2 and "--dims" in r.stderr
    for method in ("pca", "tsne"):
        out = tmp_path / f"m-{method}.png"
        r = CliRunner().invoke(app, ["latent-map", run, "--data", "digits", "--limit", "300", "--method", method,
                                     "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert Image.open(out).size[0] > 200


def test_train_summary_results_json_and_report_show_the_same_stored_numbers(tmp_path):
    """Each reported number is computed once (results.json) and shown everywhere: the train summary line,
    evaluation.json and report.html, with one test −ELBO row and the estimator named."""
    import json

    from typer.testing import CliRunner

    from vaekit.cli import app

    out = tmp_path / "r"
    r = CliRunner().invoke(app, ["train", "--data", "digits", "--latent-dim", "2", "--hidden", "16", "--epochs", "2",
                                 "--report-iwae-k", "5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "IWAE k=5" in r.stderr  # the report's progress bar (off with -q)
    res = json.loads((out / "results.json").read_text())
    ev = json.loads((out / "evaluation.json").read_text())
    val, test = res["validation"], res["test"]
    assert f"best validation -ELBO {val['elbo']:.2f} nats" in r.stdout
    assert f"test -ELBO {test['elbo']:.2f} nats" in r.stdout and "1-sample ELBO" in r.stdout
    assert (ev["neg_elbo"], ev["recon_nll"], ev["kl"]) == (test["elbo"], test["recon"], test["kl"])
    assert f"-log p(x) <= {ev['neg_iwae']:.2f} nats (IWAE k=5 on " in r.stdout
    assert (ev["report_plan"]["k"], ev["report_plan"]["n"], ev["iwae_n"]) == (5, ev["n"], ev["n"])
    html = (out / "report.html").read_text()
    assert html.count("test −ELBO") == 1 and f"{test['elbo']:.3f}" in html and f"{val['elbo']:.3f}" in html
    # vaekit evaluate on the run's own test split shows the stored number too, not a second estimate
    r = CliRunner().invoke(app, ["evaluate", str(out), "--iwae-k", "0", "--seed", "7", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["neg_elbo"] == test["elbo"]
    r = CliRunner().invoke(app, ["evaluate", str(out), "--iwae-k", "0", "--split", "validation", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["neg_elbo"] == val["elbo"]
    fresh = vaekit.evaluate(out, torch.as_tensor(vaekit.load(out).load_data("digits").x[:50]))  # other data
    assert "same_data_as_training" not in fresh and "results.json" not in fresh["elbo_estimator"]


def test_traverse_of_a_conditional_run_decodes_under_the_label_given(tmp_path):
    """A conditional run's traversal needs a condition: --label picks it (different labels, different rows);
    without one it is a one-line error naming the flag (it used to be an internal error)."""
    import numpy as np
    from typer.testing import CliRunner

    from vaekit.cli import app

    vaekit.train("digits", out=tmp_path / "r", conditional=True, latent_dim=2, hidden=[16], batch_size=256,
                 epochs=1, report=False)
    run = str(tmp_path / "r")
    grids = []
    for label in ("1", "7"):
        out = tmp_path / f"t{label}.npy"
        r = CliRunner().invoke(app, ["traverse", run, "--steps", "3", "--label", label, "--out", str(out)])
        assert r.exit_code == 0, r.output
        grids.append(np.load(out))
    assert grids[0].shape == (6, 1, 8, 8) and np.abs(grids[0] - grids[1]).mean() > 1e-3
    r = CliRunner().invoke(app, ["traverse", run, "--out", str(tmp_path / "t.npy")])
    assert r.exit_code == 2 and "--label" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = CliRunner().invoke(app, ["traverse", run, "--label", "nine", "--out", str(tmp_path / "t.npy")])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
