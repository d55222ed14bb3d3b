"""MuseNetTokenizer: text side, MIDI encoding rules, tolerant decoding, save/load, folders."""

import io
import subprocess
import sys

import mido
import pytest

from musenet_hf.midi.midi_io import Note, Score, read_midi
from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

from midi_fixtures import SHARED_MIDI, SOURCES

BLOG_SAMPLE = ("bach piano_strings start tempo90 piano:v72:G1 piano:v72:G2 violin:v80:G4 "
               "wait:12 piano:v0:B5")


def note(program, pitch, start, end, velocity=80, drum=False):
    return Note(program, drum, pitch, velocity, start, end, start * 2, end * 2)


@pytest.fixture(scope="module")
def musenet():
    return MuseNetTokenizer.from_preset("musenet")


@pytest.fixture(scope="module")
def extended():
    return MuseNetTokenizer.from_preset("extended")


def test_blog_sample_tokenizes_and_decodes():
    # the blog's line has a tempo token (beats clock) and MuseNet's volume levels (v72, v80)
    tok = MuseNetTokenizer.from_preset("extended", clock="beats", volumes=tuple(range(24, 121, 8)))
    ids = tok(BLOG_SAMPLE)["input_ids"]
    assert tok.decode(ids) == BLOG_SAMPLE
    notes = tok.decode_to_notes(ids)
    # three notes start together; the piano G1/G2 and the violin G4 stay open until the end
    assert sorted((n.program, n.pitch) for n in notes) == [(0, 31), (0, 43), (40, 67)]
    assert all(n.start == 0.0 for n in notes)
    # tempo90: 12 units of a 1/12 beat = 1 beat = 2/3 s
    assert notes[0].end == pytest.approx(60 / 90)
    # the musenet preset has no tempo token: a clear error names it
    with pytest.raises(ValueError, match="tempo90"):
        MuseNetTokenizer.from_preset("musenet")(BLOG_SAMPLE)


def test_musenet_ids_decode_to_the_notes_they_mean(musenet):
    # piano v72 G4 at t=0, violin G4 on at 0; wait 50 units (0.5 s); both off; wait 10; drum hit
    ids = [4096, 7 * 128 + 67, 14 * 128 + 67, 3968 + 49, 67, 15 * 128 + 67, 3968 + 9, 3840 + 36, 4097]
    notes = musenet.decode_to_notes(ids)
    assert [(n.program, n.is_drum, n.pitch, n.velocity, n.start, n.end) for n in notes] == [
        (0, False, 67, 72, 0.0, 0.5),
        (40, False, 67, 80, 0.0, 0.5),
        (0, True, 36, 80, 0.6, pytest.approx(0.7)),
    ]


def test_encoding_rules(musenet):
    score = Score(
        notes=[
            note(0, 60, 0.0, 1.0, velocity=70),    # piano, v70 -> v72
            note(41, 67, 0.0, 0.5),                # viola folds into violin
            note(40, 67, 0.0, 0.3),                # doubled onset on the same class: longer one kept
            note(0, 64, 0.5, 0.502),               # shorter than one unit: lasts one unit
            note(0, 60, 0.8, 1.2),                 # re-struck while sounding: first cut at 0.8
            note(0, 36, 3.0, 3.5, drum=True),      # drums: note-on only
        ],
        tempos=[(0.0, 120.0)], ticks_per_beat=480, duration=3.5, source="<test>",
    )
    ids = musenet.encode_midi(score, composer="bach")
    assert musenet.decode(ids[:3]) == "bach piano_strings_drums start"
    assert ids[-1] == musenet.vocabulary.end_id
    got = sorted((n.program, n.is_drum, n.pitch, n.velocity, n.start, round(n.end, 6)) for n in musenet.decode_to_notes(ids))
    assert got == [
        (0, False, 60, 72, 0.0, 0.8),
        (0, False, 60, 80, 0.8, 1.2),
        (0, False, 64, 80, 0.5, 0.51),
        (0, True, 36, 80, 3.0, 3.1),
        (40, False, 67, 80, 0.0, 0.5),
    ]
    # a 2.5 s gap (0.51 -> ... 1.2 -> 3.0 = 180 units) takes two wait tokens: 128 + 52
    text = musenet.decode(ids)
    assert "wait:128 wait:52" in text


def test_decoding_is_tolerant(musenet):
    v = musenet.vocabulary
    # junk ids, a note-off of a silent note, prefix tokens mid-piece, a cut-off sequence
    ids = [-5, 99999, 15 * 128 + 40, 4226, 7 * 128 + 60, v.start_id, 3968 + 99, 7 * 128 + 60, 3968 + 9]
    notes = musenet.decode_to_notes(ids)
    assert [(n.pitch, n.start, round(n.end, 6)) for n in notes] == [(60, 0.0, 1.0), (60, 1.0, 1.1)]
    assert musenet.decode_to_notes([]) == []
    mid = musenet.decode_to_midi(ids)
    buf = io.BytesIO()
    mid.save(file=buf)
    again = read_midi(buf.getvalue())
    assert [(n.pitch, round(n.start, 3), round(n.end, 3)) for n in again.notes] == [(60, 0.0, 1.0), (60, 1.0, 1.1)]


def test_extended_keeps_volumes_and_beats_clock():
    tok = MuseNetTokenizer.from_preset("extended")
    score = Score([note(42, 48, 0.0, 1.0, velocity=100), note(24, 52, 0.25, 0.75, velocity=30)],
                  [(0.0, 120.0)], 480, 1.0, "<test>")
    notes = tok.decode_to_notes(tok.encode_midi(score))
    assert [(n.program, n.velocity) for n in notes] == [(42, 96), (24, 32)]
    beats = MuseNetTokenizer.from_preset("extended", clock="beats", beat_resolution=12)
    s2 = Score([Note(0, False, 60, 80, 0.0, 0.5, 0.0, 1.0), Note(0, False, 62, 80, 1.0, 1.5, 2.0, 2.5)],
               [(0.0, 120.0), (1.0, 60.0)], 480, 2.0, "<test>")
    ids = beats.encode_midi(s2)
    assert beats.decode(ids[:3]) == "piano start tempo120"
    assert "tempo60" in beats.decode(ids)
    got = [(n.pitch, round(n.start, 6), round(n.end, 6)) for n in beats.decode_to_notes(ids)]
    assert got == [(60, 0.0, 0.5), (62, 1.0, 1.5)]  # 2 beats at 120 bpm, then half a beat at 60


def test_save_and_load(tmp_path, extended):
    tok = MuseNetTokenizer.from_preset("extended", volumes=(50, 100))
    tok.vocabulary.add_composers(["my_band"])
    tok.save_pretrained(tmp_path)
    assert {p.suffix for p in tmp_path.iterdir()} == {".json"}
    again = MuseNetTokenizer.from_pretrained(tmp_path)
    assert again.vocabulary.tokens == tok.vocabulary.tokens
    assert again.pad_token_id == tok.vocabulary.pad_id and again.eos_token_id == tok.vocabulary.end_id
    assert again("my_band start wait:3")["input_ids"] == tok("my_band start wait:3")["input_ids"]
    # AutoTokenizer, in a fresh process, after importing the package
    code = (f"import musenet_hf; from transformers import AutoTokenizer; t = AutoTokenizer.from_pretrained({str(tmp_path)!r}); "
            "print(type(t).__name__, len(t), t.convert_tokens_to_ids('my_band'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["MuseNetTokenizer", str(len(tok)), str(tok.vocabulary.composer_id("my_band"))]


def test_batch_padding(musenet):
    batch = musenet(["start wait:1 piano:v72:C4", "start"], padding=True, return_tensors="pt")
    assert batch["input_ids"].tolist()[1] == [4096, 4836, 4836]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("source", SOURCES)
def test_encode_folder_skips_bad_files(tmp_path, musenet, source, made_midi):
    if source == "made":
        good = made_midi.song_files[:3]
        bad = sorted((made_midi.invalid / "No_Header_Chunk").glob("*"))[:2]
    else:
        good = sorted((SHARED_MIDI / "valid" / "miditok").glob("*.mid"))[:3]
        bad = sorted((SHARED_MIDI / "invalid" / "No_Header_Chunk").glob("*"))[:2]
    for p in good + bad:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    (tmp_path / "notes.txt").write_text("not midi")  # not a MIDI suffix: ignored
    (tmp_path / "text.mid").write_text("hello, this is text")
    result = musenet.encode_folder(tmp_path, composer="bach", progress=False)
    assert len(result.ids) == 3 and len(result.failed) == 3
    assert all(ids[0] == musenet.vocabulary.composer_id("bach") for ids in result.ids.values())
    assert "text.mid" in result.report()
    parallel = musenet.encode_folder(tmp_path, composer="bach", num_proc=2, progress=False)
    assert parallel.ids == result.ids and parallel.failed == result.failed
