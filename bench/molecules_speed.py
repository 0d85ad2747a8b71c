"""seq-vae speed on MOSES SMILES: tokenizing, training molecules/s through vaekit's Trainer against the same GRU
model in a plain PyTorch loop (same batches, same loss), and sampling molecules/s; for vaekit's defaults and for
the MOSES VAE's sizes, so the README's "an epoch of 250k molecules" is a measured number. Rates are per CPU-second
of this process (``time.process_time``; with one torch thread, what one dedicated core gives), so other processes
on a shared machine slow the wall clock but not the numbers; the wall-clock training rate is shown beside them.

    python -m bench.molecules_speed --wheel molsets-0.3.1-py3-none-any.whl [--n 4096] [--configs vaekit,moses]

The wheel is the molsets package (``pip download --no-deps molsets``); only its ``train.csv.gz`` is read (vaekit
does not depend on molsets). ``--data FILE.smi`` reads a file of SMILES instead.
"""

from __future__ import annotations

import argparse
import gzip
import io
import time
import zipfile

#: the MOSES VAE's sizes (moses/vae/config.py: encoder GRU 256 one direction, decoder GRU 512 × 3, latent 128;
#: its embedding is one-hot, vocabulary-sized: 32 here is about that size); the encoder here is bidirectional
#: 2 × 128 (vaekit's default) in both configs, the decoder is what differs
CONFIGS = {"vaekit": dict(hidden=[128, 256], decoder_layers=2, embedding_dim=32),
           "moses": dict(hidden=[128, 512], decoder_layers=3, embedding_dim=32)}


def read_moses(wheel: str, n: int) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        raw = gzip.decompress(z.read("moses/dataset/data/train.csv.gz")).decode()
    lines = io.StringIO(raw).read().splitlines()
    col = lines[0].split(",").index("SMILES")
    return [ln.split(",")[col] for ln in lines[1: n + 1]]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.molecules_speed", description=__doc__.splitlines()[0])
    p.add_argument("--wheel", help="molsets wheel holding moses/dataset/data/train.csv.gz")
    p.add_argument("--data", help="a .smi file instead of --wheel")
    p.add_argument("--n", type=int, default=4096, help="training molecules timed (a multiple of 512 is best)")
    p.add_argument("--sample", type=int, default=1024, help="molecules sampled")
    p.add_argument("--configs", default="vaekit,moses")
    args = p.parse_args(argv)

    import torch
    from torch import nn

    from bench.common import env_info, print_table, write_result
    from vaekit.config import make_config
    from vaekit.data.dataset import Split
    from vaekit.data.sequences import Vocabulary, encode, tokenize_smiles
    from vaekit.families.seq_vae import SeqVAEFamily, sequence_elbo, trim
    from vaekit.training import Trainer

    if args.data:
        smiles = [ln.split()[0] for ln in open(args.data) if ln.strip()][: args.n]
    else:
        smiles = read_moses(args.wheel, args.n)
    t = time.perf_counter()
    tokens = [tokenize_smiles(s) for s in smiles]
    voc = Vocabulary.fit(tokens, "smiles")
    x = encode(tokens, voc)
    tok_rate = len(smiles) / (time.perf_counter() - t)
    rows, raw = [], {"tokenize_per_s": tok_rate, "vocab": len(voc), "length": x.shape[1]}
    for name in args.configs.split(","):
        fam = SeqVAEFamily()
        cfg = fam.defaults(make_config(data="x.smi", family="seq-vae", epochs=1, patience=None,
                                       **CONFIGS[name]))
        # the plain loop: the same model class, batches, loss, clipping and Adam; then one epoch through the
        # Trainer (validation on 2 molecules, so it costs nothing); one warm-up batch each first
        torch.manual_seed(0)
        model = fam.build(cfg, len(voc), x.shape[1])
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(cfg.seed)  # the Trainer's shuffling: the same batches in both
        torch.randperm(cfg.batch_size, generator=gen)  # (its warm-up epoch's draw)
        perm = torch.randperm(len(x), generator=gen)

        def plain_epoch(batches):
            for i in batches:
                loss = sequence_elbo(model, trim(x[perm[i: i + cfg.batch_size]]), beta=1.0)[0]
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()

        plain_epoch([0])  # warm-up: its weights differ from the Trainer's below, its cost per step does not
        t, c = time.perf_counter(), time.process_time()
        plain_epoch(range(0, len(x), cfg.batch_size))
        plain_rate, plain_cpu = len(x) / (time.perf_counter() - t), len(x) / (time.process_time() - c)
        torch.manual_seed(0)
        trainer = Trainer(fam.build(cfg, len(voc), x.shape[1]), cfg, torch.device("cpu"), progress=False, family=fam)
        trainer.fit(Split(x[: cfg.batch_size]), Split(x[:2]))  # warm-up epoch of one batch
        trainer.cfg = cfg.model_copy(update={"epochs": 2})
        t, c = time.perf_counter(), time.process_time()
        trainer.fit(Split(x), Split(x[:2]))
        vaekit_rate, vaekit_cpu = len(x) / (time.perf_counter() - t), len(x) / (time.process_time() - c)
        model.eval()
        t = time.process_time()
        model.generate(torch.randn(args.sample, cfg.latent_dim), x.shape[1], 1.0, torch.Generator().manual_seed(0))
        sample_rate = args.sample / (time.process_time() - t)
        params = sum(p.numel() for p in model.parameters())
        rows.append((name, params, vaekit_cpu, plain_cpu, vaekit_cpu / plain_cpu, 250_000 / vaekit_cpu / 60,
                     sample_rate, vaekit_rate))
        print(dict(zip(("sizes", "params", "train_per_cpu_s", "plain_per_cpu_s", "ratio", "cpu_min_per_250k",
                        "sample_per_cpu_s", "train_per_wall_s"), rows[-1])), flush=True)
        raw[name] = {"params": params, "train_per_cpu_s": vaekit_cpu, "plain_per_cpu_s": plain_cpu,
                     "train_per_wall_s": vaekit_rate, "plain_per_wall_s": plain_rate,
                     "sample_per_cpu_s": sample_rate, "settings": CONFIGS[name]}
    print(f"tokenizing: {tok_rate:,.0f} SMILES/s; vocabulary {len(voc)} tokens; longest {x.shape[1]} tokens")
    print_table(f"seq-vae on {len(x)} MOSES molecules, per CPU-second ({torch.get_num_threads()} torch threads)",
                rows, ("sizes", "params", "train mol/s (Trainer)", "plain loop mol/s", "ratio",
                       "CPU min per 250k epoch", "sample mol/s", "train mol/s (wall)"))
    payload = {"n": len(x), "results": raw, "env": env_info()}
    write_result("molecules_speed", payload)
    return payload


if __name__ == "__main__":
    main()
