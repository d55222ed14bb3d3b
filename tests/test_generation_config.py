"""MuseNetGenerationConfig: every sampling default and per-label preset, one resolver, one validator.

The bundled checkpoint keeps its settings in generation_config.json; a checkpoint saved before
(settings in config.json) is read into the same presets; saving and reloading changes nothing a
request gets, nor the tokens it samples.
"""

import json
from types import SimpleNamespace

import pytest
import torch

from musenet_hf.generation.generation_config import MuseNetGenerationConfig, SamplingSettings, check_setting
from musenet_hf.loading import bundled_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

PRESETS = [{"when": {"label": "Palestrina"}, "set": {"guidance_against": "trecento"}},
           {"when": {"label": "palestrina", "revoiced": True}, "set": {"min_voices": 2, "max_note_seconds": 4}},
           {"when": {"label": "mozart"}, "set": {"max_polyphony": 4}}]


def test_resolve_applies_defaults_then_matching_presets_then_the_call():
    config = MuseNetGenerationConfig(guidance=1.3, guidance_against="folk", presets=PRESETS)
    plain = config.resolve()
    assert (plain.guidance, plain.guidance_against, plain.min_voices, plain.max_polyphony) == (1.3, "folk", None, None)
    assert (plain.do_sample, plain.top_p, plain.top_k, plain.temperature) == (True, 0.95, 0, 1.0)
    own = config.resolve("Palestrina")  # labels match as the vocabulary spells them (any case)
    assert (own.guidance_against, own.min_voices, own.max_note_seconds) == ("trecento", None, None)
    revoiced = config.resolve("palestrina", revoiced=True)
    assert (revoiced.guidance_against, revoiced.min_voices, revoiced.max_note_seconds) == ("trecento", 2, 4.0)
    assert config.resolve("mozart").max_polyphony == 4 and config.resolve("bach").max_polyphony is None
    call = config.resolve("palestrina", revoiced=True, min_voices=0, guidance_against="none", top_p=None)
    assert (call.min_voices, call.guidance_against, call.top_p) == (None, None, 0.95)  # 0 and "none": off


@pytest.mark.parametrize("name, value, error", [
    ("guidance", -1, "guidance must be >= 0"), ("min_voices", 1.5, "min_voices must be a whole number"),
    ("top_p", 0, r"top_p must be in \(0, 1\]"), ("steering", "loud", "steering must be one of"),
    ("max_note_seconds", float("nan"), "max_note_seconds must be a finite number"),
    ("length_tolerance", 1.0, r"length_tolerance must be in \[0, 1\)"), ("voices", 2, "unknown sampling setting"),
])
def test_one_validator_names_the_setting_and_what_it_takes(name, value, error):
    with pytest.raises(ValueError, match=error):
        check_setting(name, value)
    with pytest.raises(ValueError, match=error):
        MuseNetGenerationConfig(presets=[{"when": {"label": "bach"}, "set": {name: value}}])


def test_a_bad_preset_shape_is_refused():
    for preset in ({"set": {"guidance": 2}}, {"when": {"label": "bach", "voiced": True}, "set": {"guidance": 2}},
                   {"when": {"label": "bach"}, "set": {}}, {"when": {"label": "bach", "revoiced": "yes"},
                                                           "set": {"guidance": 2}}):
        with pytest.raises(ValueError, match="presets"):
            MuseNetGenerationConfig(presets=[preset])


def test_a_legacy_config_reads_into_presets():
    legacy = SimpleNamespace(guidance=1.3, guidance_against="folk", sampling_by_label={
        "irish": {"guidance": 1.0}, "palestrina": {"guidance_against": "trecento", "revoiced": {"min_voices": 2}}})
    config = MuseNetGenerationConfig.from_legacy(legacy)
    assert config.presets == [{"when": {"label": "irish"}, "set": {"guidance": 1.0}},
                              {"when": {"label": "palestrina"}, "set": {"guidance_against": "trecento"}},
                              {"when": {"label": "palestrina", "revoiced": True}, "set": {"min_voices": 2}}]
    assert config.resolve("irish").guidance == 1.0 and config.resolve("bach").guidance == 1.3
    assert config.resolve("palestrina", revoiced=True).min_voices == 2


def test_the_bundled_checkpoint_holds_every_setting_in_generation_config_json():
    folder = bundled_checkpoint()
    saved = json.loads((folder / "generation_config.json").read_text())
    assert {"steering", "steering_strength", "guidance", "guidance_against", "max_polyphony", "min_voices",
            "max_note_seconds", "primer_seconds", "length_tolerance", "presets", "do_sample", "top_p",
            "top_k"} <= set(saved)
    assert not {"guidance", "guidance_against", "sampling_by_label"} & set(json.loads((folder / "config.json").read_text()))
    config = MuseNetGenerationConfig.from_folder(folder)
    assert config.resolve("irish").guidance == 1.0 and config.resolve("bach").guidance_against == "folk"
    assert config.resolve("mozart").max_polyphony == 4
    assert any(line.startswith("palestrina re-voiced:") for line in config.describe())


def test_saved_and_reloaded_the_bundled_model_samples_the_same_tokens(tmp_path):
    """save_pretrained then from_pretrained: the same settings for every label and the same tokens for a seed."""
    from transformers import pipeline

    from musenet_hf.generation.pipeline_musenet import TASK, register_pipeline
    from musenet_hf.loading import load_model, tokenizer_for_model

    register_pipeline()
    model = load_model(bundled_checkpoint())
    model.save_pretrained(tmp_path)
    tokenizer_for_model(model).save_pretrained(tmp_path)
    again = load_model(tmp_path)
    before, after = (MuseNetGenerationConfig.from_model(m) for m in (model, again))
    for label in (None, "bach", "irish", "mozart", "palestrina", "trecento"):
        for revoiced in (False, True):
            assert before.resolve(label, revoiced) == after.resolve(label, revoiced), (label, revoiced)
    request = dict(composer="palestrina", instruments="clarinet", seconds=2, seed=3)
    tokens = [pipeline(TASK, model=m, device=torch.device("cpu"))(**request)[0]["tokens"] for m in (model, again)]
    assert tokens[0] == tokens[1]


def test_generate_kwargs_are_transformers_sampling():
    assert SamplingSettings().generate_kwargs() == {"do_sample": True, "temperature": 1.0, "top_p": 0.95, "top_k": 0}
    assert SamplingSettings(temperature=0.0).generate_kwargs() == {"do_sample": False}
