"""Semi-supervised M2: the unlabelled term is the exact expectation over y, training learns from few labels,
and the run behaves like a conditional run plus a classifier."""

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import vaekit
from vaekit.apps.semisupervised import M2, Classifier
from vaekit.cli import app
from vaekit.config import make_config
from vaekit.model import build_model

runner = CliRunner()


def _tiny_m2(k=3, shape=(5,)):
    torch.manual_seed(0)
    cfg = make_config(latent_dim=2, hidden=[6], likelihood="bernoulli")
    return M2(build_model(cfg, shape, k), Classifier(shape, [6], k), k)


def test_unlabelled_term_equals_brute_force_expectation_over_y():
    m2 = _tiny_m2()
    x = torch.rand(4, 5)
    eps = torch.randn(4, 2)
    got = m2.unlabelled_loss(x, eps)
    q = torch.softmax(m2.classifier(x), 1)
    brute = torch.zeros(4)
    for i in range(4):
        for y in range(3):
            L = m2.labelled_loss(x[i:i + 1], torch.tensor([y]), eps[i:i + 1])[0]
            brute[i] += q[i, y] * L
        brute[i] += (q[i] * q[i].log()).sum()  # - H(q(y|x))
    torch.testing.assert_close(got, brute, rtol=1e-5, atol=1e-5)


def test_labelled_term_is_conditional_neg_elbo_plus_log_k():
    m2 = _tiny_m2()
    x, y = torch.rand(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    c = torch.nn.functional.one_hot(y, 3).float()
    torch.manual_seed(5)
    L = m2.labelled_loss(x, y)
    torch.manual_seed(5)
    out = m2.vae(x, c=c)
    torch.testing.assert_close(L, out.recon + out.kl + math.log(3))


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("m2") / "r"
    r = runner.invoke(app, ["train", "--data", "digits", "--semi-supervised", "--labeled", "100", "--epochs", "25",
                            "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    return out


def test_m2_beats_chance_by_far_and_classifies(m2_run, tmp_path):
    import json

    res = json.loads((m2_run / "results.json").read_text())
    assert res["labeled"] == 100 and res["test_accuracy"] > 0.8
    r = runner.invoke(app, ["classify", str(m2_run), "--data", "digits", "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0 and "accuracy" in r.stdout
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0].startswith("index,predicted,p_0") and len(lines) == 1798
    probs = np.array([[float(v) for v in line.split(",")[2:]] for line in lines[1:]])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    # the generative half is a label-conditional VAE
    assert runner.invoke(app, ["sample", str(m2_run), "--label", "4", "-n", "8",
                               "--out", str(tmp_path / "s.npy")]).exit_code == 0
    assert (m2_run / "classes.png").is_file()


def test_m2_errors(m2_run, tmp_path):
    r = runner.invoke(app, ["train", "--data", "digits", "--semi-supervised", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "--labeled" in r.stderr
    r = runner.invoke(app, ["train", "--data", "digits", "--semi-supervised", "--labeled", "5000",
                            "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "out of range" in r.stderr
    plain = tmp_path / "plain"
    vaekit.train("digits", out=plain, latent_dim=2, hidden=[8], epochs=1, report=False)
    r = runner.invoke(app, ["classify", str(plain), "--data", "digits", "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 2 and "semi-supervised" in r.stderr
    r = runner.invoke(app, ["train", "--out", str(m2_run), "--resume"])
    assert r.exit_code == 2


def test_partly_labelled_npz_with_minus_one(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    y = d.target.copy()
    rng = np.random.default_rng(0)
    y[rng.random(len(y)) > 0.1] = -1  # about 10% labelled
    np.savez(tmp_path / "d.npz", x=(d.images / 16.0).astype(np.float32), y=y)
    out = tmp_path / "r"
    r = runner.invoke(app, ["train", "--data", str(tmp_path / "d.npz"), "--semi-supervised", "--epochs", "10",
                            "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    import json

    res = json.loads((out / "results.json").read_text())
    known_train = json.loads((out / "config.json").read_text())["semi_supervised"]["labeled"]
    assert 80 < known_train < 200 and res["test_accuracy"] > 0.6
    r = runner.invoke(app, ["train", "--data", str(tmp_path / "d.npz"), "--conditional", "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "-1" in r.stderr


def test_classifier_regularisation_settings_reach_the_classifier(tmp_path):
    out = tmp_path / "m2"
    r = runner.invoke(app, ["train", "--data", "digits", "--semi-supervised", "--labeled", "50", "--epochs", "1",
                            "--latent-dim", "2", "--hidden", "8", "--classifier-dropout", "0.25",
                            "--classifier-noise", "0", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    trained = vaekit.load(out)
    drops = [m.p for m in trained.classifier.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.25]
    assert trained.config.classifier_noise == 0.0 and make_config().classifier_dropout == 0.5
    r = runner.invoke(app, ["train", "--data", "digits", "--semi-supervised", "--labeled", "50",
                            "--classifier-dropout", "1.5", "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "--classifier-dropout" in r.stderr and not (tmp_path / "bad").exists()


def test_m2_resume_continues_exactly(tmp_path):
    from vaekit.runs import load_tensors

    kw = dict(semi_supervised=True, labeled=50, latent_dim=2, hidden=[8], epochs=3, patience=None, report=False)
    vaekit.train("digits", out=tmp_path / "full", **kw)

    def interrupt(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vaekit.train("digits", out=tmp_path / "cut", on_epoch_end=interrupt, **kw)
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 2
    vaekit.train(out=tmp_path / "cut", resume=True)
    a, b = load_tensors(tmp_path / "full" / "model.safetensors"), load_tensors(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [json.loads(r)["epoch"] for r in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    r = runner.invoke(app, ["train", "--resume", "--out", str(tmp_path / "cut")])
    assert r.exit_code == 2 and "already finished" in r.stderr


def test_m2_run_writes_report_samples_evaluation_and_report_command_works(tmp_path):
    out = tmp_path / "m2"
    r = runner.invoke(app, ["train", "--data", "digits", "--semi-supervised", "--labeled", "50", "--epochs", "2",
                            "--latent-dim", "2", "--hidden", "16", "--report-iwae-k", "4", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    for name in ("report.html", "samples.png", "reconstructions.png", "evaluation.json", "classes.png"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text()
    assert 'id="curves"' in html and 'id="samples"' in html
    (out / "report.html").unlink()
    r = runner.invoke(app, ["report", str(out), "--iwae-k", "3"])
    assert r.exit_code == 0, r.output
    assert (out / "report.html").is_file()
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["iwae_k"] == 3 and ev["n"] > 0
    assert ev["likelihood_of"] == "p(x|y)" and ev["neg_iwae_marginal"] <= ev["neg_iwae"] + math.log(10) + 0.5
    r = runner.invoke(app, ["evaluate", str(out), "--iwae-k", "3"])
    assert r.exit_code == 0, r.output
    assert "-log p(x|y) <= -IWAE" in r.stdout and "bits/dim given y" in r.stdout
    assert "(unconditional)" in r.stdout
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["iwae_k"] == 3 and "exact sum over 10 labels" in ev["marginal_estimator"]
