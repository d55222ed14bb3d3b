"""Musical statistics of a hand-made MIDI file, the statistics match, and the note-closure probe."""

import math
from pathlib import Path

import mido
import numpy as np
import pytest

from musenet_hf.midi.midi_io import Note, read_midi
from musenet_hf.evaluation.musical_statistics import (
    NOTE_LENGTH_EDGES, POLYPHONY_LEVELS, clip_notes, count_note_events, histogram_overlap, key_signature_overlap,
    music_table_parts, note_closure_probe, parse_probe_request, piece_statistics, statistics_match, statistics_overlaps,
    summarize,
)

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TINY_CHECKPOINT = REPO / "checkpoints" / "musenet-tiny-music21"
TICKS_PER_SECOND = 960  # 480 ticks a beat at 120 bpm


def note(pitch: int, start: float, end: float, program: int = 0, drum: bool = False) -> Note:
    return Note(program=program, is_drum=drum, pitch=pitch, velocity=80, start=start, end=end,
                start_beat=2 * start, end_beat=2 * end)


def write_known_midi(path: Path) -> None:
    """C4 D4 E4 F4, 0.5 s each from 0 s; a C4-E4-G4 chord from 2 s to 7 s with a drum hit at 3 s;
    1 s of silence; a violin C5 from 8 s to 8.5 s. 120 bpm, 480 ticks a beat."""
    events = []  # (second, order, message): offs before ons at one moment
    piano = [(60, 0.0, 0.5), (62, 0.5, 1.0), (64, 1.0, 1.5), (65, 1.5, 2.0), (60, 2.0, 7.0), (64, 2.0, 7.0),
             (67, 2.0, 7.0)]
    for channel, pitch, start, end in [(0, *n) for n in piano] + [(9, 36, 3.0, 3.1), (1, 72, 8.0, 8.5)]:
        events.append((start, 1, mido.Message("note_on", channel=channel, note=pitch, velocity=80)))
        events.append((end, 0, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120), time=0),
                            mido.Message("program_change", channel=0, program=0, time=0),
                            mido.Message("program_change", channel=1, program=40, time=0)])
    tick = 0
    for second, _, msg in events:
        at = round(second * TICKS_PER_SECOND)
        track.append(msg.copy(time=at - tick))
        tick = at
    mf = mido.MidiFile(type=1, ticks_per_beat=480)
    mf.tracks.append(track)
    mf.save(path)


def test_piece_statistics_of_a_known_midi_file(tmp_path):
    write_known_midi(tmp_path / "known.mid")
    notes = read_midi(tmp_path / "known.mid").notes
    assert len(notes) == 9
    s = piece_statistics(notes)
    span = 8.5
    assert s["notes"] == 9 and s["seconds"] == pytest.approx(span)
    # pitched lengths 0.5 x5 and 5.0 x3 (the drum is left out): median 0.5, p90 interpolates 5.0 and 5.0
    assert s["note_length_median"] == pytest.approx(0.5)
    assert s["note_length_p90"] == pytest.approx(5.0)
    assert s["long_note_share"] == pytest.approx(3 / 8)
    # note-seconds over the span: 4 x 0.5 s, the chord 3 x 5 s, the drum hit 0.1 s (4 sound at once then), C5 0.5 s
    assert s["polyphony_mean"] == pytest.approx((2.0 + 15.0 + 0.1 + 0.5) / span)
    assert s["polyphony_seconds"][:5] == pytest.approx([1.0, 2.5, 0.0, 4.9, 0.1])
    assert len(s["polyphony_seconds"]) == POLYPHONY_LEVELS
    assert s["polyphony_p95"] == 3.0  # 3 or fewer notes for 8.4 of 8.5 s
    assert s["one_line"] == 0.0  # two or more notes for 5.0 of 8.5 s
    assert s["silent_share"] == pytest.approx(1.0 / span)
    assert s["notes_per_second"] == pytest.approx(9 / span)
    assert s["pitch_range"] == 12.0  # C4..C5; the drum's 36 would make it 36
    assert s["scale_consistency"] == 1.0  # all in C major
    assert s["key_signature"] == 0  # C major (or A minor): no sharps or flats
    # pitch classes counted once per note: C 3 (C4 twice, C5), E 2, D, F, G 1 each, of 8
    p = np.array([3, 2, 1, 1, 1]) / 8
    assert s["pitch_class_entropy"] == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert s["pitch_class_entropy"] == pytest.approx(2.1556, abs=1e-4)
    assert s["instruments"] == pytest.approx({"drums": 1 / 9, "piano": 7 / 9, "violin": 1 / 9})
    half, five = (int(np.searchsorted(NOTE_LENGTH_EDGES, x, side="right")) - 1 for x in (0.5, 5.0))
    assert s["note_length_counts"][half] == 5 and s["note_length_counts"][five] == 3 and sum(s["note_length_counts"]) == 8


def test_piece_statistics_edges(vocab):
    chromatic = [note(60 + k, 0.25 * k, 0.25 * k + 0.25) for k in range(12)]
    s = piece_statistics(chromatic)
    assert s["scale_consistency"] == pytest.approx(7 / 12)
    assert s["pitch_class_entropy"] == pytest.approx(math.log2(12))
    assert s["silent_share"] == 0.0 and s["polyphony_mean"] == pytest.approx(1.0) and s["polyphony_p95"] == 1.0
    assert s["one_line"] == 1.0
    # a tune whose notes overlap a little (legato, 0.1 s of 3 s) is still one line; a second voice is not
    legato = [note(60 + k, 0.5 * k, 0.5 * k + 0.51) for k in range(6)]
    assert piece_statistics(legato)["one_line"] == 1.0
    assert piece_statistics(legato + [note(48, 1.0, 2.0)])["one_line"] == 0.0
    assert summarize([piece_statistics(legato), s, piece_statistics(legato + [note(48, 1.0, 2.0)])])["one_line"] == \
        pytest.approx(2 / 3)
    # instrument names: the vocabulary's mapping, and the musenet preset's without one
    cello = [note(48, 0, 1, program=42), note(50, 0, 1, program=73), note(36, 0, 0.1, drum=True)]
    for v in (vocab, None):
        assert piece_statistics(cello, v)["instruments"] == pytest.approx({"cello": 1 / 3, "drums": 1 / 3, "flute": 1 / 3})
    empty = piece_statistics([])
    assert empty["notes"] == 0 and math.isnan(empty["polyphony_mean"]) and math.isnan(empty["pitch_range"])
    drums = piece_statistics([note(36, 0, 0.1, drum=True), note(38, 0.5, 0.6, drum=True)])
    assert math.isnan(drums["pitch_range"]) and drums["silent_share"] == pytest.approx(0.4 / 0.6)
    # a real opening is cut like a generated piece of that length: notes that start in time, ending by it
    cut = clip_notes([note(60, 0, 1), note(62, 1.5, 9.0), note(64, 2.0, 3.0)], 2.0)
    assert [(n.pitch, n.end, n.end_beat) for n in cut] == [(60, 1, 2), (62, 2.0, 4.0)]


def _scale_tune(tonic: int, steps=(0, 2, 4, 5, 7, 9, 11, 12, 7, 4, 0)) -> list[Note]:
    """A little tune up and down a scale from ``tonic`` (major steps unless given)."""
    return [note(tonic + step, 0.3 * i, 0.3 * i + 0.3) for i, step in enumerate(steps)]


def test_key_signatures_of_tunes_and_their_overlap():
    d_major, g_major, a_flat = _scale_tune(62), _scale_tune(67), _scale_tune(68)
    b_minor = _scale_tune(59, steps=(0, 2, 3, 5, 7, 8, 10, 12, 7, 3, 0))  # natural minor: D major's notes
    keys = [piece_statistics(t)["key_signature"] for t in (d_major, g_major, a_flat, b_minor)]
    assert keys == [2, 7, 8, 2]
    # a fiddle tune's notes (D major) with a stray C natural: still two sharps; a drum-only piece has none
    assert piece_statistics(d_major + [note(72, 4.0, 4.2)])["key_signature"] == 2
    assert piece_statistics([note(36, 0, 0.1, drum=True)])["key_signature"] is None
    # ties (the chromatic scale fits every major scale 7 of 12) go to the scale whose tonic is struck most
    chromatic = [note(60 + k, 0.25 * k, 0.25 * k + 0.25) for k in range(12)] + [note(67, 3.0, 3.5)]
    assert piece_statistics(chromatic)["key_signature"] == 7

    real = [piece_statistics(t) for t in (d_major, d_major, g_major, b_minor)]  # D 3 of 4, G 1 of 4
    assert key_signature_overlap(real, real) == pytest.approx(1.0)
    assert key_signature_overlap([piece_statistics(a_flat)] * 3, real) == 0.0
    assert key_signature_overlap([piece_statistics(g_major), piece_statistics(a_flat)], real) == pytest.approx(0.25)
    assert math.isnan(key_signature_overlap([], real))
    summary = summarize(real)
    assert summary["key_signatures"] == {"D": 0.75, "G": 0.25}
    header, rows, _ = music_table_parts({"seconds": 20.0, "labels": {"irish": {
        "generated": summary, "real": summary, "match": 1.0, "key_overlap": 1.0}}})
    row = dict(zip(header, rows[0]))
    assert row["keys"] == "D 75%, G 25%" and row["key overlap"] == "1.00"


def _pieces(kind: str, n: int = 4) -> list[dict]:
    out = []
    for k in range(n):
        if kind == "slow":  # sustained triads, 2 s each
            notes = [note(p + k, 2.0 * i, 2.0 * i + 2.0) for i in range(4) for p in (48, 52, 55)]
        else:  # a fast single line over three octaves with rests
            notes = [note(40 + (7 * i) % 40, 0.2 * i, 0.2 * i + 0.08) for i in range(40 + k)]
        out.append(piece_statistics(notes))
    return out


def test_statistics_match():
    slow, fast = _pieces("slow"), _pieces("fast")
    assert statistics_match(slow, slow) == pytest.approx(1.0)
    assert statistics_match(fast, fast) == pytest.approx(1.0)
    overlaps = statistics_overlaps(slow, fast)
    assert set(overlaps) == {"note_length", "polyphony", "notes_per_second", "pitch_range", "pitch_class_entropy",
                             "silent_share"}
    assert overlaps["note_length"] == 0.0 and overlaps["polyphony"] == 0.0  # 2 s triads against 0.08 s single notes
    assert statistics_match(slow, fast) < 0.2
    assert statistics_match(slow, fast) == pytest.approx(statistics_match(fast, slow))
    # half the pieces alike: in between
    assert 0.3 < statistics_match(slow[:2] + fast[:2], slow) < 0.9
    assert math.isnan(statistics_match([], slow))
    assert histogram_overlap(np.array([1.0, 1.0]), np.array([0.0, 4.0])) == pytest.approx(0.5)
    summary = summarize(slow + fast)
    assert summary["pieces"] == 8
    assert summary["note_length_median"] == pytest.approx((2.0 + 0.08) / 2)
    assert summary["polyphony_p95"] == pytest.approx((3 + 1) / 2)
    assert summary["instruments"] == {"piano": 1.0}


def test_count_note_events_on_known_ids(vocab):
    v = vocab
    t = v.token_to_id
    ids = [t("bach"), t("piano"), v.start_id,
           t("piano:v72:C4"), t("wait:10"),
           t("violin:v0:G4"),   # off of a note never struck: an orphan
           t("piano:v0:C4"),    # closes C4
           t("piano:v72:E4"), t("drums:v80:C2"),
           t("piano:v72:E4"),   # a re-strike of the sounding E4: one more note-on, still one E4 sounding
           t("wait:128"), v.end_id]
    c = count_note_events(v, ids)
    assert c["note_ons"] == 4 and c["drum_hits"] == 1 and c["note_offs"] == 2 and c["orphan_offs"] == 1
    assert c["waits"] == 2 and c["wait_seconds"] == pytest.approx(1.38) and c["others"] == 4
    assert c["note_ons"] + c["note_offs"] + c["waits"] + c["others"] == len(ids)
    assert c["left_sounding"] == 1 and c["ended"] is True
    assert c["struck"] == {"piano": 3, "drums": 1}
    assert c["off_on_ratio"] == pytest.approx(2 / 3)  # drum hits have no note-off: left out
    # one note-off closes a re-struck note; a second one is an orphan
    again = count_note_events(v, [t("piano:v72:E4"), t("piano:v72:E4"), t("piano:v0:E4"), t("piano:v0:E4"), -1])
    assert (again["note_ons"], again["note_offs"], again["orphan_offs"], again["left_sounding"], again["others"]) == (2, 2, 1, 0, 1)
    assert again["ended"] is False
    assert math.isnan(count_note_events(v, [t("wait:5")])["off_on_ratio"])


def test_parse_probe_request():
    assert parse_probe_request("bach:piano,violin") == ("bach", "piano,violin")
    assert parse_probe_request("mozart") == ("mozart", None)
    assert parse_probe_request(":piano") == (None, "piano")


@pytest.fixture(scope="module")
def tiny_trained():
    from musenet_hf.model.modeling_musenet import MuseNetForCausalLM
    from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

    return MuseNetForCausalLM.from_pretrained(TINY_CHECKPOINT).eval(), MuseNetTokenizer.from_pretrained(TINY_CHECKPOINT)


def test_note_closure_probe_on_the_tiny_checkpoint(tiny_trained, monkeypatch):
    model, tok = tiny_trained
    prefix = tok.prefix_ids("bach", ["piano"])
    r = note_closure_probe(model, tok, prefix, new_tokens=40, seed=0)
    assert 0 < r["tokens"] <= 40 and r["new_tokens"] == 40 and r["seed"] == 0
    assert r["tokens"] == 40 or r["ended"]  # generate stops early only at `end`
    assert r["note_ons"] + r["note_offs"] + r["waits"] + r["others"] == r["tokens"]
    assert r["orphan_offs"] <= r["note_offs"] and r["left_sounding"] <= r["note_ons"] - r["drum_hits"]
    assert sum(r["struck"].values()) == r["note_ons"]
    ratio_ok = math.isfinite(r["off_on_ratio"]) and abs(r["off_on_ratio"] - 1) <= 0.15
    assert r["passes"] == (ratio_ok and r["orphan_offs"] == 0)
    assert note_closure_probe(model, tok, prefix, new_tokens=40, seed=0) == r  # the seed fixes the sample
    # no_early_end: a model that wants to end at once still runs the whole budget
    end = tok.vocabulary.end_id

    def likes_end(module, inputs, logits):
        logits = logits.clone()
        logits[..., end] += 20.0
        return logits

    hook = model.lm_head.register_forward_hook(likes_end)
    try:
        assert note_closure_probe(model, tok, prefix, new_tokens=40, seed=0)["tokens"] < 5
        full = note_closure_probe(model, tok, prefix, new_tokens=40, seed=0, no_early_end=True)
        assert full["tokens"] == 40 and not full["ended"]
    finally:
        hook.remove()
    # one plain generate call stops at the model's context
    monkeypatch.setattr(model.config, "max_position_embeddings", len(prefix) + 5)
    assert note_closure_probe(model, tok, prefix, new_tokens=40, seed=1)["tokens"] <= 5


def test_note_closure_probe_passes_piece_seconds(tiny_trained, monkeypatch):
    """A model whose forward takes the piece's length is told it, as float64, with no logits processor."""
    model, tok = tiny_trained
    seen = {}
    real_generate = model.generate

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    note_closure_probe(model, tok, tok.prefix_ids("bach", ["piano"]), new_tokens=3, seconds=45.0)
    assert seen["piece_seconds"].dtype.is_floating_point and seen["piece_seconds"].tolist() == [45.0]
    assert str(seen["piece_seconds"].dtype) == "torch.float64"
    assert seen["time_offset_seconds"].tolist() == [0.0]
    assert "logits_processor" not in seen and seen["top_k"] == 0 and seen["top_p"] == 1.0 and seen["do_sample"]
    assert seen["eos_token_id"] == tok.vocabulary.end_id
