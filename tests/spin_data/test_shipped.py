"""Shipped behaviour policies: checkpoints whose hash is a function of the weights, a finished
run shipped into the catalogue, `spin-data generate` remaking a dataset from it without
training, and a tampered checkpoint refused."""

import dataclasses
import hashlib
import importlib.metadata
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from spin_data.behaviour import BehaviourConfig, load_ladder, load_policy, run_directory
from spin_data.behaviour.evaluation import eval_seeds, evaluate_returns
from spin_data.behaviour.policy import CheckpointError, load_weights, save_state
from spin_data.behaviour.shipped import find_shipped, ship_run, shipped_checkpoint, shipped_name
from spin_data.cli import main as spin_data_main
from spin_data.files import file_sha256
from spin_data.generate import behaviour_config, generate
from spin_data.envs import registry
from spin_data.recipe import Recipe, catalog
from spin_data.store import open_dataset

REPO = Path(__file__).resolve().parents[2]


def test_checkpoint_bytes_are_a_function_of_the_weights(tmp_path):
    """torch.save writes a random serialization id into each file, so equal weights never
    hashed alike; a safetensors checkpoint's sha256 is the same for the same tensors."""
    generator = torch.Generator().manual_seed(0)
    state = {"actor.mu.weight": torch.randn(6, 8, generator=generator),
             "actor.latent_pi.0.bias": torch.randn(8, generator=generator)}
    a = save_state(state, tmp_path / "a" / "step-0.safetensors")
    b = save_state({k: v.clone() for k, v in reversed(list(state.items()))},
                   tmp_path / "b" / "step-0.safetensors")
    assert a == b == file_sha256(tmp_path / "a" / "step-0.safetensors")
    moved = dict(state, **{"actor.latent_pi.0.bias": state["actor.latent_pi.0.bias"] + 1e-6})
    assert save_state(moved, tmp_path / "c" / "step-0.safetensors") != a
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(CheckpointError, match="not a safetensors weights file"):
        load_weights(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_weights(tmp_path / "missing.safetensors")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A maze-5 medium-expert dataset made the slow way: PPO trained (test preset) in a cache."""
    root = tmp_path_factory.mktemp("trained")
    recipe = Recipe(env="maze-5", quality="medium-expert", size=3000, seed=0, budget="test")
    summary = generate(recipe, str(root / "store"), cache_dir=str(root / "cache"),
                       progress=False)
    return recipe, run_directory(behaviour_config(recipe), root / "cache"), summary


def test_generate_remakes_the_dataset_from_shipped_policies_without_training(
        trained, tmp_path, monkeypatch):
    recipe, run, first = trained
    catalog, fresh_cache = tmp_path / "catalog", tmp_path / "fresh-cache"
    monkeypatch.setenv("SPIN_CATALOG", str(catalog))
    monkeypatch.setenv("SPIN_CACHE_DIR", str(fresh_cache))  # a machine that never trained
    result = CliRunner().invoke(spin_data_main, ["ship-behaviour", str(run)])
    assert result.exit_code == 0, result.output
    shipped = catalog / "ladders" / shipped_name(behaviour_config(recipe))
    assert find_shipped(behaviour_config(recipe)) == (shipped, load_ladder(shipped))
    ladder, original = load_ladder(shipped), load_ladder(run)
    picks = open_dataset(first["location"]).metadata["behaviour"]["policies"]
    # Only the rungs datasets use travel; every rung keeps its (safetensors) hash.
    assert sorted(p.name for p in (shipped / "checkpoints").iterdir()) == sorted(
        f"step-{picks[s]['step']}.safetensors" for s in ("medium", "expert"))
    assert [(r.step, r.sha256) for r in ladder.rungs] == [
        (r.step, r.sha256) for r in original.rungs]

    args = ["generate", "--env", "maze-5", "--quality", "medium-expert", "--size", "3000",
            "--budget", "test"]
    result = CliRunner().invoke(spin_data_main, args + ["--out", str(tmp_path / "remade")])
    assert result.exit_code == 0, result.output
    assert f"behaviour: shipped policies {shipped}" in result.output
    assert not (fresh_cache / "behaviour").exists()  # nothing trained
    remade = open_dataset(tmp_path / "remade")
    assert f"content {remade.content_checksum}" in result.output
    assert remade.content_checksum == first["content_checksum"]
    behaviour = remade.metadata["behaviour"]
    assert behaviour["checkpoints_from"] == f"shipped: {catalog.name}/ladders/{shipped.name}"
    assert {s: p["checkpoint_sha256"] for s, p in behaviour["policies"].items()} == {
        s: p["checkpoint_sha256"] for s, p in picks.items()}
    card = (tmp_path / "remade" / "README.md").read_text()
    assert "shipped:" in card
    # The card's usage snippets open this store: a checkpoint line of the behaviour section
    # once overwrote the location they print.
    assert f"ds = open_dataset({str(remade.location)!r})" in card
    assert f"step-{picks['expert']['step']}.safetensors" in card

    # A tampered shipped checkpoint is refused with both hashes; nothing is generated.
    expert = shipped / ladder.expert().checkpoint
    data = bytearray(expert.read_bytes())
    data[-1] ^= 0xFF
    expert.write_bytes(bytes(data))
    result = CliRunner().invoke(spin_data_main, args + ["--out", str(tmp_path / "tampered")])
    assert result.exit_code == 1
    found = hashlib.sha256(bytes(data)).hexdigest()
    assert f"sha256 {found} does not match its ladder's {ladder.expert().sha256}" in result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {expert}: sha256")
    assert not (tmp_path / "tampered").exists() and not (fresh_cache / "behaviour").exists()


def test_a_base_install_without_sbx_collects_from_shipped_sbx_policies(tmp_path, monkeypatch):
    """The README's first install (`pip install -e .`) has no sbx or jax. Shipped policies are
    torch weights, so collecting from them must not need either (a fresh clone once failed
    here, looking up sbx-rl's version for the store's metadata)."""
    version = importlib.metadata.version
    missing = ("sbx-rl", "jax", "jaxlib", "flax")

    def version_of_a_base_install(name):
        if name in missing:
            raise importlib.metadata.PackageNotFoundError(name)
        return version(name)

    monkeypatch.setattr(importlib.metadata, "version", version_of_a_base_install)
    for module in ("sbx", "jax"):  # `import sbx` / `import jax` now raise ImportError
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setenv("SPIN_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "cheetah-me"
    result = CliRunner().invoke(spin_data_main, [
        "generate", "--env", "cheetah", "--quality", "medium-expert", "--size", "2000",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "behaviour: shipped policies" in result.output
    assert not (tmp_path / "cache" / "behaviour").exists()  # nothing trained
    behaviour = open_dataset(out).metadata["behaviour"]
    assert behaviour["learner_library"] == "sbx"
    assert behaviour["library"]["sbx-rl"] is None and behaviour["library"]["jax"] is None
    assert behaviour["library"]["torch"] == version("torch")
    returns = [episode.episode_return for episode in open_dataset(out).episodes()]
    assert len(returns) == 2 and max(returns) > 0.95 * 664.57  # one episode of the expert


def test_shipping_a_run_of_pt_checkpoints_rederives_the_same_hashes(trained, tmp_path):
    """Runs trained before safetensors hold torch.save files, whose hashes cannot be
    reproduced; shipping re-derives each rung's hash from its weights."""
    _, run, _ = trained
    legacy = tmp_path / "legacy"
    shutil.copytree(run, legacy, ignore=shutil.ignore_patterns("resume", ".lock"))
    ladder = load_ladder(legacy)
    rungs = []
    for rung in ladder.rungs:
        old = legacy / rung.checkpoint
        pt = old.with_suffix(".pt")
        torch.save(load_weights(old), pt)
        old.unlink()
        rungs.append(dataclasses.replace(rung, checkpoint=f"checkpoints/{pt.name}",
                                         sha256=file_sha256(pt)))
    (legacy / "ladder.json").write_text(dataclasses.replace(ladder, rungs=rungs).to_json())
    shipped = ship_run(legacy, tmp_path / "shipped")
    assert [(r.checkpoint, r.sha256) for r in shipped.rungs] == [
        (r.checkpoint, r.sha256) for r in load_ladder(run).rungs]
    with pytest.raises(ValueError, match="not a finished, confirmed behaviour run"):
        ship_run(tmp_path / "shipped" / "checkpoints", tmp_path / "elsewhere")


SHIPPED_DMC = sorted(p.parent for p in (REPO / "datasets" / "ladders").glob("*/ladder.json"))


@pytest.mark.parametrize("run", SHIPPED_DMC, ids=lambda p: p.name)
def test_a_shipped_expert_scores_the_return_its_ladder_recorded(run):
    """The catalogue's recorded rung returns hold with today's numerics (float64 forward,
    pinned OpenBLAS kernels): each shipped expert, re-scored on its ladder's evaluation
    episodes, gives the recorded mean to float rounding. (Measured 2026-12-07: every shipped
    rung, medium ones too, gives the recorded mean exactly.)"""
    ladder = load_ladder(run)
    expert = ladder.expert()
    config = BehaviourConfig.from_dict(json.loads((run / "config.json").read_text()))
    returns = evaluate_returns(config, load_policy(str(shipped_checkpoint(run, expert))))
    assert len(returns) == config.eval_episodes == len(eval_seeds(config))
    assert returns.mean() == pytest.approx(expert.mean_return, rel=1e-5)


def test_every_catalogue_recipe_of_a_shipped_task_finds_its_run_on_a_base_install(monkeypatch):
    """A recipe that leaves the learner library to the install resolves to sb3 where sbx is
    missing (the README's base install), whose cache key no shipped sbx run has: generate
    then trains for hours (quadruped's recipes once did). Every recipe of a shipped task must
    name what its shipped run used."""
    for module in ("sbx", "jax"):  # find_spec("sbx") is None now, as on a base install
        monkeypatch.setitem(sys.modules, module, None)
    shipped = {(ladder.env, ladder.bins): ladder.cache_key
               for ladder in (load_ladder(run) for run in SHIPPED_DMC)}
    checked = []
    for name, path in catalog().items():
        recipe = Recipe.from_yaml(path)
        task = (registry.resolve(recipe.env).canonical, recipe.n_bins)
        if task not in shipped or recipe.quality == "random":
            continue
        config = behaviour_config(recipe)
        assert config.cache_key() == shipped[task], name
        assert find_shipped(config) is not None, name
        checked.append(name)
    # 4 qualities that use behaviour policies x every shipped task
    assert len(checked) == 4 * len(shipped) >= 20
