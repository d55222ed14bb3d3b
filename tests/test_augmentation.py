"""Openings in several voices: held-back entries (``late_entries``: the lower voices come in after the
top line) and trimmed solo openings (``trim_solo_openings``: the piece starts where its second voice
comes in)."""

import numpy as np
import pytest

from musenet_hf.training.augmentation import AugmentationConfig, augment, hold_back_entries, transpose, trim_solo_opening
from musenet_hf.midi.midi_io import read_midi_arrays
from musenet_hf.midi.midi_notes import NOTE_COLUMNS, NoteArrays
from musenet_hf.tokenizer.vocabulary import MuseNetVocabulary

from midi_fixtures import shared_midi

PITCH, START = NOTE_COLUMNS.index("pitch"), NOTE_COLUMNS.index("start")


def note(pitch: int, start: float, end: float, drum: bool = False) -> list[float]:
    """One row of NoteArrays.to_matrix(): piano (or a drum), velocity 80, beats at 120 bpm."""
    return [0, float(drum), pitch, 80, start, end, 2 * start, 2 * end]


@pytest.fixture(scope="module")
def vocabulary():
    return MuseNetVocabulary.from_preset("extended")


def chorale() -> NoteArrays:
    """Four voices in half-second chords from 0 to 3 s, a held tenor (0-1.5 s) under a moving alto,
    and a drum hit at 0: the soprano (69 72 ...) is the top line."""
    rows = [note(p + (3 if k % 2 else 0), 0.5 * k, 0.5 * k + 0.5) for k in range(6) for p in (48, 64, 69)]
    rows += [note(55, 0.0, 1.5), note(36, 0.0, 0.1, drum=True)]
    return NoteArrays.from_matrix(np.array(rows))


def test_hold_back_entries_leaves_the_top_line_then_every_voice():
    notes = chorale()
    out = hold_back_entries(notes, 1.2).to_matrix()
    m = notes.to_matrix()
    early = out[(out[:, START] < 1.2) & (out[:, 1] == 0)]
    # before 1.2 s: the soprano of the chords at 0, 0.5 and 1.0 s, and nothing under it
    assert sorted(early[:, PITCH]) == [69, 69, 72] and sorted(early[:, START]) == [0.0, 0.5, 1.0]
    # from 1.2 s on every note stays as it was; the drum hit stays; the tenor held from 0 is gone
    late = m[m[:, START] >= 1.2]
    assert np.array_equal(out[out[:, START] >= 1.2], late)
    assert (out[:, 1] == 1).sum() == 1 and 55 not in out[:, PITCH]
    assert len(out) == 3 + len(late) + 1
    held = hold_back_entries(notes, 1.2)
    assert held.tempos == notes.tempos and held.duration == notes.duration
    # a one-line tune comes back unchanged, and so does any piece held back for 0 s
    tune = NoteArrays.from_matrix(np.array([note(60 + k % 5, 0.25 * k, 0.25 * k + 0.25) for k in range(16)]))
    assert np.array_equal(hold_back_entries(tune, 8.0).to_matrix(), tune.to_matrix())
    assert np.array_equal(hold_back_entries(notes, 0.0).to_matrix(), m)


def test_trim_solo_opening_starts_where_the_second_voice_enters():
    # an imitative opening: the first voice alone for 2 s (its second note held over the entry),
    # the second voice from 2 s, a drum hit at 0.5 s, tempo changes at 1 s and 3 s
    rows = [note(67, 0.0, 1.0), note(69, 1.0, 3.0), note(62, 2.0, 3.0), note(71, 3.0, 4.0), note(64, 3.0, 4.5),
            note(42, 0.5, 0.6, drum=True)]
    notes = NoteArrays.from_matrix(np.array(rows), tempos=[(0.0, 120.0), (1.0, 100.0), (3.0, 90.0)])
    out = trim_solo_opening(notes)
    m = out.to_matrix()
    assert m[:, PITCH].tolist() == [69, 62, 71, 64]  # the first note and the drum hit ended before 2 s
    assert m[:, START].tolist() == [0.0, 0.0, 1.0, 1.0] and out.end.tolist() == [1.0, 1.0, 2.0, 2.5]
    # the held note starts at the entry, half-way through its beats (2-6 at 120 bpm -> 4-6, less 4)
    assert out.start_beat.tolist() == [0.0, 0.0, 2.0, 2.0] and out.end_beat.tolist() == [2.0, 2.0, 4.0, 5.0]
    assert out.tempos == [(0.0, 100.0), (1.0, 90.0)] and out.duration == notes.duration - 2.0
    # a piece that opens in several voices, a one-line tune, and a second voice after 10 s: unchanged
    tune = NoteArrays.from_matrix(np.array([note(60 + k % 5, 0.25 * k, 0.25 * k + 0.25) for k in range(16)]))
    late = NoteArrays.from_matrix(np.array([note(60, 0.0, 11.0), note(64, 10.5, 12.0)]))
    for same in (chorale(), tune, late):
        assert np.array_equal(trim_solo_opening(same).to_matrix(), same.to_matrix())


def test_augment_holds_back_entries_only_in_openings(vocabulary):
    notes = chorale()
    base = dict(transpose=2, transpose_final=2, volume=0.1, stretch=0.0, revoice=0.0)
    held = AugmentationConfig(**base, late_entries=1.0, late_entries_seconds=2.0)
    solos = []
    for seed in range(20):
        out, drawn = augment(notes, np.random.default_rng(seed), held, vocabulary, opening=True)
        solo = drawn["late_entries"]
        assert 1.0 <= solo <= 2.0
        solos.append(solo)
        expected = transpose(hold_back_entries(notes, solo), drawn["transpose"]).to_matrix()
        assert np.array_equal(out.to_matrix()[:, [PITCH, START]], expected[:, [PITCH, START]])
        # a window that does not start at the opening, or a config without it, draws exactly as before
        plain, drawn_plain = augment(notes, np.random.default_rng(seed), AugmentationConfig(**base), vocabulary)
        cut, drawn_cut = augment(notes, np.random.default_rng(seed), held, vocabulary, opening=False)
        assert np.array_equal(cut.to_matrix(), plain.to_matrix()) and drawn_cut == drawn_plain
        assert drawn_plain["late_entries"] == 0.0
    assert len(set(solos)) == 20  # the solo length is drawn per window
    # trim_solo_openings: the opening window's piece starts where the second voice enters
    imitative = NoteArrays.from_matrix(np.array([note(67, 0.0, 1.0), note(69, 1.0, 3.0), note(62, 2.0, 3.0)]))
    trims = AugmentationConfig(**base, trim_solo_openings=1.0)
    for seed in range(5):
        out, drawn = augment(imitative, np.random.default_rng(seed), trims, vocabulary, opening=True)
        assert drawn["trimmed"] and out.start.tolist() == [0.0, 0.0]
        cut, drawn_cut = augment(imitative, np.random.default_rng(seed), trims, vocabulary, opening=False)
        plain, drawn_plain = augment(imitative, np.random.default_rng(seed), AugmentationConfig(**base), vocabulary)
        assert np.array_equal(cut.to_matrix(), plain.to_matrix()) and drawn_cut == drawn_plain
        assert not drawn_plain["trimmed"] and len(cut) == 3


def test_hold_back_entries_on_a_real_orchestral_opening():
    path = shared_midi("valid/musicautobot/data_midi_examples_"
                       "Symphony_No_40_In_G_Minor___I_-_Wolfgang_Amadeus_Mozart_-_Verse.mid")
    notes = read_midi_arrays(path)
    out = hold_back_entries(notes, 4.0)
    early = np.flatnonzero((out.start < 4.0) & ~out.is_drum)
    assert 0 < len(early) < ((notes.start < 4.0) & ~notes.is_drum).sum()
    # before 4 s no kept note starts under a higher one that is sounding
    for i in early:
        above = (out.pitch > out.pitch[i]) & (out.start <= out.start[i]) & (out.end > out.start[i]) & ~out.is_drum
        assert not above.any()
    later = notes.start >= 4.0
    assert np.array_equal(out.pitch[out.start >= 4.0], notes.pitch[later])
