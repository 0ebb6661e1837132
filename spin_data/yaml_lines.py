"""YAML files read with line numbers, so an error can name the file and the line.

Recipes (:mod:`spin_data.recipe`) and pipeline files (:mod:`pipelines.validate`) both read YAML
here: :func:`read_yaml` turns an unreadable file or a YAML syntax error into one
:class:`YamlFileError` with the line, which each caller words for its own kind of file. With
``lines=True`` (pipeline files) mappings and sequences come back as :class:`LineMap` /
:class:`LineList`, which remember the line of each key and item, and duplicate keys are
refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


class YamlFileError(ValueError):
    """A YAML file that cannot be read or parsed.

    Attributes:
        problem: what is wrong, without the file (``not valid YAML: ...``,
            ``duplicate key 'size'``); for an unreadable file, the system's reason.
        line: the 1-based line it is on, or None.
        unreadable: the file could not be read at all (the caller says what it was for).
    """

    def __init__(self, problem: str, line: int | None = None, *, unreadable: bool = False
                 ) -> None:
        super().__init__(problem)
        self.problem, self.line, self.unreadable = problem, line, unreadable


class LineMap(dict):
    """A YAML mapping that remembers its own line and each key's line (1-based)."""

    line: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class LineList(list):
    """A YAML sequence that remembers its own line and each item's line (1-based)."""

    line: int = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.lines[index] if index < len(self.lines) else self.line


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


class _LineLoader(yaml.SafeLoader):
    """SafeLoader (no Python objects) whose mappings and sequences record their lines.

    Duplicate keys are refused: plain PyYAML keeps the last one silently, which would hide a
    setting the author thought was in effect.
    """


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)  # resolves YAML merge keys (<<: *anchor)
    result = LineMap()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            raise _DuplicateKey(key, line)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def read_yaml(path: str | os.PathLike, *, lines: bool = True) -> Any:
    """Parse a YAML file safely (no Python objects).

    With ``lines``: into :class:`LineMap` / :class:`LineList` / scalars, duplicate keys refused;
    without: plain dicts and lists, as ``yaml.safe_load`` gives them (a repeated key keeps its
    last value).

    Raises:
        YamlFileError: the file cannot be read, is not valid YAML or repeats a key; with the
            line where YAML has one.
    """
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise YamlFileError(str(err.strerror or err), unreadable=True) from None
    try:
        return yaml.load(text, Loader=_LineLoader if lines else yaml.SafeLoader)  # noqa: S506
    except _DuplicateKey as err:
        raise YamlFileError(f"duplicate key {err.key!r}", err.line) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise YamlFileError(f"not valid YAML: {err.problem or err.context}",
                            mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise YamlFileError(f"not valid YAML: {err}") from None
