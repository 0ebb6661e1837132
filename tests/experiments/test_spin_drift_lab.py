"""The SPIN drift lab's summary (experiments/spin_drift/summarise.py): groups that differ only
in a setting stay apart by their pipeline group name, with the peak of their mean curve, the
mean of each run's last evaluations, and the logged training statistics beside the curves."""

import csv
import json

import pytest

from experiments.spin_drift.summarise import main


def _run(root, name, returns, q):
    run = root / "policy" / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(
        {"actor": "spin", "algo": "iql", "seed": 0, "dataset_id": "cheetah-me"}))
    rows = []
    for i, (value, q_mean) in enumerate(zip(returns, q)):
        rows.append({"step": 500 * i, "q_mean": q_mean, "adv_weight": 0.9, "actor_loss": 2.0})
        rows.append({"step": 500 * i, "eval_return_mean": value, "wall_clock_s": i})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_groups_keep_apart_with_peak_end_and_statistics(tmp_path, capsys):
    _run(tmp_path, "small-cheetah-me-spin-iql-s0-aa", [5, 250, 200, 100, 140], [0, 1, 2, 3, 4])
    _run(tmp_path, "small-cheetah-me-spin-iql-s1-bb", [5, 230, 180, 120, 160], [0, 3, 4, 5, 6])
    _run(tmp_path, "bc-cheetah-me-spin-iql-s0-cc", [5, 200, 260, 270, 272], [0, 1, 2, 3, 4])
    main([str(tmp_path), "--groups", "small", "bc", "missing", "--last", "2",
          "--out", str(tmp_path / "out")])
    rows = {r[0]: r for r in csv.reader(open(tmp_path / "out" / "summary.csv"))}
    assert set(rows) == {"group", "small", "bc"}  # a group without runs is left out
    # small: mean curve 5, 240, 190, 110, 150 -> peak 240 at 500; ends (100+140)/2, (120+160)/2.
    assert rows["small"][1:] == ["2", "2,000", "240.0", "500", "130.0 ± 10.0"]
    assert rows["bc"][1:] == ["1", "2,000", "272.0", "2,000", "271.0 ± 0.0"]
    curves = [r for r in csv.DictReader(open(tmp_path / "out" / "curves.csv"))
              if r["group"] == "small"]
    assert [float(r["q_mean"]) for r in curves] == [0.0, 2.0, 3.0, 4.0, 5.0]
    assert (tmp_path / "out" / "curves.png").stat().st_size > 10_000
    assert "small" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--groups", "missing"])


def test_a_group_whose_name_prefixes_another_keeps_only_its_own_runs(tmp_path):
    """Pipeline groups 'prefit' and 'prefit-fiql': the directory prefix 'prefit-' matches both;
    each run's step.json (name = group-dataset-actor-algo-sSEED) tells them apart."""
    def step_run(name, actor, returns):
        _run(tmp_path, f"{name}-0123456789", returns, [0] * len(returns))
        (tmp_path / "policy" / f"{name}-0123456789" / "step.json").write_text(json.dumps(
            {"name": name, "inputs": {"cheetah-me": "x", "asm-cheetah-me": "y"},
             "params": {"config": {"actor": actor, "algo": "iql", "seed": 0}}}))

    step_run("prefit-cheetah-me-spin-iql-s0", "spin", [5, 100, 120])
    step_run("prefit-fiql-cheetah-me-factored-iql-s0", "factored", [5, 300, 320])
    main([str(tmp_path), "--groups", "prefit", "prefit-fiql", "--last", "1",
          "--out", str(tmp_path / "out")])
    rows = {r[0]: r for r in csv.reader(open(tmp_path / "out" / "summary.csv"))}
    assert rows["prefit"][1:] == ["1", "1,000", "120.0", "1,000", "120.0 ± 0.0"]
    assert rows["prefit-fiql"][1:] == ["1", "1,000", "320.0", "1,000", "320.0 ± 0.0"]
