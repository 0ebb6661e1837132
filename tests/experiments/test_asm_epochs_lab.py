"""The ASM pre-training epochs lab (experiments/asm_epochs/run.py) on a real maze-5 store at a
tiny size: ASMs continued from shorter ones hold a straight run's weights, finished work is
never redone, a killed run resumes, and the summary holds what the runs' own files hold."""

import contextlib
import csv
import hashlib
import io
import json
import shutil

import pytest
import torch

from experiments.asm_epochs.run import main
from spin_data.store import publish
from spin_train.pretrain import PretrainConfig, pretrain
from spin_train.report import load_run
from tests.episodes import maze_episodes
from tests.spin_data.test_store import METADATA, write_maze

#: The lab's pre-training sizes here, as flags and as PretrainConfig fields.
SIZES = dict(d_model=32, n_layers=1, batch_size=256, val_size=256)
EPOCHS = ["1", "2", "3"]


def _flags(store, out, cache, *extra):
    return [str(store), "--out", str(out), "--cache-dir", str(cache), "--device", "cpu",
            "--no-progress", "--seeds", "1", "--policy-steps", "20", "--eval-every", "10",
            "--eval-episodes", "2", "--probe-steps", "20", "--last", "2",
            *(x for k, v in SIZES.items() for x in (f"--{k.replace('_', '-')}", str(v))),
            *extra]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A maze-5 store of 30 uniform-random episodes (4,500 transitions) and the whole lab run
    on it once (epochs 1 2 3, one seed). Returns ``(store, out, cache, root, printed)``."""
    root = tmp_path_factory.mktemp("asm-epochs")
    write_maze(root / "store", maze_episodes(range(30)))
    publish(root / "store", METADATA)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(_flags(root / "store", root / "out", root / "cache", "--epochs", *EPOCHS))
    return root / "store", root / "out", root / "cache", root, printed.getvalue()


def _weights(run_dir):
    return torch.load(run_dir / "asm.pt", weights_only=True)["model"]


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _csv_rows(path):
    return list(csv.DictReader(open(path)))


@pytest.fixture(scope="module")
def straight(lab):
    """A straight 3-epoch pre-training run of the lab's settings, in its own directory."""
    store, _, cache, root, _ = lab
    pretrain(PretrainConfig(dataset=str(store), out=str(root / "straight"), epochs=3,
                            cache_dir=str(cache), device="cpu", progress=False, **SIZES))
    return root / "straight"


def test_an_extended_asm_is_the_straight_run(lab, straight):
    _, out, _, _, printed = lab
    # each ASM continued the one before: only asm-e1 trained from scratch
    assert printed.splitlines()[:3] == [
        "asm-e1: training from scratch", f"asm-e2: continuing {out / 'asm-e1'} from epoch 1",
        f"asm-e3: continuing {out / 'asm-e2'} from epoch 2"]
    _assert_same_weights(_weights(out / "asm-e3"), _weights(straight))
    shorter = _weights(out / "asm-e2")
    assert not all(torch.equal(shorter[k], v) for k, v in _weights(straight).items())
    assert [len(_csv_rows(out / f"asm-e{e}" / "metrics.csv")) for e in (1, 2, 3)] == [1, 2, 3]
    # the validations along the way too: the same model at every epoch
    assert ([r["val_exact_match"] for r in _csv_rows(out / "asm-e3" / "metrics.csv")]
            == [r["val_exact_match"] for r in _csv_rows(straight / "metrics.csv")])
    # copies, not links: the shorter run's checkpoint is its own
    assert (torch.load(out / "asm-e2" / "checkpoints" / "last.pt", weights_only=True)["epoch"]
            == 2)


def _snapshot(out):
    return {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(out.rglob("*")) if p.is_file()}


def test_rerunning_the_finished_stages_changes_no_file(lab, capsys):
    store, out, cache, _, _ = lab
    before = _snapshot(out)
    for stage in ("asm", "probe", "policy"):
        main(_flags(store, out, cache, "--epochs", *EPOCHS, "--stage", stage))
    assert _snapshot(out) == before
    assert "asm-e3: finished" in capsys.readouterr().out


def test_the_summary_holds_the_runs_own_numbers(lab):
    _, out, _, _, _ = lab
    rows = _csv_rows(out / "summary.csv")
    assert [r["asm"] for r in rows] == ["asm-e1", "asm-e2", "asm-e3", "random init"]
    assert [r["epochs"] for r in rows] == ["1", "2", "3", "0"]
    for row in rows[:3]:
        asm = out / row["asm"]
        last = _csv_rows(asm / "metrics.csv")[-1]
        for key in ("val_exact_match", "val_slot_acc"):
            assert float(row[key]) == float(last[key])
        assert float(row["pretrain_wall_clock_s"]) == float(last["wall_clock_s"])
        report = json.loads((asm / "probe.json").read_text())
        assert float(row["probe_exact_match"]) == report["exact_match"]
        assert float(row["probe_slot_accuracy"]) == report["slot_accuracy"]
        assert (float(row["probe_exact_match_if_independent"])
                == report["exact_match_if_independent"])
        run = load_run(out / f"spin-e{row['epochs']}-s0")
        assert list(run.steps) == [0, 10, 20]
        assert float(row["end_mean"]) == run.final_return(2) and float(row["end_std"]) == 0.0
        # 20 steps: the return "at 1,000" is the last evaluation's
        assert float(row["return_at_1000_mean"]) == run.returns[-1]
        assert float(row["peak_return"]) == run.returns.max()
        assert int(row["peak_step"]) == run.steps[run.returns.argmax()]
    random_probe = json.loads((out / "probe-random.json").read_text())
    assert random_probe["random_init"] and rows[3]["end_mean"] == ""
    assert float(rows[3]["probe_exact_match"]) == random_probe["exact_match"]
    curves = _csv_rows(out / "curves.csv")
    assert [(r["epochs"], r["step"]) for r in curves] == [
        (e, s) for e in ("1", "2", "3") for s in ("0", "10", "20")]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_killed_continuation_resumes_and_base_seeds_a_new_lab(lab, straight, capsys):
    store, out, cache, root, _ = lab
    # killed one epoch into continuing asm-e2 to 3: the epoch-2 checkpoint, no asm.pt
    killed = root / "killed"
    for e in (1, 2, 3):
        shutil.copytree(out / f"asm-e{e}", killed / f"asm-e{e}")
    for name in ("asm.pt", "asm.json", "probe.json"):
        (killed / "asm-e3" / name).unlink()
    shutil.copy(out / "asm-e2" / "checkpoints" / "last.pt",
                killed / "asm-e3" / "checkpoints" / "last.pt")
    (killed / "asm-e3" / "marker").touch()  # a re-copy would lose it
    main(_flags(store, killed, cache, "--epochs", *EPOCHS, "--stage", "asm"))
    assert "asm-e3: resuming" in capsys.readouterr().out
    assert (killed / "asm-e3" / "marker").exists()
    _assert_same_weights(_weights(killed / "asm-e3"), _weights(straight))
    assert len(_csv_rows(killed / "asm-e3" / "metrics.csv")) == 3

    # --base: a finished 2-epoch run (here as a pipeline leaves it) stands for asm-e2
    # (copied) and asm-e3 continues it
    base = root / "base"
    shutil.copytree(out / "asm-e2", base)
    (base / "step.json").write_text("{}")
    seeded = root / "seeded"
    main(_flags(store, seeded, cache, "--epochs", "2", "3", "--stage", "asm",
                "--base", str(base)))
    printed = capsys.readouterr().out
    assert f"asm-e2: copied from {base}" in printed
    assert f"asm-e3: continuing {seeded / 'asm-e2'} from epoch 2" in printed
    # neither the base's probe nor its pipeline record belongs to this lab
    assert not {"probe.json", "step.json"} & {p.name for p in (seeded / "asm-e2").iterdir()}
    _assert_same_weights(_weights(seeded / "asm-e3"), _weights(straight))


@pytest.mark.parametrize("extra, says", [
    (["--epochs", "3", "2"], "--epochs must be strictly increasing"),
    (["--base", "{out}/asm-e2", "--d-model", "64"], "d_model=32"),
    (["--base", "{out}/asm-e2", "--n-layers", "2"], "n_layers=1"),
    (["--base", "{out}", "--stage", "summary"], "is not a finished pretrain run"),
])
def test_bad_input_is_one_line_and_exit_2(lab, capsys, extra, says):
    store, out, cache, root, _ = lab
    args = _flags(store, root / "bad", cache, *(x.format(out=out) for x in extra))
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert says in message and message.startswith("usage:") is False
    assert not (root / "bad").exists()  # refused before anything was written


def test_a_missing_store_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(_flags(tmp_path / "nothing", tmp_path / "out", tmp_path / "cache"))
    assert stop.value.code == 2 and "nothing" in capsys.readouterr().err.splitlines()[-1]
