"""Training behaviour: the loss drops, schedules and warm-up do what they say, early stopping restores the
best weights, resume reproduces an uninterrupted run, and a non-finite loss stops with a clear error."""

import json

import pytest
import torch

import vaekit
from vaekit.data import load_source, split_dataset
from vaekit.errors import TrainingError
from vaekit.runs import load_tensors
from vaekit.evaluation import evaluate_elbo


def _metrics(run):
    return [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]


def test_validation_loss_drops_clearly_on_digits():
    ds = load_source("digits")
    _, val, _ = split_dataset(ds, seed=0)
    torch.manual_seed(0)
    from vaekit.config import make_config
    from vaekit.model import build_model

    start = evaluate_elbo(build_model(make_config(latent_dim=8, hidden=[128], likelihood="bernoulli"), ds.shape),
                          val.x)["elbo"]
    trained = vaekit.train("digits", latent_dim=8, hidden=[128], batch_size=32, epochs=15, seed=0)
    end = trained.result.best_val_loss
    # Untrained: ~64 * log 2 = 44 nats; a trained model reaches well under 30.
    assert start > 40
    assert end < start - 12, (start, end)
    assert trained.result.history[-1]["val_recon"] < trained.result.history[0]["val_recon"]


def test_resume_after_interruption_matches_uninterrupted(tmp_path, tiny):
    settings = dict(tiny, epochs=4, dropout=0.1, lr_schedule="exponential", kl_warmup=2)
    full = vaekit.train(out=tmp_path / "full", **settings)

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vaekit.train(out=tmp_path / "cut", on_epoch_end=stop_after_two, **settings)
    assert len(_metrics(tmp_path / "cut")) == 2
    resumed = vaekit.train(out=tmp_path / "cut", resume=True)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert _metrics(tmp_path / "cut") == [
        {**r, "seconds": c["seconds"]} for r, c in zip(_metrics(tmp_path / "full"), _metrics(tmp_path / "cut"))]


def test_resume_is_exact_when_interrupted_between_the_two_checkpoint_files(tmp_path, tiny, monkeypatch):
    from vaekit.training import trainer as training  # the module that writes the checkpoint
    from vaekit.runs import STATE_JSON

    settings = dict(tiny, epochs=4)
    full = vaekit.train(out=tmp_path / "full", **settings)
    real_write_json = training.write_json

    def interrupted_write(path, obj):  # epoch 3's tensors are on disk, its JSON never gets written
        if str(path).endswith(STATE_JSON) and obj["epoch"] == 3:
            raise KeyboardInterrupt
        real_write_json(path, obj)

    monkeypatch.setattr(training, "write_json", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        vaekit.train(out=tmp_path / "cut", **settings)
    monkeypatch.setattr(training, "write_json", real_write_json)
    resumed = vaekit.train(out=tmp_path / "cut", resume=True)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert [r["epoch"] for r in _metrics(tmp_path / "cut")] == [1, 2, 3, 4]


def test_early_stopping_restores_best_weights(tmp_path, tiny):
    # min_delta so large that nothing after epoch 1 counts as an improvement.
    trained = vaekit.train(out=tmp_path / "r", **dict(tiny, epochs=10, patience=2, min_delta=1e9))
    r = trained.result
    assert r.stopped_early and r.epochs_run == 3 and r.best_epoch == 1
    history = _metrics(tmp_path / "r")
    assert len(history) == 3
    # the weights in use are those of epoch 1: their validation loss is the recorded best
    loaded = vaekit.load(tmp_path / "r")
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, trained.model.state_dict()[k].cpu())
    assert r.best_val_loss == history[0]["val_loss"]


@pytest.mark.parametrize("schedule,expected", [
    ("exponential", [1e-2, 5e-3, 2.5e-3, 1.25e-3]),
    ("step", [1e-2, 1e-2, 5e-3, 5e-3]),
])
def test_lr_schedules(tiny, schedule, expected):
    t = vaekit.train(**dict(tiny, epochs=4, lr=1e-2, lr_schedule=schedule, lr_gamma=0.5, lr_step=2, patience=None))
    assert [row["lr"] for row in t.result.history] == pytest.approx(expected)


def test_cosine_schedule_anneals_to_zero(tiny):
    t = vaekit.train(**dict(tiny, epochs=4, lr=1e-2, lr_schedule="cosine", patience=None))
    lrs = [row["lr"] for row in t.result.history]
    assert lrs[0] == pytest.approx(1e-2) and all(a > b for a, b in zip(lrs, lrs[1:]))


def test_plateau_schedule_cuts_lr_when_validation_stalls(tiny):
    # min_delta so large that only epoch 1 improves; the plateau patience is half the early-stopping one (2),
    # so the rate is cut after the third stalled epoch (4) and shows from epoch 5 on.
    t = vaekit.train(**dict(tiny, epochs=6, lr=1e-2, lr_schedule="plateau", patience=5, min_delta=1e9, lr_gamma=0.1))
    lrs = [row["lr"] for row in t.result.history]
    assert lrs == pytest.approx([1e-2, 1e-2, 1e-2, 1e-2, 1e-3, 1e-3])


def test_kl_warmup_ramps_beta_linearly(tiny):
    t = vaekit.train(**dict(tiny, epochs=5, beta=2.0, kl_warmup=4, patience=None))
    assert [row["beta"] for row in t.result.history] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0])


def test_non_finite_loss_names_epoch_and_step_and_keeps_checkpoint(tmp_path, tiny):
    def poison(row):
        if row["epoch"] == 1:
            with torch.no_grad():
                for p in trained_model[0].parameters():
                    p.fill_(float("nan"))

    trained_model = []
    import vaekit.api as api

    orig = api.Trainer.__init__

    def grab(self, model, *a, **k):
        trained_model.append(model)
        orig(self, model, *a, **k)

    api.Trainer.__init__ = grab
    try:
        with pytest.raises(TrainingError, match=r"epoch 2, step 1.*last good checkpoint \(epoch 1\)"):
            vaekit.train(out=tmp_path / "r", on_epoch_end=poison, **dict(tiny, epochs=4))
    finally:
        api.Trainer.__init__ = orig
    weights = load_tensors(tmp_path / "r" / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert len(_metrics(tmp_path / "r")) == 1
    assert json.loads((tmp_path / "r" / "trainer_state.json").read_text())["epoch"] == 1


def test_same_seed_same_weights(tiny):
    a = vaekit.train(**dict(tiny, epochs=2, dropout=0.2))
    b = vaekit.train(**dict(tiny, epochs=2, dropout=0.2))
    c = vaekit.train(**dict(tiny, epochs=2, dropout=0.2, seed=1))
    sa, sb, sc = (m.model.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("extra", [dict(model="mlp"), dict(model="conv", hidden=[16]),
                                   dict(likelihood="gaussian", dropout=0.2)])
def test_save_then_load_gives_identical_outputs(tmp_path, tiny, extra):
    trained = vaekit.train(out=tmp_path / "r", **dict(tiny, epochs=2, **extra))
    loaded = vaekit.load(tmp_path / "r")
    x = load_source("digits").x[:50]
    assert torch.equal(trained.encode(x), loaded.encode(x))
    assert torch.equal(trained.reconstruct(x), loaded.reconstruct(x))
    assert torch.equal(trained.sample(5, seed=3), loaded.sample(5, seed=3))
    z = torch.randn(4, tiny["latent_dim"])
    assert torch.equal(trained.decode(z), loaded.decode(z))


def test_cyclical_beta_schedule(tiny):
    from vaekit.config import make_config
    from vaekit.training import beta_at

    cfg = make_config(epochs=4, beta=1.0, kl_schedule="cyclical", kl_cycles=2, kl_ratio=0.5)
    # 4 epochs x 10 steps, 2 cycles of 20 steps: ramp over 10 steps, hold for 10, restart
    betas = [beta_at(cfg, s, 10) for s in range(1, 41)]
    assert betas[0] == 0.0 and betas[5] == pytest.approx(0.5) and betas[10:20] == [1.0] * 10
    assert betas[20] == 0.0 and betas[30:] == [1.0] * 10
    t = vaekit.train(**dict(tiny, epochs=4, kl_schedule="cyclical", kl_cycles=2, kl_ratio=0.5, patience=None))
    # digits: 23 steps per epoch, cycles of 46 steps; the ramp's last step (23) has beta = 22/23
    assert [r["beta"] for r in t.result.history] == pytest.approx([22 / 23, 1.0, 22 / 23, 1.0])


def test_free_bits_gives_no_gradient_below_the_floor():
    from vaekit.config import make_config
    from vaekit.model import build_model

    cfg = make_config(latent_dim=4, hidden=[], likelihood="bernoulli")
    model = build_model(cfg, (6,))
    with torch.no_grad():
        head = model.encoder.head
        head.weight.zero_()
        head.bias.zero_()
        head.bias[0] = 3.0  # dim 0: mean 3 -> KL 4.5 nats, above the floor of 0.5
        head.bias[1:4] = 0.5  # dims 1-3: mean 0.5 -> KL 0.125 nats, below it
    x = torch.rand(16, 6)
    torch.manual_seed(0)
    out = model(x, beta=1.0, free_bits=0.5)
    # the decoder's reconstruction term also reaches the encoder: compare with the KL-free loss
    kl_grad = torch.autograd.grad(out.loss - out.recon.mean(), head.bias)[0]
    assert kl_grad[0] == pytest.approx(3.0)  # d(mu^2/2)/d mu
    assert torch.all(kl_grad[1:4] == 0) and torch.all(kl_grad[4:] == 0)
    torch.manual_seed(0)
    plain = model(x, beta=1.0)
    g_plain = torch.autograd.grad(plain.loss - plain.recon.mean(), head.bias)[0]
    assert g_plain[0] == pytest.approx(3.0) and torch.allclose(g_plain[1:4], torch.full((3,), 0.5))
    # the reported KL is the true one, not the floored objective
    assert float(out.kl.detach().mean()) == pytest.approx(4.5 + 3 * 0.125)


def test_binarization_static_and_dynamic(tmp_path, tiny):
    import json

    for mode in ("static", "dynamic"):
        t = vaekit.train(out=tmp_path / mode, **dict(tiny, epochs=2, binarize=mode))
        assert t.config.likelihood == "bernoulli"
        res = vaekit.evaluate(tmp_path / mode, iwae_k=10)
        assert res["binarized"].startswith(mode)
        assert not any("not a normalized" in w for w in res["warnings"])
        saved = json.loads((tmp_path / mode / "results.json").read_text())
        assert saved["binarized"] == mode
        # the test split is binarized the same way in training's results and in evaluate
        assert abs(saved["test"]["elbo"] - res["neg_elbo"]) < 1.0
    with pytest.raises(vaekit.errors.UsageError, match="likelihood"):
        vaekit.train(**dict(tiny, binarize="static", likelihood="gaussian"))


def test_bf16_autocast_trains(tiny):
    t = vaekit.train(**dict(tiny, epochs=4, precision="bf16", patience=None, batch_size=32))
    h = t.result.history
    assert h[-1]["val_loss"] < h[0]["val_loss"] and all(r["val_loss"] < 60 for r in h)


def test_compile_falls_back_to_eager_when_unavailable(tiny, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        t = vaekit.train(**dict(tiny, epochs=1, compile=True))
    ref = vaekit.train(**dict(tiny, epochs=1))
    assert all(torch.equal(a, b) for a, b in zip(t.model.state_dict().values(), ref.model.state_dict().values()))
