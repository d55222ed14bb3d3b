"""MIDI folders -> datasets, windows, augmentation, collator and the training sampler."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from musenet_hf.augmentation import (
    INSTRUMENT_RANGES, PITCH, AugmentationConfig, allowed_transpositions, augment, notes_to_array,
)
from musenet_hf.data import (
    MuseNetCollator, MuseNetWindows, TrainBatches, load_midi_folder, resolve_labels, split_of, window_seconds,
)
from musenet_hf.midi_io import read_midi_arrays
from musenet_hf.tokenization_musenet import MuseNetTokenizer

SHARED_MIDI = Path(__file__).resolve().parents[1].parent / "shared" / "midi"
AUTOBOT = "valid/musicautobot/data_midi_examples_"
# Real files: a labelled mini-collection (sub-folder = composer/style), one multi-instrument
# piece with drums (7,300 tokens: many windows), two files no reader can open and one damaged
# file whose notes can be recovered.
LABELLED = {
    "beethoven": [AUTOBOT + "Fuer_Elise_-_Ludwig_Van_Beethoven_-_Verse.mid"],
    "mozart": [AUTOBOT + "Symphony_No_40_In_G_Minor___I_-_Wolfgang_Amadeus_Mozart_-_Verse.mid"],
    "thebeatles": [AUTOBOT + "Hey_Jude_-_The_Beatles_-_Chorus.mid"],
    "grieg_and_friends": [AUTOBOT + "In_The_Hall_Of_The_Mountain_King_-_Edvard_Grieg_-_Intro.mid"],
    "band": ["valid/midis2jam2/testmidi_wonderwoman.mid"],
}
BAD = ["invalid/No_Header_Chunk/AN-IMGN4.MID", "invalid/Not_Enough_Bytes/F242.MID"]
DAMAGED = "invalid/Not_Enough_Bytes/Alhamdulilah.mid"  # truncated, but the notes before the damage read


def shared(rel: str) -> Path:
    if not SHARED_MIDI.is_dir():
        pytest.skip("../shared/midi is not present")
    return SHARED_MIDI / rel


@pytest.fixture(scope="module")
def tok():
    return MuseNetTokenizer.from_preset("extended")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """<tmp>/<label>/<file>.mid from real files, plus two broken files at the top level."""
    root = tmp_path_factory.mktemp("midi")
    for label, files in LABELLED.items():
        (root / label).mkdir()
        for rel in files:
            shutil.copy(shared(rel), root / label / Path(rel).name)
    shutil.copy(shared(BAD[0]), root / "broken_header.mid")
    shutil.copy(shared(BAD[1]), root / "not_midi.mid")
    shutil.copy(shared(DAMAGED), root / "damaged.mid")
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def encoded(folder, tok, cache_dir):
    # everything in train: the window tests want every piece in one split
    return load_midi_folder(folder, tok, validation_fraction=0.0, num_proc=2, cache_dir=cache_dir)


def test_labels_from_folders_metadata_mappings_and_functions(folder, tmp_path):
    files = sorted(folder.rglob("*.mid"))
    by_folder = dict(zip([f.name for f in files], resolve_labels(folder, files, "auto")))
    assert by_folder["testmidi_wonderwoman.mid"] == "band"
    assert by_folder["broken_header.mid"] is None  # top-level files have no sub-folder label
    meta = tmp_path / "meta.csv"
    meta.write_text("path,label\nband/testmidi_wonderwoman.mid,jazz\n", "utf-8")
    from_csv = dict(zip([f.name for f in files], resolve_labels(folder, files, meta)))
    assert from_csv["testmidi_wonderwoman.mid"] == "jazz" and from_csv["damaged.mid"] is None
    assert resolve_labels(folder, files[:1], lambda p: p.stem.upper()) == [files[0].stem.upper()]
    assert resolve_labels(folder, files, {"damaged.mid": "x"})[files.index(folder / "damaged.mid")] == "x"


def test_folder_dataset_prefix_composer_and_skipped_files(encoded, tok):
    ds = encoded.dataset["train"]
    assert len(ds) == 6 and len(encoded.dataset["validation"]) == 0
    assert set(encoded.failed) == {"broken_header.mid", "not_midi.mid"}
    assert "header" in encoded.failed["broken_header.mid"] and "header" in encoded.failed["not_midi.mid"]
    assert "damaged.mid" in list(ds["file"])
    rows = {Path(f).name: i for i, f in enumerate(list(ds["file"]))}
    v = tok.vocabulary
    elise = ds[rows["data_midi_examples_Fuer_Elise_-_Ludwig_Van_Beethoven_-_Verse.mid"]]
    assert elise["label"] == "beethoven" and elise["composer"] == "beethoven"
    assert elise["prefix"] == [v.composer_id("beethoven"), v.instrumentation_id(["piano"]), v.start_id]
    # an unknown label stays in the label column, but no composer token goes in the prefix
    grieg = ds[rows["data_midi_examples_In_The_Hall_Of_The_Mountain_King_-_Edvard_Grieg_-_Intro.mid"]]
    assert grieg["label"] == "grieg_and_friends" and grieg["composer"] == ""
    assert grieg["prefix"][-1] == v.start_id and not v.is_composer[grieg["prefix"]].any()
    # the stored body is what the tokenizer makes of the file, without prefix and end
    band = ds[rows["testmidi_wonderwoman.mid"]]
    full = tok.encode_midi(shared(LABELLED["band"][0]), composer=None)
    assert band["prefix"] == full[:2] and band["body"] == full[2:-1]
    assert band["instruments"] == "piano_bass_winds_drums"
    waits = v.wait_units[np.array(band["body"])].sum()
    assert band["piece_seconds"] == pytest.approx(waits * 0.01) and 85 < band["piece_seconds"] < 95


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


def test_split_is_by_content_hash_and_stable(folder, tok, tmp_path):
    # fixed values: the split must not depend on the machine, the path or the run
    assert split_of(hashlib.sha1(b"").hexdigest(), 0.1) == "train"  # da39a3ee... = 0.853
    assert split_of("19999999" + "0" * 32, 0.1) == "validation"  # 0.1 - 1e-9
    assert split_of("1999999a" + "0" * 32, 0.1) == "train"
    # the same file under two names lands in one split; a second run splits the same way
    dup = tmp_path / "dup"
    shutil.copytree(folder, dup)
    for label in LABELLED:
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
    valid = shared("valid")
    enc = load_midi_folder(valid, tok, validation_fraction=0.1, num_proc=2, cache_dir=tmp_path)
    n_train, n_val = len(enc.dataset["train"]), len(enc.dataset["validation"])
    assert n_train + n_val + len(enc.failed) == 443
    assert 0.05 < n_val / (n_train + n_val) < 0.15
    assert "miditok/tests_MIDIs_one_track_empty.mid" in enc.failed  # the empty file: "no notes"
    again = load_midi_folder(valid, tok, validation_fraction=0.1, num_proc=2, cache_dir=tmp_path)
    assert again.cache_path == enc.cache_path and Path(enc.cache_path).parent == tmp_path
    assert list(again.dataset["validation"]["file"]) == list(enc.dataset["validation"]["file"])
    assert again.failed == enc.failed


def test_validation_windows_carry_prefix_and_whole_piece_positions(encoded, tok):
    from musenet_hf.configuration_musenet import MuseNetConfig
    from musenet_hf.modeling_musenet import MuseNetForCausalLM

    ds = encoded.dataset["train"]
    band = list(ds["file"]).index("band/testmidi_wonderwoman.mid")
    windows = MuseNetWindows(ds.select([band]), tok, 256, train=False)
    prefix, body = np.array(ds[band]["prefix"]), np.array(ds[band]["body"])
    span = 256 - len(prefix)
    assert len(windows) == -(-(len(body) + 1) // span) == 29
    items = [windows[i] for i in range(len(windows))]
    v = tok.vocabulary
    for i, w in enumerate(items):
        assert (w["input_ids"][:len(prefix)] == prefix).all()
        assert (w["labels"][:len(prefix)] == -100).all()
        assert (w["labels"][len(prefix):] == w["input_ids"][len(prefix):]).all()
        assert (w["input_ids"] == v.end_id).sum() == (i == len(items) - 1)  # only the last window ends
        assert w["time_offset_seconds"] == pytest.approx(v.wait_units[body[:i * span]].sum() * 0.01)
        assert w["piece_seconds"] == pytest.approx(ds[band]["piece_seconds"])
    assert (np.concatenate([w["input_ids"][len(prefix):] for w in items]) == np.append(body, v.end_id)).all()

    # part and countdown of every window token = those of the same token in the whole piece
    config = MuseNetConfig(**{**v.model_config_kwargs(), "hidden_size": 32, "num_hidden_layers": 1,
                              "num_attention_heads": 2, "max_position_embeddings": 8192})
    model = MuseNetForCausalLM(config)
    whole = model.structure_ids(torch.as_tensor(np.concatenate([prefix, body]))[None], items[0]["piece_seconds"], 0.0)
    # units to the end of the piece before each body token, in integers (exact)
    units_left = v.wait_units[body].sum() - (np.cumsum(v.wait_units[body]) - v.wait_units[body])
    for i in range(len(items)):
        w = items[i]
        got = model.structure_ids(torch.as_tensor(w["input_ids"])[None], w["piece_seconds"], w["time_offset_seconds"])
        n = len(w["input_ids"]) - len(prefix) - (i == len(items) - 1)  # the end token is not in `whole`
        at = slice(len(prefix) + i * span, len(prefix) + i * span + n)
        assert torch.equal(got["part_ids"][0, len(prefix):len(prefix) + n], whole["part_ids"][0, at]), i
        assert torch.equal(got["countdown_ids"][0, len(prefix):len(prefix) + n], whole["countdown_ids"][0, at]), i
        # on a whole second before the end, the countdown is exactly that many seconds
        exact = units_left[i * span:i * span + n] % 100 == 0
        seconds_left = torch.as_tensor(units_left[i * span:i * span + n][exact] // 100)
        assert torch.equal(got["countdown_ids"][0, len(prefix):len(prefix) + n][torch.as_tensor(exact)],
                           seconds_left.clamp(max=127)), i
    # the piece runs 90.6 s: 91 one-second steps to go at its first note, part 127 at its end
    assert whole["part_ids"].max() == 127 and whole["countdown_ids"][0, len(prefix)] == 91


def test_training_windows_random_reproducible_and_per_epoch(encoded, tok):
    windows = MuseNetWindows(encoded.dataset["train"], tok, 256, train=True, seed=3)
    again = MuseNetWindows(encoded.dataset["train"], tok, 256, train=True, seed=3)
    piece = list(encoded.dataset["train"]["file"]).index("band/testmidi_wonderwoman.mid")
    band = int(np.flatnonzero(windows.piece_of == piece)[0])  # the piece's first window
    a, b, c = windows[(band, 0, 0.0)], again[(band, 0, 0.0)], windows[(band, 1, 0.0)]
    assert (a["input_ids"] == b["input_ids"]).all() and a["time_offset_seconds"] == b["time_offset_seconds"]
    assert a["time_offset_seconds"] != c["time_offset_seconds"]  # a new epoch, a new offset
    windows.set_epoch(1)
    assert (windows[band]["input_ids"] == c["input_ids"]).all()
    assert all(len(windows[(i, 0, 0.0)]["input_ids"]) <= 256 for i in range(len(windows)))


def test_transposition_keeps_ranges_and_never_moves_drums(tok):
    v = tok.vocabulary
    arr = notes_to_array(read_midi_arrays(shared(LABELLED["band"][0])))
    drums = arr[:, 1] > 0
    assert drums.any() and (~drums).any()
    cfg = AugmentationConfig(transpose=6, transpose_final=6, volume=0.2, stretch=0.1)
    # its bass goes below the bass range already (E1 = 28: no shift down), its piano to B7 (up one)
    assert allowed_transpositions(arr, v, 6).tolist() == [0, 1]
    seen = set()
    for seed in range(40):
        out, _, drawn = augment(arr, [(0.0, 120.0)], np.random.default_rng(seed), cfg, v)
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
    elise = notes_to_array(read_midi_arrays(shared(LABELLED["beethoven"][0])))  # piano: every shift fits
    shifts = {augment(elise, [], np.random.default_rng(s), cfg, v)[2]["transpose"] for s in range(60)}
    assert shifts == set(range(-6, 7))
    # a violin at its top (G7 = 103) may only go down; a bass at E1 (28) only up
    violin_top = np.array([[40, 0, 103, 80, 0.0, 1.0, 0.0, 2.0], [0, 1, 36, 80, 0.0, 0.1, 0.0, 0.2]])
    assert allowed_transpositions(violin_top, v, 5).tolist() == [-5, -4, -3, -2, -1, 0]
    bass_low = np.array([[33, 0, 28, 80, 0.0, 1.0, 0.0, 2.0]])
    assert allowed_transpositions(bass_low, v, 3).tolist() == [0, 1, 2, 3]
    # the schedule narrows the range over training
    sched = AugmentationConfig(transpose=6, transpose_final=2)
    assert [sched.max_transpose(p) for p in (0.0, 0.5, 1.0, 2.0)] == [6, 4, 2, 2]


def test_augmented_windows_are_the_encoded_augmented_notes(encoded, tok):
    ds = encoded.dataset["train"]
    band = list(ds["file"]).index("band/testmidi_wonderwoman.mid")
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
        assert 0.9 * 90.6 <= w["piece_seconds"] <= 1.1 * 90.6
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
