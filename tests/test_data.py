"""MIDI folders -> datasets, windows, augmentation, collator and the training sampler."""

import hashlib
import io
import warnings
import shutil
from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from musenet_hf.training.augmentation import INSTRUMENT_RANGES, AugmentationConfig, allowed_transpositions, augment
from musenet_hf.training.batching import MuseNetCollator, TrainBatches, label_balanced_weights, window_seconds
from musenet_hf.training.data import (
    MuseNetWindows, continuation_ids, load_midi_folder, resolve_labels, sounding_note_ons, split_of,
)
from musenet_hf.midi.midi_io import read_midi_arrays
from musenet_hf.midi.midi_notes import NOTE_COLUMNS, NoteArrays
from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

from midi_fixtures import SOURCES, needs_shared_midi, shared_midi

PITCH = NOTE_COLUMNS.index("pitch")  # the pitch column of NoteArrays.to_matrix()
AUTOBOT = "valid/musicautobot/data_midi_examples_"
# A labelled mini-collection (sub-folder = composer/style): a solo piano piece, a multi-instrument
# piece with drums (many windows), two files no reader can open and one damaged file whose notes
# can be recovered. Made in midi_fixtures.py (always) and of real shared files (where present);
# `band_seconds`, `band_windows` and `countdown` are the band piece's length, its number of
# 256-token validation windows and its countdown at its first note.
COLLECTIONS = {
    "made": {
        "labelled": {"beethoven": ["valid/beethoven/elise.mid"], "mozart": ["valid/mozart/symphony.mid"],
                     "thebeatles": ["valid/thebeatles/pop.mid"],
                     "grieg_and_friends": ["valid/grieg_and_friends/hall.mid"], "band": ["valid/band/band.mid"]},
        "bad": ["invalid/No_Header_Chunk/tracker_module.mid", "invalid/No_Header_Chunk/web_page.mid"],
        "damaged": "invalid/Not_Enough_Bytes/cut_in_a_track.mid",  # cut inside its last track
        "band_seconds": 80.0, "band_windows": 12, "countdown": 80,
    },
    "shared": {
        "labelled": {"beethoven": [AUTOBOT + "Fuer_Elise_-_Ludwig_Van_Beethoven_-_Verse.mid"],
                     "mozart": [AUTOBOT + "Symphony_No_40_In_G_Minor___I_-_Wolfgang_Amadeus_Mozart_-_Verse.mid"],
                     "thebeatles": [AUTOBOT + "Hey_Jude_-_The_Beatles_-_Chorus.mid"],
                     "grieg_and_friends": [AUTOBOT + "In_The_Hall_Of_The_Mountain_King_-_Edvard_Grieg_-_Intro.mid"],
                     "band": ["valid/midis2jam2/testmidi_wonderwoman.mid"]},
        "bad": ["invalid/No_Header_Chunk/AN-IMGN4.MID", "invalid/Not_Enough_Bytes/F242.MID"],
        "damaged": "invalid/Not_Enough_Bytes/Alhamdulilah.mid",  # truncated, but the notes before the damage read
        # 7319 tokens: re-struck notes take room, so a few more windows than 7319 / 254 = 29
        "band_seconds": 90.6, "band_windows": 30, "countdown": 91,
    },
}


@pytest.fixture(scope="module")
def tok():
    return MuseNetTokenizer.from_preset("extended")


@pytest.fixture(scope="module", params=SOURCES)
def case(request) -> dict:
    """The collection's settings, plus the folder-relative paths of its band, Elise and Grieg pieces."""
    c = dict(COLLECTIONS[request.param], source=request.param)
    named = {label: f"{label}/{Path(files[0]).name}" for label, files in c["labelled"].items()}
    return {**c, "band": named["band"], "elise": named["beethoven"], "grieg": named["grieg_and_friends"]}


@pytest.fixture(scope="module")
def folder(case, made_midi, tmp_path_factory):
    """<tmp>/<label>/<file>.mid, plus two broken files and a damaged one at the top level."""
    src = made_midi.root if case["source"] == "made" else shared_midi()
    root = tmp_path_factory.mktemp("midi")
    for label, files in case["labelled"].items():
        (root / label).mkdir()
        for rel in files:
            shutil.copy(src / rel, root / label / Path(rel).name)
    shutil.copy(src / case["bad"][0], root / "broken_header.mid")
    shutil.copy(src / case["bad"][1], root / "not_midi.mid")
    shutil.copy(src / case["damaged"], root / "damaged.mid")
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def encoded(folder, tok, cache_dir):
    # everything in train: the window tests want every piece in one split
    return load_midi_folder(folder, tok, validation_fraction=0.0, num_proc=2, cache_dir=cache_dir)


def test_labels_from_folders_metadata_mappings_and_functions(folder, case, tmp_path):
    files = sorted(folder.rglob("*.mid"))
    band = Path(case["band"]).name
    by_folder = dict(zip([f.name for f in files], resolve_labels(folder, files, "auto")))
    assert by_folder[band] == "band"
    assert by_folder["broken_header.mid"] is None  # top-level files have no sub-folder label
    meta = tmp_path / "meta.csv"
    meta.write_text(f"path,label\n{case['band']},jazz\n", "utf-8")
    from_csv = dict(zip([f.name for f in files], resolve_labels(folder, files, meta)))
    assert from_csv[band] == "jazz" and from_csv["damaged.mid"] is None
    assert resolve_labels(folder, files[:1], lambda p: p.stem.upper()) == [files[0].stem.upper()]
    assert resolve_labels(folder, files, {"damaged.mid": "x"})[files.index(folder / "damaged.mid")] == "x"


def test_folder_dataset_prefix_composer_and_skipped_files(encoded, tok, folder, case):
    ds = encoded.dataset["train"]
    assert len(ds) == 6 and len(encoded.dataset["validation"]) == 0
    assert set(encoded.failed) == {"broken_header.mid", "not_midi.mid"}
    assert "header" in encoded.failed["broken_header.mid"] and "header" in encoded.failed["not_midi.mid"]
    assert "damaged.mid" in list(ds["file"])
    rows = {f: i for i, f in enumerate(list(ds["file"]))}
    v = tok.vocabulary
    elise = ds[rows[case["elise"]]]
    assert elise["label"] == "beethoven" and elise["composer"] == "beethoven"
    assert elise["prefix"] == [v.composer_id("beethoven"), v.instrumentation_id(["piano"]), v.start_id]
    # an unknown label stays in the label column, but no composer token goes in the prefix
    grieg = ds[rows[case["grieg"]]]
    assert grieg["label"] == "grieg_and_friends" and grieg["composer"] == ""
    assert grieg["prefix"][-1] == v.start_id and not v.is_composer[grieg["prefix"]].any()
    # the stored body is what the tokenizer makes of the file, without prefix and end
    band = ds[rows[case["band"]]]
    full = tok.encode_midi(folder / case["band"], composer=None)
    assert band["prefix"] == full[:2] and band["body"] == full[2:-1]
    assert band["instruments"] == "piano_bass_winds_drums"
    waits = v.wait_units[np.array(band["body"])].sum()
    seconds = case["band_seconds"]
    assert band["piece_seconds"] == pytest.approx(waits * 0.01) and seconds - 5 < band["piece_seconds"] < seconds + 5


def test_cache_is_reused_and_lives_where_it_is_told(encoded, folder, tok, cache_dir):
    assert Path(encoded.cache_path).parent == cache_dir and (Path(encoded.cache_path) / "failed.json").is_file()
    again = load_midi_folder(folder, tok, validation_fraction=0.0, num_proc=2, cache_dir=cache_dir)
    assert again.cache_path == encoded.cache_path and again.failed == encoded.failed
    assert list(again.dataset["train"]["body"]) == list(encoded.dataset["train"]["body"])
    other = load_midi_folder(folder, tok, validation_fraction=0.5, num_proc=1, cache_dir=cache_dir)
    assert other.cache_path != encoded.cache_path  # other options, another cache entry


def test_unknown_labels_can_be_added_to_the_vocabulary(folder, tmp_path):
    tok = MuseNetTokenizer.from_preset("extended")
    before = len(tok.vocabulary)
    enc = load_midi_folder(folder, tok, unknown_labels="add", validation_fraction=0.0, num_proc=1)
    assert len(tok.vocabulary) == before + 2  # grieg_and_friends, band (the others exist)
    grieg = [r for r in enc.dataset["train"] if r["label"] == "grieg_and_friends"][0]
    assert grieg["prefix"][0] == tok.vocabulary.composer_id("grieg_and_friends") >= before
    with pytest.raises(KeyError, match="unknown composer"):
        load_midi_folder(folder, MuseNetTokenizer.from_preset("extended"), unknown_labels="error")


def test_split_is_by_content_hash_and_stable(folder, case, tok, tmp_path):
    # fixed values: the split must not depend on the machine, the path or the run
    assert split_of(hashlib.sha1(b"").hexdigest(), 0.1) == "train"  # da39a3ee... = 0.853
    assert split_of("19999999" + "0" * 32, 0.1) == "validation"  # 0.1 - 1e-9
    assert split_of("1999999a" + "0" * 32, 0.1) == "train"
    # the same file under two names lands in one split; a second run splits the same way
    dup = tmp_path / "dup"
    shutil.copytree(folder, dup)
    for label in case["labelled"]:
        for f in (dup / label).iterdir():
            shutil.copy(f, dup / f"copy_of_{f.name}")
    a = load_midi_folder(dup, tok, validation_fraction=0.5, num_proc=1)
    b = load_midi_folder(dup, tok, validation_fraction=0.5, num_proc=1)
    assert list(a.dataset["validation"]["file"]) == list(b.dataset["validation"]["file"])
    split = {f: s for s in ("train", "validation") for f in a.dataset[s]["file"]}
    for f in list(split):
        if f.startswith("copy_of_"):
            original = next(k for k in split if k.endswith("/" + f[len("copy_of_"):]))
            assert split[f] == split[original]
    assert 0 < len(a.dataset["validation"]) < 10


@pytest.mark.slow
def test_fraction_and_cache_on_the_whole_valid_folder(tok, tmp_path):
    valid = shared_midi("valid")
    enc = load_midi_folder(valid, tok, validation_fraction=0.1, num_proc=2, cache_dir=tmp_path)
    n_train, n_val = len(enc.dataset["train"]), len(enc.dataset["validation"])
    assert n_train + n_val + len(enc.failed) == 443
    assert 0.05 < n_val / (n_train + n_val) < 0.15
    assert "miditok/tests_MIDIs_one_track_empty.mid" in enc.failed  # the empty file: "no notes"
    again = load_midi_folder(valid, tok, validation_fraction=0.1, num_proc=2, cache_dir=tmp_path)
    assert again.cache_path == enc.cache_path and Path(enc.cache_path).parent == tmp_path
    assert list(again.dataset["validation"]["file"]) == list(enc.dataset["validation"]["file"])
    assert again.failed == enc.failed


def orphan_note_offs(vocabulary, ids) -> int:
    """Note-offs in ``ids`` of a note not sounding at that point (no earlier note-on of its key
    in ``ids`` since that key's last note-off): an independent, vectorized check."""
    v = vocabulary
    ids = np.asarray(ids)
    pos = np.flatnonzero(v.is_note[ids])
    pos = pos[v.note_instrument[ids[pos]] != v.drum_index]
    key = v.note_instrument[ids[pos]] * 128 + v.note_pitch[ids[pos]]
    order = np.lexsort((pos, key))  # each key's events in time order
    key, on = key[order], v.is_note_on[ids[pos[order]]]
    prev_same = np.r_[False, key[1:] == key[:-1]]
    prev_on = np.r_[False, on[:-1]]
    return int((~on & ~(prev_same & prev_on)).sum())


def test_validation_windows_carry_prefix_and_whole_piece_positions(encoded, tok, case):
    from musenet_hf.model.configuration_musenet import MuseNetConfig
    from musenet_hf.model.modeling_musenet import MuseNetForCausalLM

    ds = encoded.dataset["train"]
    band = list(ds["file"]).index(case["band"])
    windows = MuseNetWindows(ds.select([band]), tok, 256, train=False)
    prefix, body = np.array(ds[band]["prefix"]), np.array(ds[band]["body"])
    v = tok.vocabulary
    offsets = windows.tile_offsets[0]
    # re-struck notes take room, so the piece needs a few more windows than len(body) / 254
    assert len(windows) == len(offsets) == case["band_windows"] and offsets[0] == 0
    items = [windows[i] for i in range(len(windows))]
    predicted = []
    for i, w in enumerate(items):
        given = int((w["labels"] == -100).sum())
        assert (w["input_ids"][:len(prefix)] == prefix).all() and len(w["input_ids"]) <= 256
        assert (w["labels"][given:] == w["input_ids"][given:]).all()
        again = w["input_ids"][len(prefix):given]
        # what is given after the prefix is exactly the notes sounding at the cut, struck again
        # (less those released in the window's first moment)
        sounding = set(sounding_note_ons(v, body[:offsets[i]]).tolist())
        assert set(again.tolist()) <= sounding and v.is_note_on[again].all()
        assert orphan_note_offs(v, w["input_ids"]) == 0, i
        assert (w["input_ids"] == v.end_id).sum() == (i == len(items) - 1)  # only the last window ends
        assert w["time_offset_seconds"] == pytest.approx(v.wait_units[body[:offsets[i]]].sum() * 0.01)
        assert w["piece_seconds"] == pytest.approx(ds[band]["piece_seconds"])
        predicted.append(w["input_ids"][given:])
    # the windows cover the piece once: every body token is predicted, except the note-offs of
    # re-struck notes released in their window's first moment (neither struck nor released there)
    whole = np.append(body, v.end_id)
    covered = np.concatenate(predicted)
    assert len(covered) <= len(whole) and len(whole) - len(covered) < 60
    it = iter(whole.tolist())
    assert all(any(t == u for u in it) for t in covered.tolist())  # a subsequence, in order
    skipped = len(whole) - len(covered)
    assert skipped > 0  # this band piece has notes held across cuts

    # part and countdown of every predicted token = those of the same token in the whole piece
    config = MuseNetConfig(**{**v.model_config_kwargs(), "hidden_size": 32, "num_hidden_layers": 1,
                              "num_attention_heads": 2, "max_position_embeddings": 8192})
    model = MuseNetForCausalLM(config)
    whole_ids = model.structure_ids(torch.as_tensor(np.concatenate([prefix, body]))[None], items[0]["piece_seconds"], 0.0)
    units_left = v.wait_units[body].sum() - (np.cumsum(v.wait_units[body]) - v.wait_units[body])
    for i in range(len(items)):
        w = items[i]
        got = model.structure_ids(torch.as_tensor(w["input_ids"])[None], w["piece_seconds"], w["time_offset_seconds"])
        given = int((w["labels"] == -100).sum())
        # the window's predicted tokens are body[offset:...] less skipped note-offs; compare the
        # ones at or after the window's first wait (the skips all come before it)
        ids = w["input_ids"]
        first_wait = given + int(np.flatnonzero(v.is_wait[ids[given:]])[0]) if v.is_wait[ids[given:]].any() else len(ids)
        n = len(ids) - first_wait - (i == len(items) - 1)  # the end token is not in `whole_ids`
        start = len(prefix) + offsets[i] + int(np.flatnonzero(v.is_wait[body[offsets[i]:]])[0]) if n > 0 else 0
        at = slice(start, start + n)
        assert torch.equal(got["part_ids"][0, first_wait:first_wait + n], whole_ids["part_ids"][0, at]), i
        assert torch.equal(got["countdown_ids"][0, first_wait:first_wait + n], whole_ids["countdown_ids"][0, at]), i
        # on a whole second before the end, the countdown is exactly that many seconds
        left = units_left[start - len(prefix):start - len(prefix) + n]
        exact = left % 100 == 0
        assert torch.equal(got["countdown_ids"][0, first_wait:first_wait + n][torch.as_tensor(exact)],
                           torch.as_tensor(left[exact] // 100).clamp(max=127)), i
    # the shared piece runs 90.6 s: 91 one-second steps to go at its first note (the made one
    # 80.0 s: 80), part 127 at its end
    assert whole_ids["part_ids"].max() == 127 and whole_ids["countdown_ids"][0, len(prefix)] == case["countdown"]


def test_window_format_is_one_for_training_and_validation(encoded, tok, case):
    """A training window (augmentation off, or on with nothing drawn) and the validation window of
    the same span are the same ids, labels and positions."""
    ds = encoded.dataset["train"]
    band = list(ds["file"]).index(case["band"])
    val = MuseNetWindows(ds.select([band]), tok, 256, train=False)
    plain = MuseNetWindows(ds.select([band]), tok, 256, train=True, seed=5)
    off = AugmentationConfig(transpose=0, transpose_final=0, volume=0.0, stretch=0.0)
    still = MuseNetWindows(ds.select([band]), tok, 256, train=True, seed=5, augmentation=off)
    body = val.piece_body(0)
    for index in range(len(plain)):
        rng = np.random.default_rng([5, 0, index])
        offset = int(rng.integers(0, max(0, len(body) + 1 - (256 - len(val.prefixes[0]))) + 1))
        ref = val.window(val.prefixes[0], body, offset)
        for w in (plain[(index, 0, 0.0)], still[(index, 0, 0.0)]):
            assert (w["input_ids"] == ref["input_ids"]).all() and (w["labels"] == ref["labels"]).all()
            assert w["time_offset_seconds"] == pytest.approx(ref["time_offset_seconds"])
            assert w["piece_seconds"] == pytest.approx(ref["piece_seconds"])
    # and every tiled validation window is the window at its offset
    for i, o in enumerate(val.tile_offsets[0]):
        assert (val[i]["input_ids"] == val.window(val.prefixes[0], body, o)["input_ids"]).all()


def test_continuation_restrikes_sounding_notes(tok):
    """Hand-made ids: a held note and a chord cut mid-piece."""
    v = tok.vocabulary
    on = lambda inst, p: v.note_id(inst, 80, p)  # noqa: E731
    off = lambda inst, p: v.note_id(inst, 0, p)  # noqa: E731
    w = v.wait_ids
    body = np.array([on("piano", 60), on("violin", 76), *w(50), on("piano", 64), *w(50),
                     off("piano", 64), off("piano", 60), on("piano", 67), *w(50), off("violin", 76), off("piano", 67)])
    prefix = np.array(tok.prefix_ids("bach", ["piano", "strings"]))
    assert sounding_note_ons(v, body[:5]).tolist() == [on("piano", 60), on("violin", 76), on("piano", 64)]
    # cut right after the second wait: piano 64 and 60 end in the window's first moment, so only
    # the violin is struck again, and the two note-offs are left out
    cut = 5 + len(w(50))
    ids, given, nxt = continuation_ids(v, prefix, body, cut, 64)
    assert given == len(prefix) + 1 and ids[len(prefix)] == on("violin", 76)
    assert ids[given:].tolist() == [on("piano", 67), *w(50), off("violin", 76), off("piano", 67), v.end_id]
    assert nxt == len(body) + 1 and orphan_note_offs(v, ids) == 0
    # a cut at the start: nothing to strike again; a small context ends without `end`
    ids0, given0, nxt0 = continuation_ids(v, prefix, body, 0, len(prefix) + 3)
    assert given0 == len(prefix) and ids0[given0:].tolist() == body[:3].tolist() and nxt0 == 3
    # the old format (a plain slice) would open with two orphan note-offs
    assert orphan_note_offs(v, np.concatenate([prefix, body[cut:]])) == 2


@pytest.mark.parametrize("source", ["made", pytest.param("shared", marks=needs_shared_midi)])
def test_windows_of_every_valid_file_have_no_orphan_note_off(tok, source, made_midi):
    """Every window (tiled, as validation cuts them) of every valid file (the 21 made ones in
    128-token windows, or the 443 shared ones in 512-token windows): no orphan note-off, and
    (every fourth window) a MIDI file mido reads back with all its notes."""
    from musenet_hf.generation.generate import split_prompt

    if source == "made":  # short pieces: shorter windows, to cut them about as often
        files, length = made_midi.valid_files + made_midi.song_files, 128
    else:
        files = sorted(p for p in shared_midi("valid").rglob("*") if p.suffix.lower() in (".mid", ".midi"))
        length = 512
    v = tok.vocabulary
    warnings.simplefilter("ignore")  # damaged files are repaired on reading; not this test's subject
    checked = windows = 0
    for path in files:
        try:
            ids = tok.encode_midi(path)
        except Exception:
            continue  # the reader tests cover unreadable files
        prefix, body = split_prompt(v, ids)
        body = np.asarray(body[:-1])
        offset = 0
        while offset <= len(body):
            win, given, offset = continuation_ids(v, prefix, body, offset, length)
            assert orphan_note_offs(v, win) == 0, (path.name, offset)
            if windows % 4 == 0:  # and the window is a MIDI file that mido reads back, with its notes
                buf = io.BytesIO()
                tok.decode_to_midi(win).save(file=buf)
                back = mido.MidiFile(file=io.BytesIO(buf.getvalue()))
                ons = sum(m.type == "note_on" and m.velocity > 0 for t in back.tracks for m in t)
                assert ons == int(v.is_note_on[win].sum()), (path.name, offset)
            windows += 1
        checked += 1
    print(f"\n[windows] {checked} files, {windows} windows, no orphan note-off")
    assert checked > 400 and windows > 2000 if source == "shared" else checked == len(files) == 21 and windows > 80


def test_training_windows_random_reproducible_and_per_epoch(encoded, tok, case):
    windows = MuseNetWindows(encoded.dataset["train"], tok, 256, train=True, seed=3)
    again = MuseNetWindows(encoded.dataset["train"], tok, 256, train=True, seed=3)
    piece = list(encoded.dataset["train"]["file"]).index(case["band"])
    band = int(np.flatnonzero(windows.piece_of == piece)[0])  # the piece's first window
    a, b, c = windows[(band, 0, 0.0)], again[(band, 0, 0.0)], windows[(band, 1, 0.0)]
    assert (a["input_ids"] == b["input_ids"]).all() and a["time_offset_seconds"] == b["time_offset_seconds"]
    assert a["time_offset_seconds"] != c["time_offset_seconds"]  # a new epoch, a new offset
    windows.set_epoch(1)
    assert (windows[band]["input_ids"] == c["input_ids"]).all()
    assert all(len(windows[(i, 0, 0.0)]["input_ids"]) <= 256 for i in range(len(windows)))


def test_opening_share_starts_windows_at_the_piece_opening(encoded, tok, case):
    ds = encoded.dataset["train"]
    piece = list(ds["file"]).index(case["band"])
    plain = MuseNetWindows(ds, tok, 64, train=True, seed=3)
    off = MuseNetWindows(ds, tok, 64, train=True, seed=3, opening_share=0.0)
    always = MuseNetWindows(ds, tok, 64, train=True, seed=3, opening_share=1.0)
    some = MuseNetWindows(ds, tok, 64, train=True, seed=3, opening_share=0.3)
    mine = np.flatnonzero(plain.piece_of == piece)
    assert len(mine) > 3  # the band piece is many 64-token windows long
    prefix = plain.prefixes[piece]
    for i in mine:
        assert (off[(i, 0, 0.0)]["input_ids"] == plain[(i, 0, 0.0)]["input_ids"]).all()  # 0: windows as before
        w = always[(i, 0, 0.0)]
        assert w["time_offset_seconds"] == 0.0
        assert (w["input_ids"] == np.concatenate([prefix, plain.piece_body(piece)[:64 - len(prefix)]])).all()
        assert (w["labels"][len(prefix):] != -100).all()  # the opening notes are predicted, not given
    starts = [some[(i, e, 0.0)]["time_offset_seconds"] == 0.0 for i in mine for e in range(40)]
    random_starts = [plain[(i, e, 0.0)]["time_offset_seconds"] == 0.0 for i in mine for e in range(40)]
    assert np.mean(starts) == pytest.approx(0.3 + 0.7 * np.mean(random_starts), abs=0.07)
    with pytest.raises(ValueError, match="opening_share"):
        MuseNetWindows(ds, tok, 64, train=True, opening_share=2.0)


def test_predict_restruck_predicts_the_notes_a_cut_window_strikes_again(encoded, tok, case):
    ds = encoded.dataset["train"]
    piece = list(ds["file"]).index(case["band"])
    given = MuseNetWindows(ds, tok, 64, train=True, seed=3)
    predicted = MuseNetWindows(ds, tok, 64, train=True, seed=3, predict_restruck=True)
    val = MuseNetWindows(ds, tok, 64, train=False, predict_restruck=True)
    n_prefix = len(given.prefixes[piece])
    restruck = 0
    for i in np.flatnonzero(given.piece_of == piece):
        a, b = given[(i, 0, 0.0)], predicted[(i, 0, 0.0)]
        assert (a["input_ids"] == b["input_ids"]).all()  # the same window...
        assert (b["labels"][:n_prefix] == -100).all() and (b["labels"][n_prefix:] == b["input_ids"][n_prefix:]).all()
        again = int((a["labels"][n_prefix:] == -100).sum())  # ...whose re-struck notes were given
        assert (a["labels"][n_prefix + again:] != -100).all()
        restruck += again
    assert restruck > 0  # the band holds notes across the cuts
    first = val[int(np.flatnonzero(val.piece_of == piece)[1])]  # validation keeps them given
    assert (first["labels"][n_prefix:] == -100).any()


def test_transposition_keeps_ranges_and_never_moves_drums(tok, folder, case):
    v = tok.vocabulary
    notes = read_midi_arrays(folder / case["band"])
    arr = notes.to_matrix()
    drums = arr[:, 1] > 0
    assert drums.any() and (~drums).any()
    cfg = AugmentationConfig(transpose=6, transpose_final=6, volume=0.2, stretch=0.1)
    # its bass goes below the bass range already (E1 = 28: no shift down), its piano to B7 (up one)
    assert allowed_transpositions(notes, v, 6).tolist() == [0, 1]
    seen = set()
    for seed in range(40):
        augmented, drawn = augment(notes, np.random.default_rng(seed), cfg, v)
        out = augmented.to_matrix()
        assert augmented.tempos == [(t * drawn["stretch"], bpm / drawn["stretch"]) for t, bpm in notes.tempos]
        seen.add(drawn["transpose"])
        assert (out[drums, PITCH] == arr[drums, PITCH]).all()
        assert (out[~drums, PITCH] - arr[~drums, PITCH] == drawn["transpose"]).all()
        for inst in np.unique(v.program_to_instrument[arr[~drums, 0].astype(int)]):
            sel = ~drums & (v.program_to_instrument[arr[:, 0].astype(int)] == inst)
            lo, hi = INSTRUMENT_RANGES.get(v.instruments[inst].name, (0, 127))
            assert out[sel, PITCH].min() >= min(lo, arr[sel, PITCH].min())
            assert out[sel, PITCH].max() <= max(hi, arr[sel, PITCH].max())
        assert (out[:, 5] - out[:, 4]) == pytest.approx((arr[:, 5] - arr[:, 4]) * drawn["stretch"])
        assert 1 <= out[:, 3].min() and out[:, 3].max() <= 127
    assert seen == {0, 1}
    elise = read_midi_arrays(folder / case["elise"])  # piano: every shift fits
    shifts = {augment(elise, np.random.default_rng(s), cfg, v)[1]["transpose"] for s in range(60)}
    assert shifts == set(range(-6, 7))
    # a violin at its top (G7 = 103) may only go down; a bass at E1 (28) only up
    violin_top = np.array([[40, 0, 103, 80, 0.0, 1.0, 0.0, 2.0], [0, 1, 36, 80, 0.0, 0.1, 0.0, 0.2]])
    assert allowed_transpositions(NoteArrays.from_matrix(violin_top), v, 5).tolist() == [-5, -4, -3, -2, -1, 0]
    bass_low = np.array([[33, 0, 28, 80, 0.0, 1.0, 0.0, 2.0]])
    assert allowed_transpositions(NoteArrays.from_matrix(bass_low), v, 3).tolist() == [0, 1, 2, 3]
    # the schedule narrows the range over training
    sched = AugmentationConfig(transpose=6, transpose_final=2)
    assert [sched.max_transpose(p) for p in (0.0, 0.5, 1.0, 2.0)] == [6, 4, 2, 2]


def test_augmented_windows_are_the_encoded_augmented_notes(encoded, tok, case):
    ds = encoded.dataset["train"]
    band = list(ds["file"]).index(case["band"])
    plain = MuseNetWindows(ds.select([band]), tok, 256, train=True)
    v = tok.vocabulary
    body = plain.piece_body(0)
    # no change: the window is the stored one
    same = MuseNetWindows(ds.select([band]), tok, 256, train=True,
                          augmentation=AugmentationConfig(transpose=0, transpose_final=0, volume=0.0, stretch=0.0))
    w0 = same._augmented_window(0, 0, np.random.default_rng(0), 0.0)
    assert (w0["input_ids"] == plain.window(plain.prefixes[0], body, 0)["input_ids"]).all()
    # a transposition only: pitched notes move by k, drums and waits stay
    shift = MuseNetWindows(ds.select([band]), tok, 256, train=True,
                           augmentation=AugmentationConfig(transpose=3, transpose_final=3, volume=0.0, stretch=0.0))
    for seed in range(6):
        rng = np.random.default_rng(seed)
        w = shift._augmented_window(0, 0, rng, 0.0)
        k = int(np.random.default_rng(seed).choice(allowed_transpositions(shift._notes(0), v, 3)))
        ref = plain.window(plain.prefixes[0], body, 0)["input_ids"]
        pitched = v.is_note[ref] & (v.note_instrument[ref] != v.drum_index)
        assert (w["input_ids"] == np.where(pitched, ref + k, ref)).all()
    # full augmentation mid-piece: valid ids, time offset and length stretched alike
    full = MuseNetWindows(ds.select([band]), tok, 256, train=True, augmentation=AugmentationConfig(stretch=0.1))
    for index in range(len(full)):
        w = full[(index, 2, 0.3)]
        p = len(full.prefixes[0])
        assert len(w["input_ids"]) <= 256 and (w["input_ids"][:p] == full.prefixes[0]).all()
        assert 0 <= w["time_offset_seconds"] < w["piece_seconds"]
        assert 0.9 * case["band_seconds"] <= w["piece_seconds"] <= 1.1 * case["band_seconds"]
        assert not v.is_prefix[w["input_ids"][p:]].any() and (w["labels"][:p] == -100).all()


def test_collator_pads_masks_and_stacks(tok):
    pad = tok.vocabulary.pad_id
    feats = [{"input_ids": np.array([1, 2, 3]), "labels": np.array([-100, 2, 3]), "piece_seconds": 10.0,
              "time_offset_seconds": 1.5},
             {"input_ids": [4, 5], "piece_seconds": 20.0, "time_offset_seconds": 0.0}]
    b = MuseNetCollator(pad, pad_to_multiple_of=4)(feats)
    assert b["input_ids"].tolist() == [[1, 2, 3, pad], [4, 5, pad, pad]]
    assert b["labels"].tolist() == [[-100, 2, 3, -100], [4, 5, -100, -100]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert b["piece_seconds"].tolist() == [10.0, 20.0] and b["time_offset_seconds"].tolist() == [1.5, 0.0]
    secs = window_seconds(torch.tensor([[-100, tok.vocabulary.first_wait_id + 9, 5]]), tok.vocabulary)
    assert secs.tolist() == [pytest.approx(0.1)]


def test_train_batches_are_a_function_of_the_step():
    full = list(TrainBatches(10, 2, 3, rank=0, world_size=1, seed=1, start_step=0, max_steps=4))
    tail = list(TrainBatches(10, 2, 3, rank=0, world_size=1, seed=1, start_step=2, max_steps=4))
    assert len(full) == 12 and tail == full[6:]
    # each epoch visits every window once; two processes share an epoch without overlap
    epoch0 = [i for batch in full for i, e, _ in batch if e == 0]
    assert sorted(epoch0) == list(range(10))
    r0 = [i for b in TrainBatches(10, 1, 1, 0, 2, 1, 0, 5) for i, _, _ in b]
    r1 = [i for b in TrainBatches(10, 1, 1, 1, 2, 1, 0, 5) for i, _, _ in b]
    assert sorted(r0 + r1) == list(range(10))
    assert [p for _, _, p in full[6]] == [0.5, 0.5]  # progress = step / max_steps


def test_label_balanced_weights_follow_the_temperature():
    labels = ["folk"] * 90 + ["bach"] * 9 + ["monteverdi"] * 1
    natural = label_balanced_weights(labels, 1.0)
    assert np.allclose(natural, 0.01)  # every window as often as any other
    equal = label_balanced_weights(labels, 0.0)
    assert equal[:90].sum() == pytest.approx(1 / 3) and equal[99] == pytest.approx(1 / 3)
    half = label_balanced_weights(labels, 0.5)  # shares proportional to sqrt(90) : sqrt(9) : sqrt(1)
    z = np.sqrt(90) + 3 + 1
    assert half[:90].sum() == pytest.approx(np.sqrt(90) / z)
    assert half[90:99].sum() == pytest.approx(3 / z) and half[99] == pytest.approx(1 / z)
    assert half.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="temperature"):
        label_balanced_weights(labels, 1.5)


def test_label_boost_multiplies_chosen_labels_tempered_shares():
    labels = ["folk"] * 90 + ["bach"] * 9 + ["monteverdi"] * 1
    boosted = label_balanced_weights(labels, 0.5, {"bach": 3.0})  # sqrt(90) : 3 * 3 : 1
    z = np.sqrt(90) + 9 + 1
    assert boosted[90:99].sum() == pytest.approx(9 / z) and boosted[99] == pytest.approx(1 / z)
    assert np.allclose(boosted[90:99], boosted[90])  # spread evenly over bach's windows
    assert np.array_equal(label_balanced_weights(labels, 0.5, {}), label_balanced_weights(labels, 0.5))
    with pytest.raises(ValueError, match="'mozart', which no training window has"):
        label_balanced_weights(labels, 0.5, {"mozart": 2.0})
    with pytest.raises(ValueError, match="above 0"):
        label_balanced_weights(labels, 0.5, {"bach": 0.0})


def test_weighted_train_batches_draw_the_label_shares_and_resume_exactly():
    labels = ["folk"] * 90 + ["bach"] * 10
    weights = label_balanced_weights(labels, 0.0)
    full = list(TrainBatches(100, 8, 1, 0, 1, seed=3, start_step=0, max_steps=500, weights=weights))
    tail = list(TrainBatches(100, 8, 1, 0, 1, seed=3, start_step=250, max_steps=500, weights=weights))
    assert tail == full[250:]
    drawn = np.array([i for batch in full for i, _, _ in batch])
    assert np.mean(drawn >= 90) == pytest.approx(0.5, abs=0.03)  # bach: 10% of windows, half the draws
    assert set(drawn[drawn >= 90]) == set(range(90, 100))  # spread over all of its windows
    unweighted = [i for b in TrainBatches(100, 8, 1, 0, 1, 3, 0, 500) for i, _, _ in b]
    assert np.mean(np.array(unweighted) >= 90) == pytest.approx(0.1, abs=0.001)
    with pytest.raises(ValueError, match="probabilities"):
        TrainBatches(100, 8, 1, 0, 1, 3, 0, 5, weights=np.ones(100))


def test_training_windows_know_their_labels(encoded, tok, case):
    windows = MuseNetWindows(encoded.dataset["train"], tok, 128, train=True)
    labels = windows.window_labels()
    assert len(labels) == len(windows)
    for k in (0, len(windows) // 2, len(windows) - 1):
        assert labels[k] == (windows.composers[windows.piece_of[k]] or "")


def test_revoicing_moves_parts_onto_instruments_that_hold_them(tok):
    from musenet_hf.training.augmentation import INSTRUMENT_RANGES, REVOICE_PROGRAMS, revoice

    v = tok.vocabulary
    # a four-voice chorale read as one piano part (C3..A4), plus a drum hit that must not move
    chorale = np.array([[52, 0, p, 80, t, t + 0.5, 2 * t, 2 * t + 1] for t in (0.0, 0.5, 1.0)
                        for p in (48, 55, 64, 69)] + [[0, 1, 36, 100, 0.0, 0.1, 0.0, 0.2]], dtype=float)
    seen, splits = set(), 0
    for seed in range(200):
        out = revoice(NoteArrays.from_matrix(chorale), np.random.default_rng(seed), v).to_matrix()
        assert (out[-1] == chorale[-1]).all()  # drums stay
        assert (out[:, 4:] == chorale[:, 4:]).all()  # timing stays
        inst = v.program_to_instrument[out[:-1, 0].astype(int)]
        names = {v.instruments[i].name for i in inst}
        assert names <= set(REVOICE_PROGRAMS)
        for i in np.unique(inst):
            lo, hi = INSTRUMENT_RANGES[v.instruments[i].name]
            sel = out[:-1][inst == i]
            assert lo <= sel[:, 2].min() and sel[:, 2].max() <= hi  # every note playable
        # a voice moves whole (by an octave at most), so its intervals stay
        shift = out[:-1, 2] - chorale[:-1, 2]
        assert set(shift) <= {-12, 0, 12}
        for p in np.unique(chorale[:-1, 2]):
            assert len(np.unique(shift[chorale[:-1, 2] == p])) == 1
        splits += len(names) == 2
        seen |= names
    # violin over cello, flute over bass...: every melodic instrument appears over 200 draws
    assert seen == set(REVOICE_PROGRAMS) and 40 < splits < 160


def test_revoicing_onto_one_instrument_keeps_every_voice(tok):
    """one_instrument=1: a four-voice chorale (one piano part) moves onto a single instrument that
    holds every voice, the lower half moved up an octave where the instrument needs it (four voices
    on clarinet); its notes, timing and rhythm stay."""
    from musenet_hf.training.augmentation import INSTRUMENT_RANGES, revoice

    v = tok.vocabulary
    chorale = np.array([[0, 0, p, 80, t, t + 0.5, 2 * t, 2 * t + 1] for t in (0.0, 0.5, 1.0)
                        for p in (43, 55, 64, 69)], dtype=float)
    seen, shifted = set(), 0
    for seed in range(200):
        out = revoice(NoteArrays.from_matrix(chorale), np.random.default_rng(seed), v, one_instrument=1.0).to_matrix()
        names = {v.instruments[i].name for i in v.program_to_instrument[out[:, 0].astype(int)]}
        assert len(names) == 1, names
        lo, hi = INSTRUMENT_RANGES[names.pop()]
        assert lo <= out[:, 2].min() and out[:, 2].max() <= hi
        assert (out[:, 4:] == chorale[:, 4:]).all() and (out[:, 2] % 12 == chorale[:, 2] % 12).all()
        assert set(out[:, 2] - chorale[:, 2]) <= {-12, 0, 12}
        seen |= {v.instruments[i].name for i in v.program_to_instrument[out[:, 0].astype(int)]}
        shifted += len(set(out[:, 2] - chorale[:, 2])) == 2  # the two halves moved differently
    assert {"clarinet", "violin", "piano"} <= seen and shifted > 10
    # at 0 (the default) the draws are those of a call without it
    for seed in range(20):
        a = revoice(NoteArrays.from_matrix(chorale), np.random.default_rng(seed), v).to_matrix()
        b = revoice(NoteArrays.from_matrix(chorale), np.random.default_rng(seed), v, one_instrument=0.0).to_matrix()
        assert (a == b).all()


def test_label_dropout_windows(encoded, tok, case):
    """drop_composer takes the composer token out of about that share of windows and changes
    nothing else; at 0 the windows are exactly those of a config without it."""
    ds = encoded.dataset["train"]
    elise = list(ds["file"]).index(case["elise"])
    v = tok.vocabulary
    base = dict(transpose=2, transpose_final=2, volume=0.1, stretch=0.05, revoice=0.5)
    plain = MuseNetWindows(ds.select([elise]), tok, 256, train=True, augmentation=AugmentationConfig(**base))
    off = MuseNetWindows(ds.select([elise]), tok, 256, train=True, augmentation=AugmentationConfig(**base, drop_composer=0.0))
    half = MuseNetWindows(ds.select([elise]), tok, 256, train=True, augmentation=AugmentationConfig(**base, drop_composer=0.5))
    unlabelled = 0
    for epoch in range(40):
        a, b, c = plain[(0, epoch, 0.3)], off[(0, epoch, 0.3)], half[(0, epoch, 0.3)]
        assert np.array_equal(a["input_ids"], b["input_ids"]) and np.array_equal(a["labels"], b["labels"])
        assert a["input_ids"][0] == v.composer_id("beethoven")
        if c["input_ids"][0] == v.composer_id("beethoven"):
            assert np.array_equal(a["input_ids"], c["input_ids"])  # the same window, label kept
        else:
            unlabelled += 1
            assert not v.is_composer[c["input_ids"]].any()
            assert np.array_equal(a["input_ids"][1:], c["input_ids"][:len(a["input_ids"]) - 1])
    assert 10 <= unlabelled <= 30


def test_revoiced_and_instrumentless_training_windows(encoded, tok, case):
    ds = encoded.dataset["train"]
    elise = list(ds["file"]).index(case["elise"])
    v = tok.vocabulary
    cfg = AugmentationConfig(transpose=0, transpose_final=0, volume=0.0, stretch=0.0, revoice=1.0,
                             drop_instrumentation=0.3)
    windows = MuseNetWindows(ds.select([elise]), tok, 256, train=True, augmentation=cfg)
    groups, dropped = set(), 0
    for epoch in range(40):
        w = windows[(0, epoch, 0.0)]
        ids = w["input_ids"]
        given = int((w["labels"] == -100).sum())
        inst_tokens = ids[:given][v.is_instrumentation[ids[:given]]]
        struck = {v.instruments[i].group for i in np.unique(v.note_instrument[ids[v.is_note_on[ids]]])}
        if len(inst_tokens):
            # the instrumentation token names the groups the window's notes are on (a window may
            # not reach every part of the piece: a subset)
            assert struck <= set(v.instrumentation_groups(int(inst_tokens[0])))
            groups |= struck
        else:
            dropped += 1
        assert ids[0] == v.composer_id("beethoven") and orphan_note_offs(v, ids) == 0
    assert len(groups) >= 4 and 3 <= dropped <= 25
