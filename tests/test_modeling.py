"""MuseNetConfig / MuseNetForCausalLM: structural indices, cached decoding, generate(), save/load, critic."""

import functools
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from musenet_hf.model.configuration_musenet import MuseNetConfig
from musenet_hf.model.modeling_musenet import MuseNetForCausalLM, register_auto_classes

from midi_fixtures import HAVE_SHARED_MIDI, SHARED_MIDI, band

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
START, END, PAD = 4096, 4097, 4836

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _musenet_note_layout() -> dict:
    from musenet_hf.tokenizer.vocabulary import MuseNetVocabulary

    kw = MuseNetVocabulary.from_preset("musenet").model_config_kwargs()
    return {"note_slots": kw["note_slots"], "drum_instrument": kw["drum_instrument"]}


LAYOUTS = {
    "full": dict(attention_layout="full"),
    "full+sounding": dict(attention_layout="full", use_sounding_embedding=True, **_musenet_note_layout()),
    **{f"strided-{c}": dict(attention_layout="strided", attention_combine=c) for c in ("alternate", "split_heads", "union")},
    **{f"fixed-{c}": dict(attention_layout="fixed", attention_combine=c) for c in ("alternate", "split_heads", "union")},
}


def tiny_config(**overrides) -> MuseNetConfig:
    config = MuseNetConfig.from_json_file(CONFIGS / "musenet-tiny.json")
    base = dict(attention_block_size=16, attention_stride=32, attention_c=16)
    for key, value in {**base, **overrides}.items():
        setattr(config, key, value)
    config.validate()
    return config


def tiny_model(seed: int = 0, **overrides) -> MuseNetForCausalLM:
    torch.manual_seed(seed)
    return MuseNetForCausalLM(tiny_config(**overrides)).eval()


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """A long multitrack piece with drums (over 5,000 tokens): Funkytown from ../shared/midi when it is
    there (CI), else the made band of midi_fixtures.py at 90 bars (about 3 minutes), so every test here
    runs in a clone without ../shared too."""
    shared = SHARED_MIDI / "valid" / "miditok" / "tests_MIDIs_multitrack_Funkytown.mid"
    if HAVE_SHARED_MIDI and shared.exists():
        return shared
    path = tmp_path_factory.mktemp("song") / "band-90-bars.mid"
    band(bars=90).save(path)
    return path


@functools.lru_cache(maxsize=4)
def midi_tokens(path: Path) -> tuple[list[int], float]:
    """A plain MuseNet-preset encoding of a real MIDI file (test helper, independent of the tokenizer).

    Piano-style note tokens `slot * 128 + pitch` (slot 0 = off, 1-13 = volume), drums 3840 + pitch,
    waits 3968 + units - 1 on a 10 ms clock. Returns the tokens (after `start`) and the length in seconds.
    """
    import mido

    song = mido.MidiFile(path)
    tokens, now, clock = [START], 0.0, 0
    for msg in song:
        now += msg.time
        if msg.type not in ("note_on", "note_off"):
            continue
        units = round(now / 0.01) - clock
        clock += units
        while units > 0:
            step = min(units, 128)
            tokens.append(3968 + step - 1)
            units -= step
        on = msg.type == "note_on" and msg.velocity > 0
        if msg.channel == 9:
            if on:
                tokens.append(3840 + msg.note)
        else:
            slot = min(13, max(1, round((msg.velocity - 24) / 8) + 1)) if on else 0
            tokens.append(slot * 128 + msg.note)
    return tokens, song.length  # cached: callers only slice it


def loop_structure(tokens: list[int], config: MuseNetConfig, piece: float | None, offset: float) -> dict:
    """The structural indices computed token by token, the way the issue defines them."""
    out = {"time_ids": [], "chord_ids": [], "part_ids": [], "countdown_ids": []}
    units, chord = 0, 0
    for tok in tokens:
        seconds = units * config.wait_unit_seconds + offset
        is_note = tok < config.num_note_tokens
        out["time_ids"].append(min(units // config.time_bucket_units, config.max_time_positions - 1))
        out["chord_ids"].append(min(chord, config.num_chord_positions - 1) if is_note else 0)
        if piece is None:
            out["part_ids"].append(0)
            out["countdown_ids"].append(config.num_countdown - 1)
        else:
            out["part_ids"].append(min(max(math.floor(config.num_parts * seconds / piece), 0), config.num_parts - 1))
            left = math.ceil((piece - seconds) / config.countdown_step_seconds)
            out["countdown_ids"].append(min(max(left, 0), config.num_countdown - 1))
        if is_note:
            chord += 1
        first = config.first_wait_token_id
        if first <= tok < first + config.num_wait_tokens:
            units += tok - first + 1
            chord = 0
    return {key: torch.tensor([values]) for key, values in out.items()}


# --------------------------------------------------------------------------------------------- configs


def test_configs_load_and_sizes():
    sizes = {}
    for name in ("tiny", "small", "full"):
        config = MuseNetConfig.from_json_file(CONFIGS / f"musenet-{name}.json")
        assert config.model_type == "musenet" and config.vocab_size == 4837
        with torch.device("meta"):
            sizes[name] = MuseNetForCausalLM(config).num_parameters()
    print(f"parameters: {sizes}")
    assert sizes["tiny"] < 1_000_000
    assert 10_000_000 <= sizes["small"] <= 25_000_000


def test_full_config_instantiates_on_meta_device():
    config = MuseNetConfig.from_json_file(CONFIGS / "musenet-full.json")
    assert (config.num_hidden_layers, config.num_attention_heads, config.max_position_embeddings) == (72, 24, 4096)
    assert config.attention_layout == "full"
    with torch.device("meta"):
        model = MuseNetForCausalLM(config)
    count = model.num_parameters()
    print(f"musenet-full.json: {count:,} parameters")
    assert all(p.device.type == "meta" for p in model.parameters())
    assert 1.5e9 < count < 2.5e9
    assert model.lm_head.weight is model.model.embeddings.embed_tokens.weight


def test_config_rejects_bad_layouts():
    with pytest.raises(ValueError):
        MuseNetConfig(attention_layout="dense")
    with pytest.raises(ValueError):
        MuseNetConfig(attention_layout="fixed", attention_block_size=64, attention_stride=96)
    with pytest.raises(ValueError):
        MuseNetConfig(hidden_size=100, num_attention_heads=3)
    with pytest.raises(ValueError, match="composer_token_ids"):
        MuseNetConfig(use_composer_embedding=True)


# ------------------------------------------------------------------------------------ structural ids


def test_structure_ids_of_a_hand_written_sequence():
    model = tiny_model()
    # start, C4 on, E4 on, wait 3, C4 off, wait 32, G4 on, drum, end
    ids = torch.tensor([[START, 10 * 128 + 60, 10 * 128 + 64, 3970, 60, 3999, 10 * 128 + 67, 3840 + 36, END]])
    got = model.structure_ids(ids, piece_seconds=torch.tensor([0.5]), time_offset_seconds=torch.tensor([0.1]))
    assert got["time_ids"].tolist() == [[0, 0, 0, 0, 0, 0, 3, 3, 3]]  # units before: 0,0,0,0,3,3,35,35,35
    assert got["chord_ids"].tolist() == [[0, 0, 1, 0, 0, 0, 0, 1, 0]]
    # absolute seconds 0.1, 0.13, 0.45 -> parts floor(128 t / 0.5) = 25, 33, 115
    assert got["part_ids"].tolist() == [[25, 25, 25, 25, 33, 33, 115, 115, 115]]
    assert got["countdown_ids"].tolist() == [[1] * 9]
    unknown = model.structure_ids(ids)
    assert unknown["part_ids"].eq(0).all() and unknown["countdown_ids"].eq(127).all()


def test_structure_ids_of_real_music_match_a_token_loop(song):
    tokens, length = midi_tokens(song)
    config = tiny_config(num_chord_positions=16, max_time_positions=64)
    model = MuseNetForCausalLM(config)
    window_start = 3000
    offset = loop_structure(tokens[:window_start], config, None, 0.0)  # elapsed units before the window
    units_before = sum(t - 3967 for t in tokens[:window_start] if 3968 <= t < 4096)
    offset_seconds = units_before * config.wait_unit_seconds
    window = tokens[window_start : window_start + 2000]
    expected = loop_structure(window, config, length, offset_seconds)
    got = model.structure_ids(torch.tensor([window]), torch.tensor([length]), torch.tensor([offset_seconds]))
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    # real music exercises every index: chords, many time buckets, parts across the piece
    assert got["chord_ids"].max() >= 3 and got["time_ids"].max() == config.max_time_positions - 1
    assert got["part_ids"].unique().numel() > 10 and offset["part_ids"].eq(0).all()


def test_explicit_ids_and_inputs_embeds_match_derived(song):
    model = tiny_model()
    tokens, length = midi_tokens(song)
    ids = torch.tensor([tokens[100:180], tokens[400:480]])
    piece = torch.tensor([length, 20.0])
    with torch.no_grad():
        derived = model(ids, piece_seconds=piece).logits
        structure = model.structure_ids(ids, piece)
        explicit = model(ids, **structure).logits
        embeds = model.get_input_embeddings()(ids)
        from_embeds = model(inputs_embeds=embeds, **structure).logits
        no_piece = model(ids).logits
    assert torch.equal(derived, explicit)
    assert (from_embeds - derived).abs().max().item() < 1e-6
    assert (no_piece - derived).abs().max().item() > 1e-3  # part and countdown do reach the logits


def test_zero_initialized_structural_tables_start_as_a_plain_decoder_and_then_learn(song):
    """structural_init_std=0: the untrained model is the same network without the four tables
    (its logits match one with them switched off), and one training step moves every table."""
    tokens, length = midi_tokens(song)
    ids = torch.tensor([tokens[100:180]])
    zero = tiny_model(structural_init_std=0.0)
    tables = [zero.model.embeddings.embed_time, zero.model.embeddings.embed_chord,
              zero.model.embeddings.embed_part, zero.model.embeddings.embed_countdown]
    assert all(float(t.weight.abs().max()) == 0.0 for t in tables)
    plain = tiny_model(use_time_embedding=False, use_chord_embedding=False, use_part_embedding=False,
                       use_countdown_embedding=False)
    plain.load_state_dict(zero.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.allclose(zero(ids, piece_seconds=length).logits, plain(ids).logits, atol=1e-6)
    random = tiny_model(structural_init_std=0.05)
    assert 0.04 < float(random.model.embeddings.embed_part.weight.std()) < 0.06
    zero.train()
    torch.optim.SGD(zero.parameters(), lr=1.0).zero_grad()
    zero(ids, labels=ids, piece_seconds=length).loss.backward()
    assert all(float(t.weight.grad.abs().max()) > 0 for t in tables)


# -------------------------------------------------------------------------------- cached decoding


@pytest.mark.parametrize("layout", list(LAYOUTS), ids=list(LAYOUTS))
def test_cached_decoding_matches_full_forward(layout, song):
    model = tiny_model(**LAYOUTS[layout])
    tokens, length = midi_tokens(song)
    ids = torch.tensor([tokens[1000:1150], tokens[2000:2150]])
    piece, offset = torch.tensor([length, 60.0]), torch.tensor([30.0, 1.0])
    structure = model.structure_ids(ids, piece, offset)
    with torch.no_grad():
        full = model(ids, piece_seconds=piece, time_offset_seconds=offset).logits
        out = model(ids[:, :70], piece_seconds=piece, time_offset_seconds=offset, use_cache=True)
        pieces, cache = [out.logits], out.cache
        steps = [(i, i + 1) for i in range(70, 100)] + [(100, 117)] + [(i, i + 1) for i in range(117, 150)]
        for start, stop in steps:  # one token at a time, and one chunk of 17 new tokens
            rows = {key: value[:, start:stop] for key, value in structure.items()}
            out = model(ids[:, start:stop], cache=cache, use_cache=True, **rows)
            pieces.append(out.logits)
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() < 1e-5


def test_cached_decoding_with_padding_matches_full_forward(song):
    model = tiny_model(**LAYOUTS["fixed-split_heads"])
    tokens, _ = midi_tokens(song)
    ids = torch.tensor([[PAD] * 9 + tokens[500:591], tokens[700:800]])
    mask = torch.ones_like(ids)
    mask[0, :9] = 0
    structure = model.structure_ids(ids, 100.0)
    with torch.no_grad():
        full = model(ids, attention_mask=mask, piece_seconds=100.0).logits
        out = model(ids[:, :40], attention_mask=mask[:, :40], piece_seconds=100.0, use_cache=True)
        pieces, cache = [out.logits], out.cache
        for i in range(40, 100):
            rows = {key: value[:, i : i + 1] for key, value in structure.items()}
            out = model(ids[:, i : i + 1], attention_mask=mask[:, : i + 1], cache=cache, use_cache=True, **rows)
            pieces.append(out.logits)
    assert (torch.cat(pieces, dim=1) - full)[:, 9:].abs().max().item() < 1e-5


def test_forward_with_cache_needs_structure_ids():
    model = tiny_model()
    ids = torch.tensor([[START, 1300, 3970, 1304, 3975]])
    cache = model(ids[:, :3], use_cache=True).cache
    with pytest.raises(ValueError, match="cannot derive"):
        model(ids[:, 3:], cache=cache)
    # without derived embeddings there is nothing to derive: plain cached decoding works
    plain = tiny_model(use_time_embedding=False, use_chord_embedding=False)
    cache = plain(ids[:, :3], use_cache=True).cache
    with torch.no_grad():
        step = plain(ids[:, 3:], cache=cache).logits
        full = plain(ids).logits
    assert (step - full[:, 3:]).abs().max().item() < 1e-5


def test_left_padding_leaves_real_tokens_unchanged(song):
    model = tiny_model(**LAYOUTS["full"])
    tokens, _ = midi_tokens(song)
    short, long = tokens[300:340], tokens[600:660]
    ids = torch.tensor([[PAD] * 20 + short, long])
    mask = (torch.arange(60) >= torch.tensor([[20], [0]])).long()
    position_ids = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        batched = model(ids, attention_mask=mask, position_ids=position_ids, piece_seconds=50.0).logits
        alone = model(torch.tensor([short]), piece_seconds=50.0).logits
    assert (batched[0, 20:] - alone[0]).abs().max().item() < 1e-5


def test_right_padding_leaves_real_tokens_unchanged(song):
    # the collator pads on the right: the model skips the mask then, which must not change real rows
    model = tiny_model(**LAYOUTS["strided-split_heads"])
    tokens, _ = midi_tokens(song)
    short, long = tokens[300:340], tokens[600:660]
    ids = torch.tensor([short + [PAD] * 20, long])
    mask = (torch.arange(60) < torch.tensor([[40], [60]])).long()
    with torch.no_grad():
        batched = model(ids, attention_mask=mask, piece_seconds=50.0)
        alone = model(torch.tensor([short]), piece_seconds=50.0)
    assert (batched.logits[0, :40] - alone.logits[0]).abs().max().item() < 1e-5
    assert (batched.critic_logits[0] - alone.critic_logits[0]).abs().item() < 1e-5


# ------------------------------------------------------------------------------------- generate()


def _record_structure(model):
    seen = []

    def hook(module, args):
        seen.append({key: value.clone() for key, value in args[3].items() if value is not None})

    return seen, model.model.embeddings.register_forward_pre_hook(hook)


@pytest.mark.parametrize("layout", ["strided-split_heads", "fixed-alternate"])
def test_generate_sees_the_indices_of_the_finished_sequence(layout, song):
    model = tiny_model(**LAYOUTS[layout])
    tokens, length = midi_tokens(song)
    prompts = torch.tensor([tokens[-45:], tokens[5000:5045]])
    piece = torch.tensor([length, 75.0])
    offset = torch.tensor([length - 1.5, 60.0])
    seen, handle = _record_structure(model)
    torch.manual_seed(1)
    out = model.generate(
        prompts,
        piece_seconds=piece,
        time_offset_seconds=offset,
        do_sample=True,
        top_k=200,
        top_p=0.95,
        num_return_sequences=3,
        max_new_tokens=40,
        min_new_tokens=40,
        output_logits=True,
        return_dict_in_generate=True,
    )
    handle.remove()
    sequences = out.sequences
    assert sequences.shape == (6, 85)
    assert len(seen) == 40 and seen[0]["time_ids"].shape == (6, 45) and seen[1]["time_ids"].shape == (6, 1)
    fed = sequences[:, :-1]  # the last token is sampled but never fed back
    expected = model.structure_ids(fed, piece.repeat_interleave(3), offset.repeat_interleave(3))
    for key in expected:
        assert torch.equal(torch.cat([step[key] for step in seen], dim=1), expected[key]), key
    # time moves forward only: parts never decrease and countdowns never increase along a row
    assert expected["part_ids"].diff(dim=1).ge(0).all() and expected["countdown_ids"].diff(dim=1).le(0).all()
    assert expected["countdown_ids"][:3].max() <= 2  # rows 0-2 sit in the last seconds of their piece
    # the logits generate() acted on are those of a full forward over the finished sequence
    with torch.no_grad():
        full = model(fed, piece_seconds=piece.repeat_interleave(3), time_offset_seconds=offset.repeat_interleave(3)).logits
    generated_logits = torch.stack(out.logits, dim=1)
    assert (generated_logits - full[:, 44:]).abs().max().item() < 1e-4


def test_composer_embedding_adds_the_prefix_labels_at_every_token():
    """The composer table adds the vector of each composer/style token of the prefix at every token
    from it on (both tokens of a blend), nothing without one; at zero (a warm start) the model
    computes what it did, and cached generation sees the same sets a full forward does."""
    from musenet_hf.tokenizer.vocabulary import MuseNetVocabulary

    vocab = MuseNetVocabulary.from_preset("musenet")
    kw = vocab.model_config_kwargs()
    plain = tiny_model()
    model = tiny_model(use_composer_embedding=True, composer_token_ids=kw["composer_token_ids"],
                       structural_init_std=0.0)
    model.load_state_dict(plain.state_dict(), strict=False)  # the same weights, the new table at zero
    bach, chopin, piano = vocab.composer_id("bach"), vocab.composer_id("chopin"), vocab.instrumentation_id(["piano"])
    body = [10 * 128 + 60, 3970, 10 * 128 + 64, 3980, 60]
    ids = torch.tensor([[bach, piano, START] + body, [chopin, bach, START] + body, [PAD, piano, START] + body])
    seen = model.structure_ids(ids)["composers_seen"]
    rows = kw["composer_token_ids"]
    assert seen.shape == (3, 8, len(rows))
    assert seen[0, :, rows.index(bach)].all() and seen[0].sum(-1).eq(1).all()
    assert seen[1, 0].nonzero().flatten().tolist() == [rows.index(chopin)]
    assert sorted(seen[1, 1:].nonzero()[:, 1].unique().tolist()) == sorted([rows.index(bach), rows.index(chopin)])
    assert not seen[2].any()
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, plain(ids).logits, atol=1e-6)
        model.model.embeddings.embed_composer.weight.normal_(0.0, 0.5)
        changed = (model(ids).logits - plain(ids).logits).abs().amax(dim=(1, 2))
    assert changed[0] > 0.1 and changed[1] > 0.1 and changed[2] < 1e-6  # only rows with a composer
    torch.manual_seed(2)
    out = model.generate(ids[:2], do_sample=True, max_new_tokens=12, min_new_tokens=12, output_logits=True,
                         return_dict_in_generate=True)
    with torch.no_grad():
        full = model(out.sequences[:, :-1]).logits
    assert (torch.stack(out.logits, dim=1) - full[:, 7:]).abs().max().item() < 1e-4


class RecordIds(LogitsProcessor):
    def __init__(self):
        self.seen = []

    def __call__(self, input_ids, scores):
        self.seen.append(input_ids.clone())
        return scores


def test_beam_search_sees_the_indices_of_each_running_beam(song):
    model = tiny_model(**LAYOUTS["strided-alternate"])
    tokens, length = midi_tokens(song)
    prompts = torch.tensor([tokens[800:830], tokens[900:930]])
    piece = torch.tensor([length, 40.0])
    seen, handle = _record_structure(model)
    recorder = RecordIds()
    out = model.generate(
        prompts,
        piece_seconds=piece,
        num_beams=3,
        num_return_sequences=2,
        max_new_tokens=25,
        min_new_tokens=25,
        logits_processor=LogitsProcessorList([recorder]),
    )
    handle.remove()
    assert out.shape == (4, 55)
    assert len(seen) == len(recorder.seen) == 25
    for step, (structure, running) in enumerate(zip(seen, recorder.seen)):
        assert running.shape == (6, 30 + step)
        expected = model.structure_ids(running, piece.repeat_interleave(3))
        width = structure["time_ids"].shape[1]
        for key in expected:
            assert torch.equal(structure[key], expected[key][:, -width:]), (step, key)
    # the returned beams begin with their prompt
    assert torch.equal(out[:, :30], prompts.repeat_interleave(2, dim=0))


def test_left_padded_batch_generates_what_each_prompt_generates_alone(song):
    model = tiny_model(**LAYOUTS["full"])
    tokens, _ = midi_tokens(song)
    short, long = tokens[2000:2012], tokens[3000:3030]
    ids = torch.tensor([[PAD] * 18 + short, long])
    mask = (ids != PAD).long()
    batched = model.generate(ids, attention_mask=mask, piece_seconds=torch.tensor([30.0, 30.0]), max_new_tokens=15,
                             min_new_tokens=15, do_sample=False)
    for row, prompt in enumerate((short, long)):
        alone = model.generate(torch.tensor([prompt]), piece_seconds=30.0, max_new_tokens=15, min_new_tokens=15,
                               do_sample=False)
        assert torch.equal(batched[row, -15:], alone[0, -15:])


class OnlyNotes(LogitsProcessor):
    def __call__(self, input_ids, scores):
        scores[:, 3968:] = float("-inf")
        return scores


class CountingStreamer(BaseStreamer):
    def __init__(self):
        self.chunks, self.ended = [], False

    def put(self, value):
        self.chunks.append(value.clone())

    def end(self):
        self.ended = True


def test_generate_modes_streamer_and_logits_processor():
    model = tiny_model()
    prompt = torch.tensor([[START, 1300, 1304, 3980, 1307]])
    greedy = model.generate(prompt, max_new_tokens=12, do_sample=False)
    assert torch.equal(greedy, model.generate(prompt, max_new_tokens=12, do_sample=False))

    streamer = CountingStreamer()
    streamed = model.generate(prompt, max_new_tokens=12, do_sample=False, streamer=streamer)
    assert streamer.ended and len(streamer.chunks) == 13  # the prompt, then one chunk per new token
    assert torch.equal(torch.cat([c.view(1, -1) for c in streamer.chunks], dim=1), streamed)

    notes_only = model.generate(prompt, max_new_tokens=30, do_sample=True, logits_processor=LogitsProcessorList([OnlyNotes()]))
    assert notes_only[0, 5:].lt(3968).all()

    torch.manual_seed(3)
    a = model.generate(prompt, max_new_tokens=20, do_sample=True, top_k=20, top_p=0.9, num_return_sequences=4)
    torch.manual_seed(3)
    b = model.generate(prompt, max_new_tokens=20, do_sample=True, top_k=20, top_p=0.9, num_return_sequences=4)
    assert a.shape == (4, 25) and torch.equal(a, b)

    without_cache = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False)
    assert torch.equal(without_cache, greedy)


# ------------------------------------------------------------------------------ save / load / train


def test_save_and_load_through_auto_classes_in_a_fresh_process(tmp_path):
    model = tiny_model(seed=7, **LAYOUTS["fixed-union"])
    model.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").exists()
    ids = torch.tensor([[START, 1300, 1304, 3980, 1307, 60, 3990, 1310, 64, 3968]])
    torch.save(ids, tmp_path / "ids.pt")
    script = textwrap.dedent(
        f"""
        import torch
        from transformers import AutoModelForCausalLM
        from musenet_hf.model.modeling_musenet import register_auto_classes
        register_auto_classes()
        torch.set_num_threads({torch.get_num_threads()})  # same reduction order as this process
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path / "model")!r}).eval()
        ids = torch.load({str(tmp_path / "ids.pt")!r})
        with torch.no_grad():
            out = model(ids, piece_seconds=3.0)
        torch.save({{"logits": out.logits, "critic": out.critic_logits, "cls": type(model).__name__}}, {str(tmp_path / "out.pt")!r})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        out = model(ids, piece_seconds=3.0)
    assert loaded["cls"] == "MuseNetForCausalLM"
    assert torch.equal(loaded["logits"], out.logits)
    # the critic's 1-row matmul may take another SIMD path on the loaded (memory-mapped) weights
    assert (loaded["critic"] - out.critic_logits).abs().max().item() < 1e-6


def test_auto_classes_know_musenet():
    register_auto_classes()
    register_auto_classes()  # twice is fine
    config = AutoConfig.for_model("musenet", hidden_size=32, num_attention_heads=2, num_hidden_layers=1)
    assert type(config) is MuseNetConfig
    assert type(AutoModelForCausalLM.from_config(config)) is MuseNetForCausalLM


def test_activation_checkpointing_gives_identical_gradients(song):
    tokens, _ = midi_tokens(song)
    ids = torch.tensor([tokens[1200:1300], tokens[1300:1400]])
    labels = ids.clone()
    critic_labels = torch.tensor([1.0, 0.0])

    def gradients(model):
        model.train()
        model.zero_grad()
        model(ids, labels=labels, critic_labels=critic_labels, piece_seconds=90.0).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    model = tiny_model(**LAYOUTS["strided-split_heads"])
    plain = gradients(model)
    calls = []
    model.model.h[0].attn.register_forward_hook(lambda *args: calls.append(1))
    model.activation_checkpointing_enable()
    assert all(block.gradient_checkpointing for block in model.model.h)
    checkpointed = gradients(model)
    assert len(calls) == 2  # the forward, and its recompute in the backward pass
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        assert (plain[name] - checkpointed[name]).abs().max().item() < 1e-6, name


def test_critic_loss_adds_to_the_lm_loss(song):
    model = tiny_model()
    tokens, _ = midi_tokens(song)
    ids = torch.tensor([tokens[10:40], tokens[50:80], tokens[90:120]])
    critic_labels = torch.tensor([1.0, 0.0, 1.0])
    out = model(ids, labels=ids, critic_labels=critic_labels)
    assert out.critic_logits.shape == (3,)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out.critic_logits, critic_labels)
    lm = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 4837), ids[:, 1:].reshape(-1))
    assert out.lm_loss.item() == pytest.approx(lm.item(), rel=1e-5)
    assert out.critic_loss.item() == pytest.approx(0.1 * bce.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(lm.item() + 0.1 * bce.item(), rel=1e-5)
    critic_only = model(ids, critic_labels=critic_labels)
    assert critic_only.loss.item() == pytest.approx(0.1 * bce.item(), rel=1e-5)
    assert model(ids).loss is None

    # the critic pools real tokens only: right padding does not change a sequence's score
    padded = torch.tensor([tokens[10:40] + [PAD] * 10])
    mask = torch.tensor([[1] * 30 + [0] * 10])
    with torch.no_grad():
        alone = model(ids[:1]).critic_logits
        with_padding = model(padded, attention_mask=mask).critic_logits
    assert (alone - with_padding).abs().item() < 1e-6

    no_critic = tiny_model(use_critic=False)
    assert no_critic.critic is None and no_critic(ids).critic_logits is None
    with pytest.raises(ValueError):
        no_critic(ids, critic_labels=critic_labels)


def test_repr_names_layout_and_backend():
    model = tiny_model(**LAYOUTS["fixed-split_heads"])
    assert "layout=fixed, block=16, stride=32 (heads 0-1: A, heads 2-3: B), backend=auto -> sdpa" in repr(model)
    model.set_attn_implementation("eager")
    assert "(heads 0-1: A, heads 2-3: B), backend=eager" in repr(model)


# ------------------------------------------------------------------------ attention implementations
# attn_implementation -> the backend it runs on a CPU (flex runs eagerly there; xformers falls back)
CPU_BACKENDS = {"sdpa": "sdpa", "eager": "eager", "flex_attention": "flex", "xformers": "sdpa"}


@pytest.mark.parametrize("layout", ["full", "strided-split_heads", "fixed-alternate"])
def test_attn_implementation_selects_the_backend_and_keeps_the_logits(tmp_path, layout):
    register_auto_classes()
    tiny_model(seed=5, **LAYOUTS[layout]).save_pretrained(tmp_path)
    ids = torch.tensor([[START, 1300, 1304, 3980, 1307, 60, 3990, 1310, 64, 3968] * 5])
    default = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert default.config._attn_implementation is None  # nothing requested: the saved attention_backend
    assert default.requested_attention_backend == "auto" and default.resolved_attention_backend() == "sdpa"
    with torch.no_grad():
        expected = default(ids, piece_seconds=3.0).logits
    for name, backend in CPU_BACKENDS.items():
        model = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation=name).eval()
        assert model.config._attn_implementation == name
        assert model.resolved_attention_backend() == backend, name
        with torch.no_grad():
            logits = model(ids, piece_seconds=3.0).logits
        assert (logits - expected).abs().max().item() < 1e-5, name
        if name == "eager":
            assert not torch.equal(logits, expected)  # another computation, not sdpa under another name
    # the request is not saved: the copy loads with the config's attention_backend again
    model.save_pretrained(tmp_path / "again")
    saved = (tmp_path / "again" / "config.json").read_text()
    assert '"attention_backend": "auto"' in saved and "attn_implementation" not in saved


def test_attn_implementation_from_the_config_and_set_attn_implementation():
    config = tiny_config(**LAYOUTS["strided-union"])
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = MuseNetForCausalLM(config).eval()
    assert model.resolved_attention_backend() == "eager"
    ids = torch.tensor([[START, 1300, 1304, 3980, 1307, 60, 3990, 1310, 64, 3968] * 4])
    with torch.no_grad():
        eager = model(ids).logits
    model.set_attn_implementation("sdpa")
    assert model.config._attn_implementation == "sdpa" and model.resolved_attention_backend() == "sdpa"
    with torch.no_grad():
        assert (model(ids).logits - eager).abs().max().item() < 1e-5
    model.config.attention_backend = "eager"  # a request wins over the config's default
    assert model.resolved_attention_backend() == "sdpa"
    with pytest.raises(ValueError):
        model.set_attn_implementation("flash_attention_2")
    assert model.config._attn_implementation == "sdpa"


def test_xformers_is_a_transformers_attention_name_for_other_models_too(monkeypatch):
    """Registering "xformers" makes it valid for every model that dispatches through Transformers'
    AttentionInterface; where its kernels do not run (a CPU) it computes what sdpa does."""
    import copy

    from transformers import GPT2Config, GPT2LMHeadModel

    from musenet_hf.model import attention_xformers

    calls = []
    monkeypatch.setattr(attention_xformers, "xformers_available", lambda *args: calls.append(args) or False)
    register_auto_classes()
    config = GPT2Config(vocab_size=50, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    torch.manual_seed(0)
    sdpa = GPT2LMHeadModel(config).eval()
    xformers = copy.deepcopy(sdpa)
    xformers.set_attn_implementation("xformers")
    assert xformers.config._attn_implementation == "xformers" and sdpa.config._attn_implementation == "sdpa"
    ids = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding: the mask must reach the registered function
    with torch.no_grad():
        expected = sdpa(ids, attention_mask=mask).logits
        assert torch.allclose(xformers(ids, attention_mask=mask).logits, expected, atol=1e-6)
    assert len(calls) == 2  # one call per layer went through the registered function


# -------------------------------------------------------------------------------- sounding notes
def test_sounding_notes_follow_every_note_of_real_music(song):
    """The sounding embedding's state against a plain loop over a real piece (musenet preset:
    slot 0 is the piano's note-off, 1-13 its volumes; then on/off pairs; drums never sound)."""
    from musenet_hf.tokenizer.vocabulary import MuseNetVocabulary

    v = MuseNetVocabulary.from_preset("musenet")
    model = tiny_model(**LAYOUTS["full+sounding"])
    tokens, _ = midi_tokens(song)
    ids = torch.tensor([tokens[:600], tokens[3000:3600]])
    got = model.model.embeddings.sounding_notes(ids)
    assert got.shape == (2, 600, 10 * 128)  # ten instruments; the drum kit's columns never sound
    assert not got[..., v.drum_index * 128:(v.drum_index + 1) * 128].any()
    for row in range(2):
        sounding: set[int] = set()
        for t, tid in enumerate(ids[row].tolist()):
            if v.is_note[tid] and v.note_instrument[tid] != v.drum_index:
                key = int(v.note_instrument[tid] * 128 + v.note_pitch[tid])
                (sounding.add if v.is_note_on[tid] else sounding.discard)(key)
            assert set(got[row, t].nonzero().flatten().tolist()) == sounding, (row, t)
    assert got.any(dim=-1).float().mean() > 0.5  # the song holds notes most of the time


def test_sounding_embedding_starts_at_zero_and_then_learns(song):
    """A zero sounding table changes nothing (a warm start computes what the model did); trained,
    it moves the logits of exactly the tokens that follow a different set of sounding notes."""
    layout = LAYOUTS["full+sounding"]
    plain = tiny_model(seed=3, attention_layout="full")
    model = tiny_model(seed=3, **layout)
    model.load_state_dict(plain.state_dict(), strict=False)
    torch.nn.init.zeros_(model.model.embeddings.embed_sounding.weight)
    tokens, length = midi_tokens(song)
    ids = torch.tensor([tokens[1000:1200]])
    with torch.no_grad():
        assert torch.equal(model(ids, piece_seconds=length).logits, plain(ids, piece_seconds=length).logits)
    torch.nn.init.normal_(model.model.embeddings.embed_sounding.weight, std=0.02)
    with torch.no_grad():
        diff = (model(ids, piece_seconds=length).logits - plain(ids, piece_seconds=length).logits).abs().amax(-1)[0]
    silent = ~model.model.embeddings.sounding_notes(ids)[0].any(-1)
    # causal: a position differs when some note sounded at it or before it
    ever = (~silent).cumsum(0) > 0
    assert (diff[~ever] < 1e-6).all() and (diff[ever] > 1e-6).all()


def test_silent_note_offs_have_zero_probability_also_in_cached_generation(song):
    """mask_silent_note_offs: after every token, exactly the note-offs of the notes not sounding
    are at the dtype's minimum; generate() with a cache masks what a full forward masks, and no
    sampled sequence ends a note it did not strike."""
    from musenet_hf.tokenizer.vocabulary import MuseNetVocabulary

    v = MuseNetVocabulary.from_preset("musenet")
    model = tiny_model(seed=2, attention_layout="full", mask_silent_note_offs=True, **_musenet_note_layout())
    from musenet_hf.training.data import continuation_ids

    from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

    tokens = MuseNetTokenizer.from_preset("musenet").encode_midi(song)[1:]  # from `start`
    length = float(v.wait_units[tokens].sum()) * 0.01
    # a window cut as training cuts it: the notes sounding at the cut are struck again
    win, _, _ = continuation_ids(v, np.array([START]), np.array(tokens[1:]), 2000, 200, add_end=False)
    ids = torch.as_tensor(win)[None]
    with torch.no_grad():
        logits = model(ids, piece_seconds=length).logits[0]
    low = torch.finfo(logits.dtype).min
    sounding = model.model.embeddings.sounding_notes(ids)[0]
    offs = torch.as_tensor(np.flatnonzero(v.is_note_off))
    keys = torch.as_tensor(v.note_instrument[offs] * 128 + v.note_pitch[offs])
    masked = logits[:, offs] == low
    assert torch.equal(masked, ~sounding[:, keys])
    assert masked.any() and (~masked).any() and not (logits[:, v.is_note_on] == low).any()
    # the real continuation never lands on a masked id: real music ends only notes that sound
    assert not (logits[:-1].gather(1, ids[0, 1:, None]) == low).any()
    # (a plain slice of the piece would: it ends notes struck before it)
    with torch.no_grad():
        cut = torch.tensor([tokens[2000:2200]])
        assert (model(cut, piece_seconds=length).logits[0, :-1].gather(1, cut[0, 1:, None]) == low).any()
    torch.manual_seed(0)
    out = model.generate(ids[:, :40], attention_mask=torch.ones_like(ids[:, :40]), do_sample=True, top_k=0,
                         max_new_tokens=120, min_new_tokens=120, piece_seconds=length, pad_token_id=PAD,
                         output_logits=True, return_dict_in_generate=True)
    seq = out.sequences[0].tolist()
    sounding_now: set[int] = set()
    for tid in seq:
        if v.is_note[tid] and v.note_instrument[tid] != v.drum_index:
            key = int(v.note_instrument[tid] * 128 + v.note_pitch[tid])
            if v.is_note_off[tid]:
                assert key in sounding_now, tid  # the model sees the window: its state starts there
                sounding_now.discard(key)
            else:
                sounding_now.add(key)
    with torch.no_grad():
        full = model(out.sequences, piece_seconds=length).logits[0, 39:-1]
    assert torch.equal(torch.stack(out.logits, 1)[0] == low, full == low)


def test_warm_start_begins_the_sounding_table_as_the_note_off_embeddings():
    from musenet_hf.training.training_config import start_sounding_as_note_offs

    model = tiny_model(seed=4, attention_layout="full", use_sounding_embedding=True, **_musenet_note_layout())
    e = model.model.embeddings
    torch.nn.init.zeros_(e.embed_sounding.weight)
    assert start_sounding_as_note_offs(model)
    piano_c4 = 0 * 128 + 60  # musenet preset: piano is instrument 0; its note-off of C4 is id 60
    assert int(e.off_id[piano_c4]) == 60
    assert torch.equal(e.embed_sounding.weight[piano_c4], e.embed_tokens.weight[60])
    drums = 9 * 128 + 36
    assert int(e.off_id[drums]) == -1 and not e.embed_sounding.weight[drums].any()
    assert not start_sounding_as_note_offs(model)  # a trained (non-zero) table is left alone


def test_end_has_zero_probability_while_a_note_sounds(song):
    """mask_end_while_sounding: `end` is at the dtype's minimum exactly after the tokens where a
    note sounds; a real piece's `end` (every note ended first) is never masked; with a cache the
    rule holds in generate(), so a sampled piece that ends has ended all its notes."""
    from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer
    from musenet_hf.tokenizer.vocabulary import MuseNetVocabulary

    v = MuseNetVocabulary.from_preset("musenet")
    model = tiny_model(seed=3, attention_layout="full", mask_end_while_sounding=True, **_musenet_note_layout())
    tokens = MuseNetTokenizer.from_preset("musenet").encode_midi(song)
    assert tokens[-1] == v.end_id
    ids = torch.tensor([tokens[-120:]])  # the piece's last 120 tokens, `end` included
    with torch.no_grad():
        logits = model(ids).logits[0]
    low = torch.finfo(logits.dtype).min
    sounding = model.model.embeddings.sounding_notes(ids)[0].any(-1)
    assert torch.equal(logits[:, v.end_id] == low, sounding)
    assert sounding.any() and (~sounding).any()
    assert logits[-2, v.end_id] > low  # before the real `end`, nothing sounds
    assert not (logits[:, v.is_note_off] == low).any()  # the note-off rule is a separate switch
    # generate() with a cache: after every sampled token, `end` is masked exactly while a note sounds
    prompt = ids[:, :40]
    torch.manual_seed(0)
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_k=0, max_new_tokens=40,
                         min_new_tokens=40, pad_token_id=PAD, output_logits=True, return_dict_in_generate=True)
    seq = out.sequences
    masked = torch.stack([step[0, v.end_id] == low for step in out.logits])  # (40,)
    sounding_before = model.model.embeddings.sounding_notes(seq)[0, prompt.shape[1] - 1: -1].any(-1)
    assert torch.equal(masked, sounding_before) and masked.any()


@pytest.mark.parametrize("last", [1, 3])
def test_structure_of_the_last_tokens_equals_the_full_calls_last_rows(song, last):
    """What a decoding step computes (the last tokens' indices, the state after the sequence for one)
    is exactly the full computation's last rows: sounding notes, composers seen, time, chord, part."""
    tokens, seconds = midi_tokens(song)
    from musenet_hf.tokenizer.vocabulary import MuseNetVocabulary

    composers = MuseNetVocabulary.from_preset("musenet").model_config_kwargs()["composer_token_ids"]
    model = tiny_model(use_sounding_embedding=True, use_composer_embedding=True, composer_token_ids=composers,
                       **_musenet_note_layout())
    ids = torch.tensor([tokens[:700], tokens[300:1000]])
    ids[:, 0] = composers[3]  # a label at the window's start, seen by every later token
    piece, offset = torch.tensor([seconds, seconds], dtype=torch.float64), torch.tensor([0.0, 12.5], dtype=torch.float64)
    full = model.structure_ids(ids, piece, offset)
    tail = model.structure_ids(ids, piece, offset, last=last)
    assert set(full) == set(tail) and {"sounding_notes", "composers_seen"} <= set(full)
    for name, value in full.items():
        assert torch.equal(tail[name], value[:, -last:]), name
    assert bool(full["sounding_notes"][:, -1].any())  # something sounds: the check is not vacuous


def test_the_growing_cache_gives_the_dynamic_caches_logits_through_growth_and_crops():
    """Decoding step by step past several doublings of its buffers, with a crop and a row selection on
    the way: the logits equal those of Transformers' DynamicCache."""
    from transformers.cache_utils import DynamicCache

    from musenet_hf.model.cache import MIN_CAPACITY, GrowingCache

    model = tiny_model(max_position_embeddings=512)
    tokens = torch.randint(0, model.config.vocab_size, (2, 400), generator=torch.Generator().manual_seed(0))

    def decode(cache) -> list[torch.Tensor]:
        ids, logits = tokens.clone(), []
        step = lambda t: model(input_ids=ids[:, t - 1: t], cache=cache, use_cache=True,  # noqa: E731
                               **model.structure_ids(ids[:, :t], last=1)).logits[:, -1]
        with torch.no_grad():
            model(input_ids=ids[:, :10], cache=cache, use_cache=True)
            for t in range(11, 5 * MIN_CAPACITY):
                if t == 150:  # back 5 tokens, fed again
                    cache.crop(-5)
                    for s in range(t - 5, t):
                        step(s)
                if t == 250:  # the rows swapped
                    cache.batch_select_indices(torch.tensor([1, 0]))
                    ids = ids.flip(0)
                logits.append(step(t))
        return logits

    dynamic, growing = decode(DynamicCache(config=model.config)), decode(cache := GrowingCache(config=model.config))
    assert cache.layers[0]._buffers[0].shape[-2] >= 4 * MIN_CAPACITY  # it grew, several times
    for a, b in zip(dynamic, growing):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
