"""spin_data.files and spin_data.text: the one home of atomic writes, locks, one-line errors and
aligned tables (used by behaviour runs, stage-1/2 runs, pipeline steps and every CLI)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from spin_data.files import exclusive_lock, replace_atomically, write_text_atomic
from spin_data.text import align_rows, one_line


class Busy(RuntimeError):
    pass


def test_atomic_write_replaces_whole_and_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "sub" / "state.json"
    write_text_atomic(path, "old\n")  # creates the parent
    assert path.read_text() == "old\n"

    def half_then_crash(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(path, half_then_crash)
    assert path.read_text() == "old\n"  # untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]  # no temp left
    write_text_atomic(path, "new\n")
    assert path.read_text() == "new\n"


def test_exclusive_lock_refuses_a_second_process_and_frees_on_exit(tmp_path):
    lock = tmp_path / ".lock"
    probe = textwrap.dedent(f"""
        import sys
        from spin_data.files import exclusive_lock
        try:
            with exclusive_lock({str(lock)!r}, lambda: RuntimeError("busy")):
                print("got it")
        except RuntimeError as err:
            print(err)
    """)

    def other_process() -> str:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              check=True).stdout.strip()

    with exclusive_lock(lock, lambda: Busy("held")):
        assert other_process() == "busy"
    assert other_process() == "got it"  # released when the block ended


def test_one_line_and_align_rows():
    assert one_line(ValueError("bad\n   value:\tx ")) == "bad value: x"
    assert one_line(KeyError()) == "KeyError"  # an empty message names the type
    rows = [["name", "n"], ["a", "10"], ["long", "2"]]
    assert align_rows(rows, left={0}) == "name   n\n----  --\na     10\nlong   2"
    assert align_rows(rows, left={0}, rule=False).splitlines()[1] == "a     10"


def test_the_normaliser_and_its_inverse():
    from spin_data.envs.reference import ReferenceScore

    score = ReferenceScore(expert=853.62, random=4.36)  # finger-spin, 3 bins
    assert score.normalise(4.36) == 0.0 and score.normalise(853.62) == 1.0
    assert score.normalise(689.70) == pytest.approx((689.70 - 4.36) / 849.26)
    assert score.episode_return(0.95) == pytest.approx(4.36 + 0.95 * 849.26)
    assert score.normalise(score.episode_return(0.4)) == pytest.approx(0.4)


def test_a_run_written_before_a_setting_existed_resumes_only_at_its_default(tmp_path):
    """A run directory from an older spin lacks newer settings (e.g. saint_dropout): it is the
    same run when the new config keeps the setting's default, a different one otherwise."""
    import json

    from spin_train.runs import RunError, prepare_run_dir

    old = {"dataset": "maze", "seed": 0}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(old))
    keys = ["dataset", "seed", "saint_dropout"]
    path, state = prepare_run_dir(tmp_path / "run", old | {"saint_dropout": 0.0},
                                  identity_keys=keys, defaults={"saint_dropout": 0.0})
    assert path == tmp_path / "run" and state is None
    # the resume records the setting's value, so the directory now describes the run going on
    resumed = old | {"saint_dropout": 0.0}
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == resumed
    with pytest.raises(RunError, match=r"holds a different run \(saint_dropout differ\)"):
        prepare_run_dir(tmp_path / "run", old | {"saint_dropout": 0.1}, identity_keys=keys,
                        defaults={"saint_dropout": 0.0})
    with pytest.raises(RunError, match=r"\(seed differ\)"):
        prepare_run_dir(tmp_path / "run", old | {"seed": 1, "saint_dropout": 0.0},
                        identity_keys=keys, defaults={"saint_dropout": 0.0})
    # a refused directory is left untouched
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == resumed
