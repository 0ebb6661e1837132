"""The pipeline spec: what a validated pipeline file holds.

A pipeline file names datasets (by recipe), pre-training groups (one run per dataset), policy
groups (datasets x actors x objectives x seeds) and a report; see ``pipelines/README.md`` for
the format. :func:`pipelines.validate.load_pipeline` reads and checks a file into the
:class:`Pipeline` here, and :mod:`pipelines.graph` turns that into steps; both raise
:class:`PipelineError`, which names the file, the line and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class PipelineError(ValueError):
    """A pipeline file that cannot run; the message names the file, the line and the key."""

    def __init__(self, message: str, file: str | os.PathLike | None = None,
                 line: int | None = None) -> None:
        self.file, self.line, self.problem = file, line, message
        where = "" if file is None else (f"{file}:{line}: " if line else f"{file}: ")
        super().__init__(where + message)


@dataclass(frozen=True)
class Ref:
    """A name used somewhere in the file (an ``after`` entry, a dataset of a group...)."""

    name: str
    line: int


@dataclass
class DatasetSpec:
    """One dataset: a resolved recipe plus how to run its generation."""

    name: str
    recipe: Any  # spin_data.recipe.Recipe
    workers: int
    resources: dict[str, float]
    after: list[Ref]
    line: int


@dataclass
class PretrainSpec:
    """A pre-training group: one stage-1 run per dataset, with the same settings."""

    name: str
    datasets: list[Ref]
    config: dict[str, Any]  # PretrainConfig fields (dataset and out are the pipeline's)
    resources: dict[str, float]
    after: list[Ref]
    line: int


@dataclass
class PolicySpec:
    """A policy group: datasets x actors x algos x seeds stage-2 runs with the same settings."""

    name: str
    datasets: list[Ref]
    actors: list[str]
    algos: list[str]
    seeds: list[int]
    asm: Ref | None  # the pre-training group whose run (for the same dataset) spin/distill use
    config: dict[str, Any]  # other PolicyConfig fields
    resources: dict[str, float]
    after: list[Ref]
    line: int


@dataclass
class ReportSpec:
    """The report: spin_train.report.compare over the policy runs, plots, paper numbers."""

    title: str | None = None
    fraction: float = 0.95
    at_step: int = 10_000
    last_evaluations: int = 1  # a run's final return: the mean of its last N evaluations
    target: float | None = None
    paper: str | None = None  # a table of pipelines/paper_numbers.yaml
    policies: list[Ref] | None = None  # policy groups to report (default: all)
    # Policy groups whose F-IQL (factored) runs set each dataset's target instead of the
    # reported groups' own: F-IQL trained to its asymptote for Table 4's denominator.
    target_policies: list[Ref] | None = None
    score_scale: str = "fraction"  # normalised scores as fractions or "percent" (0-100)
    line: int = 0


@dataclass
class Pipeline:
    """A validated pipeline file."""

    name: str
    path: Path
    out: Path  # absolute output root
    store_root: str | None  # where dataset stores go (a directory or URL); None: in each step
    cache_dir: str | None  # root of the library caches (behaviour runs, dataset .npy caches)
    description: str = ""
    behaviour_resources: dict[str, float] = field(default_factory=dict)  # defaults.behaviour
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    pretrain: dict[str, PretrainSpec] = field(default_factory=dict)
    policies: dict[str, PolicySpec] = field(default_factory=dict)
    report: ReportSpec = field(default_factory=ReportSpec)

    def kind_of(self, name: str) -> str | None:
        """``dataset``, ``pretrain`` or ``policy`` for a defined name, else None."""
        for kind, table in (("dataset", self.datasets), ("pretrain", self.pretrain),
                            ("policy", self.policies)):
            if name in table:
                return kind
        return None
