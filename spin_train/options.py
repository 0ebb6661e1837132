"""Command-line options generated from a config dataclass: one source of truth for names,
types, defaults and help (each field's ``option(default, "help")``)."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable, Iterable, TypeVar

import click

T = TypeVar("T")

def option(default: Any = dataclasses.MISSING, help: str = "", *,
           resumable: bool = False) -> Any:
    """A config dataclass field with its help text: ``steps: int = option(1000, "gradient steps")``.

    The text is the field's ``metadata["help"]``, which :func:`config_options` turns into the
    command-line help; leave ``default`` out for a required field. ``resumable=True`` marks a
    setting a resumed run may change (where the data lives, how long to train, on what device);
    every other setting is part of the run's identity (:func:`resumable_fields`).
    """
    return dataclasses.field(default=default, metadata={"help": help, "resumable": resumable})


def resumable_fields(cls: type) -> set[str]:
    """The fields of a config dataclass declared ``option(..., resumable=True)``."""
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable")}


def options_from(config: Any, cls: type[T]) -> T:
    """``cls`` (an options dataclass) filled from the same-named fields of ``config``: how a
    run's config hands each method its own hyperparameters, with no renaming between them."""
    return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


def field_help(cls: type) -> dict[str, str]:
    """``{field: help}`` of a config dataclass (the text given to :func:`option`)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def field_defaults(cls: type) -> dict[str, Any]:
    """``{field: default}`` of a config dataclass's fields that have a plain default."""
    return {f.name: f.default for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING}


def check_finite(config: Any) -> None:
    """Refuse a config dataclass whose float fields hold NaN or an infinity, naming the field:
    ``nan`` passes every ``<=``/``<`` range check, so the checks after this one need it."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, got {value}")


@dataclasses.dataclass(kw_only=True)
class RunOptions:
    """The settings every ``spin-train`` run shares (pretrain, policy, probe): its data, where
    it writes, the device, the seed. Keyword-only, so each config lists its own fields first."""

    dataset: str = option(help="store path or URL (spin-data generate's output)",
                          resumable=True)
    out: str | None = option(
        None, "run directory; default runs/<stage>/<dataset>-... (see the command's help)",
        resumable=True)
    device: str = option("auto", "auto, cpu, cuda, cuda:N", resumable=True)
    amp: bool = option(True, "bf16 autocast on CUDA", resumable=True)
    seed: int = option(0, "seeds every random choice of the run (networks, batches, splits)")
    cache_dir: str | None = option(
        None, "dataset cache; default $SPIN_CACHE_DIR/datasets ($SPIN_CACHE_DIR: ~/.cache/spin)",
        resumable=True)
    progress: bool = option(True, "tqdm bar", resumable=True)


def _base_type(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def help_order(cls: type) -> list[dataclasses.Field]:
    """A config's fields as ``--help`` lists them: its own first, then each option group it is
    made of, nearest first (a field sits with the class that declares it)."""
    def home(f: dataclasses.Field) -> int:
        return next(i for i, c in enumerate(cls.__mro__)
                    if f.name in vars(c).get("__annotations__", {}))
    return sorted(dataclasses.fields(cls), key=home)


def config_options(cls: type, exclude: Iterable[str] = (),
                   choices: dict[str, Iterable[str]] | None = None) -> Callable:
    """Decorator adding ``--field-name`` for every field of ``cls`` not in ``exclude``.

    Booleans become ``--name/--no-name``; ``X | None`` fields default to None (unset). Values
    the user did not give are not passed (the dataclass default applies), so the help shows the
    dataclass's defaults without repeating them here.
    """
    helps = field_help(cls)
    hints = typing.get_type_hints(cls)
    choices = choices or {}
    skip = set(exclude)

    def decorate(fn: Callable) -> Callable:
        for f in reversed(help_order(cls)):
            if f.name in skip:
                continue
            flag = "--" + f.name.replace("_", "-")
            tp = _base_type(hints[f.name])
            default = f.default if f.default is not dataclasses.MISSING else None
            help_text = helps.get(f.name, "")
            if default is not None and tp is not bool:
                help_text += f"  [default: {default}]"
            if tp is bool:
                opt = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None,
                                   help=help_text + f"  [default: {'on' if default else 'off'}]")
            elif f.name in choices:
                opt = click.option(flag, f.name, type=click.Choice(list(choices[f.name])),
                                   default=None, help=help_text)
            else:
                opt = click.option(flag, f.name, type=tp if tp in (int, float) else str,
                                   default=None, help=help_text)
            fn = opt(fn)
        return fn

    return decorate


def given(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options the user set (click passes None for the others)."""
    return {k: v for k, v in kwargs.items() if v is not None}
