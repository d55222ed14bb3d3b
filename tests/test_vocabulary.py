"""The vocabulary presets: MuseNet's public id layout, id for id, and the extended preset."""

import numpy as np
import pytest

from musenet_hf.tokenizer.vocabulary import GROUPS, MuseNetVocabulary, parse_pitch, pitch_name

from midi_fixtures import SHARED

TOKEN_NAMES = SHARED / "musenet_token_names.tsv"  # MuseNet's public token table, not shipped here


@pytest.fixture(scope="module")
def musenet():
    return MuseNetVocabulary.from_preset("musenet")


def test_musenet_specials_and_waits(musenet):
    v = musenet
    assert v.token_to_id("start") == 4096
    assert v.token_to_id("end") == 4097
    assert v.token_to_id("end_sample") == 4098
    assert v.token_to_id("<start>") == 4096  # the public API's spelling
    assert v.token_to_id("wait:1") == 3968
    assert v.token_to_id("wait:128") == 4095
    assert v.wait_units[3968] == 1 and v.wait_units[4095] == 128
    assert v.wait_units[:3968].sum() == 0 and v.wait_units[4096:].sum() == 0
    assert v.pad_id == 4836 and len(v) == 4837  # pad comes after MuseNet's 4836 ids


def test_musenet_note_slots(musenet):
    v = musenet
    # Slot 0: piano off; slots 1-13: piano volumes 24..120 step 8.
    assert v.tokens[0 * 128 + 60] == "piano:v0:C4"
    for slot, vol in enumerate(range(24, 121, 8), start=1):
        assert v.tokens[slot * 128 + 67] == f"piano:v{vol}:G4"
    # Slots 14-29: (on v80, off v0) for violin, cello, bass, guitar, flute, clarinet, trumpet, harp.
    for k, name in enumerate(["violin", "cello", "bass", "guitar", "flute", "clarinet", "trumpet", "harp"]):
        assert v.tokens[(14 + 2 * k) * 128 + 55] == f"{name}:v80:G3"
        assert v.tokens[(15 + 2 * k) * 128 + 55] == f"{name}:v0:G3"
    # Drums: 3840-3967, note-on only.
    assert v.tokens[3840 + 36] == "drums:v80:C2"
    assert v.is_note_on[3840:3968].all() and not v.is_note_off[3840:3968].any()
    assert v.is_note[:3968].all() and not v.is_note[3968:].any()
    assert v.note_id("piano", 72, 43) == 7 * 128 + 43  # v72 is slot 7
    assert v.note_id("piano", 0, 43) == 43
    assert v.note_id("violin", 100, 79) == 14 * 128 + 79  # any velocity -> v80 for non-piano
    assert v.note_id("piano", 75, 60) == 7 * 128 + 60  # nearest level: 75 -> 72


def test_musenet_instrumentation_tokens(musenet):
    v = musenet
    names = [v.tokens[i] for i in range(4099, 4226)]
    assert len(set(names)) == 127
    assert v.token_to_id("drums") == 4099
    assert v.token_to_id("piano_strings") == 4194
    assert v.token_to_id("piano_strings_bass_guitar_harp_winds_drums") == 4225
    assert v.instrumentation_id(["piano", "violin"]) == 4194  # violin is in the strings group
    assert v.instrumentation_id(["strings", "piano"]) == 4194
    assert v.instrumentation_groups(4194) == ["piano", "strings"]
    for mask in range(1, 128):  # id = 4098 + mask, members in MuseNet's order
        members = [g for i, g in enumerate(GROUPS) if mask & (1 << (6 - i))]
        assert v.tokens[4098 + mask] == "_".join(members)


def test_musenet_composers(musenet):
    v = musenet
    for name, tid in [("chopin", 4226), ("tvthemes", 4835)]:
        assert v.composer_id(name) == tid
    demo = ["chopin", "mozart", "rachmaninoff", "ladygaga", "country", "disney", "jazz", "bach",
            "beethoven", "journey", "thebeatles", "video", "broadway", "franksinatra", "bluegrass", "tchaikovsky"]
    assert all(4226 <= v.composer_id(n) <= 4835 for n in demo)
    assert v.composer_id("Kool & The Gang") == v.token_to_id("kool_&_the_gang")
    with pytest.raises(KeyError, match="unknown composer"):
        v.composer_id("nobody-at-all")


@pytest.mark.skipif(not TOKEN_NAMES.is_file(),
                    reason=f"compares with ../shared/musenet_token_names.tsv, absent here ({TOKEN_NAMES})")
def test_musenet_names_match_public_table(musenet):
    rows = [line.rstrip("\n").split("\t") for line in TOKEN_NAMES.open()][1:]
    checked = 0
    for row in rows:
        tid, name = int(row[0]), (row[1] if len(row) > 1 else "")
        if not name:
            assert musenet.tokens[tid] == f"style{tid}"
            continue
        expected = "_".join(name.strip("<>").split())
        assert musenet.tokens[tid] == expected, tid
        checked += 1
    assert checked == 735


def test_added_composers_keep_ids(musenet):
    v = MuseNetVocabulary.from_preset("musenet")
    before = list(v.tokens)
    (new_id,) = v.add_composers(["my_band"])
    assert new_id == 4837 and v.tokens[:4837] == before
    assert v.is_composer[new_id] and v.is_prefix[new_id]


def test_extended_preset():
    v = MuseNetVocabulary.from_preset("extended")
    assert len(v.instruments) == 10 and v.num_note_tokens == 89 * 128
    assert v.tokens[v.note_id("violin", 100, 60)] == "violin:v96:C4"
    assert v.tokens[v.note_id("cello", 0, 48)] == "cello:v0:C3"
    assert v.first_wait_id == v.num_note_tokens
    kw = v.model_config_kwargs()
    assert kw["vocab_size"] == len(v) and kw["eos_token_id"] == v.end_id and kw["pad_token_id"] == v.pad_id
    beats = MuseNetVocabulary.from_preset("extended", clock="beats", beat_resolution=24)
    assert beats.tokens[beats.tempo_id(90)] == "tempo90" and beats.wait_unit_seconds == pytest.approx(0.5 / 24)
    with pytest.raises(ValueError, match="tempo tokens"):
        v.tempo_id(90)
    with pytest.raises(ValueError, match="fixed"):
        MuseNetVocabulary.from_preset("musenet", clock="beats")


def test_round_trip_config_and_tables():
    v = MuseNetVocabulary.from_preset("extended", volumes=(40, 90))
    again = MuseNetVocabulary.from_dict(v.to_dict())
    assert again.tokens == v.tokens
    np.testing.assert_array_equal(again.note_instrument, v.note_instrument)
    assert [pitch_name(p) for p in (0, 60, 61, 127)] == ["C-1", "C4", "C#4", "G9"]
    assert all(parse_pitch(pitch_name(p)) == p for p in range(128))
    t = v.torch_tables()
    assert int(t["wait_units"][v.first_wait_id + 4]) == 5
