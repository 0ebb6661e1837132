"""``spin-data info``: what a store holds, as a dict and as a card for people."""

from __future__ import annotations

from typing import Any


from spin_data.envs.reference import ReferenceScore, format_score, score_label
from spin_data.store.reader import Dataset
from spin_data.store.schema import return_statistics


# ============================================================================= info
def info_dict(ds: Dataset) -> dict[str, Any]:
    """JSON-ready summary of a dataset (what :func:`info_card` shows)."""
    md = ds.metadata
    returns = md.get("returns")
    if not returns:  # older or hand-made stores: recompute from the (small) episode arrays
        returns = return_statistics(ds.array("episodes/returns"), ds.array("episodes/sources"))
    reference = md.get("reference_scores")
    normalised = None
    if isinstance(reference, dict) and {"expert", "random"} <= set(reference):
        score = ReferenceScore(expert=float(reference["expert"]), random=float(reference["random"]))
        if score.expert != score.random:
            normalised = {name: score.normalise(stats["mean"]) for name, stats in returns.items()}
    totals = md.get("totals", {})
    return {
        "location": str(ds.location),
        "dataset_id": md.get("dataset_id"),
        "dataset_version": md.get("dataset_version"),
        "env": md.get("env"),
        "quality": md.get("quality"),
        "steps": ds.n_steps,
        "episodes": ds.n_episodes,
        "terminated_episodes": totals.get("terminated_episodes"),
        "truncated_episodes": totals.get("truncated_episodes"),
        "observation_dim": ds.obs_dim,
        "observation_keys": md.get("observation_keys"),
        "sub_actions": ds.bin_grid.n_dims,
        "bins": list(ds.bin_grid.counts),
        "joint_actions": ds.bin_grid.joint_size,  # an exact Python int (may exceed 2**63)
        "returns": returns,
        "reference_scores": reference,
        "normalised_mean_return": normalised,
        "behaviour": md.get("behaviour"),
        "action_selection": md.get("action_selection"),
        "warnings": md.get("warnings") or [],
        "combined_from": md.get("combined_from"),
        "imported_from": md.get("imported_from"),
        "creator": md.get("creator"),
        "created": md.get("created"),
        "versions": md.get("versions"),
        "numerics": md.get("numerics"),
        "schema_version": ds.schema_version,
        "content_checksum": ds.content_checksum,
    }


def describe_action_selection(selection: dict[str, Any]) -> str:
    """One line for a store's ``action_selection``, e.g. ``medium: mode actions, each replaced
    by a uniform random joint action with probability 0.5``."""
    action = {"mode": "mode", "sample": "sampled"}.get(selection.get("policy_action"), "?")
    prob = selection.get("random_action_prob") or 0
    return (", ".join(selection.get("sources") or ["?"]) + f": {action} actions"
            + (f", each replaced by a uniform random joint action with probability {prob:g}"
               if prob else ""))


def _pick_score(pick: dict[str, Any]) -> float:
    """A behaviour pick's normalised score: its confirmed one where the ladder confirmed it
    (``score``, from many fresh episodes), else its rung's."""
    return float(pick["score"] if pick.get("confirmed_return") is not None else pick["normalised"])


def info_card(ds: Dataset, scale: str = "fraction") -> str:
    """A readable multi-line card describing a dataset; normalised scores at ``scale``
    (``fraction`` or ``percent``, see :data:`spin_data.envs.reference.SCORE_SCALES`)."""
    d = info_dict(ds)
    env = d["env"] or {}
    kwargs = env.get("kwargs") or {}
    env_text = env.get("name", "?") + (
        " (" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")" if kwargs else "")
    bins = d["bins"]
    bins_text = str(bins[0]) if len(set(bins)) == 1 else str(bins)
    lines = [
        f"{d['dataset_id']}  (version {d['dataset_version']}, schema {d['schema_version']})",
        f"  location      {d['location']}",
        f"  env           {env_text}",
        f"  quality       {d['quality']}",
        f"  steps         {d['steps']:,} in {d['episodes']:,} episodes "
        f"({d['terminated_episodes']} terminated, {d['truncated_episodes']} truncated)",
        f"  observations  dim {d['observation_dim']}"
        + (" (" + ", ".join(f"{k} {n}" for k, n in d["observation_keys"]) + ")"
           if d["observation_keys"] else ""),
        f"  actions       N = {d['sub_actions']} sub-actions, bins {bins_text} "
        f"({d['joint_actions']} joint actions)",
        "  returns       source      episodes      mean       std       min       max",
    ]
    for name, s in d["returns"].items():
        norm = d["normalised_mean_return"]
        extra = f"  ({score_label(scale)} {format_score(norm[name], scale)})" if norm else ""
        lines.append(f"                {name:<10}{s['episodes']:>9}{s['mean']:>10.2f}"
                     f"{s['std']:>10.2f}{s['min']:>10.2f}{s['max']:>10.2f}{extra}")
    ref = d["reference_scores"]
    if isinstance(ref, dict) and {"expert", "random"} <= set(ref):
        lines.append(f"  reference     expert {float(ref['expert']):.2f}, random "
                     f"{float(ref['random']):.2f}" + (f" ({ref['source']})" if ref.get("source")
                                                      else ""))
    behaviour = d["behaviour"]
    if isinstance(behaviour, dict) and behaviour.get("policies"):
        learner = behaviour.get("algorithm", "?") + (
            f" ({behaviour['learner_library']})" if behaviour.get("learner_library") else "")
        picks = ", ".join(
            f"{source} step {p['step']:,}"
            + (f" ({score_label(scale)} {format_score(_pick_score(p), scale)})"
               if p.get("normalised") is not None else "")
            for source, p in behaviour["policies"].items())
        lines.append(f"  behaviour     {learner}, {behaviour.get('training_steps', 0):,} steps; "
                     f"{picks}")
    if d["action_selection"]:
        lines.append(f"  acting        {describe_action_selection(d['action_selection'])}")
    lines.extend(f"  {w}" for w in d["warnings"])
    if d["combined_from"]:
        lines.append("  combined from " + ", ".join(
            f"{c.get('dataset_id')} ({c.get('quality')})" for c in d["combined_from"]))
    if d["imported_from"]:
        lines.append(f"  imported from {d['imported_from'].get('path')} "
                     f"(sha256 {str(d['imported_from'].get('sha256'))[:16]}...)")
    creator = d["creator"] or {}
    lines.append(f"  created       {d['created']} by {creator.get('name', '?')}")
    versions = d["versions"] or {}
    if versions:
        lines.append("  versions      " + ", ".join(f"{k} {v}" for k, v in versions.items()
                                                   if v is not None))
    numerics = d["numerics"] or {}
    if numerics:  # stores made since behaviour policies run in float64 with pinned OpenBLAS
        lines.append(f"  numerics      behaviour policies in {numerics.get('behaviour_forward')}, "
                     f"OpenBLAS {numerics.get('openblas_core') or 'unknown'} kernels")
    lines.append(f"  content       {d['content_checksum']}")
    return "\n".join(lines)
