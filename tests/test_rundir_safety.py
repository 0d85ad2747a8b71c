"""Run-directory safety (issue 12): --overwrite removes only what vaekit wrote, one writer at a time (an OS
lock, tested with real processes), read-only runs lose no computed numbers, leftovers of kill -9 are
cleaned, and special files are refused without being opened."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vaekit
import vaekit.runs as runs
from cli_helpers import assert_usage_error, run

FAST = ["--latent-dim", "3", "--hidden", "16", "--batch-size", "256", "--epochs", "2", "-q", "--report-iwae-k", "5"]
SETTINGS = dict(data="digits", latent_dim=3, hidden=[16], batch_size=256, epochs=2, seed=0, report_iwae_k=5)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(vaekit.__file__).parents[1]),
                                                    os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished digits run (never modified by the tests: they copy it)."""
    out = tmp_path_factory.mktemp("runs") / "done"
    vaekit.train(out=out, **SETTINGS)
    return out


def _copy(done, tmp_path, name="r"):
    dst = tmp_path / name
    shutil.copytree(done, dst)
    return dst


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != runs.LOCK}


# -- item 1: --overwrite -----------------------------------------------------------------------------
def test_overwrite_removes_only_what_vaekit_wrote(done, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    rows = np.random.default_rng(0).normal(size=(120, 4)).astype(np.float32)
    data = out / "data.csv"
    data.write_text("a,b,c,d\n" + "\n".join(",".join(f"{v:.5f}" for v in r) for r in rows) + "\n")
    (out / "notes.txt").write_text("mine")
    (out / "extra").mkdir()
    (out / "extra" / "keep.txt").write_text("also mine")
    args = ["train", "--data", data, "--out", out, *FAST]
    assert run(*args).exit_code == 2  # a non-empty folder that is not a run is not trained into
    for p in done.iterdir():  # a run's own files, and a leftover of an older run's figures and temp files
        shutil.copy(p, out / p.name)
    (out / "denoising.png").write_bytes(b"old figure")
    (out / ".model.safetensors.k3j2h1a0.tmp").write_bytes(b"half a checkpoint")
    before = data.read_bytes()

    r = run("train", "--data", data, "--out", out, "--overwrite", *FAST[2:], "--latent-dim", "2")
    assert r.exit_code == 0, r.output
    assert "kept" in r.stderr and "data.csv" in r.stderr and "notes.txt" in r.stderr and "extra" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert data.read_bytes() == before and (out / "notes.txt").read_text() == "mine"
    assert (out / "extra" / "keep.txt").read_text() == "also mine"
    assert not (out / "denoising.png").exists() and not (out / ".model.safetensors.k3j2h1a0.tmp").exists()
    info = json.loads((out / "config.json").read_text())
    assert info["config"]["latent_dim"] == 2 and Path(info["config"]["data"]).is_file()  # the data path stays valid
    assert vaekit.load(out).latent_dim == 2
    # the run still loads from its recorded data: evaluate re-reads it
    assert run("evaluate", out, "--iwae-k", 0, "--json").exit_code == 0


def test_overwrite_refuses_a_folder_in_the_place_of_a_run_file(done, tmp_path):
    out = _copy(done, tmp_path)
    (out / "samples.png").unlink()
    (out / "samples.png").mkdir()
    before = _snapshot(out)
    assert_usage_error(run("train", "--out", out, "--overwrite", *FAST), "samples.png", "folder")
    assert _snapshot(out) == before


# -- item 2: the writer's lock, with two real processes ------------------------------------------------
HOLDER = textwrap.dedent("""
    import sys, time
    from vaekit.runs import lock_run
    with lock_run(sys.argv[1], "train"):
        print("locked", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def holder():
    """Start a second process that holds a run's lock (it imports vaekit.runs only: fast)."""
    procs = []

    def start(run_dir):
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, env=ENV, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "locked"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_a_second_writer_is_refused_naming_the_pid(done, tmp_path, holder):
    out = _copy(done, tmp_path)
    p = holder(out)
    before = _snapshot(out)
    for args in (["train", "--out", out, "--overwrite", *FAST], ["train", "--out", out, "--resume"],
                 ["report", out, "--iwae-k", 5]):
        assert_usage_error(run(*args), "in use by another vaekit process", f"PID {p.pid}, train")
    with pytest.raises(vaekit.errors.RunError, match=f"PID {p.pid}"):
        vaekit.train(out=out, overwrite=True, **SETTINGS)
    r = run("evaluate", out, "--iwae-k", 0, "--json")  # the numbers are printed; the file is not written
    assert r.exit_code == 0 and json.loads(r.stdout)["n"] == 180
    assert "evaluation.json will not be saved" in r.stderr and f"PID {p.pid}" in r.stderr
    assert _snapshot(out) == before  # nothing changed in the run

    # the holder dies without cleaning up (kill -9): its lock file stays, and is taken over
    p.kill()
    p.wait()
    assert (out / runs.LOCK).read_text().split()[0] == str(p.pid)
    assert run("train", "--out", out, "--overwrite", *FAST).exit_code == 0
    assert vaekit.load(out).latent_dim == 3


def test_the_cli_in_a_second_process_refuses_in_one_line(done, tmp_path, holder):
    out = _copy(done, tmp_path)
    p = holder(out)
    r = subprocess.run([sys.executable, "-m", "vaekit", "train", "--out", str(out), "--overwrite", *FAST],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert f"PID {p.pid}" in r.stderr and "Traceback" not in r.stderr


def test_the_lock_is_reentrant_in_one_thread_and_released(tmp_path):
    with runs.lock_run(tmp_path, "a"):
        with runs.lock_run(tmp_path, "b"):
            assert runs.write_problem(tmp_path) is None
        assert (tmp_path / runs.LOCK).read_text().split() == [str(os.getpid()), "a"]
    # released: another process takes it at once
    code = f"from vaekit.runs import lock_run\nwith lock_run({str(tmp_path)!r}): print('ok')"
    assert subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                          timeout=60).stdout.strip() == "ok"


def test_a_symlinked_lock_file_is_not_followed(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / runs.LOCK).symlink_to(victim)
    with pytest.raises(vaekit.errors.RunError, match="not a plain file"):
        with runs.lock_run(tmp_path / "r"):
            pass
    assert victim.read_text() == "keep me"


def test_resume_of_a_running_training_is_refused(tmp_path):
    """Two trainings of one folder in this process: the second (another thread's view) is refused."""
    import threading

    errors = []

    def second(row):
        if row["epoch"] == 1:
            t = threading.Thread(target=lambda: errors.append(_try(lambda: vaekit.train(out=tmp_path / "r",
                                                                                          resume=True))))
            t.start()
            t.join()

    vaekit.train(out=tmp_path / "r", on_epoch_end=second, **SETTINGS)
    assert len(errors) == 1 and "in use by another vaekit process" in errors[0]
    assert [json.loads(s)["epoch"] for s in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def _try(fn):
    try:
        fn()
    except vaekit.errors.RunError as err:
        return str(err)
    return "no error"


# -- item 8: read-only runs -----------------------------------------------------------------------
@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only. As root chmod does not stop writes: then the write check and the writer
    are patched to behave as on a read-only folder."""
    made = []

    def make(folder):
        folder.chmod(0o555)
        made.append(folder)
        if os.access(folder, os.W_OK):  # root
            real_writable, real_write = runs._writable, runs.atomic_write_bytes

            def writable(f):
                return Path(f).resolve() != folder.resolve() and real_writable(f)

            def write(path, data):
                if Path(path).resolve().parent == folder.resolve():
                    raise PermissionError(13, "Permission denied", str(path))
                real_write(path, data)

            monkeypatch.setattr(runs, "_writable", writable)
            monkeypatch.setattr(runs, "atomic_write_bytes", write)
        return folder

    yield make
    for f in made:
        f.chmod(0o755)


def test_report_on_a_read_only_run_fails_before_computing(done, tmp_path, read_only, monkeypatch):
    out = read_only(_copy(done, tmp_path))
    before = _snapshot(out)

    def computed(*a, **k):
        raise AssertionError("computed before checking that the result can be written")

    monkeypatch.setattr(vaekit.api, "_evaluate_model_units", computed)
    assert_usage_error(run("report", out, "--iwae-k", 5), "read-only", str(out))
    assert _snapshot(out) == before


def test_evaluate_on_a_read_only_run_prints_and_says_it_did_not_save(done, tmp_path, read_only):
    out = read_only(_copy(done, tmp_path))
    before = _snapshot(out)
    r = run("evaluate", out, "--iwae-k", 5, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["iwae_k"] == 5 and np.isfinite(res["neg_iwae"])
    assert r.stderr.strip() == f"note: evaluation.json will not be saved ({out} is read-only); " \
                               "the results are printed only"
    assert _snapshot(out) == before


def test_evaluate_says_so_when_the_save_fails_late(done, tmp_path, monkeypatch):
    out = _copy(done, tmp_path)
    before = (out / "evaluation.json").read_bytes()

    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs, "atomic_write_bytes", full)
    r = run("evaluate", out, "--iwae-k", 0)
    assert r.exit_code == 0 and "active units" in r.stdout
    assert "evaluation.json was not saved (No space left on device" in r.stderr
    assert (out / "evaluation.json").read_bytes() == before


# -- item 10: leftovers of kill -9, runs stopped before their first epoch, special files -----------
def test_resume_removes_temp_files_of_a_killed_write(tmp_path):
    def stop(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vaekit.train(out=tmp_path / "r", on_epoch_end=stop, **SETTINGS)
    out = tmp_path / "r"
    (out / ".trainer_state.safetensors.a1b2c3d4.tmp").write_bytes(b"x" * 1000)
    (out / ".model.safetensors.zz99yy88.tmp").write_bytes(b"x" * 1000)
    (out / ".my.notes.tmp").write_text("not vaekit's")
    assert run("train", "--out", out, "--resume", "-q").exit_code == 0
    left = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))
    assert left == [".my.notes.tmp"]


def test_a_run_stopped_before_its_first_epoch_resumes_from_epoch_zero(done, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    shutil.copy(done / "config.json", out / "config.json")  # all a kill in epoch 1 leaves, plus a stray row
    (out / "metrics.jsonl").write_text('{"epoch": 1, "val_loss": 1.0}\n')
    (out / ".trainer_state.safetensors.q1w2e3r4.tmp").write_bytes(b"x")
    r = run("sample", out, "--out", tmp_path / "s.npy")
    assert_usage_error(r, "before its first epoch", "--resume")
    r = run("train", "--out", out, "--resume", "-q")  # the advice works
    assert r.exit_code == 0, r.output
    assert "trained 2 epochs" in r.stdout
    assert [json.loads(s)["epoch"] for s in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    a, b = load_file(done / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same weights as the uninterrupted run
    assert not list(out.glob(".*.tmp"))


def test_a_semi_supervised_run_stopped_before_its_first_epoch_resumes_from_epoch_zero(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((300, 8, 8), dtype=np.float32), y=np.arange(300) % 3)
    settings = dict(data=str(tmp_path / "d.npz"), semi_supervised=True, labeled=30, latent_dim=2, hidden=[16],
                    batch_size=256, epochs=1, seed=0)
    vaekit.train(out=tmp_path / "a", **settings)
    out = tmp_path / "b"
    out.mkdir()
    shutil.copy(tmp_path / "a" / "config.json", out / "config.json")
    assert run("train", "--out", out, "--resume", "-q").exit_code == 0
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_loading_a_finished_run_without_weights_does_not_advise_resume(done, tmp_path):
    out = _copy(done, tmp_path)
    (out / "model.safetensors").unlink()
    r = run("sample", out, "--out", tmp_path / "s.npy")
    assert_usage_error(r, "finished training", "--overwrite")
    assert "--resume" not in r.stderr


class _Timeout(Exception):
    pass


@pytest.fixture
def no_hang():
    """Fail instead of hanging when something opens a FIFO for reading."""
    def bail(*_):
        raise _Timeout("blocked opening a FIFO")

    old = signal.signal(signal.SIGALRM, bail)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("name, command", [
    ("model.safetensors", ["sample", "{run}", "--out", "{tmp}/s.npy"]),
    ("config.json", ["sample", "{run}", "--out", "{tmp}/s.npy"]),
    ("trainer_state.safetensors", ["train", "--out", "{run}", "--resume"]),
    ("metrics.jsonl", ["report", "{run}", "--iwae-k", "0"]),
])
def test_a_fifo_in_a_run_is_not_a_regular_file(done, tmp_path, no_hang, name, command):
    out = _copy(done, tmp_path)
    if name == "trainer_state.safetensors":  # an unfinished run, so that --resume gets to the file
        state = json.loads((out / "trainer_state.json").read_text())
        (out / "trainer_state.json").write_text(json.dumps({**state, "finished": False}))
    (out / name).unlink()
    os.mkfifo(out / name)
    r = run(*[a.format(run=out, tmp=tmp_path) for a in command])
    if name == "metrics.jsonl":  # the report does not need the curves: it is written without them
        assert r.exit_code == 0, r.output
        return
    assert_usage_error(r, name, "not a regular file", "FIFO")


def test_a_device_as_weights_is_not_a_regular_file(done, tmp_path):
    out = _copy(done, tmp_path)
    (out / "model.safetensors").unlink()
    (out / "model.safetensors").symlink_to(os.devnull)
    assert_usage_error(run("sample", out, "--out", tmp_path / "s.npy"), "not a regular file", "character device")
