"""`musenet prepare-corpus --recipe/--folder`: sources, labels, reading, deduplication, the split.

Every corpus here is made by the test: MIDI pieces composed by midi_fixtures, an ABC lead sheet,
a labels CSV and a git repository standing in for a fetched snapshot.
"""

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from midi_fixtures import Part, compose
from musenet_hf.cli import main
from musenet_hf.corpus.corpus_build import CorpusRecipe, assign_splits, build_corpus, note_fingerprint
from musenet_hf.corpus.corpus_sources import (SourceSpec, filename_label, leadsheet_label, list_source_files,
                                       load_leadsheet_rules, user_folder_spec)
from musenet_hf.training.data import load_midi_folder, read_saved_splits
from musenet_hf.midi.midi_io import read_midi_arrays
from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

LEAD_SHEET = """X:1
T:Two Chords
M:4/4
L:1/4
K:C
"C"c d e f|"G7"g f e d|"C"c4|]
"""


def _piece(seed: int, transpose: int = 0, program: int = 0, bpm: float = 120) -> object:
    """Four bars of melody and bass; ``transpose`` shifts every note (the same piece in another key)."""
    mf = compose(seed, [Part("melody", program=program, channel=0, low=60, high=84),
                        Part("bass", program=32, channel=1, low=36, high=55)], bars=4, bpm=bpm)
    for track in mf.tracks:
        for msg in track:
            if msg.type in ("note_on", "note_off"):
                msg.note += transpose
    return mf


def _user_folder(root: Path) -> Path:
    """chopin/ (3 pieces, one a transposed copy of another), jazz/ (2 pieces, a lead sheet), a broken file."""
    (root / "chopin").mkdir(parents=True)
    (root / "jazz").mkdir()
    _piece(1).save(root / "chopin" / "a.mid")
    _piece(2).save(root / "chopin" / "b.mid")
    _piece(1, transpose=5).save(root / "chopin" / "a_in_f.mid")  # the same notes a fourth higher
    _piece(3, program=56).save(root / "jazz" / "c.mid")
    (root / "jazz" / "two_chords.abc").write_text(LEAD_SHEET)
    (root / "jazz" / "broken.mid").write_bytes(b"MThd\x00\x00")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = _user_folder(tmp_path_factory.mktemp("user"))
    out = tmp_path_factory.mktemp("corpus")
    recipe = CorpusRecipe(sources=[user_folder_spec(root)], min_pieces_new_label=1, evaluation=0.0, validation=0.0)
    report = build_corpus(recipe, out, num_proc=1, progress=False)
    return root, out, report


def test_fingerprint_ignores_key_tempo_and_instrument():
    a = read_midi_arrays(_midi_bytes(_piece(1)))
    b = read_midi_arrays(_midi_bytes(_piece(1, transpose=5, program=40, bpm=90)))
    c = read_midi_arrays(_midi_bytes(_piece(2)))
    fa, fb, fc = (note_fingerprint(x.pitch, x.start_beat) for x in (a, b, c))
    assert fa == fb != fc
    assert note_fingerprint(a.pitch[:0], a.start_beat[:0]) == "empty"


def _midi_bytes(mf) -> bytes:
    import io

    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def test_user_folder_labels_dedup_and_rejections(built):
    _, out, report = built
    src = report["sources"][next(iter(report["sources"]))]
    assert src["listed"] == 6
    assert src["read"] == 5
    assert src["duplicates_within"] == 1 and src["kept"] == 4
    assert sum(src["rejected"].values()) == 1
    assert {row for row in report["labels"]} == {"chopin", "jazz"}
    assert report["labels"]["chopin"]["train"]["pieces"] == 2
    rows = list(csv.DictReader(open(out / "metadata.csv", encoding="utf-8")))
    assert sorted(r["label"] for r in rows) == ["chopin", "chopin", "jazz", "jazz"]
    assert all((out / r["path"]).is_file() for r in rows)
    assert not any("a_in_f" in r["source_path"] for r in rows)  # the copy, second in path order, went


def test_lead_sheet_converted_with_its_melody(built):
    _, out, _ = built
    rows = {r["source_path"]: r for r in csv.DictReader(open(out / "metadata.csv", encoding="utf-8"))}
    notes = read_midi_arrays(out / rows["jazz/two_chords.abc"]["path"])
    assert sorted(notes.pitch.tolist()) == sorted([72, 74, 76, 77, 79, 77, 76, 74, 72])  # the tune, no chords


def test_realized_chords_play_the_symbols(tmp_path):
    (tmp_path / "jazz").mkdir()
    (tmp_path / "jazz" / "two_chords.abc").write_text(LEAD_SHEET)
    spec = user_folder_spec(tmp_path)
    spec.realize_chords = True
    report = build_corpus(CorpusRecipe(sources=[spec], min_pieces_new_label=1), tmp_path / "out", num_proc=1,
                          progress=False)
    assert report["pieces"] == 1
    row = next(csv.DictReader(open(tmp_path / "out" / "metadata.csv", encoding="utf-8")))
    notes = read_midi_arrays(tmp_path / "out" / row["path"])
    melody = [72, 74, 76, 77, 79, 77, 76, 74, 72]
    chords = [int(p) for p in notes.pitch if int(p) < 70]
    # C for a bar: bass C (48) for a beat, G-C-E (55, 60, 64) struck on beats 1 and 3; G7: bass G (43),
    # G-B-F (55, 59, 53: the fifth D left out) twice; C for the last bar again.
    assert sorted(int(p) for p in notes.pitch if int(p) >= 70) == sorted(melody)
    assert chords.count(48) == 2 and chords.count(43) == 1
    assert chords.count(60) == 4 and chords.count(59) == 2 and chords.count(53) == 2 and chords.count(62) == 0
    assert len(chords) == 3 + 3 * 6


def test_split_is_stratified_and_fixed_by_seed():
    pieces = [{"label": lb, "fingerprint": f"{lb}{i}"} for lb, n in (("a", 100), ("b", 20)) for i in range(n)]
    s0 = assign_splits(pieces, 0, 0.1, 0.1)
    assert s0 == assign_splits(pieces, 0, 0.1, 0.1)
    assert s0 != assign_splits(pieces, 1, 0.1, 0.1)
    for label, n in (("a", 100), ("b", 20)):
        mine = [s for p, s in zip(pieces, s0) if p["label"] == label]
        assert mine.count("evaluation") == n // 10 and mine.count("validation") == n // 10
    # the order the pieces are listed in does not matter
    assert assign_splits(list(reversed(pieces)), 0, 0.1, 0.1) == list(reversed(s0))


def test_labels_csv_and_instruments(tmp_path):
    root = _user_folder(tmp_path / "music")
    table = tmp_path / "labels.csv"
    table.write_text("path,label,instruments\nchopin/a.mid,Chopin,piano\njazz/c.mid,jazz,\n")
    files = list_source_files(user_folder_spec(root, table), root)
    assert [(f.rel, f.label, f.instruments) for f in files] == [("chopin/a.mid", "chopin", ("piano",)),
                                                                ("jazz/c.mid", "jazz", ())]
    table.write_text("file,style\n")
    with pytest.raises(ValueError, match="columns path and label"):
        list_source_files(user_folder_spec(root, table), root)


def test_filename_and_leadsheet_labels(tmp_path):
    composers = {"rachmaninoff": "rachmanin", "chopin": "chopin", "bach": "^bach\\b"}
    pattern = "^(?P<name>.+?) - "
    assert filename_label("Rachmaninov, Sergei - Prelude.mid", pattern, composers) == "rachmaninoff"
    assert filename_label("Frederic Chopin, Frederic Francois - Etude.mid", pattern, composers) == "chopin"
    assert filename_label("Offenbach - Barcarolle.mid", pattern, composers) == ""
    assert filename_label("No dash here.mid", pattern, composers) == ""
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("labels:\n  thebeatles:\n    composers: ['lennon|mccartney']\n    exclude_titles: [Bad To Me]\n"
                          "  jazz:\n    composers: ['\\bmonk\\b']\n    titles: [Take Five]\norder: [thebeatles, jazz]\n")
    rules = load_leadsheet_rules(rules_file)
    assert leadsheet_label("John Lennon, Paul McCartney - Yesterday.mxl", rules) == "thebeatles"
    assert leadsheet_label("John Lennon, Paul McCartney - Bad to me.mxl", rules) == ""
    assert leadsheet_label("Thelonious Monk - Blue Monk.mxl", rules) == "jazz"
    assert leadsheet_label("Paul Desmond - Take Five.mxl", rules) == "jazz"
    assert leadsheet_label("Lorenz_Hart-Thelonious_Monk/Ruby/Ruby.mxl", rules) == "jazz"  # OpenEWLD folders


def _fake_snapshot(tmp_path: Path) -> Path:
    """A bare git repository at <fetched>/someone+classical/repo holding "Composer - Title" MIDI files."""
    work = tmp_path / "work"
    (work / "audio").mkdir(parents=True)
    _piece(4).save(work / "audio" / "Chopin, Frederic - Waltz.mid")
    _piece(5).save(work / "audio" / "Bach, JS - Invention.mid")
    _piece(6).save(work / "audio" / "Nobody - Tune.mid")
    (work / "README.md").write_text("not music\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(work)]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "files"], check=True)
    fetched = tmp_path / "fetched"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(fetched / "someone+classical" / "repo")], check=True)
    return fetched


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_recipe_from_a_fetched_snapshot_twice_gives_the_same_split(tmp_path, capsys):
    fetched = _fake_snapshot(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "seed: 3\nmin_pieces_new_label: 1\nsources:\n"
        "  - name: classical\n    repo: someone/classical\n    folder: audio\n    label_from: filename\n"
        "    pattern: '^(?P<name>.+?) - '\n    composers: {chopin: chopin, bach: '^bach'}\n    unlabelled: skip\n"
        "    licence: MIT\n")
    argv = ["prepare-corpus", "--recipe", str(recipe), "--fetched", str(fetched), "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "c1")]) == 0
    printed = capsys.readouterr().out
    assert "classical" in printed and "2 pieces" in printed
    assert main([*argv, "--out", str(tmp_path / "c2")]) == 0
    meta = [(tmp_path / c / "metadata.csv").read_text() for c in ("c1", "c2")]
    assert meta[0] == meta[1]
    report = json.loads((tmp_path / "c1" / "report.json").read_text())
    assert len(report["sources"]["classical"]["commit"]) == 40
    assert sorted(report["labels"]) == ["bach", "chopin"]


def test_reserved_sources_are_refused(tmp_path):
    for repo in ("music-x-lab/POP909-Dataset", "jukedeck/nottingham-dataset", "melanchthon/DryWetMIDI"):
        with pytest.raises(ValueError, match="reserved for evaluation"):
            SourceSpec.from_dict({"name": "x", "repo": repo, "label": "pop"}, tmp_path)
    folder = tmp_path / "maestro-v3.0.0" / "2018"
    folder.mkdir(parents=True)
    _piece(1).save(folder / "MIDI-Unprocessed_01_R1_2008_01-04_ORIG_MID--AUDIO_01_R1_2008_wav--1.midi")
    spec = SourceSpec(name="perf", folder=str(tmp_path), label="x")  # a folder whose name says nothing
    with pytest.raises(ValueError, match="reserved for evaluation"):
        list_source_files(spec, tmp_path)


def test_training_reads_the_saved_split_and_skips_duplicates(tmp_path):
    root = _user_folder(tmp_path / "music")
    out = tmp_path / "corpus"
    build_corpus(CorpusRecipe(sources=[user_folder_spec(root)], min_pieces_new_label=1, evaluation=0.5,
                              validation=0.0), out, num_proc=1, progress=False)
    shutil.copyfile(root / "chopin" / "a.mid", out / "stray.mid")  # a MIDI file the metadata does not list
    saved = read_saved_splits(out)
    assert sorted(saved.values()).count("evaluation") == 2  # one of each label's two pieces
    enc = load_midi_folder(out, MuseNetTokenizer.from_preset("extended"), progress=False)
    assert sorted(enc.dataset) == ["evaluation", "train", "validation"]
    assert len(enc.dataset["train"]) == 2 and len(enc.dataset["evaluation"]) == 2
    assert "stray.mid" not in list(enc.dataset["train"]["file"]) + list(enc.dataset["evaluation"]["file"])


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["prepare-corpus", "--folder", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 1
    assert "folder not found" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text("sources:\n  - name: x\n    repo: a/b\n    label: pop\n")
    assert main(["prepare-corpus", "--recipe", str(recipe), "--fetched", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "a/b: no snapshot" in capsys.readouterr().err


def test_humdrum_with_a_harm_spine_music21_cannot_read(tmp_path):
    from musenet_hf.corpus.corpus_convert import blank_harm_spines, convert_notation

    text = "**kern\t**harm\n*M4/4\t*\n=1\t=1\n4c\t4I\n4d\t.\n4e\t4V\n4f\t.\n==\t==\n*-\t*-\n"
    assert blank_harm_spines(text).split("\n")[3] == "4c\t."
    (tmp_path / "song.hum").write_text(text)
    convert_notation(tmp_path / "song.hum", tmp_path / "song.mid", source="test")
    assert read_midi_arrays(tmp_path / "song.mid").pitch.tolist() == [60, 62, 64, 65]


def test_data_card_tables_state_what_the_build_measured(built):
    from musenet_hf.corpus.corpus_card import demo_style_coverage, render_tables

    _, out, report = built
    text = render_tables(out)
    assert "| chopin | 2 | 0 | 0 |" in text  # label, train / validation / evaluation pieces
    assert "0 with at least 50 training pieces" in text
    coverage = demo_style_coverage(report)
    assert coverage["chopin"] == 2 and coverage["jazz"] == 2 and coverage["video"] == 0 and len(coverage) == 16
    assert "1 ValueError" in text or "MidiReadError" in text  # the broken file's reason is in the sources table


def test_badly_formed_repeats_are_written_once_through(tmp_path):
    """A volta bracket with no repeat to close (as in many hand-made lead sheets and kern files):
    music21 cannot unfold it; the piece is written as notated instead of being rejected."""
    from music21 import bar, meter, note, spanner, stream

    from musenet_hf.corpus.corpus_convert import convert_notation, remove_repeat_marks

    def score():
        part = stream.Part()
        for i in range(4):
            m = stream.Measure(number=i + 1)
            m.append(note.Note(60 + i, quarterLength=4))
            part.append(m)
        part.measure(1).insert(0, meter.TimeSignature("4/4"))
        part.measure(1).leftBarline = bar.Repeat(direction="start")
        part.measure(2).rightBarline = bar.Repeat(direction="end")
        part.measure(3).leftBarline = bar.Repeat(direction="start")
        part.measure(3).rightBarline = bar.Repeat(direction="end")
        part.insert(0, spanner.RepeatBracket(part.measure(4), number=2))
        s = stream.Score()
        s.insert(0, part)
        return s

    assert remove_repeat_marks(score()) == 5
    score().write("musicxml", fp=tmp_path / "volta.musicxml")
    done = convert_notation(tmp_path / "volta.musicxml", tmp_path / "volta.mid", source="test")
    assert done["repeats_removed"]
    assert read_midi_arrays(tmp_path / "volta.mid").pitch.tolist() == [60, 61, 62, 63]


def test_encoding_in_chunks_gives_the_same_dataset(built, monkeypatch):
    import musenet_hf.training.data as data

    _, out, _ = built
    tok = MuseNetTokenizer.from_preset("extended")
    whole = load_midi_folder(out, tok, progress=False).dataset
    monkeypatch.setattr(data, "_ROWS_PER_TABLE", 1)  # a table per piece, concatenated
    chunked = load_midi_folder(out, tok, progress=False).dataset
    for split in whole:
        assert whole[split].to_dict() == chunked[split].to_dict()
    assert len(whole["train"]) == 4


def test_pieces_with_the_notes_of_reserved_files_are_left_out(tmp_path):
    root = _user_folder(tmp_path / "music")
    reserved = tmp_path / "reserved"
    reserved.mkdir()
    _piece(2, transpose=-3).save(reserved / "evaluation_piece.mid")  # chopin/b.mid, in another key
    recipe = CorpusRecipe(sources=[user_folder_spec(root)], min_pieces_new_label=1, exclude_content_of=[reserved])
    report = build_corpus(recipe, tmp_path / "out", num_proc=1, progress=False)
    src = next(iter(report["sources"].values()))
    assert src["reserved"] == 1 and src["kept"] == 3
    rows = list(csv.DictReader(open(tmp_path / "out" / "metadata.csv", encoding="utf-8")))
    assert not any(r["source_path"] == "chopin/b.mid" for r in rows)


def test_pieces_longer_than_the_limit_are_rejected_as_damaged(tmp_path, monkeypatch):
    import musenet_hf.corpus.corpus_build as cb

    root = _user_folder(tmp_path / "music")
    monkeypatch.setattr(cb, "MAX_PIECE_SECONDS", 7)  # the made pieces last 8 s (four bars at 120 bpm)
    report = build_corpus(CorpusRecipe(sources=[user_folder_spec(root)], min_pieces_new_label=1), tmp_path / "out",
                          num_proc=1, progress=False)
    src = next(iter(report["sources"].values()))
    assert src["kept"] == 1  # the lead sheet (three bars, 6 s) is the only one left
    assert sum(n for r, n in src["rejected"].items() if "damaged time values" in r) == 4  # a copy counts too
