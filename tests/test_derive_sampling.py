"""musenet derive-sampling: per-label presets chosen by measurement, starting from no exception.

The tiny random model's pieces are what they are; the real statistics are set to what a candidate
makes, so the procedure must find that candidate, leave a label that already passes alone, and
write the same settings on a second run.
"""

import json

import pytest
import torch
from transformers import pipeline

from musenet_hf.evaluation.derive_sampling import DerivationRecipe, derive, measure_label, real_statistics
from musenet_hf.generation.generation_config import MuseNetGenerationConfig
from musenet_hf.generation.pipeline_musenet import TASK, register_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")


def _measured(pipe, label, recipe, settings):
    before = pipe.model.generation_config
    pipe.model.generation_config = MuseNetGenerationConfig(**settings)
    try:
        return measure_label(pipe, label, recipe)
    finally:
        pipe.model.generation_config = before


def test_derive_finds_the_candidate_that_passes_and_leaves_passing_labels_alone(tiny, tok):
    register_pipeline()
    pipe = pipeline(TASK, model=tiny, tokenizer=tok, device=torch.device("cpu"))
    recipe = DerivationRecipe(seconds=2.0, seeds=[0], tolerance=1e-6, max_held_share=1.0,
                              candidates=[{"max_note_seconds": 0.2}, {"max_polyphony": 1}])
    capped = _measured(pipe, "bach", recipe, {"max_polyphony": 1})
    plain = _measured(pipe, "irish", recipe, {})
    assert capped != _measured(pipe, "bach", recipe, {})  # the cap changes bach's pieces
    real = {"bach": {**capped, "pieces": 3}, "irish": {**plain, "pieces": 3}}
    derived, report = derive(pipe, real, recipe, progress=False)
    assert derived.presets == [{"when": {"label": "bach"}, "set": {"max_polyphony": 1}}]
    assert report["labels"]["irish"]["chosen"] == {} and report["failing"] == []
    assert [t["set"] for t in report["labels"]["bach"]["tried"]] == [{}, {"max_note_seconds": 0.2}, {"max_polyphony": 1}]
    again, _ = derive(pipe, real, recipe, progress=False)
    assert json.dumps(again.to_diff_dict(), sort_keys=True) == json.dumps(derived.to_diff_dict(), sort_keys=True)
    assert pipe.model.generation_config is not None and not getattr(pipe.model.generation_config, "presets", None)


def test_a_label_nothing_mends_is_reported_and_keeps_the_defaults(tiny, tok):
    register_pipeline()
    pipe = pipeline(TASK, model=tiny, tokenizer=tok, device=torch.device("cpu"))
    recipe = DerivationRecipe(seconds=2.0, seeds=[0], candidates=[{"max_polyphony": 2}])
    impossible = {"note_length_median": 100.0, "notes_per_second": 1000.0, "polyphony_mean": 50.0, "pieces": 3}
    derived, report = derive(pipe, {"bach": impossible}, recipe, progress=False)
    assert derived.presets == [] and report["failing"] == ["bach"]


def test_real_statistics_are_medians_of_openings_and_skip_small_labels(tok, made_midi):
    notes = tok.decode_to_notes(tok.encode_midi(made_midi.elise))
    real = real_statistics([("bach", notes), ("bach", notes), ("irish", notes)], 5.0, tok.vocabulary, min_pieces=2)
    assert list(real) == ["bach"] and real["bach"]["pieces"] == 2 and real["bach"]["notes_per_second"] > 0


def test_a_recipe_with_a_bad_candidate_is_refused(tmp_path):
    path = tmp_path / "derive.yaml"
    path.write_text("candidates:\n  - {max_polyphony: -1}\n")
    with pytest.raises(ValueError, match="max_polyphony"):
        DerivationRecipe.from_yaml(path)
    path.write_text("seeds: [0]\nvoices: 2\n")
    with pytest.raises(ValueError, match="unknown keys voices"):
        DerivationRecipe.from_yaml(path)
    assert DerivationRecipe.from_yaml("configs/sampling/derive.yaml").candidates
