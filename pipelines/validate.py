"""Pipeline files validated completely before any work starts.

:func:`load_pipeline` reads a pipeline file (YAML with line numbers, :mod:`spin_data.yaml_lines`)
and checks everything a run needs - unknown keys, references to undefined names, recipes,
pre-training and policy settings - into a :class:`pipelines.spec.Pipeline`, raising
:class:`pipelines.spec.PipelineError` naming the file, the line and the key. Cycles (through
``after``) are found by :mod:`pipelines.graph`, also before any work.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from pipelines.spec import (
    DatasetSpec,
    Pipeline,
    PipelineError,
    PolicySpec,
    PretrainSpec,
    Ref,
    ReportSpec,
)
from spin_data.envs.reference import SCORE_SCALES
from spin_data.yaml_lines import LineList, LineMap, YamlFileError, read_yaml

#: Step-level keys every dataset entry, pre-training group and policy group may carry.
RESOURCE_KEYS = ("cpus", "gpus")
#: Config fields the pipeline sets itself (each step's location and inputs; no live bars).
PIPELINE_OWNED = {
    "dataset": "the dataset comes from 'datasets:' (name it with 'datasets: [NAME]')",
    "out": "each step writes under the pipeline's output root ('out:' at the top, or --out)",
    "progress": "the pipeline reports progress itself",
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOP_KEYS = ("name", "description", "out", "store_root", "cache_dir", "defaults", "datasets",
            "pretrain", "policies", "report")


def _read_file(path: str | os.PathLike) -> Any:
    """A pipeline file's YAML as :class:`LineMap` / :class:`LineList` / scalars, with lines."""
    try:
        return read_yaml(path)
    except YamlFileError as err:
        if err.unreadable:
            raise PipelineError(f"cannot read the pipeline file: {err.problem}", path) from None
        raise PipelineError(err.problem, path, err.line) from None


class _Checker:
    """Validation helpers that know the file, so every error names it with a line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str, line: int | None) -> PipelineError:
        return PipelineError(message, self.path, line)

    def mapping(self, value: Any, what: str, line: int) -> LineMap:
        if value is None:
            value = LineMap()
            value.line = line
        if not isinstance(value, LineMap):
            raise self.fail(f"{what} must be a mapping of keys, got {_kind(value)}", line)
        return value

    def keys(self, mapping: LineMap, accepted: set[str] | tuple[str, ...], what: str,
             reasons: dict[str, str] | None = None) -> None:
        for key in mapping:
            if not isinstance(key, str):
                raise self.fail(f"{what}: keys must be text, got {key!r}", mapping.line_of(key))
            if key in accepted:
                continue
            line = mapping.line_of(key)
            if reasons and key in reasons:
                raise self.fail(f"{what}: key {key!r} cannot be set here: {reasons[key]}", line)
            close = difflib.get_close_matches(key, list(accepted), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.fail(f"unknown key {key!r} in {what}{hint}; accepted: "
                            + ", ".join(sorted(accepted)), line)

    def name(self, value: Any, what: str, line: int) -> str:
        if not isinstance(value, str) or not NAME_RE.match(value):
            raise self.fail(f"{what} {value!r} is not a valid name (letters, digits, '_', '.', "
                            "'-'; starting with a letter or digit)", line)
        return value

    def names(self, value: Any, what: str, line: int) -> list[Ref]:
        """A name or a list of names -> refs with their lines."""
        if isinstance(value, str):
            return [Ref(self.name(value, what, line), line)]
        if not isinstance(value, LineList) or not value:
            raise self.fail(f"{what} must be a name or a non-empty list of names", line)
        return [Ref(self.name(v, what, value.line_of(i)), value.line_of(i))
                for i, v in enumerate(value)]

    def choices(self, value: Any, accepted: tuple[str, ...], what: str, line: int) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise self.fail(f"{what} must be one of {', '.join(accepted)} or a list of them", line)
        out = []
        for i, item in enumerate(items):
            item_line = items.line_of(i) if isinstance(items, LineList) else line
            if item not in accepted:
                raise self.fail(f"unknown {what[:-1] if what.endswith('s') else what} {item!r}; "
                                f"accepted: {', '.join(accepted)}", item_line)
            if item in out:
                raise self.fail(f"{item!r} is listed twice in {what}", item_line)
            out.append(item)
        return out

    def positive_int(self, value: Any, what: str, line: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(f"{what} must be a whole number >= 1, got {value!r}", line)
        return value

    def resources(self, value: Any, what: str, line: int) -> dict[str, float]:
        res = self.mapping(value, f"{what} resources", line)
        self.keys(res, RESOURCE_KEYS, f"{what} resources")
        out: dict[str, float] = {}
        for key, val in res.items():
            if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0 or (
                    key == "cpus" and val <= 0):
                raise self.fail(f"{what} resources: {key} must be a number "
                                f"{'> 0' if key == 'cpus' else '>= 0'}, got {val!r}",
                                res.line_of(key))
            out[key] = float(val)
        return out


def _kind(value: Any) -> str:
    """How an error names a value's YAML type."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "nothing" if value is None else type(value).__name__


def _config_fields(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


# ============================================================================= sections
def _dataset(check: _Checker, name: str, entry: Any, line: int, base_dir: Path,
             defaults: LineMap) -> DatasetSpec:
    from spin_data.recipe import Recipe, RecipeError, catalog, find_recipe

    what = f"dataset {name!r}"
    entry = check.mapping(entry, what, line)
    recipe_keys = _config_fields(Recipe)
    check.keys(entry, recipe_keys | {"recipe", "workers", "resources", "after"}, what)
    overrides = {k: v for k, v in entry.items() if k in recipe_keys}

    def recipe_error(err: Exception) -> PipelineError:
        message = " ".join(str(err).split()).removeprefix(f"{what}: ")
        # Point at the key the library's message is about (e.g. "unknown quality 'superb'").
        key = next((k for k in entry if k in recipe_keys and re.search(rf"\b{k}", message)),
                   None)
        key_line = entry.line_of(key) if key else entry.line
        return check.fail(f"{what}: invalid recipe: {message}", key_line)

    try:
        if "recipe" in entry:
            ref = entry["recipe"]
            if not isinstance(ref, str):
                raise check.fail(f"{what}: recipe must be a recipe file or a catalog name",
                                 entry.line_of("recipe"))
            path = (base_dir / ref) if not Path(ref).is_absolute() else Path(ref)
            if not path.is_file():
                path = catalog().get(ref, path)
            if not Path(path).is_file():
                raise check.fail(f"{what}: recipe {ref!r} is neither a file (relative to the "
                                 "pipeline file) nor a name in the datasets/ catalog",
                                 entry.line_of("recipe"))
            base = Recipe.from_yaml(path).to_dict()
        else:
            for key in ("env", "quality"):
                if key not in entry:
                    raise check.fail(f"{what} needs 'env' and 'quality' (the catalog's recipe "
                                     "for them, other keys override it) or 'recipe: FILE'",
                                     entry.line)
            base = find_recipe(entry["env"], entry["quality"], entry.get("bins")).to_dict()
        recipe = Recipe.from_dict({**base, **overrides}, where=what)
    except PipelineError:
        raise
    except (RecipeError, ValueError, TypeError) as err:
        raise recipe_error(err) from None

    dataset_defaults = defaults.get("dataset") or LineMap()
    workers = entry.get("workers", dataset_defaults.get("workers", 1))
    workers = check.positive_int(workers, f"{what}: workers", entry.line_of("workers"))
    resources = {"cpus": float(workers), "gpus": 0.0}
    resources |= check.resources(dataset_defaults.get("resources"), "defaults.dataset",
                                 dataset_defaults.line_of("resources"))
    resources |= check.resources(entry.get("resources"), what, entry.line_of("resources"))
    after = check.names(entry["after"], f"{what}: after", entry.line_of("after")) \
        if "after" in entry else []
    return DatasetSpec(name, recipe, workers, resources, after, entry.line)


def _step_settings(check: _Checker, entry: LineMap, defaults: LineMap, section: str,
                   config_keys: set[str], what: str) -> tuple[dict[str, Any], dict[str, float]]:
    """A group's config (defaults.<section> under the group's own keys) and resources."""
    merged: dict[str, Any] = {k: v for k, v in defaults.items() if k in config_keys}
    merged |= {k: v for k, v in entry.items() if k in config_keys}
    device = str(merged.get("device", "auto"))
    resources = {"cpus": 1.0, "gpus": 1.0 if device.startswith("cuda") else 0.0}
    resources |= check.resources(defaults.get("resources"), f"defaults.{section}",
                                 defaults.line_of("resources"))
    resources |= check.resources(entry.get("resources"), what, entry.line_of("resources"))
    return merged, resources


def _typed(check: _Checker, cls: type, config: dict[str, Any], sources: list[LineMap],
           what: str) -> dict[str, Any]:
    """Values of the types ``cls``'s fields declare (one error naming key and line, not a
    TypeError from deep inside the library). A text that reads as a number is accepted for a
    float field: YAML 1.1 reads ``3e-4`` (no dot) as text."""
    def line_of(key: str) -> int:
        return next((src.line_of(key) for src in sources if key in src), sources[0].line)

    types = {f.name: str(f.type) for f in fields(cls)}
    out = {}
    for key, value in config.items():
        declared = types.get(key, "")
        if value is None and "None" in declared:
            out[key] = value
            continue
        base = declared.replace("| None", "").strip()
        ok = {"bool": isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "str": isinstance(value, str)}.get(base, True)
        if not ok and base == "float" and isinstance(value, str):
            try:
                value, ok = float(value), True
            except ValueError:
                pass
        if not ok:
            kind = {"bool": "true or false", "int": "a whole number", "float": "a number",
                    "str": "text"}[base]
            raise check.fail(f"{what}: {key} must be {kind}"
                             f"{' or null' if 'None' in declared else ''}, got {value!r}",
                             line_of(key))
        out[key] = float(value) if base == "float" else value
    return out


def _config_error(check: _Checker, what: str, entry: LineMap, defaults: LineMap,
                  err: Exception) -> PipelineError:
    message = " ".join(str(err).split())
    for source in (entry, defaults):
        key = next((k for k in source if isinstance(k, str) and re.search(rf"\b{k}\b", message)),
                   None)
        if key:
            return check.fail(f"{what}: {message}", source.line_of(key))
    return check.fail(f"{what}: {message}", entry.line)


def _inputs(check: _Checker, entry: LineMap, datasets: list[str],
            what: str) -> tuple[list[Ref], list[Ref]]:
    """A group's ``datasets:`` (default: every dataset of the file) and ``after:`` references."""
    refs = (check.names(entry["datasets"], f"{what}: datasets", entry.line_of("datasets"))
            if "datasets" in entry else [Ref(d, entry.line) for d in datasets])
    after = (check.names(entry["after"], f"{what}: after", entry.line_of("after"))
             if "after" in entry else [])
    return refs, after


def _pretrain(check: _Checker, name: str, entry: Any, line: int, defaults: LineMap,
              datasets: list[str]) -> PretrainSpec:
    from spin_train.pretrain import PretrainConfig

    what = f"pretrain group {name!r}"
    entry = check.mapping(entry, what, line)
    config_keys = _config_fields(PretrainConfig) - set(PIPELINE_OWNED)
    check.keys(entry, config_keys | {"datasets", "resources", "after"}, what, PIPELINE_OWNED)
    section = defaults.get("pretrain") or LineMap()
    config, resources = _step_settings(check, entry, section, "pretrain", config_keys, what)
    config = _typed(check, PretrainConfig, config, [entry, section], what)
    try:
        PretrainConfig(dataset="<dataset>", **config)
    except (ValueError, TypeError) as err:
        raise _config_error(check, what, entry, section, err) from None
    refs, after = _inputs(check, entry, datasets, what)
    return PretrainSpec(name, refs, config, resources, after, entry.line)


def _seeds(check: _Checker, value: Any, what: str, line: int) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise check.fail(f"{what}: seeds must be a count >= 1 or a list of seeds", line)
        return list(range(value))
    if not isinstance(value, LineList) or not value:
        raise check.fail(f"{what}: seeds must be a count (3 -> 0, 1, 2) or a list of seeds", line)
    out = []
    for i, seed in enumerate(value):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 or seed in out:
            raise check.fail(f"{what}: seed {seed!r} must be a whole number >= 0, listed once",
                             value.line_of(i))
        out.append(seed)
    return out


#: Why a PolicyConfig field cannot be set in a policy group (the group sets it per run).
POLICY_REASONS = PIPELINE_OWNED | {
    "actor": "list the actors under 'actors:'", "algo": "list them under 'algos:'",
    "seed": "list them under 'seeds:' (or give a count)",
    "asm": "name a pretrain group with 'asm:' in a policy group"}


def _policy_keys() -> set[str]:
    """PolicyConfig fields a policy group may set (actor/algo/seed/asm come from its grid)."""
    from spin_train.policy import PolicyConfig

    return _config_fields(PolicyConfig) - set(PIPELINE_OWNED) - {"actor", "algo", "seed", "asm"}


def _policy(check: _Checker, name: str, entry: Any, line: int, defaults: LineMap,
            datasets: list[str]) -> PolicySpec:
    from spin_train.algos import ALGO_NAMES
    from spin_train.policy import PolicyConfig
    from spin_train.policy.trainer import NEEDS_ASM, POLICY_ACTORS as ACTORS

    what = f"policy group {name!r}"
    entry = check.mapping(entry, what, line)
    config_keys = _policy_keys()
    check.keys(entry, config_keys | {"datasets", "actors", "algos", "seeds", "asm", "resources",
                                     "after"}, what, POLICY_REASONS)
    section = defaults.get("policy") or LineMap()
    if "actors" not in entry:
        raise check.fail(f"{what} needs 'actors:' (any of {', '.join(ACTORS)})", entry.line)
    actors = check.choices(entry["actors"], tuple(ACTORS), "actors", entry.line_of("actors"))
    algo_source = entry if "algos" in entry else section
    algos = check.choices(algo_source.get("algos", "iql"), ALGO_NAMES, "algos",
                          algo_source.line_of("algos"))
    seed_source = entry if "seeds" in entry else section
    seeds = _seeds(check, seed_source.get("seeds", 1), what, seed_source.line_of("seeds"))
    asm = None
    if "asm" in entry:
        asm = Ref(check.name(entry["asm"], f"{what}: asm", entry.line_of("asm")),
                  entry.line_of("asm"))
    needs = [a for a in actors if a in NEEDS_ASM]
    if needs and asm is None:
        raise check.fail(f"{what}: actor {needs[0]!r} needs 'asm: <a pretrain group>' (its "
                         "pre-trained Action Structure Model)", entry.line_of("actors"))
    config, resources = _step_settings(check, entry, section, "policy", config_keys, what)
    config = _typed(check, PolicyConfig, config, [entry, section], what)
    for actor in actors:
        for algo in algos:
            try:
                PolicyConfig(dataset="<dataset>", asm="<asm>" if actor in NEEDS_ASM else None,
                             actor=actor, algo=algo, **config)
            except (ValueError, TypeError) as err:
                raise _config_error(check, what, entry, section, err) from None
    refs, after = _inputs(check, entry, datasets, what)
    return PolicySpec(name, refs, actors, algos, seeds, asm, config, resources, after,
                      entry.line)


def _report(check: _Checker, entry: Any, line: int) -> ReportSpec:
    from pipelines.paper import load_paper_tables

    entry = check.mapping(entry, "report", line)
    check.keys(entry, ("title", "fraction", "at_step", "target", "paper", "policies",
                       "target_policies", "score_scale", "last_evaluations"), "report")
    spec = ReportSpec(line=entry.line)
    if "title" in entry:
        spec.title = str(entry["title"])
    if "fraction" in entry:
        value = entry["fraction"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise check.fail(f"report: fraction must be in (0, 1], got {value!r}",
                             entry.line_of("fraction"))
        spec.fraction = float(value)
    if "score_scale" in entry:
        if entry["score_scale"] not in SCORE_SCALES:
            raise check.fail(f"report: score_scale must be one of {', '.join(SCORE_SCALES)}, "
                             f"got {entry['score_scale']!r}", entry.line_of("score_scale"))
        spec.score_scale = entry["score_scale"]
    if "at_step" in entry:
        spec.at_step = check.positive_int(entry["at_step"], "report: at_step",
                                          entry.line_of("at_step"))
    if "last_evaluations" in entry:
        spec.last_evaluations = check.positive_int(entry["last_evaluations"],
                                                   "report: last_evaluations",
                                                   entry.line_of("last_evaluations"))
    if "target" in entry and entry["target"] is not None:
        value = entry["target"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise check.fail(f"report: target must be a return, got {value!r}",
                             entry.line_of("target"))
        spec.target = float(value)
    if "paper" in entry:
        tables = load_paper_tables()["tables"]
        if entry["paper"] not in tables:
            raise check.fail(f"report: unknown paper table {entry['paper']!r}; accepted: "
                             + ", ".join(tables), entry.line_of("paper"))
        spec.paper = entry["paper"]
    if "policies" in entry:
        spec.policies = check.names(entry["policies"], "report: policies",
                                    entry.line_of("policies"))
    if "target_policies" in entry:
        if spec.target is not None:
            raise check.fail("report: give either target (one return for every group) or "
                             "target_policies (groups whose F-IQL runs set each dataset's), "
                             "not both", entry.line_of("target_policies"))
        spec.target_policies = check.names(entry["target_policies"], "report: target_policies",
                                           entry.line_of("target_policies"))
    return spec


# ============================================================================= entry point
def load_pipeline(path: str | os.PathLike, *, out: str | os.PathLike | None = None) -> Pipeline:
    """Parse and validate a pipeline file (``out`` overrides the file's output root).

    Raises:
        PipelineError: the first problem found, naming the file, the line and the key.
    """
    path = Path(path)
    check = _Checker(path)
    doc = _read_file(path)
    if not isinstance(doc, LineMap):
        raise check.fail("a pipeline file holds one mapping (name:, datasets:, ...)", None)
    check.keys(doc, TOP_KEYS, "the pipeline")
    if "name" not in doc:
        raise check.fail("the pipeline needs a 'name:'", doc.line)
    name = check.name(doc["name"], "pipeline name", doc.line_of("name"))
    for key in ("out", "store_root", "cache_dir", "description"):
        if key in doc and not isinstance(doc[key], str):
            raise check.fail(f"{key} must be text, got {_kind(doc[key])}", doc.line_of(key))
    out_root = Path(out if out is not None else doc.get("out", f"runs/pipelines/{name}"))
    pipeline = Pipeline(name=name, path=path, out=out_root.expanduser().resolve(),
                        store_root=doc.get("store_root"), cache_dir=doc.get("cache_dir"),
                        description=doc.get("description", ""))
    if pipeline.store_root and "://" not in pipeline.store_root:
        pipeline.store_root = str(Path(pipeline.store_root).expanduser().resolve())
    if pipeline.cache_dir:
        pipeline.cache_dir = str(Path(pipeline.cache_dir).expanduser().resolve())

    defaults = check.mapping(doc.get("defaults"), "defaults", doc.line_of("defaults"))
    check.keys(defaults, ("behaviour", "dataset", "pretrain", "policy"), "defaults")
    for key in defaults:
        defaults[key] = check.mapping(defaults[key], f"defaults.{key}", defaults.line_of(key))
    if "behaviour" in defaults:
        check.keys(defaults["behaviour"], ("resources",), "defaults.behaviour")
        pipeline.behaviour_resources = check.resources(
            defaults["behaviour"].get("resources"), "defaults.behaviour",
            defaults["behaviour"].line_of("resources"))
    if "dataset" in defaults:
        check.keys(defaults["dataset"], ("workers", "resources"), "defaults.dataset")
    if "pretrain" in defaults:
        from spin_train.pretrain import PretrainConfig

        check.keys(defaults["pretrain"],
                   _config_fields(PretrainConfig) - set(PIPELINE_OWNED) | {"resources"},
                   "defaults.pretrain", PIPELINE_OWNED)
    if "policy" in defaults:
        check.keys(defaults["policy"], _policy_keys() | {"resources", "algos", "seeds"},
                   "defaults.policy", POLICY_REASONS)

    if "datasets" not in doc:
        raise check.fail("the pipeline needs a 'datasets:' section", doc.line)
    section = check.mapping(doc["datasets"], "datasets", doc.line_of("datasets"))
    if not section:
        raise check.fail("'datasets:' names no dataset", section.line)
    taken: dict[str, str] = {}

    def claim(entry_name: Any, what: str, line: int) -> str:
        entry_name = check.name(entry_name, what, line)
        if entry_name == "report" or entry_name in taken:
            other = "the report" if entry_name == "report" else taken[entry_name]
            raise check.fail(f"{what} {entry_name!r}: the name is already used by {other}", line)
        taken[entry_name] = f"{what} {entry_name!r}"
        return entry_name

    base_dir = path.resolve().parent
    for key, entry in section.items():
        ds_name = claim(key, "dataset", section.line_of(key))
        pipeline.datasets[ds_name] = _dataset(check, ds_name, entry, section.line_of(key),
                                              base_dir, defaults)
    ids: dict[str, str] = {}
    for ds in pipeline.datasets.values():  # compare() groups runs by dataset id
        if ds.recipe.name in ids:
            raise check.fail(f"datasets {ids[ds.recipe.name]!r} and {ds.name!r} would both be "
                             f"{ds.recipe.name!r}: give one a 'dataset_id:'", ds.line)
        ids[ds.recipe.name] = ds.name

    dataset_names = list(pipeline.datasets)
    for key, entry in check.mapping(doc.get("pretrain"), "pretrain",
                                    doc.line_of("pretrain")).items():
        group = claim(key, "pretrain group", doc["pretrain"].line_of(key))
        pipeline.pretrain[group] = _pretrain(check, group, entry, doc["pretrain"].line_of(key),
                                             defaults, dataset_names)
    policies = check.mapping(doc.get("policies"), "policies", doc.line_of("policies"))
    for key, entry in policies.items():
        group = claim(key, "policy group", policies.line_of(key))
        pipeline.policies[group] = _policy(check, group, entry, policies.line_of(key), defaults,
                                           dataset_names)
    pipeline.report = _report(check, doc.get("report"), doc.line_of("report"))
    _check_references(check, pipeline)
    return pipeline


def _check_references(check: _Checker, pipeline: Pipeline) -> None:
    """Every name used is defined, and of the kind its place needs."""
    def need(ref: Ref, kinds: tuple[str, ...], where: str) -> None:
        kind = pipeline.kind_of(ref.name)
        if kind is None:
            known = list(pipeline.datasets) + list(pipeline.pretrain) + list(pipeline.policies)
            close = difflib.get_close_matches(ref.name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            labels = {"dataset": "datasets", "pretrain": "pretrain groups",
                      "policy": "policy groups"}
            defined = [n for n in known if pipeline.kind_of(n) in kinds]
            raise check.fail(f"{where}: {ref.name!r} is not defined{hint}; "
                             f"{' or '.join(labels[k] for k in kinds)} defined: "
                             + (", ".join(defined) or "none"), ref.line)
        if kind not in kinds:
            raise check.fail(f"{where}: {ref.name!r} is a {kind}, not a "
                             f"{' or '.join(kinds)}", ref.line)

    for ds in pipeline.datasets.values():
        for ref in ds.after:
            need(ref, ("dataset", "pretrain", "policy"), f"dataset {ds.name!r}: after")
    for group in pipeline.pretrain.values():
        for ref in group.datasets:
            need(ref, ("dataset",), f"pretrain group {group.name!r}: datasets")
        for ref in group.after:
            need(ref, ("dataset", "pretrain", "policy"), f"pretrain group {group.name!r}: after")
    for group in pipeline.policies.values():
        where = f"policy group {group.name!r}"
        for ref in group.datasets:
            need(ref, ("dataset",), f"{where}: datasets")
        for ref in group.after:
            need(ref, ("dataset", "pretrain", "policy"), f"{where}: after")
        if group.asm is not None:
            need(group.asm, ("pretrain",), f"{where}: asm")
            covered = {r.name for r in pipeline.pretrain[group.asm.name].datasets}
            missing = [r for r in group.datasets if r.name not in covered]
            if missing:
                raise check.fail(f"{where}: asm group {group.asm.name!r} pre-trains no ASM on "
                                 f"dataset {missing[0].name!r}", group.asm.line)
    if pipeline.report.policies:
        for ref in pipeline.report.policies:
            need(ref, ("policy",), "report: policies")
    # Target groups are left out of the reported ones by default; listed in both, their F-IQL
    # runs would be averaged with the reported F-IQL runs of the same dataset.
    reported = {r.name for r in pipeline.report.policies or ()}
    for ref in pipeline.report.target_policies or ():
        need(ref, ("policy",), "report: target_policies")
        if ref.name in reported:
            raise check.fail(f"report: group {ref.name!r} is in both policies and "
                             "target_policies; a group either sets the targets or is compared",
                             ref.line)
