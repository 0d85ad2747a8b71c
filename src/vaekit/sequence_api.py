"""The run of the ``seq-vae`` family: build, train through the one :class:`~vaekit.training.Trainer` (early
stopping on the validation −ELBO per string), then ``results.json``: the −ELBO per string of the validation and
test strings and how many test strings greedy decoding of their posterior mean gives back exactly."""

from __future__ import annotations

from typing import Any

import torch

from .families.seq_vae import SeqVAEFamily, sequence_bound
from .runs import RESULTS, WEIGHTS, prepare_run_dir, save_tensors, write_json
from .trained import TrainedVAE
from .training import Trainer

#: test strings whose exact reconstruction results.json reports (greedy decoding is one pass per token)
RECONSTRUCTION_STRINGS = 1000


def train_sequences(prep: Any, info: dict, ctx: Any) -> TrainedVAE:
    """Train a ``seq-vae`` run (see :func:`vaekit.api.train`) and write its results; the vocabulary, tokenizer
    and maximum length go into ``config.json["data"]`` so the run reloads with them."""
    cfg, out = prep.cfg, ctx.out
    vocab = prep.ds.vocab
    if not ctx.resume:
        info["data"].update(vocab=vocab.tokens, tokenizer=vocab.tokenizer, max_length=int(prep.shape[0]))
    if out is not None and not ctx.resume:
        prepare_run_dir(out, ctx.overwrite, info, ctx.held)
    family = SeqVAEFamily()
    torch.manual_seed(cfg.seed)
    model = family.build(cfg, len(info["data"]["vocab"]), int(info["data"]["max_length"]))
    trainer = Trainer(model, cfg, ctx.device, run_dir=out, progress=ctx.progress, on_epoch_end=ctx.on_epoch_end,
                      family=family)
    if ctx.resume and not ctx.restart:
        trainer.load_checkpoint()
    result = trainer.fit(prep.splits[0], prep.splits[1])
    trained = TrainedVAE(trainer.model, cfg, info, out, None, result)
    if out is not None:
        save_tensors(out / WEIGHTS, trained.model.state_dict())
        write_json(out / RESULTS, sequence_results(trained, prep.splits, result))
        from .sequence_report import end_of_sequence_run
        from .tasks.molecule_eval import END_OF_TRAINING_REFERENCE, END_OF_TRAINING_SAMPLES

        end_of_sequence_run(trained, ctx.end.get("report", True), END_OF_TRAINING_SAMPLES, END_OF_TRAINING_REFERENCE)
        trainer.save_checkpoint(finished=True)
    return trained


def sequence_results(trained: TrainedVAE, splits: Any, result: Any) -> dict[str, Any]:
    """``results.json`` of a seq-vae run."""
    from .tasks.sequences import exact_reconstruction

    model, dev = trained.model, trained.device
    out: dict[str, Any] = {
        "units": "nats per string (one-sample -ELBO; categorical likelihood of each token up to and including "
                 "<eos>, padding excluded)",
        "epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "stopped_early": result.stopped_early}
    for name, split in zip(("validation", "test"), splits[1:]):
        out[name] = sequence_bound(model, split.x.to(dev)) if len(split) else None
    test = splits[2].x[:RECONSTRUCTION_STRINGS]
    if len(test):
        out["test"]["reconstructed_exactly"] = exact_reconstruction(trained, test)
        out["test"]["reconstruction_strings"] = len(test)
    return out
