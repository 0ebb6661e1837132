"""spin-pipeline: the graph, bad files, kill and resume, Ray vs local, the report.

Real library calls at tiny sizes: a maze-5 random dataset of 3,000 steps (no behaviour
training), a 1-epoch d=32 ASM, 20-step policies evaluated every 10 steps on 2 episodes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.executors import LocalExecutor, Progress, RayExecutor, run_pipeline
from pipelines.graph import build_graph, describe, read_step_file
from pipelines.spec import PipelineError
from pipelines.validate import load_pipeline
from spin_train.runs import read_metrics

REPO = Path(__file__).resolve().parents[2]

TINY = """\
name: tiny
cache_dir: {cache}
datasets:
  rand:
    env: maze-5
    quality: random
    size: 3000
    seed: 1
    episodes_per_task: 8
pretrain:
  asm:
    epochs: {epochs}
    batch_size: 256
    d_model: 32
    n_layers: 1
    dropout: 0.0
    val_size: 512
    device: {pretrain_device}
policies:
  main:
    actors: [spin, factored]
    seeds: [0]
    asm: asm
    steps: 20
    eval_every: 10
    eval_episodes: 2
    log_every: 10
    batch_size: 64
    critic_hidden: 64
    device: cpu
report:
  at_step: 10
"""

#: Fields of metrics.jsonl that measure time, not computation.
TIMING = {"wall_clock_s", "steps_per_s", "eval_s"}


def write_tiny(path: Path, cache: Path, epochs: int = 1, pretrain_device: str = "cpu") -> Path:
    path.write_text(TINY.format(cache=cache, epochs=epochs, pretrain_device=pretrain_device))
    return path


def quiet() -> Progress:
    return Progress(total=0, heartbeat_s=0, stream=open(os.devnull, "w"))


def run_local(file: Path, out: Path, workers: int = 1):
    graph = build_graph(load_pipeline(file, out=out))
    return graph, run_pipeline(graph, LocalExecutor(workers), progress=quiet())


def outputs(out: Path) -> dict[str, dict]:
    """Step directory name -> (step record, metrics rows without timings)."""
    found = {}
    for step_file in sorted(out.glob("*/*/step.json")):
        rows = []
        metrics = step_file.parent / "metrics.jsonl"
        if metrics.exists():
            rows = [{k: v for k, v in json.loads(line).items() if k not in TIMING}
                    for line in metrics.read_text().splitlines() if line.strip()]
        found[step_file.parent.name] = {"record": json.loads(step_file.read_text()),
                                        "metrics": rows}
    return found


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The tiny pipeline run once with the local executor (in this process)."""
    root = tmp_path_factory.mktemp("local")
    file = write_tiny(root / "tiny.yaml", root / "cache")
    graph, result = run_local(file, root / "out")
    assert result.ok, result.failed
    return file, root / "out", graph, result


# ============================================================================= (a) graph
def test_graph_dependencies_identities_and_dry_run(tmp_path):
    file = write_tiny(tmp_path / "tiny.yaml", tmp_path / "cache")
    graph = build_graph(load_pipeline(file, out=tmp_path / "out"))
    assert list(graph.steps) == ["rand", "asm-rand", "main-rand-factored-iql-s0",
                                 "main-rand-spin-iql-s0", "report"]
    steps = graph.steps
    assert steps["asm-rand"].deps == ("rand",)
    assert steps["main-rand-spin-iql-s0"].deps == ("rand", "asm-rand")
    assert steps["main-rand-factored-iql-s0"].deps == ("rand",)  # no ASM for F-IQL
    assert set(steps["report"].deps) == {"main-rand-spin-iql-s0", "main-rand-factored-iql-s0"}
    for step in graph.order:
        assert step.dir == tmp_path / "out" / step.kind / f"{step.name}-{step.identity[:10]}"

    # Content addressing: the output root is not an input; a policy setting changes only the
    # policy steps and what reads them.
    moved = build_graph(load_pipeline(file, out=tmp_path / "elsewhere"))
    assert {s.name: s.identity for s in moved.order} == {s.name: s.identity for s in graph.order}
    file.write_text(file.read_text().replace("steps: 20", "steps: 30"))
    changed = {s.name: s.identity for s in build_graph(load_pipeline(file)).order}
    same = {n for n in changed if changed[n] == steps[n].identity}
    assert same == {"rand", "asm-rand"}

    text = describe(graph)
    assert "pipeline tiny" in text and "5 steps: 0 done" in text and "5 to run" in text
    assert "main-rand-spin-iql-s0" in text and "<- rand, asm-rand" in text
    assert "3,000 / 3,000 transitions to collect" in text
    assert "40 / 40 policy gradient steps" in text and "12 / 12 evaluation episodes" in text

    result = CliRunner().invoke(main, ["run", str(file), "--dry-run", "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "5 steps: 0 done" in result.output and "report" in result.output
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


@pytest.mark.parametrize("name, steps, kinds, paper", [
    ("quickstart", 10, {"behaviour": 1, "dataset": 1, "pretrain": 1, "policy": 6, "report": 1},
     "maze"),
    ("table1", 357, {"behaviour": 4, "dataset": 16, "pretrain": 16, "policy": 320,
                     "report": 1}, "table1"),
    ("table2", 70, {"behaviour": 3, "dataset": 3, "pretrain": 3, "policy": 60, "report": 1},
     "table2"),
    ("maze", 70, {"behaviour": 3, "dataset": 3, "pretrain": 3, "policy": 60, "report": 1},
     "maze"),
    ("dmc-small", 10, {"behaviour": 1, "dataset": 1, "pretrain": 1, "policy": 6, "report": 1},
     "table4"),
    ("dmc-fidelity", 33, {"behaviour": 2, "dataset": 2, "pretrain": 2, "policy": 26,
                          "report": 1}, "table4"),
    ("merlion", 54, {"behaviour": 1, "dataset": 1, "pretrain": 1, "policy": 50, "report": 1},
     "merlion_fig2"),
])
def test_shipped_pipelines_are_valid(tmp_path, name, steps, kinds, paper):
    graph = build_graph(load_pipeline(REPO / "pipelines" / f"{name}.yaml", out=tmp_path))
    assert len(graph.steps) == steps
    counts: dict[str, int] = {}
    for s in graph.order:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    assert counts == kinds
    assert graph.steps["report"].params["paper"] == paper
    assert "score_scale" not in graph.steps["report"].params  # fractions: the default
    if name == "merlion":  # the main run's 35 runs are reported; the alpha x p sweep is not
        assert len(graph.steps["report"].params["runs"]) == 35
        assert graph.steps["report"].params["last_evaluations"] == 3
    if name == "dmc-fidelity":  # Table 4's denominators: F-IQL to 1M steps, apart
        report = graph.steps["report"].params
        assert len(report["runs"]) == 24 and report["target_runs"] == [
            "asymptote-cheetah-me-factored-iql-s0", "asymptote-finger-me-factored-iql-s0"]
        assert graph.steps["asymptote-finger-me-factored-iql-s0"].params["config"][
            "steps"] == 1_000_000


@pytest.mark.parametrize("file", sorted((REPO / "experiments").glob("*/*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_lab_pipelines_are_valid(tmp_path, file):
    graph = build_graph(load_pipeline(file, out=tmp_path))
    assert graph.steps["report"].params["runs"]  # every lab file reports what it runs


def test_finger_raw_lab_shares_table_4s_dataset_and_feeds_raw_observations(tmp_path):
    raw = build_graph(load_pipeline(REPO / "experiments/spin_drift/finger-raw.yaml", out=tmp_path))
    table4 = build_graph(load_pipeline(REPO / "pipelines/dmc-fidelity.yaml", out=tmp_path))
    assert raw.steps["finger-me"].identity == table4.steps["finger-me"].identity
    assert raw.steps["asm-raw-finger-me"].params["config"]["normalise"] is False
    runs = [s for s in raw.order if s.kind == "policy"]
    assert len(runs) == 12 and all(s.params["config"]["normalise"] is False for s in runs)
    # Otherwise the early group's settings: the row differs from Table 4's only in the input.
    early = table4.steps["early-finger-me-saint-iql-s0"].params["config"]
    saint = raw.steps["raw-finger-me-saint-iql-s0"].params["config"]
    assert {k: v for k, v in saint.items() if k not in ("normalise", "asm")} == {
        k: v for k, v in early.items() if k != "asm"}


def test_report_scores_on_the_0_100_scale_when_asked(tmp_path):
    from pipelines.reporting import results_table

    file = tmp_path / "p.yaml"
    file.write_text(GOOD_HEAD + "policies:\n  main:\n    actors: [factored]\n"
                    "report:\n  score_scale: percent\n")
    graph = build_graph(load_pipeline(file, out=tmp_path / "out"))
    assert graph.steps["report"].params["score_scale"] == "percent"
    group = {"dataset_id": "d", "actor": "factored", "algo": "iql", "seeds": 2,
             "final_return_mean": 60.0, "final_return_std": 2.0, "normalised_mean": 0.6123,
             "normalised_std": 0.0201, "time_to_target_s_mean": None, "reached": 0,
             "fraction_at_step_mean": None, "at_step": 100, "target": None,
             "target_source": "reference expert"}
    assert "61.2 ± 2.0" in results_table({"g": group}, "percent")
    assert "0.612 ± 0.020" in results_table({"g": group})


# ============================================================================= (b) bad input
GOOD_HEAD = """\
name: bad
datasets:
  rand:
    env: maze-5
    quality: random
    size: 3000
"""


@pytest.mark.parametrize("body, line, fragments", [
    (GOOD_HEAD + "pretrain:\n  asm:\n    epoch: 1\n", 9,
     ["unknown key 'epoch' in pretrain group 'asm'", "did you mean 'epochs'"]),
    (GOOD_HEAD + "    after: [main]\npolicies:\n  main:\n    actors: [factored]\n", 7,
     ["cycle: dataset 'rand' -> policy 'main' -> dataset 'rand'"]),
    (GOOD_HEAD + "policies:\n  main:\n    actors: [factored]\n    datasets: [rnd]\n", 10,
     ["'rnd' is not defined", "did you mean 'rand'"]),
    (GOOD_HEAD.replace("quality: random", "quality: superb"), 5,
     ["dataset 'rand': invalid recipe: unknown quality 'superb'"]),
    (GOOD_HEAD + "policies:\n  main:\n    actors: [spin]\n", 9,
     ["actor 'spin' needs 'asm: <a pretrain group>'"]),
    (GOOD_HEAD + "policies:\n  main:\n    actors: [factored]\n    steps: 0\n", 10,
     ["steps must be >= 1"]),
    (GOOD_HEAD + "pretrain:\n  asm:\n    d_model: 6.5\n", 9,
     ["pretrain group 'asm': d_model must be a whole number, got 6.5"]),
    (GOOD_HEAD + "    size: 10\n", 7, ["duplicate key 'size'"]),
    (GOOD_HEAD + "colour: red\n", 7, ["unknown key 'colour' in the pipeline"]),
    (GOOD_HEAD + "report:\n  score_scale: x100\n", 8,
     ["report: score_scale must be one of fraction, percent, got 'x100'"]),
    (GOOD_HEAD + "report:\n  last_evaluations: 0\n", 8, ["report: last_evaluations"]),
    (GOOD_HEAD + "policies:\n  main:\n    actors: [factored]\n"
     "report:\n  target: 5.0\n  target_policies: [main]\n", 12,
     ["report: give either target", "or target_policies", "not both"]),
    (GOOD_HEAD + "policies:\n  main:\n    actors: [factored]\n"
     "report:\n  target_policies: [mian]\n", 11,
     ["report: target_policies: 'mian' is not defined", "did you mean 'main'"]),
    (GOOD_HEAD + "policies:\n  main:\n    actors: [factored]\n"
     "report:\n  policies: [main]\n  target_policies: [main]\n", 12,
     ["report: group 'main' is in both policies and target_policies"]),
    ("name: bad\ndatasets:\n  rand:\n    recipe: broken.yaml\n", 4,
     ["dataset 'rand': invalid recipe: ", "broken.yaml:3: not valid YAML"]),
])
def test_bad_pipeline_files_are_refused_naming_line_and_key(tmp_path, body, line, fragments):
    file = tmp_path / "bad.yaml"
    file.write_text(body)
    (tmp_path / "broken.yaml").write_text("env: maze-5\nquality: [random\nsize: 10\n")
    with pytest.raises(PipelineError) as err:
        build_graph(load_pipeline(file, out=tmp_path / "out"))
    message = str(err.value)
    assert message.startswith(f"{file}:{line}: "), message
    for fragment in fragments:
        assert fragment in message
    # The CLI: exit 2, one line, no traceback, no work started.
    result = CliRunner().invoke(main, ["run", str(file), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and f"{file}:{line}:" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, fragment", [
    (["run"], "Missing argument 'FILE'"),
    (["run", "{file}", "--executor", "spark"], "'spark' is not one of"),
    (["run", "{file}", "--address", "auto"], "--address is for --executor ray"),
    (["run", "{file}", "--executor", "ray", "--workers", "2"], "--workers is for the local"),
    (["run", "{missing}"], "cannot read the pipeline file"),
])
def test_cli_usage_errors_are_one_line_exit_2(tmp_path, args, fragment):
    file = write_tiny(tmp_path / "tiny.yaml", tmp_path / "cache")
    args = [a.format(file=file, missing=tmp_path / "nope.yaml") for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr


def test_real_entry_point_prints_no_traceback(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text(GOOD_HEAD.replace("quality: random", "quality: superb"))
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(file)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "unknown quality 'superb'" in proc.stderr and proc.stdout == ""


def test_failed_step_exits_1_and_stops_what_needs_it(tmp_path):
    """A step failing at run time (no such device) is recorded, named with its log, and the
    steps that need it do not run; the dataset before it is kept."""
    file = write_tiny(tmp_path / "tiny.yaml", tmp_path / "cache", pretrain_device="cuda:97")
    result = CliRunner().invoke(main, ["run", str(file), "--out", str(tmp_path / "out"),
                                       "--heartbeat", "0"])
    assert result.exit_code == 1, result.output
    assert "asm-rand" in result.stderr and "log.txt" in result.stderr
    assert result.stderr.count("\n") == 1
    graph = build_graph(load_pipeline(file, out=tmp_path / "out"))
    assert read_step_file(graph.steps["rand"].dir)["status"] == "complete"
    record = read_step_file(graph.steps["asm-rand"].dir)
    assert record["status"] == "failed" and "cuda" in record["error"].lower()
    assert "Traceback" in (graph.steps["asm-rand"].dir / "log.txt").read_text()
    assert not graph.steps["main-rand-spin-iql-s0"].dir.exists()


# ============================================================================= (c) kill, resume
def test_killed_run_resumes_without_redoing_finished_steps(tmp_path):
    file = write_tiny(tmp_path / "tiny.yaml", tmp_path / "cache", epochs=3)
    out = tmp_path / "out"
    graph = build_graph(load_pipeline(file, out=out))
    first, second = graph.steps["rand"], graph.steps["asm-rand"]
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(file), "--out",
                             str(out)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    # SIGKILL once the first step is complete and the second has begun (it runs for seconds:
    # materialising the dataset cache, then 3 epochs).
    while time.time() < deadline:
        done, started = read_step_file(first.dir), read_step_file(second.dir)
        if done and done["status"] == "complete" and started and started["status"] == "running":
            break
        assert proc.poll() is None, "the pipeline ended before it could be killed midway"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Killed midway: the dataset is complete, the pre-training is not, nothing after it ran.
    before = first.step_file.read_bytes()
    mtime = first.step_file.stat().st_mtime_ns
    checksum = read_step_file(first.dir)["outputs"]["content_checksum"]
    assert read_step_file(second.dir)["status"] == "running"
    assert not any(graph.steps[n].dir.exists() for n in graph.steps if n.startswith("main-"))

    # Resume with a process pool of 2 (the pool's spawned workers run the remaining steps).
    resumed = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(file), "--out",
                              str(out), "--workers", "2"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "done earlier  dataset   rand" in resumed.stdout
    assert "start         dataset" not in resumed.stdout
    assert "4 ran, 1 done earlier" in resumed.stdout and "report: " in resumed.stdout
    assert first.step_file.read_bytes() == before and first.step_file.stat().st_mtime_ns == mtime
    from spin_data.store import open_dataset

    assert open_dataset(first.params["store"]).content_checksum == checksum
    for step in graph.order:
        assert read_step_file(step.dir)["status"] == "complete", step.name
    record = read_step_file(second.dir)  # the killed attempt is on the record
    assert [a["status"] for a in record["attempts"]] == ["interrupted", "complete"]
    assert json.loads((second.dir / "asm.json").read_text())["epochs_run"] == 3


# ============================================================================= (d) Ray = local
def test_ray_executor_produces_the_local_outputs(local_run, tmp_path):
    ray = pytest.importorskip("ray")
    file, local_out, _, _ = local_run
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        graph = build_graph(load_pipeline(file, out=tmp_path / "ray"))
        result = run_pipeline(graph, RayExecutor(), progress=quiet())
    finally:
        ray.shutdown()
    assert result.ok, result.failed
    local, remote = outputs(local_out), outputs(tmp_path / "ray")
    assert sorted(local) == sorted(remote)  # same identities, so the same directory names
    for name, mine in local.items():
        theirs = remote[name]
        assert mine["record"]["identity"] == theirs["record"]["identity"]
        assert theirs["record"]["status"] == "complete"
        # CPU runs with one torch thread per step are deterministic: every loss, accuracy and
        # evaluation return is the same number; only timings differ.
        assert mine["metrics"] == theirs["metrics"], name
    dataset = next(n for n in local if n.startswith("rand-"))
    assert (local[dataset]["record"]["outputs"]["content_checksum"]
            == remote[dataset]["record"]["outputs"]["content_checksum"])
    policy = next(n for n in local if n.startswith("main-rand-spin"))
    assert any(r.get("q_loss") is not None for r in local[policy]["metrics"])


# ============================================================================= (e) report
def test_report_names_spin_and_f_iql_with_a_valid_png(local_run):
    _, out, graph, result = local_run
    assert result.ran == list(graph.steps) and not result.skipped
    report = graph.steps["report"]
    text = (report.dir / "report.md").read_text()
    rows = {line.split()[0]: line for line in text.splitlines()
            if line.startswith(("SPIN ", "F-IQL "))}
    assert set(rows) == {"SPIN", "F-IQL"}
    assert "maze-5-2bins-random" in rows["SPIN"] and "factored" in rows["F-IQL"]
    assert "normalised" in text and "## Time per step" in text
    for name in graph.steps:
        if name != "report":
            assert name in text
    png = report.dir / "learning_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    image = imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert np.ptp(image[..., :3]) > 0  # something is drawn
    csv = (report.dir / "report.csv").read_text().splitlines()
    assert len(csv) == 3 and {line.split(",")[2] for line in csv[1:]} == {"spin", "factored"}
    # The numbers are the runs' own: each actor's final return is its run's last evaluation.
    import csv as csv_module

    table = {r["actor"]: r for r in csv_module.DictReader(csv)}
    labels = {"spin": "SPIN", "factored": "F-IQL"}
    for step in graph.order:
        if step.kind != "policy":
            continue
        actor = step.params["config"]["actor"]
        final = read_metrics(step.dir)[-1]["eval_return_mean"]
        assert float(table[actor]["final_return_mean"]) == pytest.approx(final, abs=1e-9)
        assert int(table[actor]["seeds"]) == 1
        assert f"{final:.2f} ± 0.00" in rows[labels[actor]]
    # A second run finds everything done and only prints the table and where the report is.
    again = CliRunner().invoke(main, ["run", str(graph.pipeline.path), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "0 ran, 5 done earlier" in again.output
    assert f"report: {report.dir / 'report.md'}" in again.output
    assert "SPIN" in again.output and "F-IQL" in again.output


def test_target_policies_set_the_targets_apart_from_the_reported_runs(local_run, tmp_path):
    """Table 4 divides by F-IQL's return after 1M steps while the compared runs stop at 10k:
    a group named in target_policies is not reported, its F-IQL runs set each dataset's
    target, and the report lists them apart."""
    from pipelines.reporting import write_report

    file = tmp_path / "targets.yaml"
    file.write_text(write_tiny(tmp_path / "tiny.yaml", tmp_path / "cache").read_text()
                    .replace("report:\n", "  long:\n    actors: [factored]\n    seeds: [0]\n"
                             "    steps: 40\n    eval_every: 20\n    device: cpu\n"
                             "report:\n  target_policies: [long]\n"))
    graph = build_graph(load_pipeline(file, out=tmp_path / "out"))
    report = graph.steps["report"]
    assert sorted(report.params["runs"]) == ["main-rand-factored-iql-s0", "main-rand-spin-iql-s0"]
    assert report.params["target_runs"] == ["long-rand-factored-iql-s0"]
    assert "long-rand-factored-iql-s0" in report.deps  # it waits for the target runs
    plain = build_graph(load_pipeline(write_tiny(tmp_path / "plain.yaml", tmp_path / "cache"),
                                      out=tmp_path / "out"))
    assert "target_runs" not in plain.steps["report"].params  # older reports keep their id

    # The report over the tiny run's SPIN run with its F-IQL run as the target run.
    _, _, tiny, _ = local_run
    spin, fiql = tiny.steps["main-rand-spin-iql-s0"], tiny.steps["main-rand-factored-iql-s0"]
    params = dict(tiny.steps["report"].params, target_runs=[fiql.name],
                  runs={spin.name: tiny.steps["report"].params["runs"][spin.name]})
    out = tmp_path / "report"
    out.mkdir()
    written = write_report({"params": params, "dir": str(out),
                            "inputs": {n: {"dir": str(tiny.steps[n].dir)}
                                       for n in (spin.name, fiql.name)}})
    fiql_final = read_metrics(fiql.dir)[-1]["eval_return_mean"]
    import csv as csv_module

    [row] = list(csv_module.DictReader(open(written["csv"])))
    assert row["actor"] == "spin" and float(row["target"]) == pytest.approx(fiql_final)
    assert row["target_source"] == "factored-iql final (1 seeds at 20 steps)"
    text = (out / "report.md").read_text()
    assert "## Target runs" in text and (out / "target_curves.png").read_bytes()[:4] == b"\x89PNG"
    targets = text[text.index("## Target runs"):]
    assert "F-IQL" in targets and f"{fiql_final:.2f} ± 0.00" in targets


# ============================================================================= paper tables
def _summary(actor: str, env: str, quality: str, **values) -> dict:
    """A ``spin_train.report.compare`` summary as the report step hands it to the paper tables
    (with the dataset's env_task, bins and quality added)."""
    summary = {"actor": actor, "algo": "iql", "env_task": env, "bins": 3, "quality": quality,
               "seeds": 3, "reached": 3, "final_return_mean": None, "final_return_std": None,
               "time_to_target_s_mean": None, "at_step": 1000, "fraction_at_step_mean": None,
               "fraction_at_step_std": None, "fraction_at_step_runs": 3}
    summary.update(values)
    return summary


def test_paper_table4_sits_beside_our_fraction_at_step():
    from pipelines.paper import compare_with_paper

    groups = [_summary("spin", "cheetah-run", "medium-expert", fraction_at_step_mean=0.9123,
                       fraction_at_step_std=0.0456),
              _summary("factored", "cheetah-run", "medium-expert", fraction_at_step_mean=0.4,
                       fraction_at_step_std=0.1, fraction_at_step_runs=2)]
    text = compare_with_paper("table4", groups, "10,000 gradient steps per run")
    lines = text.splitlines()
    ours = next(line for line in lines if line.startswith("cheetah"))
    paper = lines[lines.index(ours) + 1]
    # Our cells: percent mean ± std over seeds, the seeds evaluated by then when not all were.
    assert ours.split()[1:] == ["ours", "40.0%", "±", "10.0%", "(2/3)", "-", "-", "91.2%", "±",
                                "4.6%"]
    assert paper.split() == ["paper", "30.3%", "40.9%", "46.1%", "90.6%"]  # the paper's row
    assert "after 1,000 gradient steps" in text and "after 10,000 steps" in text
    # Only blocks with runs are printed, and one matched row has no "Average" line.
    assert "Medium-Expert" in text and "Random-Medium-Expert" not in text
    assert "Average" not in text

    two = groups + [_summary("spin", "finger-spin", "medium-expert", fraction_at_step_mean=0.5,
                             fraction_at_step_std=0.0)]
    average = next(line for line in compare_with_paper("table4", two).splitlines()
                   if line.startswith("Average"))
    # F-IQL has one of the two rows (said so); SPIN's is (91.23 + 50) / 2.
    assert average.split() == ["Average", "ours", "40.0%", "(1/2", "rows)", "-", "-", "70.6%"]

    nothing = compare_with_paper("table4", [_summary("spin", "maze-5", "medium-expert")])
    assert "no run of this pipeline matches" in nothing


def test_paper_table1_sits_beside_our_returns_and_times():
    from pipelines.paper import compare_with_paper

    groups = [_summary("spin", "cheetah-run", "medium", final_return_mean=290.04,
                       final_return_std=5.0, time_to_target_s_mean=150.0),
              _summary("factored", "cheetah-run", "medium", final_return_mean=280.0,
                       final_return_std=1.25, time_to_target_s_mean=600.0, reached=2)]
    lines = compare_with_paper("table1", groups).splitlines()
    ours = next(line for line in lines if line.startswith("cheetah") and "ours" in line)
    assert ours.split() == ["cheetah", "ours", "280.0", "±", "1.2", "-", "-", "290.0", "±", "5.0"]
    assert lines[lines.index(ours) + 1].split() == [
        "paper", "293.0", "±", "6.9", "284.7", "±", "7.2", "293.5", "±", "6.1", "293.6", "±",
        "4.1"]
    per_task = lines[next(i for i, line in enumerate(lines) if line.startswith("Time to target")):]
    times = next(line for line in per_task if line.startswith("cheetah"))  # the Medium block's
    assert times.split() == ["cheetah", "ours", "10.0", "(2/3)", "-", "-", "2.5"]
