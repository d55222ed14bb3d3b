"""The musenet-generation pipeline on a tiny random MuseNetForCausalLM: MIDI, tokens, WAV, PNG."""

import io
import shutil
import wave
from pathlib import Path

import mido
import pytest
from transformers import pipeline

from musenet_hf.evaluation.measurements import note_on_instruments
from musenet_hf.generation.generate import split_prompt
from musenet_hf.generation.logits_processors import grammar_violations, resolve_instruments
from musenet_hf.generation.pipeline_musenet import TASK, register_pipeline
from musenet_hf.midi.render import render_pianoroll, render_wav

from midi_fixtures import SOURCES, primer_piece


# `tok` (the musenet preset) and `tiny` (a random MuseNetForCausalLM) come from conftest.py
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipe(tiny, tok):
    register_pipeline()
    return pipeline(TASK, model=tiny, tokenizer=tok, device="cpu")


def reread(midi: mido.MidiFile) -> mido.MidiFile:
    """Save to bytes and parse again: what a player would read."""
    buf = io.BytesIO()
    midi.save(file=buf)
    return mido.MidiFile(file=io.BytesIO(buf.getvalue()))


def note_on_share(tok, results: list[dict], instruments: set[int]) -> float:
    """The share of the results' note-ons that go to ``instruments`` (instrument indices)."""
    ons = [i for r in results for i in note_on_instruments(tok, r["tokens"])]
    return sum(i in instruments for i in ons) / len(ons)


def programs_and_notes(midi: mido.MidiFile) -> tuple[set[int], int]:
    programs, notes = set(), 0
    for msg in mido.merge_tracks(midi.tracks):
        if msg.type == "program_change":
            programs.add(msg.program)
        elif msg.type == "note_on" and msg.velocity > 0:
            notes += 1
    return programs, notes


def test_pipeline_from_a_saved_folder_matches_the_object(tiny, tok, pipe, tmp_path):
    tiny.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = pipeline(TASK, model=str(tmp_path), device="cpu")
    a = loaded(composer="bach", instruments="piano", seconds=2.0, seed=3, max_polyphony=8)
    b = pipe(composer="bach", instruments="piano", seconds=2.0, seed=3, max_polyphony=8)
    assert a[0]["tokens"] == b[0]["tokens"]  # same weights, same seed: same piece
    r = a[0]
    v = tok.vocabulary
    assert r["tokens"][:3] == [v.composer_id("bach"), v.instrumentation_id(["piano"]), v.start_id]
    assert r["finished"] and r["tokens"][-1] == v.end_id and 1.8 - 1e-9 <= r["seconds"] <= 2.2 + 1e-9
    assert grammar_violations(v, r["tokens"]) == []
    _, notes = programs_and_notes(reread(r["midi"]))
    assert notes == sum(bool(v.is_note_on[t]) for t in r["tokens"])
    assert isinstance(r["critic_score"], float)


def test_samples_rerank_and_hard_steering(pipe, tok):
    out = pipe(composer="mozart", instruments="violin", seconds=2.0, num_samples=4, rerank=True,
               steering="hard", seed=1, temperature=1.5)
    assert len(out) == 4
    scores = [r["critic_score"] for r in out]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
    for r in out:
        programs, notes = programs_and_notes(reread(r["midi"]))
        drums = sum(1 for t in r["tokens"] if tok.vocabulary.note_instrument[t] == tok.vocabulary.drum_index
                    and tok.vocabulary.is_note_on[t])
        assert notes > drums  # some violin notes; drums are a separate channel, not steered here
        assert programs <= {40, 0}  # violin (and program 0 of the drum channel)
        assert all(tok.vocabulary.note_instrument[t] == tok.vocabulary.instrument_index["violin"]
                   for t in r["tokens"] if tok.vocabulary.is_note_on[t])


@pytest.mark.parametrize("source", SOURCES)
def test_primer_opens_the_piece(pipe, tok, source, made_midi):
    path = primer_piece(source, made_midi)
    out = pipe(primer=str(path), primer_seconds=1.0, seconds=3.0, seed=0)[0]
    v = tok.vocabulary
    prefix, body = split_prompt(v, out["tokens"])
    encoded = tok.encode_midi(path, add_end=False)
    _, primer_body = split_prompt(v, encoded)
    # the piece starts with the file's first second (100 clock units), note for note
    n = next(i for i in range(len(primer_body)) if int(v.wait_units[primer_body[: i + 1]].sum()) > 100)
    assert n > 0 and body[:n] == primer_body[:n]
    assert prefix[-1] == v.start_id and any(v.is_instrumentation[t] for t in prefix)
    assert grammar_violations(v, out["tokens"]) == []


def test_wav_and_png_from_pipeline_output(pipe, tok, tmp_path):
    r = pipe(composer="bach", instruments="piano,violin", seconds=3.0, seed=2)[0]
    png = render_pianoroll(tok.decode_to_notes(r["tokens"]), tmp_path / "roll.png", vocabulary=tok.vocabulary)
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[0] >= 500 and img.shape[1] >= 900
    assert (img[..., :3] < 0.9).any(axis=-1).mean() > 0.01  # bars, axes and legend drawn
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth not installed")
    wav = render_wav(r["midi"], tmp_path / "out.wav")
    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
        assert w.getnchannels() == 2 and w.getsampwidth() == 2
        frames = w.readframes(w.getnframes())
    # the music (the MIDI file's length: a note struck at the very end still sounds its minimum
    # length past the last wait; times are rounded to whole ticks, 1/960 s at 120 bpm and 480 ticks
    # per beat), then at most a 2 s tail
    tick = 0.5 / r["midi"].ticks_per_beat
    assert r["seconds"] - tick <= r["midi"].length <= r["seconds"] + 0.05
    assert r["midi"].length <= seconds <= r["midi"].length + 2.0 + 1e-3
    assert max(frames) > 0  # not silence


def test_unknown_arguments_and_composers_fail_clearly(pipe):
    with pytest.raises(TypeError, match="unknown musenet-generation arguments: colour"):
        pipe(composer="bach", colour="blue")
    with pytest.raises(KeyError, match="unknown composer/style 'nobody'"):
        pipe(composer="nobody", seconds=1.0)


def test_requests_outside_the_training_coverage_warn_once(tiny, tok):
    import warnings

    from musenet_hf.generation.pipeline_musenet import coverage_warning

    v = tok.vocabulary
    coverage = {"labels": {"bach": {"piano": 400, "piano_strings": 3}, "irish": {"piano": 300}},
                "revoiced": [], "revoice": 0.0, "drop_instrumentation": 0.0}
    assert coverage_warning(coverage, v, "bach", "piano,violin") is None  # seen together
    assert coverage_warning(coverage, v, "irish", None) is None
    assert coverage_warning(None, v, "mozart", "drums") is None  # nothing recorded: nothing to say
    msg = coverage_warning(coverage, v, "irish", "violin")
    assert "violin" in msg and "irish" not in msg.split("never trained on")[1].split("with")[0]
    msg = coverage_warning(coverage, v, "mozart", None)
    assert msg.startswith("mozart is a style this model never trained on (nearest trained styles: bach, irish)")
    # re-voicing covers every melodic instrument, not drums
    revoiced = {**coverage, "revoiced": ["bass", "cello", "clarinet", "flute", "guitar", "harp", "piano",
                                         "trumpet", "violin"]}
    assert coverage_warning(revoiced, v, "irish", "violin,flute") is None
    assert "drums" in coverage_warning(revoiced, v, "irish", "piano,drums")
    # the pipeline says it once per kind of request
    tiny.config.training_coverage = coverage
    try:
        register_pipeline()
        pipe = pipeline(TASK, model=tiny, tokenizer=tok, device="cpu")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                pipe(composer="irish", instruments="violin", seconds=1.0, seed=0, max_new_tokens=8)
        said = [w for w in caught if "never trained on" in str(w.message)]
        assert len(said) == 1 and "violin" in str(said[0].message)
    finally:
        tiny.config.training_coverage = None


# ------------------------------------------------------------------ issue 12
def primer_file(tok, path: Path, seconds: int = 20) -> Path:
    """A primer MIDI of `seconds` s: a piano note every half second."""
    v = tok.vocabulary
    ids = [v.instrumentation_id(["piano"]), v.start_id]
    for k in range(2 * seconds):
        pitch = 60 + k % 12
        ids += [v.note_id("piano", 80, pitch)] + v.wait_ids(40) + [v.note_id("piano", 0, pitch)] + v.wait_ids(10)
    tok.decode_to_midi(ids).save(str(path))
    return path


def test_primer_default_length_and_seconds_of_new_music(pipe, tok, tmp_path):
    """Issue 12, item 2: a primer keeps its first 5 s unless told, and `seconds` counts the new
    music after it (before: the whole 20 s primer came back, and nothing new)."""
    path = primer_file(tok, tmp_path / "primer.mid")
    r = pipe(primer=str(path), seconds=2.0, seed=0, max_polyphony=8)[0]
    assert 4.5 <= r["primer_seconds"] <= 5.0
    new = r["seconds"] - r["primer_seconds"]
    assert r["finished"] and 1.3 <= new <= 2.7 and r["seconds"] < 8.0
    r = pipe(primer=str(path), primer_seconds=1.0, seconds=3.0, seed=0, max_polyphony=8)[0]
    assert r["primer_seconds"] <= 1.0 and 2.5 <= r["seconds"] - r["primer_seconds"] <= 3.5
    assert pipe(composer="bach", seconds=1.0, seed=0)[0]["primer_seconds"] == 0.0
    with pytest.raises(ValueError, match="primer_seconds"):
        pipe(primer=str(path), primer_seconds=float("nan"), seconds=1.0)


def test_named_instruments_are_soft_steered_by_default(pipe, tok):
    """Issue 12, item 3: instruments named without `steering` get soft steering at the default
    strength; steering=None (or "none") switches it off."""
    from musenet_hf.generation.logits_processors import DEFAULT_STEERING_STRENGTH

    kw = dict(composer="bach", instruments="violin", seconds=3.0, seed=5, num_samples=4, max_polyphony=8)
    default = pipe(**kw)
    soft = pipe(**kw, steering="soft", strength=DEFAULT_STEERING_STRENGTH)
    off = pipe(**kw, steering=None)
    assert [r["tokens"] for r in default] == [r["tokens"] for r in soft]
    assert [r["tokens"] for r in pipe(**kw, steering="none")] == [r["tokens"] for r in off]
    v = tok.vocabulary

    violin = {v.instrument_index["violin"]}
    assert note_on_share(tok, default, violin) > note_on_share(tok, off, violin) + 0.2
    with pytest.raises(ValueError, match="steering must be"):
        pipe(**kw, steering="medium")


def test_threads_argument_and_environment(pipe, tiny, monkeypatch):
    """Issue 12, item 4: `threads` (or $MUSENET_THREADS) sets torch's threads for the call only."""
    import functools

    import torch

    seen = []
    forward = tiny.forward

    @functools.wraps(forward)
    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return forward(*args, **kwargs)

    monkeypatch.setattr(tiny, "forward", recording)
    monkeypatch.delenv("MUSENET_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pipe(composer="bach", seconds=1.0, seed=0, threads=1, max_new_tokens=8)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2  # restored after the call
        seen.clear()
        monkeypatch.setenv("MUSENET_THREADS", "1")
        pipe(composer="bach", seconds=1.0, seed=0, max_new_tokens=8)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        monkeypatch.setenv("MUSENET_THREADS", "many")
        with pytest.raises(ValueError, match="MUSENET_THREADS"):
            pipe(composer="bach", seconds=1.0, seed=0, max_new_tokens=8)
    finally:
        torch.set_num_threads(before)


def test_ctrl_c_raises_with_the_pieces_so_far(pipe, tiny, monkeypatch):
    """Issue 12, item 5: Ctrl-C during the pipeline raises GenerationInterrupted (a
    KeyboardInterrupt) whose results are the usual dicts, MIDI with every note ended."""
    from conftest import interrupt_forward_at
    from musenet_hf.generation.generate import GenerationInterrupted

    interrupt_forward_at(monkeypatch, tiny, 40)
    with pytest.raises(GenerationInterrupted) as caught:
        pipe(composer="bach", instruments="piano", seconds=30.0, num_samples=2, seed=0, rerank=True)
    results = caught.value.results
    assert len(results) == 2
    for r in results:
        assert not r["finished"] and r["seconds"] < 30 and len(r["tokens"]) > 20
        midi = reread(r["midi"])
        open_notes: dict[tuple[int, int], int] = {}
        for msg in mido.merge_tracks(midi.tracks):
            if msg.type in ("note_on", "note_off"):
                key = (msg.channel, msg.note)
                open_notes[key] = open_notes.get(key, 0) + (1 if msg.type == "note_on" and msg.velocity else -1)
        assert all(n == 0 for n in open_notes.values())  # every note ended


def test_clear_errors_greedy_and_names_in_any_case(pipe, tiny, tok):
    """Issue 12, item 7: NaN/inf lengths, temperature 0 (greedy), names in any case, and the
    unknown-composer message (the labels the model trained on first, then every name)."""
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="seconds must be a positive finite number"):
            pipe(composer="bach", seconds=bad)
    with pytest.raises(ValueError, match="temperature must be"):
        pipe(composer="bach", seconds=1.0, temperature=-1.0)
    greedy = pipe(composer="bach", instruments="piano", seconds=2.0, num_samples=2, temperature=0, max_polyphony=8)
    assert greedy[0]["tokens"] == greedy[1]["tokens"] and len(greedy[0]["tokens"]) > 3  # no sampling: alike
    v = tok.vocabulary
    upper = pipe(composer="BACH", instruments="Piano,VIOLIN", seconds=1.0, seed=0, max_new_tokens=4)[0]
    assert upper["tokens"][:3] == [v.composer_id("bach"), v.instrumentation_id(["piano", "strings"]), v.start_id]
    tiny.config.training_coverage = {"labels": {"irish": {"piano": 300}, "bach": {"piano": 400, "piano_strings": 10}},
                                     "revoiced": [], "revoice": 0.0, "drop_instrumentation": 0.0}
    try:
        with pytest.raises(KeyError) as caught:
            pipe(composer="bachh", seconds=1.0)
    finally:
        tiny.config.training_coverage = None
    msg = caught.value.args[0]
    assert msg.startswith("unknown composer/style 'bachh' (did you mean bach")
    assert "this model trained on: bach (410), irish (300)" in msg
    assert msg.index("trained on") < msg.index(f"all {len(v.composers)} names: ")
    assert all(name in msg.split("names: ")[1].split(", ") for name in v.composers)  # every name, not 20


def test_no_instruments_take_the_labels_usual_instrumentation(tiny, tok):
    from musenet_hf.generation.pipeline_musenet import usual_instrumentation

    v = tok.vocabulary
    coverage = {"labels": {"bach": {"piano": 400, "piano_strings": 3, "": 2}, "irish": {"piano": 300}},
                "revoiced": [], "revoice": 0.0, "drop_instrumentation": 0.0}
    assert usual_instrumentation(coverage, "Bach") == "piano" and usual_instrumentation(coverage, "mozart") is None
    assert usual_instrumentation(None, "bach") is None
    tiny.config.training_coverage = coverage
    try:
        register_pipeline()
        pipe = pipeline(TASK, model=tiny, tokenizer=tok, device="cpu")
        plain = pipe.preprocess({"composer": "bach", "seconds": 2.0})
        assert plain["input_ids"].tolist() == [v.composer_id("bach"), v.instrumentation_id(["piano"]), v.start_id]
        assert not plain["named"] and plain["usual"]  # filled in, not asked for: steered, never warned about
        named = pipe.preprocess({"composer": "bach", "instruments": "violin", "seconds": 2.0})
        assert named["input_ids"].tolist()[1] == v.instrumentation_id(["strings"])
        unknown = pipe.preprocess({"composer": "mozart", "seconds": 2.0})  # not in the coverage: no token
        assert unknown["input_ids"].tolist() == [v.composer_id("mozart"), v.start_id]
    finally:
        tiny.config.training_coverage = None


def test_the_usual_instrumentation_is_soft_steered_when_none_is_named(tiny, tok, made_midi):
    """With no instruments named, the label's usual instrumentation is asked for and soft-steered
    (Mozart on the bundled model left its strings for flute, harp and trumpet without it): the
    default equals naming those instruments, and `steering="none"` leaves only the token."""
    v = tok.vocabulary
    tiny.config.training_coverage = {"labels": {"bach": {"strings": 40}}, "revoiced": [], "revoice": 0.0,
                                     "drop_instrumentation": 0.0}
    try:
        register_pipeline()
        pipe = pipeline(TASK, model=tiny, tokenizer=tok, device="cpu")
        kw = dict(composer="bach", seconds=3.0, seed=5, num_samples=4, max_polyphony=8)
        default = pipe(**kw)
        named = pipe(**kw, instruments="strings")
        off = pipe(**kw, steering="none")
        primer = str(primer_piece(SOURCES[0], made_midi))
        primed = pipe.preprocess({"composer": "bach", "seconds": 2.0, "primer": primer})
    finally:
        tiny.config.training_coverage = None
    assert [r["tokens"] for r in default] == [r["tokens"] for r in named]
    strings = set(resolve_instruments(v, "strings"))
    assert strings and len(strings) < len(v.instruments) - 1

    assert note_on_share(tok, default, strings) > note_on_share(tok, off, strings) + 0.2
    assert not primed["usual"]  # a primer's own instruments lead; nothing is filled in


def test_steering_onto_a_rarely_seen_instrument_keeps_the_notes_short():
    """The bundled model, asked for irish on violin (a pairing it barely saw): steering puts the
    notes on the violin and they end as in real irish tunes. A plain bias on the violin's
    note-ons (the rule before) made 56% of notes last over 4 s with 40 sounding at once."""
    from musenet_hf.loading import bundled_checkpoint
    from musenet_hf.midi.midi_io import read_midi_notes
    from musenet_hf.evaluation.musical_statistics import piece_statistics

    register_pipeline()
    pipe = pipeline(TASK, model=str(bundled_checkpoint()), device="cpu")
    for steering in ("soft", "hard"):
        r = pipe(composer="irish", instruments="violin", seconds=20, seed=0, steering=steering, threads=1)[0]
        st = piece_statistics(read_midi_notes(r["midi"]), pipe.tokenizer.vocabulary)
        print(f"\nirish on violin, {steering}: {st['notes']} notes, {100 * st['long_note_share']:.1f}% over 4 s, "
              f"{st['polyphony_mean']:.2f} at once, violin {100 * st['instruments'].get('violin', 0):.0f}%")
        assert st["notes"] >= 40 and st["instruments"]["violin"] >= 0.9
        assert st["long_note_share"] < 0.05 and st["polyphony_mean"] < 5
