"""Recipes of several stages (`stages:` in a training YAML): each stage warm-starts from the one
before, `musenet train` runs them in order and `--stage N` one; the bundled model's recipe builds
the model configuration it ships with."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from musenet_hf import cli
from musenet_hf.training.recipe import planned_model_config, recipe_stages
from musenet_hf.training.training_config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny.yaml"
SMALL = REPO / "configs" / "train" / "small-music21.yaml"
SHIPPED = REPO / "checkpoints" / "musenet-small-music21"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, made_midi) -> Path:
    """tiny.yaml on eight made songs, in three stages of a few steps: the second ends early and
    switches the sounding-notes embedding on."""
    root = tmp_path_factory.mktemp("stages")
    songs = root / "songs"
    songs.mkdir()
    for f in made_midi.song_files[:8]:
        shutil.copy(f, songs / f.name)
    raw = yaml.safe_load(TINY.read_text())
    raw["output_dir"] = str(root / "run")
    raw["torch_threads"] = 1
    raw["data"].update(data_dir=str(songs), data_cache_dir=str(root / "cache"), num_proc=1, context_length=64,
                       validation_fraction=0.25, max_eval_windows=4)
    raw["optim"].update(per_device_batch_size=2, warmup_steps=1)
    raw["events"].update(log_every=1, eval_every=2, checkpoint_every=2)
    raw["stages"] = [{"name": "a", "max_steps": 2},
                     {"name": "b", "max_steps": 6, "stop_after_step": 3, "learning_rate": 1.0e-3,
                      "model_overrides": {"use_sounding_embedding": True}},
                     {"max_steps": 2, "seed": 3}]
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def logged(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]


def test_a_recipe_without_stages_is_one_stage():
    (stage,) = recipe_stages(TINY)
    assert stage.config == TrainConfig.from_yaml(TINY) and stage.stop_after_step is None


def test_stages_override_the_recipe_and_warm_start_from_the_stage_before(recipe):
    a, b, c = recipe_stages(recipe, {"torch_threads": 1})
    base = TrainConfig.from_yaml(recipe)
    assert [s.name for s in (a, b, c)] == ["a", "b", "3"]
    assert a.config.init_from is None and a.config.max_steps == 2 and a.config.learning_rate == base.learning_rate
    assert b.config.init_from == str(Path(a.config.output_dir) / "final") and b.stop_after_step == 3
    assert b.config.learning_rate == 1.0e-3 and b.config.model_overrides == {"use_sounding_embedding": True}
    assert c.config.seed == 3 and c.config.learning_rate == base.learning_rate and c.config.model_overrides == {}
    assert Path(c.config.output_dir) == Path(base.output_dir) / "3" and not c.config.stages
    assert planned_model_config([a, b, c]).use_sounding_embedding  # kept through the warm start


def test_musenet_train_runs_every_stage_in_order_and_one_with_stage(recipe):
    out = Path(TrainConfig.from_yaml(recipe).output_dir)
    assert cli.main(["train", "--config", str(recipe), "--no-progress"]) == 0
    for name in ("a", "b", "3"):
        assert (out / name / "final" / "model.safetensors").is_file(), name
    config = json.loads((out / "3" / "final" / "config.json").read_text())
    assert config["use_sounding_embedding"] is True  # stage b's change, carried on by stage 3's warm start
    steps = [r["step"] for r in logged(out / "b") if "loss" in r]
    assert max(steps) == 3  # stage b ended after step 3 of its 6-step schedule
    assert any(r.get("event") == "final" and r["step"] == 3 for r in logged(out / "b"))
    first = (out / "a" / "final" / "model.safetensors").stat().st_mtime
    shutil.rmtree(out / "3")
    assert cli.main(["train", "--config", str(recipe), "--stage", "3", "--no-progress"]) == 0
    assert (out / "3" / "final" / "model.safetensors").is_file()
    assert (out / "a" / "final" / "model.safetensors").stat().st_mtime == first  # stage a was not run again
    with pytest.raises(SystemExit, match="stages are 1 \\(a\\), 2 \\(b\\), 3 \\(3\\)"):
        cli.main(["train", "--config", str(recipe), "--stage", "9"])


def test_the_bundled_models_recipe_builds_the_shipped_configuration():
    """configs/train/small-music21.yaml: eleven stages of the documented steps, and the model they
    end with has the shipped checkpoint's configuration."""
    stages = recipe_stages(SMALL)
    assert [s.name for s in stages] == ["1", "2a", "2b", "3", "4", "5", "7", "8a", "8b", "9a", "9b"]
    steps = [s.stop_after_step or s.config.max_steps for s in stages]
    assert steps == [400, 600, 750, 400, 600, 500, 500, 300, 900, 400, 300]
    assert stages[0].config.init_from is None
    last = stages[-1].config
    assert last.augmentation["stretch"] == last.augmentation["transpose"] == 0 and last.learning_rate == 1.2e-4
    shipped = json.loads((SHIPPED / "config.json").read_text())
    assert last.label_boost == shipped["training_coverage"]["label_boost"]
    assert last.label_temperature == shipped["training_coverage"]["label_temperature"]
    assert last.augmentation["drop_composer"] == shipped["training_coverage"]["drop_composer"]
    planned = planned_model_config(stages).to_dict()
    fields = ["max_position_embeddings", "num_hidden_layers", "hidden_size", "num_attention_heads",
              "intermediate_size", "hidden_act", "vocab_size", "attention_layout", "use_time_embedding",
              "use_chord_embedding", "use_part_embedding", "use_countdown_embedding", "use_sounding_embedding",
              "use_critic", "mask_silent_note_offs", "mask_end_while_sounding", "structural_init_std",
              "embd_dropout", "resid_dropout", "bos_token_id", "eos_token_id", "pad_token_id", "num_note_tokens",
              "first_wait_token_id"]
    assert {f: planned.get(f) for f in fields} == {f: shipped.get(f) for f in fields}
    assert "use_composer_embedding" not in planned or not planned["use_composer_embedding"]


def test_every_recipe_in_configs_loads():
    for path in sorted((REPO / "configs").glob("*/*.yaml")):
        if path.parent.name in ("train", "experiments"):
            assert all(s.config.max_steps > 0 for s in recipe_stages(path)), path
