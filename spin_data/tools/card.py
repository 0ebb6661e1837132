"""``spin-data card``: a dataset card beside a store - ``README.md`` and ``croissant.json``.

``README.md`` is a Hugging Face-style dataset card (YAML front matter with the task category,
tags and size category; then the task, qualities, sizes, returns per source, reference scores,
the recipe and behaviour policies, warnings, and how to load the data with spin, Minari and plain
zarr). ``croissant.json`` is MLCommons Croissant 1.0 metadata (JSON-LD): the dataset's name,
description, version, date, keywords, content checksum and one ``FileObject`` per file of the
store with its sha256. It has no ``recordSet``: Croissant has no extraction for zarr chunks, so
the arrays are described in the card and the store's own schema instead.

Both are derived from the store and may be written again; a ``README.md`` that spin did not
write is never replaced. A local store's card goes into its own directory by default (so the
directory is a dataset repository as it is: the arrays, the card, the Croissant file); the zarr
reader and ``verify`` ignore the two files, and the content checksum covers the arrays only.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import yaml

from spin_data.envs.reference import format_score
from spin_data.files import file_sha256, write_text_atomic
from spin_data.recipe import Recipe
from spin_data.store.location import parse_location
from spin_data.store.reader import Dataset
from spin_data.tools.base import ToolError, open_any
from spin_data.tools.minari_io import minari_id
from spin_data.tools.summary import describe_action_selection, info_dict

#: In every README.md spin writes, right after the YAML front matter (which must open the file):
#: how spin knows the file is its own to replace.
CARD_MARKER = "<!-- dataset card written by `spin-data card`; regenerate rather than edit -->"
#: Files of the card (never listed as data files).
CARD_FILES = ("README.md", "croissant.json")
#: A store's recipe keys that a recipe file takes (its metadata adds derived ones).
RECIPE_KEYS = tuple(f.name for f in dataclasses.fields(Recipe))
#: The Croissant 1.0 JSON-LD context (from the specification).
CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs",
    "column": "cr:column", "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/", "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract",
    "field": "cr:field", "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key",
    "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path",
    "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex",
    "repeated": "cr:repeated", "replace": "cr:replace", "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform",
}
CROISSANT_CONFORMS_TO = "http://mlcommons.org/croissant/1.0"


def data_files(ds: Dataset) -> list[tuple[str, Path]]:
    """``(name relative to the store, path)`` of every file of a local store (a directory's
    files, card files excluded; a ``.zip`` is one file), sorted by name."""
    loc = parse_location(str(ds.location))
    if loc.kind == "zip":
        target = Path(loc.target)
        return [(target.name, target)]
    if loc.kind != "local":
        raise ToolError(f"{ds.location}: cards are written for local stores (a directory or a "
                        ".zip); copy the store here first")
    root = Path(loc.target)
    return sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*")
                  if p.is_file() and p.relative_to(root).as_posix() not in CARD_FILES)


def _size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < bound:
            return label
    return "10M<n<100M"


def _ids(d: dict[str, Any]) -> tuple[str, str]:
    """The task's canonical name and the Minari id an export of this store gets."""
    env = d["env"] or {}
    task = env.get("task") or env.get("name", "unknown")
    bins = d["bins"]
    return task, minari_id(task, bins[0] if len(set(bins)) == 1 else "x".join(map(str, bins)),
                           d["quality"] or "imported")


def card_markdown(ds: Dataset, *, license: str | None = None, location: str | None = None
                  ) -> str:
    """The ``README.md`` text of a store's card (see the module docstring)."""
    d = info_dict(ds)
    md = ds.metadata
    task, mid = _ids(d)
    family = "maze" if task.startswith(("maze", "merlion")) else "dm-control"
    where = location or str(ds.location)
    front = ["---", f"pretty_name: {d['dataset_id']}"]
    if license:
        front.append(f"license: {license}")
    front += ["task_categories:", "- reinforcement-learning", "tags:",
              "- offline-reinforcement-learning", "- discrete-actions",
              "- factorised-action-space", f"- {family}", "- spin", "- zarr", "size_categories:",
              f"- {_size_category(d['steps'])}", "---"]
    bins = d["bins"]
    bins_text = str(bins[0]) if len(set(bins)) == 1 else str(bins)
    env = d["env"] or {}
    kwargs = ", ".join(f"{k}={v}" for k, v in (env.get("kwargs") or {}).items())
    # The front matter must open the file (Hugging Face reads it there); the marker follows it.
    lines = [*front, CARD_MARKER, "", f"# {d['dataset_id']}", ""]
    if md.get("description"):
        lines += [str(md["description"]).strip(), ""]
    lines += [
        f"An offline reinforcement-learning dataset of **{task}** with a factorised discrete "
        f"action space ({d['sub_actions']} sub-actions x {bins_text} bins = "
        f"{d['joint_actions']} joint actions), made by spin.", "",
        "| | |", "|---|---|",
        f"| task | `{task}` (`make_env({env.get('name', task)!r}{', ' + kwargs if kwargs else ''})`"
        f", Gymnasium id `spin/{task}-{bins_text}bins-v0`) |",
        f"| quality | {d['quality']} |",
        f"| transitions | {d['steps']:,} in {d['episodes']:,} episodes "
        f"({d['terminated_episodes'] or 0:,} terminated, {d['truncated_episodes'] or 0:,} "
        "truncated) |",
        f"| observations | float32, dim {d['observation_dim']} |",
        f"| actions | bin indices, MultiDiscrete({list(bins)}) |",
        f"| content checksum | `{d['content_checksum']}` |",
        f"| format | zarr v3, spin schema {d['schema_version']} |", "",
        "## Returns per source", "",
        "| source | episodes | mean | std | min | max | normalised |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    norm = d["normalised_mean_return"] or {}
    for name, s in d["returns"].items():
        score = format_score(norm[name]) if name in norm else "-"
        lines.append(f"| {name} | {s['episodes']:,} | {s['mean']:.2f} | {s['std']:.2f} | "
                     f"{s['min']:.2f} | {s['max']:.2f} | {score} |")
    ref = d["reference_scores"]
    lines.append("")
    if isinstance(ref, dict) and {"expert", "random"} <= set(ref):
        lines += [f"Normalised = (R - random) / (expert - random) with the reference scores "
                  f"expert {float(ref['expert']):.2f}, random {float(ref['random']):.2f}"
                  + (f" ({ref['source']})" if ref.get("source") else "") + "; x100 for the "
                  "0-100 scale.", ""]
    else:
        lines += ["No published reference scores for this task and bin count.", ""]
    lines += ["## How it was made", ""]
    recipe = {k: v for k, v in (md.get("recipe") or {}).items()
              if k in RECIPE_KEYS and v not in (None, {})}
    if recipe:
        lines += ["Recipe (saved as a file, `spin-data generate --recipe FILE` makes the same "
                  "bytes):", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).rstrip(),
                  "```", ""]
    behaviour = d["behaviour"]
    if isinstance(behaviour, dict) and behaviour.get("policies"):
        lines.append(f"Behaviour policies: {behaviour.get('algorithm', '?')} "
                     f"({behaviour.get('learner_library', 'sb3')}), "
                     f"{behaviour.get('training_steps', 0):,} training steps; checkpoints "
                     "picked from its ladder"
                     + (f" ({behaviour['checkpoints_from']})" if behaviour.get("checkpoints_from")
                        else "") + ":")
        lines.append("")
        for source, p in behaviour["policies"].items():
            file = f" `{p['checkpoint']}`," if p.get("checkpoint") else ""
            lines.append(f"- {source}: step {p['step']:,},{file} checkpoint sha256 "
                         f"`{p.get('checkpoint_sha256', '?')}`")
        lines.append("")
    selection = d["action_selection"]
    if selection:
        lines += [f"Behaviour actions - {describe_action_selection(selection)}.", ""]
    if md.get("imported_from"):
        lines += [f"Imported from {md['imported_from'].get('format', '?')}.", ""]
    if d["warnings"]:
        lines += ["## Warnings", "", *(f"- {w}" for w in d["warnings"]), ""]
    lines += [
        "## Load it", "", "With spin installed:", "", "```python",
        "from spin_data import open_dataset", "", f"ds = open_dataset({where!r})",
        "t = ds.transitions()  # observations, actions, rewards, next_observations, "
        "terminations, truncations", "```", "",
        "With Minari (`spin-data export` converts it; HDF5):", "", "```bash",
        f"spin-data export {where} --format minari --out ~/.minari/datasets", "```", "",
        "```python", "import minari", "", f"dataset = minari.load_dataset({mid!r})",
        "env = dataset.recover_environment()  # needs spin installed", "```", "",
        "With plain zarr (no spin):", "", "```python", "import zarr", "",
        f"g = zarr.open_group({where!r}, mode='r')",
        "obs, actions = g['steps/observations'][:], g['steps/actions'][:]",
        "ends = g['episodes/ends'][:]  # cumulative end row of each episode", "```", "",
        "## Files", "",
        "`croissant.json` (MLCommons Croissant 1.0) lists every file of the store with its "
        "sha256; `spin-data verify` re-hashes every array against the content checksum.", "",
    ]
    return "\n".join(lines)


def croissant(ds: Dataset, files: list[tuple[str, Path]], *, license: str | None = None,
              url: str | None = None) -> dict[str, Any]:
    """The ``croissant.json`` document of a store (see the module docstring)."""
    d = info_dict(ds)
    task, _ = _ids(d)
    md = ds.metadata
    doc: dict[str, Any] = {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CROISSANT_CONFORMS_TO,
        "name": d["dataset_id"],
        "description": str(md.get("description") or (
            f"Offline RL dataset of {task} ({d['quality']}), factorised discrete actions, "
            "made by spin")),
        "version": f"{int(d['dataset_version'] or 1)}.0.0",
        "keywords": ["offline reinforcement learning", "discrete actions", task,
                     str(d["quality"]), "spin", "zarr"],
        "identifier": d["content_checksum"],
        "distribution": [],
    }
    if md.get("created"):
        doc["datePublished"] = md["created"]
    creator = (md.get("creator") or {}).get("name")
    if creator:
        doc["creator"] = {"@type": "sc:Person", "name": creator}
    if license:
        doc["license"] = license
    if url:
        doc["url"] = url
    for name, path in files:
        fmt = ("application/json" if name.endswith(".json") else
               "application/zip" if name.endswith(".zip") else "application/octet-stream")
        doc["distribution"].append({
            "@type": "cr:FileObject", "@id": name, "name": name, "contentUrl": name,
            "encodingFormat": fmt, "contentSize": f"{path.stat().st_size} B",
            "sha256": file_sha256(path)})
    return doc


def write_card(location: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
               license: str | None = None, url: str | None = None) -> tuple[Path, Path]:
    """Write ``README.md`` and ``croissant.json`` for a local store.

    Args:
        location: the store (a directory or a ``.zip``).
        out_dir: where to write (default: a directory store's own directory; required for a
            ``.zip``).
        license, url: recorded in both files when given (spin cannot know them).

    Returns:
        The two paths.

    Raises:
        ToolError: a remote store, a ``.zip`` without ``out_dir``, or a ``README.md`` there
            that spin did not write.
    """
    ds = open_any(location)
    files = data_files(ds)
    loc = parse_location(str(ds.location))
    if out_dir is None and loc.kind != "local":
        raise ToolError(f"{ds.location}: a .zip store's card needs --out (a folder of zips "
                        "would share one README.md)")
    out = Path(out_dir) if out_dir is not None else Path(loc.target)
    readme = out / "README.md"
    if readme.exists() and CARD_MARKER not in readme.read_text(errors="replace"):
        raise ToolError(f"{readme}: exists and was not written by spin-data card; choose "
                        "another --out")

    out.mkdir(parents=True, exist_ok=True)
    where = str(ds.location)
    write_text_atomic(readme, card_markdown(ds, license=license, location=where))
    doc = croissant(ds, files, license=license, url=url)
    write_text_atomic(out / "croissant.json", json.dumps(doc, indent=2) + "\n")
    return readme, out / "croissant.json"
