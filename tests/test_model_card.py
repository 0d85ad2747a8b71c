"""The model card (issue 15, item 4): every run directory gets README.md, written at the end of training and
rewritten by `vaekit report`, with the numbers of results.json/evaluation.json and their estimators; --overwrite
never removes a README.md vaekit did not write; pickles in place of weights are refused, naming why."""

import json
import pickle
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vaekit
import vaekit.runs as runs
from cli_helpers import assert_usage_error, run
from vaekit.evaluation.model_card import model_card, number_text, write_model_card

FIXTURES = Path(__file__).parent / "fixtures" / "runs_v0_1"

SETTINGS = dict(data="digits", latent_dim=3, hidden=[16], batch_size=256, epochs=2, seed=0, report_iwae_k=5)
FAST = ["--latent-dim", "3", "--hidden", "16", "--batch-size", "256", "--epochs", "1", "-q", "--report-iwae-k", "5"]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished digits run (tests that change it work on a copy)."""
    out = tmp_path_factory.mktemp("cards") / "digits-run"
    vaekit.train(out=out, **SETTINGS)
    return out


def _copy(src, tmp_path, name="r"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _card(folder):
    return (folder / "README.md").read_text(encoding="utf-8")


def _json(folder, name):
    return json.loads((folder / name).read_text())


def _check_usage(folder, tmp_path):
    """The card's "How to use" works as written: its Python block runs, its `vaekit sample` line writes samples."""
    card = _card(folder)
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(code.replace(f'vaekit.load("{folder.name}")', f"vaekit.load({str(folder)!r})"), namespace)
    assert namespace["x"].shape[0] == 16 and namespace["z"].shape == (16, namespace["model"].model.latent_dim)
    line = next(ln for ln in card.splitlines() if ln.startswith("vaekit sample "))
    args = shlex.split(line)[1:]
    args[1] = folder
    out = tmp_path / f"{folder.name}-{args[args.index('--out') + 1]}"
    args[args.index("--out") + 1] = out
    assert run(*args).exit_code == 0 and out.is_file()


def test_a_digits_run_has_a_card_with_its_fingerprint_estimators_and_numbers(done, tmp_path):
    card, info = _card(done), _json(done, "config.json")
    results, ev = _json(done, "results.json"), _json(done, "evaluation.json")
    assert card.splitlines()[0] == runs.CARD_MARK
    assert "# vaekit run `digits-run`" in card
    assert info["data"]["fingerprint"] in card and len(info["data"]["fingerprint"]) == 64
    assert f"vaekit {info['vaekit_version']} and PyTorch {info['torch_version']}" in card
    assert "1437 train · 180 validation · 180 test" in card  # digits' splits
    assert "3-dimensional Gaussian latent" in card and "bernoulli likelihood" in card and "an MLP" in card
    # settings that differ from the defaults, and only those
    assert "| `latent_dim` | `3` | `16` |" in card and "| `epochs` | `2` | `100` |" in card
    assert "`lr`" not in card and "`seed`" not in card
    # every number is the file's, with its estimator
    row = lambda q, v: f"| {q} | {number_text(v)} |"  # noqa: E731
    assert row("−ELBO of p(x)", ev["neg_elbo"]) in card and ev["neg_elbo"] == results["test"]["elbo"]
    assert row("−log p(x) ≤ −IWAE", ev["neg_iwae"]) in card
    assert f"IWAE, k = 5 importance samples, {ev['iwae_n']} of {ev['n']} examples" in card
    assert row("bits/dim", ev["bits_per_dim"]) in card
    assert f"| active units | {ev['active_units']} of 3 |" in card
    assert "ELBO (1 posterior sample)" in card
    for split in ("train", "validation", "test"):
        r = results[split]
        assert f"| {split} | {number_text(r['elbo'])} | {number_text(r['recon'])} | {number_text(r['kl'])} |" in card
    # the table cells escape the bar of p(x|z), so a Markdown table keeps its columns
    assert "reconstruction −log p(x\\|z) |" in card
    for w in ev["warnings"]:  # collapse / Bernoulli-on-continuous warnings, when the evaluation has them
        assert w in card
    assert any("Bernoulli likelihood on continuous targets" in w for w in ev["warnings"])  # digits are grey levels
    assert 'vaekit.load("digits-run")' in card and "vaekit sample digits-run" in card
    assert "## Safety" in card and "never unpickles" in card and "safetensors" in card
    _check_usage(done, tmp_path)


def test_the_card_is_written_without_the_report_too(tmp_path):
    out = tmp_path / "r"
    vaekit.train(out=out, report=False, **{**SETTINGS, "epochs": 1})
    card, results = _card(out), _json(out, "results.json")
    assert not (out / "evaluation.json").exists()
    assert "No `evaluation.json`" in card and f"| test | {number_text(results['test']['elbo'])} |" in card


def test_report_rewrites_the_card_with_its_new_numbers(done, tmp_path):
    out = _copy(done, tmp_path)
    (out / "README.md").write_text(runs.CARD_MARK + "\nstale\n")
    r = run("report", out, "--iwae-k", 7)
    assert r.exit_code == 0, r.output
    card, ev = _card(out), _json(out, "evaluation.json")
    assert "stale" not in card and ev["iwae_k"] == 7
    assert "k = 7 importance samples" in card and f"| {number_text(ev['neg_iwae'])} |" in card
    assert not list(out.glob(".README.md.*"))  # written through a temporary file, nothing left over


def test_conditional_and_m2_cards_say_p_x_given_y_and_accuracy(tmp_path):
    cvae = tmp_path / "cvae"
    vaekit.train(out=cvae, conditional=True, **{**SETTINGS, "epochs": 1})
    card = _card(cvae)
    assert "conditional on the label y (10 classes" in card and "likelihood p(x|y) given the true label" in card
    assert "−log p(x\\|y) ≤ −IWAE" in card and "--label 0" in card
    _check_usage(cvae, tmp_path)
    m2 = tmp_path / "m2"
    vaekit.train(out=m2, semi_supervised=True, labeled=50, **{**SETTINGS, "epochs": 1, "report_iwae_k": 2})
    card, results, ev = _card(m2), _json(m2, "results.json"), _json(m2, "evaluation.json")
    assert "(family `m2`, Kingma et al. 2014)" in card and "50 labelled training examples" in card
    assert f"| test accuracy | {number_text(results['test_accuracy'])} |" in card
    assert f"| −log p(x) ≤ (unconditional) | {number_text(ev['neg_iwae_marginal'])} |" in card
    assert "p(x|y)" in card and "−log p(x\\|y) ≤ −IWAE" in card
    _check_usage(m2, tmp_path)


def test_a_table_run_card_says_standardized_units(tmp_path):
    rows = np.random.default_rng(0).normal(size=(150, 4)).astype(np.float32) * [1, 10, 100, 0.1]
    data = tmp_path / "t.csv"
    data.write_text("a,b,c,d\n" + "\n".join(",".join(f"{v:.5f}" for v in r) for r in rows) + "\n")
    out = tmp_path / "table"
    vaekit.train(out=out, **{**SETTINGS, "data": str(data), "epochs": 1})
    card = _card(out)
    assert "**standardized columns**" in card and "Σ_j log σ_j" in card
    assert "`a`, `b`, `c`, `d`" in card and "kind | table" in card
    assert "losses are on standardized columns" in card  # results.json's note
    assert "samples.csv" in card
    _check_usage(out, tmp_path)


def test_overwrite_keeps_a_users_readme_and_replaces_vaekits(done, tmp_path):
    out = _copy(done, tmp_path)
    mine = "# My experiment\n\nNotes I keep with the run.\n"
    (out / "README.md").write_text(mine)
    r = run("train", "--data", "digits", "--out", out, "--overwrite", *FAST)
    assert r.exit_code == 0, r.output
    assert (out / "README.md").read_text() == mine  # never removed nor replaced
    assert "kept what vaekit did not write: README.md" in r.stderr
    card = (out / "MODEL_CARD.md").read_text()  # the card goes beside it
    assert card.startswith(runs.CARD_MARK) and "| `epochs` | `1` | `100` |" in card
    # vaekit's own card (marked) is replaced on the next --overwrite
    (out / "README.md").unlink()
    shutil.copy(done / "README.md", out / "README.md")
    r = run("train", "--data", "digits", "--out", out, "--overwrite", *FAST, "--latent-dim", "2")
    assert r.exit_code == 0, r.output
    assert "README.md" not in r.stderr and "MODEL_CARD.md" not in r.stderr
    assert "2-dimensional Gaussian latent" in _card(out)
    assert not (out / "MODEL_CARD.md").exists()  # vaekit's, removed by --overwrite


def test_a_users_readme_is_never_replaced_by_report(done, tmp_path):
    out = _copy(done, tmp_path)
    (out / "README.md").write_text("mine\n")
    (out / "MODEL_CARD.md").write_text("also mine\n")
    r = run("report", out, "--iwae-k", 2)
    assert r.exit_code == 0, r.output
    assert (out / "README.md").read_text() == "mine\n" and (out / "MODEL_CARD.md").read_text() == "also mine\n"
    assert "no model card written" in r.stderr


def test_a_card_of_ours_beside_a_users_readme_goes_once_the_readme_is_gone(done, tmp_path):
    out = _copy(done, tmp_path)
    info = _json(out, "config.json")
    (out / "README.md").write_text("mine\n")
    assert write_model_card(out, info) == out / "MODEL_CARD.md"
    (out / "README.md").unlink()
    assert write_model_card(out, info) == out / "README.md"
    assert not (out / "MODEL_CARD.md").exists()  # the stale copy of vaekit's card is removed


def test_report_gives_a_run_of_an_earlier_version_its_card(tmp_path):
    out = _copy(FIXTURES / "vae", tmp_path, "old")
    assert not (out / "README.md").exists()
    r = run("report", out, "--iwae-k", 2)
    assert r.exit_code == 0, r.output
    card, results = _card(out), _json(out, "results.json")
    assert f"| test | {number_text(results['test']['elbo'])} |" in card
    assert _json(out, "config.json")["data"]["fingerprint"] in card


def test_the_mark_must_be_the_first_line_of_a_regular_file(tmp_path):
    p = tmp_path / "README.md"
    p.write_text("# notes\n" + runs.CARD_MARK + "\n")
    assert not runs.is_vaekit_card(p)
    p.write_text(runs.CARD_MARK + "\r\nx")
    assert runs.is_vaekit_card(p)
    link = tmp_path / "link.md"
    link.symlink_to(p)
    assert not runs.is_vaekit_card(link) and not runs.is_vaekit_card(tmp_path / "missing.md")
    assert not runs.is_vaekit_card(tmp_path)


def test_report_on_a_read_only_run_still_refuses_before_computing_and_keeps_the_card(done, tmp_path, monkeypatch):
    out = _copy(done, tmp_path)
    before = _card(out)
    monkeypatch.setattr(runs, "_writable", lambda f: False)
    assert_usage_error(run("report", out, "--iwae-k", 5), "read-only", str(out))
    assert _card(out) == before


def test_a_card_from_a_damaged_evaluation_json_still_renders(done, tmp_path):
    out = _copy(done, tmp_path)
    (out / "evaluation.json").write_text("{not json")
    card = model_card(out, _json(out, "config.json"))
    assert "No `evaluation.json`" in card


# -- loading never unpickles, and says so -------------------------------------------------------------
@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_pickle_in_place_of_the_weights_is_refused_naming_why(done, tmp_path, how):
    out = _copy(done, tmp_path)
    weights = load_file(str(done / "model.safetensors"))
    if how == "torch.save":
        torch.save(weights, out / "model.safetensors")
        what = "zip archive"
    else:
        (out / "model.safetensors").write_bytes(pickle.dumps({k: v.numpy() for k, v in weights.items()}, protocol=4))
        what = "Python pickle (protocol 4)"
    for cmd in (("sample", out, "-n", 2, "--out", tmp_path / "s.npy"), ("evaluate", out)):
        assert_usage_error(run(*cmd), str(out / "model.safetensors"), what, "never unpickles")
    with pytest.raises(vaekit.errors.RunError, match="never unpickles"):
        vaekit.load(out)


def test_a_pt_file_handed_as_the_run_is_refused_and_an_extra_one_is_ignored(done, tmp_path):
    out = _copy(done, tmp_path)
    torch.save(load_file(str(done / "model.safetensors")), out / "model.pt")
    assert_usage_error(run("sample", out / "model.pt", "-n", 2, "--out", tmp_path / "s.npy"),
                       "model.pt is a zip archive", "never unpickles", "run directory")
    (tmp_path / "weights.pth").write_text("not even a pickle")
    assert_usage_error(run("sample", tmp_path / "weights.pth", "-n", 2, "--out", tmp_path / "s.npy"),
                       "a .pth file", "never unpickles")
    # a model.pt beside the safetensors weights is not read: the run loads from model.safetensors as always
    trained = vaekit.load(out)
    ref = vaekit.load(done)
    assert torch.equal(trained.sample(3, seed=1), ref.sample(3, seed=1))


def test_a_valid_safetensors_file_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "w.safetensors"
    for n in range(500, 1500):  # a header of 0x280-0x5ff bytes: its length starts with 0x80 and a protocol byte
        save_file({"w": torch.zeros(1)}, str(p), metadata={"pad": "x" * n})
        head = p.read_bytes()[:2]
        if head[0] == 0x80 and 2 <= head[1] <= 5:
            break
    else:
        pytest.fail("no header length with that prefix")
    assert runs.pickle_kind(p) == "a Python pickle (protocol 2)"  # only the explanation of a refusal uses it
    assert set(runs.load_tensors(p)) == {"w"}
    assert runs.read_tensor_metadata(p)["pad"] == "x" * n
