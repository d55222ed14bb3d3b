"""Texture rules (musenet_hf.generation.texture): the voice floor and the note-length ceiling, the note onsets
they read from the tracker, and the pipeline's per-label defaults (a checkpoint's legacy config.sampling_by_label, read into the
generation config's presets).

The model is the tiny random MuseNetForCausalLM of conftest.py: it samples close to uniformly, so
left alone it lets voices drop out and holds notes for seconds, and each rule visibly changes that.
"""

from types import SimpleNamespace

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList, pipeline

from musenet_hf.generation.generate import default_logits_processors
from musenet_hf.generation.generation_config import MuseNetGenerationConfig
from musenet_hf.generation.logits_processors import NoteStateTracker, grammar_violations
from musenet_hf.generation.pipeline_musenet import TASK, is_revoiced, register_pipeline
from musenet_hf.generation.texture import MaxNoteLengthLogitsProcessor, MinVoicesLogitsProcessor

pytestmark = pytest.mark.usefixtures("one_thread")


def texture_of(pipe, label=None, revoiced=False, **call):
    """(min_voices, max_note_seconds, max_polyphony) a request of ``label`` gets, the call's own on top."""
    settings = pipe.sampling_settings(label, revoiced, **call)
    return settings.min_voices, settings.max_note_seconds, settings.max_polyphony


class StrikeRarely(LogitsProcessor):
    """A model that would rather wait than strike a note: every note-on 150 times less likely."""

    def __init__(self, vocab):
        self.note_on = torch.as_tensor(vocab.is_note_on)

    def __call__(self, input_ids, scores):
        return scores - 5.0 * self.note_on[: scores.shape[1]].to(scores.dtype)


def sample_pieces(model, vocab, procs, batch=12, new_tokens=250, seed=0):
    prompt = torch.tensor([[vocab.composer_id("bach"), vocab.instrumentation_id(["piano", "violin"]),
                            vocab.start_id]] * batch)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_k=0,
                             max_new_tokens=new_tokens, logits_processor=LogitsProcessorList(procs),
                             pad_token_id=vocab.pad_id, eos_token_id=vocab.end_id)
    return [[t for t in row if t != vocab.pad_id] for row in out.tolist()]


def walk(vocab, ids):
    """Per token after ``start``: (notes sounding before it, {key: onset units}, clock units before it)."""
    sounding, units, seen = {}, 0, []
    for t in ids[ids.index(vocab.start_id) + 1:]:
        seen.append((t, dict(sounding), units))
        units += int(vocab.wait_units[t])
        if vocab.is_note[t] and vocab.note_instrument[t] != vocab.drum_index:
            key = int(vocab.note_instrument[t]) * 128 + int(vocab.note_pitch[t])
            if vocab.is_note_off[t]:
                sounding.pop(key, None)
            else:
                sounding[key] = units
    return seen


def thin_waits(vocab, ids, voices):
    """Waits taken while fewer than ``voices`` notes sounded."""
    return sum(1 for t, sounding, _ in walk(vocab, ids) if vocab.is_wait[t] and len(sounding) < voices)


def longest_note_units(vocab, ids):
    """The longest time (units) any note had sounded when a token came."""
    return max([units - on for _, sounding, units in walk(vocab, ids) for on in sounding.values()] + [0])


def test_tracker_onsets_match_a_walk_incrementally_and_from_scratch(vocab):
    g = torch.Generator().manual_seed(3)
    pool = [vocab.note_id(i, vel, p) for i in ("piano", "violin") for vel in (0, 80) for p in range(60, 64)]
    pool += vocab.wait_ids(7) + vocab.wait_ids(30)
    body = torch.tensor(pool)[torch.randint(len(pool), (4, 80), generator=g)]
    ids = torch.cat([torch.full((4, 1), vocab.start_id), body], dim=1)
    tracker = NoteStateTracker(vocab)
    for t in range(2, ids.shape[1] + 1):
        incremental = tracker.state(ids[:, :t])
        scratch = NoteStateTracker(vocab).compute(ids[:, :t])
        for b in range(4):
            t_, sounding, units = walk(vocab, ids[b, :t].tolist() + [vocab.end_id])[-1]
            for st in (incremental, scratch):
                keys = st.sounding[b].nonzero().flatten().tolist()
                assert {k: int(st.onset[b, k]) for k in keys} == sounding
                assert int(st.units[b]) == units


def test_min_voices_keeps_two_notes_sounding_whenever_time_passes(vocab, tiny):
    """A model that strikes rarely waits with one note sounding; the floor makes it strike a second first."""
    sparse = StrikeRarely(vocab)
    free = sample_pieces(tiny, vocab, [sparse, *default_logits_processors(vocab, 3.0)])
    floor = sample_pieces(tiny, vocab, [sparse, *default_logits_processors(vocab, 3.0, min_voices=2)])
    free_thin = sum(thin_waits(vocab, row, 2) for row in free)
    print(f"\nwaits with fewer than 2 notes sounding: {free_thin} unruled, "
          f"{sum(thin_waits(vocab, row, 2) for row in floor)} with min_voices=2")
    assert free_thin > 20  # left alone, this model plays one note at a time
    for row in floor:
        assert thin_waits(vocab, row, 2) == 0
        assert grammar_violations(vocab, row) == [] and row[-1] == vocab.end_id  # still ends, still valid
        assert 2.7 - 1e-9 <= vocab.seconds(row) <= 3.3 + 1e-9


def test_min_voices_lets_time_pass_when_only_drums_may_strike(vocab, tiny):
    """Hard steering onto the drums leaves no pitched note to strike: the floor must not stop the clock."""
    procs = default_logits_processors(vocab, 3.0, instruments="drums", steering="hard", min_voices=2)
    for row in sample_pieces(tiny, vocab, procs, batch=4):
        assert row[-1] == vocab.end_id and 2.7 - 1e-9 <= vocab.seconds(row) <= 3.3 + 1e-9


def test_max_note_seconds_ends_every_note_in_time(vocab, tiny):
    unit = vocab.wait_unit_seconds
    free = sample_pieces(tiny, vocab, default_logits_processors(vocab, 3.0, max_polyphony=6))
    capped = sample_pieces(tiny, vocab, default_logits_processors(vocab, 3.0, max_polyphony=6, max_note_seconds=0.5))
    longest_free = max(longest_note_units(vocab, row) for row in free) * unit
    longest = max(longest_note_units(vocab, row) for row in capped) * unit
    print(f"\nlongest note: {longest_free:.2f} s unruled, {longest:.2f} s with max_note_seconds=0.5")
    assert longest_free > 1.0
    assert longest <= 0.5 + 1e-9
    assert all(grammar_violations(vocab, row) == [] for row in capped)


def test_texture_rules_reject_bad_settings(vocab):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="min_voices"):
            MinVoicesLogitsProcessor(vocab, bad)
    for bad in (0.0, float("inf"), float("nan"), -2.0):
        with pytest.raises(ValueError, match="max_seconds"):
            MaxNoteLengthLogitsProcessor(vocab, bad)
    with pytest.raises(ValueError, match="max_polyphony"):
        default_logits_processors(vocab, 3.0, max_polyphony=2, min_voices=3)


def test_pipeline_texture_defaults_come_from_the_prompts_first_label(tiny, tok):
    """config.sampling_by_label sets min_voices and max_note_seconds per label; the call's own value wins and
    0 turns a rule off; a config saved with the old name guidance_by_label still loads."""
    register_pipeline()
    pipe = pipeline(TASK, model=tiny, tokenizer=tok, device=torch.device("cpu"))
    config = tiny.config
    config.sampling_by_label = {"Bach": {"min_voices": 2, "max_note_seconds": 0.5, "max_polyphony": 0},
                                "irish": {"guidance": 1.0}}
    config.max_polyphony = 3  # the model-wide default, which Bach's entry turns off
    try:
        assert texture_of(pipe, "bach") == (2, 0.5, None)
        assert texture_of(pipe, "irish") == texture_of(pipe) == (None, None, 3)
        assert texture_of(pipe, "bach", min_voices=0, max_note_seconds=2) == (None, 2.0, None)
        with pytest.raises(ValueError, match="min_voices"):
            texture_of(pipe, "bach", min_voices=1.5)
        with pytest.raises(ValueError, match="max_polyphony"):
            texture_of(pipe, "bach", max_polyphony=-1)
        out = pipe(composer="bach", instruments="piano,violin", seconds=3, seed=0, max_polyphony=6)[0]
        assert thin_waits(tok.vocabulary, out["tokens"], 2) == 0
        assert longest_note_units(tok.vocabulary, out["tokens"]) * tok.vocabulary.wait_unit_seconds <= 0.5 + 1e-9
        off = pipe(composer="bach", instruments="piano,violin", seconds=3, seed=0, max_polyphony=6, min_voices=0,
                   max_note_seconds=0)[0]
        assert off["tokens"] != out["tokens"]
        # sliding windows (64 tokens, far shorter than the piece): the rules follow the whole piece
        windowed = pipe(composer="bach", instruments="piano,violin", seconds=4, seed=1, max_polyphony=6,
                        max_window=64, step=16)[0]
        assert len(windowed["tokens"]) > 3 * 64
        assert thin_waits(tok.vocabulary, windowed["tokens"], 2) == 0
        assert grammar_violations(tok.vocabulary, windowed["tokens"]) == []
    finally:
        config.sampling_by_label = config.max_polyphony = None
    legacy = type(config)(**{**config.to_dict(), "guidance_by_label": {"irish": {"guidance": 1.0}}})
    assert legacy.sampling_by_label == {"irish": {"guidance": 1.0}} and "guidance_by_label" not in legacy.to_dict()
    for entry, error in (({"voices": 2}, "unknown sampling setting 'voices'"), ({"min_voices": -1}, "min_voices must"),
                         ({"max_note_seconds": "long"}, "max_note_seconds must"),
                         ({"revoiced": {"min_voices": -1}}, "min_voices must"),
                         ({"revoiced": {"revoiced": {}}}, "unknown sampling setting 'revoiced'")):
        with pytest.raises(ValueError, match=error):
            MuseNetGenerationConfig.from_legacy(SimpleNamespace(sampling_by_label={"bach": entry}))


def test_revoiced_settings_apply_only_to_instruments_the_label_never_had(tiny, tok):
    """With training_coverage saying Bach was piano (and violin), a request for Bach on the flute is
    re-voiced: the entry's "revoiced" settings win there, and only there."""
    register_pipeline()
    pipe = pipeline(TASK, model=tiny, tokenizer=tok, device=torch.device("cpu"))
    config = tiny.config
    before = config.training_coverage
    config.training_coverage = {"labels": {"bach": {"piano_strings": 3, "piano": 9}}, "revoiced": ["flute"]}
    config.sampling_by_label = {"bach": {"min_voices": 1, "revoiced": {"min_voices": 2, "max_note_seconds": 0.5}}}
    try:
        assert not is_revoiced(config.training_coverage, tok.vocabulary, "bach", ["piano", "violin"])
        assert is_revoiced(config.training_coverage, tok.vocabulary, "bach", "flute")
        assert not is_revoiced(config.training_coverage, tok.vocabulary, "irish", "flute")  # unknown label
        assert texture_of(pipe, "bach") == (1, None, None)
        assert texture_of(pipe, "bach", revoiced=True) == (2, 0.5, None)
        assert texture_of(pipe, "bach", revoiced=True, min_voices=3) == (3, 0.5, None)
        kw = dict(composer="bach", seconds=3, seed=0, max_polyphony=6)
        flute = pipe(instruments="flute", **kw)[0]["tokens"]
        assert thin_waits(tok.vocabulary, flute, 2) == 0
        assert flute == pipe(instruments="flute", min_voices=2, max_note_seconds=0.5, **kw)[0]["tokens"]
        piano = pipe(instruments="piano", **kw)[0]["tokens"]
        assert piano == pipe(instruments="piano", min_voices=1, max_note_seconds=0, **kw)[0]["tokens"]
        assert piano != pipe(instruments="piano", min_voices=2, max_note_seconds=0.5, **kw)[0]["tokens"]
    finally:
        config.training_coverage, config.sampling_by_label = before, None


def test_max_polyphony_per_label_caps_the_notes_at_once(tiny, tok):
    """A label's max_polyphony (a string quartet's four players) caps its pieces; other labels are free."""
    register_pipeline()
    pipe = pipeline(TASK, model=tiny, tokenizer=tok, device=torch.device("cpu"))
    v = tok.vocabulary
    tiny.config.sampling_by_label = {"mozart": {"max_polyphony": 4}}
    try:
        kw = dict(instruments="violin,cello", seconds=3, seed=0)
        mozart, bach = pipe(composer="mozart", **kw)[0]["tokens"], pipe(composer="bach", **kw)[0]["tokens"]
        most = [max(len(sounding) + 1 for t, sounding, _ in walk(v, row)
                     if v.is_note_on[t] and v.note_instrument[t] != v.drum_index) for row in (mozart, bach)]
        print(f"\nmost notes sounding after a note-on: mozart (max_polyphony 4) {most[0]}, bach {most[1]}")
        assert most[0] <= 4 < most[1]
    finally:
        tiny.config.sampling_by_label = None
