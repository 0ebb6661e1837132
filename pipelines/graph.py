"""The step graph of a pipeline: content-addressed steps, their dependencies, what is done.

Step kinds, in dependency order:

* ``behaviour``: the behaviour-policy run a dataset recipe needs (SB3; shared by every dataset
  of the same task, budget and seed, so datasets that share it never train it twice or race
  for its lock);
* ``dataset``: ``spin_data.generate`` of a recipe into a store;
* ``pretrain``: ``spin_train.pretrain`` on a dataset (one per dataset of a pre-training group);
* ``policy``: ``spin_train.train_policy`` (dataset x actor x algo x seed of a policy group;
  spin/distill also depend on their dataset's pre-training run);
* ``report``: compare table, CSV, learning curves and paper numbers over the policy runs.

A step's **identity** is the sha256 of its kind, its resolved parameters (those that change its
result: not where it writes, its progress bar or its device) and the identities of the steps it
reads. Its directory is ``<out>/<kind>/<name>-<identity[:10]>``; ``step.json`` there says
whether it completed, for which identity. ``after:`` orders steps without feeding them, so it
does not enter identities.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.spec import Pipeline, PipelineError

#: Bump when what a step kind produces changes, so old step directories are not reused.
STEP_FORMAT = 1
#: Config fields that do not change a step's result (where it writes, how it shows progress,
#: where caches live, how often losses are read): left out of identities.
NOT_IDENTITY = {"out", "progress", "cache_dir", "dataset", "asm", "log_every"}
KINDS = ("behaviour", "dataset", "pretrain", "policy", "report")
STEP_FILE = "step.json"


def digest(data: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Step:
    """One unit of work: what it runs (``params``), what it reads (``inputs``), where it writes.

    Attributes:
        name: unique within the pipeline (``maze5-me``, ``asm-maze5-me``,
            ``main-maze5-me-spin-iql-s0``, ``report``).
        kind: one of :data:`KINDS`.
        params: everything the step's runner needs, JSON-able (paths are absolute).
        inputs: names of the steps whose outputs it reads (these enter its identity).
        after: names of steps it only waits for (``after:`` in the file).
        identity: sha256 hex of kind, identity parameters and input identities.
        dir: the step directory.
        resources: ``{"cpus": c, "gpus": g}`` (Ray's task resources; cpus also sets torch's
            thread count, so a step computes the same numbers under every executor).
        summary: one line for ``--dry-run``.
        work: estimated work units (``env_steps``, ``behaviour_steps``, ``pretrain_steps``,
            ``policy_steps``, ``eval_episodes``).
    """

    name: str
    kind: str
    params: dict[str, Any]
    inputs: tuple[str, ...]
    after: tuple[str, ...]
    identity: str
    dir: Path
    resources: dict[str, float]
    summary: str
    work: dict[str, int] = field(default_factory=dict)

    @property
    def deps(self) -> tuple[str, ...]:
        return self.inputs + tuple(a for a in self.after if a not in self.inputs)

    @property
    def step_file(self) -> Path:
        return self.dir / STEP_FILE

    def payload(self, graph: "Graph") -> dict[str, Any]:
        """What a worker process needs to run the step (plain data: picklable, Ray-ready)."""
        return {"name": self.name, "kind": self.kind, "identity": self.identity,
                "dir": str(self.dir), "params": self.params, "resources": self.resources,
                "pipeline": graph.pipeline.name,
                "inputs": {n: {"kind": graph.steps[n].kind, "identity": graph.steps[n].identity,
                               "dir": str(graph.steps[n].dir),
                               "store": graph.steps[n].params.get("store")}
                           for n in self.inputs}}


def read_step_file(step_dir: Path) -> dict[str, Any] | None:
    """A step directory's ``step.json`` (None when absent or unreadable)."""
    try:
        return json.loads((Path(step_dir) / STEP_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def outputs_exist(step: Step) -> bool:
    """The files a complete step leaves behind are there (a store, asm.pt, policy.pt...)."""
    if step.kind == "dataset":
        from spin_data.store.location import exists

        return exists(step.params["store"])
    if step.kind == "behaviour":
        from spin_data.behaviour import load_ladder

        ladder = load_ladder(step.params["run_dir"])
        return ladder is not None and ladder.complete
    expected = {"pretrain": "asm.pt", "policy": "policy.pt", "report": "report.md"}[step.kind]
    return (step.dir / expected).exists()


def is_done(step: Step) -> bool:
    """Complete for this very identity, outputs in place: nothing to redo."""
    record = read_step_file(step.dir)
    return bool(record and record.get("status") == "complete"
                and record.get("identity") == step.identity and outputs_exist(step))


@dataclass
class Graph:
    """The steps of a pipeline in a topological order (dependencies first)."""

    pipeline: Pipeline
    steps: dict[str, Step]

    @property
    def order(self) -> list[Step]:
        return list(self.steps.values())

    def report_step(self) -> Step | None:
        return self.steps.get("report")


# ============================================================================= building
def _behaviour_config(recipe: Any):
    """The behaviour run ``spin_data.generate`` trains for ``recipe`` (as its pick_behaviour
    builds it), or None when the recipe needs only uniform-random data."""
    if all(s == "random" for s in recipe.mix):
        return None
    from spin_data.generate import behaviour_config

    return behaviour_config(recipe)


def _identity(kind: str, params: dict[str, Any], inputs: dict[str, str]) -> str:
    return digest({"format": STEP_FORMAT, "kind": kind, "params": params, "inputs": inputs})


class _Builder:
    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline
        self.steps: dict[str, Step] = {}
        self.group_steps: dict[str, list[str]] = {}  # spec name -> its steps
        self.behaviours: dict[str, str] = {}  # behaviour config digest -> its step
        self.caches = self._caches()

    def _caches(self) -> dict[str, str | None]:
        root = self.p.cache_dir
        # Behaviour runs live under the output root unless a cache is named: every node of a
        # cluster that can reach the output root then finds the run its dataset step needs.
        return {"behaviour": str(Path(root) / "behaviour") if root
                else str(self.p.out / "behaviour-cache"),
                "datasets": str(Path(root) / "datasets") if root else None}

    def add(self, name: str, kind: str, params: dict[str, Any], identity_params: dict[str, Any],
            inputs: tuple[str, ...], resources: dict[str, float], summary: str,
            work: dict[str, int], line: int) -> Step:
        if name in self.steps:
            raise PipelineError(f"two steps would both be called {name!r}: rename a dataset "
                                "or group", self.p.path, line)
        identity = _identity(kind, identity_params, {n: self.steps[n].identity for n in inputs})
        step = Step(name=name, kind=kind, params=params, inputs=inputs, after=(),
                    identity=identity, dir=self.p.out / kind / f"{name}-{identity[:10]}",
                    resources=dict(resources), summary=summary, work=work)
        self.steps[name] = step
        return step

    # ----------------------------------------------------------------------- per kind
    def behaviour(self, recipe: Any, line: int) -> str | None:
        config = _behaviour_config(recipe)
        if config is None:
            return None
        from spin_data.behaviour import load_ladder, run_directory

        key = digest(config.to_dict())
        if key in self.behaviours:  # datasets of one task, budget and seed share the run
            return self.behaviours[key]
        name = f"behaviour-{config.canonical_env}-{recipe.n_bins}bins-{config.algorithm}-" \
               f"{recipe.budget}-s{config.seed}"
        if name in self.steps:  # same names, another config (e.g. the other DMC grid)
            name += f"-{key[:6]}"
        self.behaviours[key] = name
        run_dir = run_directory(config, self.caches["behaviour"])
        ladder = load_ladder(run_dir)
        cached = ladder is not None and ladder.complete
        self.add(name, "behaviour",
                 params={"config": config.to_dict(), "cache_dir": self.caches["behaviour"],
                         "run_dir": str(run_dir)},
                 identity_params={"config": config.to_dict()}, inputs=(),
                 resources={"cpus": 1.0, "gpus": 0.0} | self.p.behaviour_resources,
                 summary=f"train {config.algorithm.upper()} behaviour policies on "
                         f"{config.canonical_env} ({config.budget:,} env steps, budget "
                         f"{recipe.budget}{'; already in the cache' if cached else ''})",
                 work={"behaviour_steps": 0 if cached else int(config.budget)}, line=line)
        return name

    def dataset(self, ds) -> None:
        recipe = ds.recipe
        behaviour = self.behaviour(recipe, ds.line)
        step = self.add(
            ds.name, "dataset",
            params={"recipe": recipe.to_dict(), "workers": ds.workers, "store": None,
                    "behaviour_cache": self.caches["behaviour"]},
            identity_params={"recipe": recipe.to_dict()},
            inputs=(behaviour,) if behaviour else (), resources=ds.resources,
            summary=f"generate {recipe.name}: {recipe.size:,} transitions "
                    f"({', '.join(f'{s} {f:.0%}' for s, f in recipe.mix.items())}), "
                    f"seed {recipe.seed}",
            work={"env_steps": int(recipe.size)}, line=ds.line)
        # The store: in the step's own directory, or under store_root (a directory or URL every
        # node reaches) with the same content-addressed name.
        step.params["store"] = (f"{self.p.store_root.rstrip('/')}/{step.dir.name}"
                                if self.p.store_root else str(step.dir / "store"))
        self.group_steps[ds.name] = [ds.name]

    def pretrain(self, group) -> None:
        names = []
        for ref in group.datasets:
            data = self.steps[ref.name]
            size = int(data.params["recipe"]["size"])
            cfg = group.config
            batch = int(cfg.get("batch_size", 1024))
            epochs = int(cfg.get("epochs", 100))
            per_epoch = math.ceil(size * (1 - float(cfg.get("val_fraction", 0.05))) / batch)
            params = {"config": dict(cfg), "cache_dir": self.caches["datasets"]}
            step = self.add(
                f"{group.name}-{ref.name}", "pretrain", params=params,
                identity_params={"config": {k: v for k, v in cfg.items()
                                            if k not in NOT_IDENTITY}},
                inputs=(ref.name,), resources=group.resources,
                summary=f"pre-train the ASM ({cfg.get('objective', 'mam')}) on {ref.name}: "
                        f"{epochs} epochs x ~{per_epoch:,} steps (batch {batch})",
                work={"pretrain_steps": epochs * per_epoch}, line=ref.line)
            names.append(step.name)
        self.group_steps[group.name] = names

    def policy(self, group) -> None:
        from spin_train.policy.trainer import NEEDS_ASM

        names = []
        for ref in group.datasets:
            for actor in group.actors:
                for algo in group.algos:
                    for seed in group.seeds:
                        cfg = dict(group.config) | {"actor": actor, "algo": algo, "seed": seed}
                        inputs: tuple[str, ...] = (ref.name,)
                        if actor in NEEDS_ASM:
                            inputs += (f"{group.asm.name}-{ref.name}",)
                        steps = int(cfg.get("steps", 1_000_000))
                        every = int(cfg.get("eval_every", 5_000))
                        evals = steps // every + (1 if steps % every else 0) + 1
                        episodes = evals * int(cfg.get("eval_episodes", 10))
                        distill = int(cfg.get("distill_steps", 20_000)) \
                            if actor == "distill" else 0
                        # IQL's critic prefit: critic-only steps before the RL steps
                        prefit = int(cfg.get("critic_prefit", 0)) if algo == "iql" else 0
                        step = self.add(
                            f"{group.name}-{ref.name}-{actor}-{algo}-s{seed}", "policy",
                            params={"config": cfg, "cache_dir": self.caches["datasets"]},
                            identity_params={"config": {k: v for k, v in cfg.items()
                                                        if k not in NOT_IDENTITY}},
                            inputs=inputs, resources=group.resources,
                            summary=f"{actor}-{algo} seed {seed} on {ref.name}: {steps:,} "
                                    f"steps" + (f" after {prefit:,} of the critic alone"
                                                if prefit else "")
                                    + f", {evals} evaluations x "
                                    f"{cfg.get('eval_episodes', 10)} episodes",
                            work={"policy_steps": steps + distill + prefit,
                                  "eval_episodes": episodes},
                            line=ref.line)
                        names.append(step.name)
        self.group_steps[group.name] = names

    def report(self) -> None:
        spec = self.p.report
        targets = [r.name for r in spec.target_policies or ()]
        groups = ([r.name for r in spec.policies] if spec.policies
                  else [g for g in self.p.policies if g not in targets])
        runs = [n for g in groups for n in self.group_steps[g]]
        target_runs = [n for g in targets for n in self.group_steps[g]]
        if not runs:
            return
        from spin_data.recipe import Recipe

        datasets = {}
        for name in runs:
            ds = self.steps[self.steps[name].inputs[0]]
            r = Recipe.from_dict(ds.params["recipe"])
            datasets[name] = {"dataset": ds.name, "env_task": r.canonical_env,
                              "bins": r.n_bins, "quality": r.quality}
        params = {"title": spec.title or f"Pipeline {self.p.name}", "fraction": spec.fraction,
                  "at_step": spec.at_step, "target": spec.target, "paper": spec.paper,
                  "last_evaluations": spec.last_evaluations}
        if spec.score_scale != "fraction":  # absent by default: older reports keep their id
            params["score_scale"] = spec.score_scale
        if target_runs:  # likewise
            params["target_runs"] = target_runs
        paper_rows = None
        if spec.paper:
            from pipelines.paper import load_paper_tables

            paper_rows = load_paper_tables()["tables"][spec.paper]
        self.add("report", "report",
                 params=params | {"runs": datasets, "pipeline_file": str(self.p.path),
                                  "all_steps": [], "description": self.p.description},
                 identity_params=params | {"paper_numbers": paper_rows},
                 inputs=tuple(runs) + tuple(target_runs),
                 resources={"cpus": 1.0, "gpus": 0.0},
                 summary=f"compare {len(runs)} policy runs: table, CSV, learning curves"
                         + (f", targets from {len(target_runs)} runs" if target_runs else "")
                         + (f", paper {spec.paper}" if spec.paper else ""),
                 work={}, line=spec.line)


def _check_cycles(pipeline: Pipeline) -> None:
    """Refuse a cycle among the file's datasets and groups (only ``after:`` can close one).

    The error points at an ``after:`` entry of the cycle: the edge a person can remove.
    """
    # name -> [(name it needs, line, through after:?)]
    edges: dict[str, list[tuple[str, int, bool]]] = {}
    for ds in pipeline.datasets.values():
        edges[ds.name] = [(r.name, r.line, True) for r in ds.after]
    for g in list(pipeline.pretrain.values()) + list(pipeline.policies.values()):
        edges[g.name] = [(r.name, r.line, False) for r in g.datasets]
        if getattr(g, "asm", None):
            edges[g.name].append((g.asm.name, g.asm.line, False))
        edges[g.name] += [(r.name, r.line, True) for r in g.after]
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    nodes: list[str] = []  # the current path's nodes
    walked: list[tuple[str, int, bool]] = []  # the edges between them

    def visit(node: str) -> None:
        state[node] = 1
        nodes.append(node)
        for edge in edges.get(node, []):
            nxt = edge[0]
            if state.get(nxt) == 1:
                loop = walked[nodes.index(nxt):] + [edge]
                names = [nxt] + [e[0] for e in loop]
                line = next((e[1] for e in loop if e[2]), edge[1])
                raise PipelineError(
                    "cycle: " + " -> ".join(f"{pipeline.kind_of(n)} {n!r}" for n in names)
                    + " (a step cannot wait for itself; check 'after:')", pipeline.path, line)
            if state.get(nxt) is None:
                walked.append(edge)
                visit(nxt)
                walked.pop()
        nodes.pop()
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node)


def build_graph(pipeline: Pipeline) -> Graph:
    """All steps of ``pipeline`` with identities and directories, in dependency order.

    Raises:
        PipelineError: a cycle through ``after:`` (with its line), or two steps of one name.
    """
    _check_cycles(pipeline)
    b = _Builder(pipeline)
    for ds in pipeline.datasets.values():
        b.dataset(ds)
    for group in pipeline.pretrain.values():
        b.pretrain(group)
    for group in pipeline.policies.values():
        b.policy(group)
    b.report()
    # after: wait for every step of the named dataset or group.
    specs = list(pipeline.datasets.values()) + list(pipeline.pretrain.values()) \
        + list(pipeline.policies.values())
    for spec in specs:
        waits = tuple(n for ref in spec.after for n in b.group_steps[ref.name])
        for name in b.group_steps[spec.name]:
            b.steps[name].after = waits
    ordered = _topological(b.steps, pipeline)
    if "report" in ordered:
        ordered["report"].params["all_steps"] = [
            {"name": s.name, "kind": s.kind, "dir": str(s.dir)} for s in ordered.values()
            if s.name != "report"]
    return Graph(pipeline, ordered)


def _topological(steps: dict[str, Step], pipeline: Pipeline) -> dict[str, Step]:
    """Kahn's order, stable (ties keep the file's order: datasets, pretrain, policies)."""
    remaining = dict(steps)
    ordered: dict[str, Step] = {}
    while remaining:
        ready = [s for s in remaining.values() if all(d in ordered for d in s.deps)]
        if not ready:  # _check_cycles catches file-level cycles first; this is a safety net
            raise PipelineError("cycle among steps: " + ", ".join(sorted(remaining)),
                                pipeline.path)
        for s in ready:
            ordered[s.name] = remaining.pop(s.name)
    return ordered


# ============================================================================= dry run
WORK_LABELS = {"behaviour_steps": "behaviour-training env steps",
               "env_steps": "transitions to collect",
               "pretrain_steps": "pre-training gradient steps",
               "policy_steps": "policy gradient steps",
               "eval_episodes": "evaluation episodes"}


def status_of(step: Step) -> str:
    """``done`` / ``partial`` (started, will resume) / ``todo``."""
    if is_done(step):
        return "done"
    record = read_step_file(step.dir)
    return "partial" if record and record.get("identity") == step.identity else "todo"


def describe(graph: Graph) -> str:
    """The graph, one step a line with its inputs and status, and the work left to do."""
    p = graph.pipeline
    statuses = {s.name: status_of(s) for s in graph.order}
    lines = [f"pipeline {p.name} ({p.path}) -> {p.out}", ""]
    width = max(len(s.name) for s in graph.order)
    for s in graph.order:
        deps = ""
        if s.deps:
            shown = list(s.deps[:3]) + ([f"+{len(s.deps) - 3} more"] if len(s.deps) > 3 else [])
            deps = "  <- " + ", ".join(shown)
        res = ""
        if s.kind != "report":
            res = f" [{s.resources['cpus']:g} cpu" + (
                f", {s.resources['gpus']:g} gpu" if s.resources.get("gpus") else "") + "]"
        lines.append(f"  {statuses[s.name]:7s} {s.kind:9s} {s.name:{width}s}{res}{deps}")
        lines.append(f"  {'':7s} {'':9s} {s.summary}")
    counts = {k: sum(1 for v in statuses.values() if v == k) for k in ("done", "partial", "todo")}
    lines += ["", f"{len(graph.steps)} steps: {counts['done']} done, {counts['partial']} "
              f"started (will resume), {counts['todo']} to run"]
    left: dict[str, int] = {}
    total: dict[str, int] = {}
    for s in graph.order:
        for k, v in s.work.items():
            total[k] = total.get(k, 0) + v
            if statuses[s.name] != "done":
                left[k] = left.get(k, 0) + v
    lines.append("estimated work left (of the whole pipeline's):")
    for key, label in WORK_LABELS.items():
        if total.get(key):
            lines.append(f"  {left.get(key, 0):>14,} / {total[key]:,} {label}")
    kinds = {}
    for s in graph.order:
        if statuses[s.name] != "done":
            kinds[s.kind] = kinds.get(s.kind, 0) + 1
    if kinds:
        lines.append("  steps to run by kind: " + ", ".join(f"{v} {k}" for k, v in kinds.items()))
    return "\n".join(lines)
