"""Generation: logits processors, prompts and primers, long form, critic reranking.

The model is a tiny randomly initialised MuseNetForCausalLM (configs/musenet-tiny.json with the
musenet vocabulary's facts): it samples close to uniformly, which is the hardest case for the
processors (most random tokens break the grammar). Acceptance numbers are printed (pytest -s).
"""


import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList

from musenet_hf.training.critic import critic_scores, rerank
from musenet_hf.generation.generate import (
    build_prompt,
    cut_primer,
    default_logits_processors,
    generate_long,
    split_prompt,
)
from musenet_hf.generation.logits_processors import (
    InstrumentSteeringLogitsProcessor,
    MusicGrammarLogitsProcessor,
    NoteStateTracker,
    TargetLengthLogitsProcessor,
    grammar_violations,
    resolve_instruments,
)

from midi_fixtures import SOURCES, primer_piece


# `vocab` (the musenet preset) and `tiny` (a random MuseNetForCausalLM) come from conftest.py
pytestmark = pytest.mark.usefixtures("one_thread")


def prompt_batch(vocab, batch, instruments=("piano", "violin")):
    ids = [vocab.composer_id("bach"), vocab.instrumentation_id(list(instruments)), vocab.start_id]
    return torch.tensor([ids] * batch)


def sample(model, vocab, prompt, procs, new_tokens, **kw):
    torch.manual_seed(kw.pop("seed", 0))
    with torch.no_grad():
        return model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_k=0,
                              max_new_tokens=new_tokens, logits_processor=LogitsProcessorList(procs),
                              pad_token_id=vocab.pad_id, eos_token_id=vocab.end_id, **kw)


def note_ons(vocab, ids):
    """Instrument index of every note-on after the prompt."""
    return [int(vocab.note_instrument[t]) for t in ids if vocab.is_note_on[t]]


# ------------------------------------------------------------------ state tracking
def reference_state(vocab, ids):
    """(sounding keys, units) by walking the ids in Python."""
    sounding, units = set(), 0
    for t in ids:
        units += int(vocab.wait_units[t])
        if vocab.is_note[t]:
            key = int(vocab.note_instrument[t]) * 128 + int(vocab.note_pitch[t])
            if vocab.is_note_off[t]:
                sounding.discard(key)
            elif vocab.note_instrument[t] != vocab.drum_index:
                sounding.add(key)
    return sounding, units


def test_tracker_incremental_matches_reference_and_survives_reordering(vocab):
    g = torch.Generator().manual_seed(1)
    # notes of 3 instruments on 6 pitches (so ons and offs collide often), waits, drums
    pool = [vocab.note_id(i, vel, p) for i in ("piano", "violin", "drums") for vel in (0, 80) for p in range(60, 66)
            if not (i == "drums" and vel == 0)] + vocab.wait_ids(5) + vocab.wait_ids(128)
    ids = torch.tensor(pool)[torch.randint(len(pool), (6, 120), generator=g)]
    tracker = NoteStateTracker(vocab)
    for t in range(1, 121):
        st = tracker.state(ids[:, :t])
        for b in range(6):
            keys, units = reference_state(vocab, ids[b, :t].tolist())
            assert set(st.sounding[b].nonzero().flatten().tolist()) == keys
            assert int(st.units[b]) == units
    # beam search reorders rows between steps: the tracker must notice and recompute
    perm = torch.tensor([3, 3, 0, 5, 1, 2])
    st = tracker.state(torch.cat([ids[perm], ids[perm][:, :1]], dim=1))
    for b in range(6):
        keys, _ = reference_state(vocab, ids[perm[b]].tolist() + [int(ids[perm[b], 0])])
        assert set(st.sounding[b].nonzero().flatten().tolist()) == keys


def test_tracker_initial_state_carries_a_window(vocab):
    piano_c = vocab.note_id("piano", 80, 60)
    body = [piano_c, vocab.note_id("violin", 80, 67)] + vocab.wait_ids(50) + [vocab.note_id("violin", 0, 67)]
    head, window = body[:3], body[3:]
    tracker = NoteStateTracker(vocab)
    full = tracker.compute(torch.tensor([body]))
    start = tracker.compute(torch.tensor([head]))
    tracker.set_initial_state(start.sounding[:, :-1], start.units)
    windowed = tracker.state(torch.tensor([[vocab.start_id] + window]))
    assert torch.equal(windowed.sounding, full.sounding) and int(windowed.units) == int(full.units) == 50
    assert windowed.sounding[0, 60] and not windowed.sounding[0, 128 + 67]  # piano C4 still sounds


# ------------------------------------------------------------------ grammar
def test_grammar_masks_exactly_the_invalid_tokens(vocab):
    piano_on, piano_off = vocab.note_id("piano", 80, 60), vocab.note_id("piano", 0, 60)
    ids = torch.tensor([[vocab.composer_id("bach"), vocab.start_id, piano_on]])
    proc = MusicGrammarLogitsProcessor(vocab, min_seconds=1.0)
    out = proc(ids, torch.zeros(1, len(vocab)))[0]
    assert out[piano_off] == 0 and out[piano_on] == -float("inf")  # off allowed, second on not
    assert out[vocab.note_id("piano", 0, 61)] == -float("inf")  # off of a silent note
    assert out[vocab.note_id("drums", 80, 36)] == 0 and out[vocab.wait_ids(10)[0]] == 0
    for special in (vocab.start_id, vocab.end_sample_id, vocab.pad_id, vocab.composer_id("mozart"),
                    vocab.instrumentation_id(["piano"]), vocab.end_id):  # end: a note sounds, 0 s < 1 s
        assert out[special] == -float("inf")
    # after the note ends and 1 s passes, end is allowed
    ids = torch.cat([ids, torch.tensor([[piano_off] + vocab.wait_ids(100)])], dim=1)
    assert proc(ids, torch.zeros(1, len(vocab)))[0, vocab.end_id] == 0
    # before start only the prefix
    pre = proc(torch.tensor([[vocab.composer_id("bach")]]), torch.zeros(1, len(vocab)))[0]
    assert pre[vocab.start_id] == 0 and pre[piano_on] == -float("inf") and pre[vocab.end_id] == -float("inf")


@pytest.mark.parametrize("temperatures,per_temperature", [((0.5, 1.0, 1.5, 2.0), 50)])
def test_grammar_acceptance_200_pieces(vocab, tiny, temperatures, per_temperature):
    """Every one of 200 sampled pieces is valid with the processor; without it most are not."""
    from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

    tok = MuseNetTokenizer(vocabulary=vocab)
    prompt = prompt_batch(vocab, per_temperature)
    bad_with = bad_without = decoded_notes = 0
    for k, temp in enumerate(temperatures):
        with_p = sample(tiny, vocab, prompt, [MusicGrammarLogitsProcessor(vocab)], 60, temperature=temp, seed=k)
        without = sample(tiny, vocab, prompt, [], 60, temperature=temp, seed=k)
        for row in with_p.tolist():
            assert grammar_violations(vocab, row) == [], row
            notes = tok.decode_to_notes(row)
            assert all(n.end >= n.start for n in notes)
            decoded_notes += len(notes)
        bad_without += sum(bool(grammar_violations(vocab, row)) for row in without.tolist())
    n = len(temperatures) * per_temperature
    print(f"\ngrammar: {n} pieces at T={temperatures}: invalid with processor {bad_with}/{n}, "
          f"without {bad_without}/{n}; {decoded_notes} notes decoded")
    assert bad_without > n // 2  # a random model breaks the grammar all the time


def test_grammar_under_beam_search(vocab, tiny):
    torch.manual_seed(0)
    prompt = prompt_batch(vocab, 2)
    with torch.no_grad():
        out = tiny.generate(prompt, attention_mask=torch.ones_like(prompt), num_beams=3, do_sample=False,
                            max_new_tokens=40, logits_processor=LogitsProcessorList([MusicGrammarLogitsProcessor(vocab)]),
                            pad_token_id=vocab.pad_id, eos_token_id=vocab.end_id)
    for row in out.tolist():
        assert grammar_violations(vocab, row) == []


def test_processors_work_with_any_model(vocab):
    """A GPT-2 of the vocabulary's size: no MuseNet-specific inputs needed."""
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_positions=128, n_embd=32, n_layer=1, n_head=2,
                                       bos_token_id=vocab.start_id, eos_token_id=vocab.end_id, pad_token_id=vocab.pad_id)).eval()
    procs = default_logits_processors(vocab, seconds=2.0, instruments="piano", steering="hard")
    out = sample(gpt2, vocab, prompt_batch(vocab, 8, ("piano",)), procs, 100)
    for row in out.tolist():
        assert grammar_violations(vocab, row) == []
        assert set(note_ons(vocab, row)) <= {vocab.instrument_index["piano"]}


# ------------------------------------------------------------------ steering
def test_hard_steering_100_samples(vocab, tiny):
    procs = [InstrumentSteeringLogitsProcessor(vocab, ["piano", "violin"], mode="hard"), MusicGrammarLogitsProcessor(vocab)]
    out = sample(tiny, vocab, prompt_batch(vocab, 100), procs, 40)
    ons = [i for row in out.tolist() for i in note_ons(vocab, row)]
    allowed = {vocab.instrument_index["piano"], vocab.instrument_index["violin"]}
    share = sum(i in allowed for i in ons) / len(ons)
    print(f"\nhard steering: {len(ons)} note-ons over 100 samples, {100 * share:.1f}% on piano/violin")
    assert len(ons) > 500 and share == 1.0


def test_soft_steering_raises_the_share(vocab, tiny):
    wanted = {vocab.instrument_index["violin"], vocab.instrument_index["flute"]}
    shares = {}
    for name, strength in (("none", None), ("soft 2", 2.0), ("soft 4", 4.0)):
        procs = [MusicGrammarLogitsProcessor(vocab)]
        if strength is not None:
            procs.insert(0, InstrumentSteeringLogitsProcessor(vocab, "violin,flute", mode="soft", strength=strength))
        out = sample(tiny, vocab, prompt_batch(vocab, 100, ("strings", "winds")), procs, 30)
        ons = [i for row in out.tolist() for i in note_ons(vocab, row)]
        shares[name] = sum(i in wanted for i in ons) / len(ons)
    print("\nsoft steering, share of violin+flute note-ons: " + ", ".join(f"{k} {100 * s:.1f}%" for k, s in shares.items()))
    assert shares["none"] < 0.2 < shares["soft 2"] < shares["soft 4"]


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_steering_chooses_the_instrument_not_whether_to_strike(vocab, mode):
    """Steering moves note-on probability between instruments only: P(note-on), every wait,
    note-off and `end` keep the model's probability, and the requested instruments keep their
    proportions among themselves (soft: odds x e**strength against the others)."""
    torch.manual_seed(0)
    scores = torch.randn(4, len(vocab)) * 3
    scores[:, vocab.end_id] = float("-inf")  # processors before it may have masked tokens
    steer = InstrumentSteeringLogitsProcessor(vocab, "violin,flute", mode=mode, strength=4.0)
    p, q = scores.softmax(-1), steer(torch.zeros(4, 3, dtype=torch.long), scores.clone()).softmax(-1)
    on = torch.as_tensor(vocab.is_note_on)
    req = on & torch.isin(torch.as_tensor(vocab.note_instrument),
                          torch.tensor([vocab.instrument_index["violin"], vocab.instrument_index["flute"]]))
    torch.testing.assert_close(q[:, on].sum(1), p[:, on].sum(1))  # P(note-on) kept
    torch.testing.assert_close(q[:, ~on], p[:, ~on])  # waits, note-offs, end: untouched
    torch.testing.assert_close(q[:, req] / q[:, req].sum(1, keepdim=True), p[:, req] / p[:, req].sum(1, keepdim=True))
    odds_before = p[:, req].sum(1) / p[:, on & ~req].sum(1)
    if mode == "soft":
        torch.testing.assert_close(q[:, req].sum(1) / q[:, on & ~req].sum(1), odds_before * torch.e ** 4.0)
    else:
        assert float(q[:, on & ~req].sum()) == 0.0


def test_hard_steering_onto_an_unlikely_instrument_keeps_the_note_rate(vocab, tiny):
    """A model that would strike notes on other instruments still strikes as many notes when hard
    steering moves them onto the flute (the old rule dropped those note-ons and mostly waited)."""
    from transformers import LogitsProcessor

    class PreferPiano(LogitsProcessor):  # a model that strikes piano notes, never flute ones
        def __init__(self):
            self.bias = torch.zeros(len(vocab))
            self.bias[torch.as_tensor(vocab.is_note_on & (vocab.note_instrument == vocab.instrument_index["piano"]))] = 6.0

        def __call__(self, input_ids, scores):
            return scores + self.bias[: scores.shape[1]]

    def count(procs):
        out = sample(tiny, vocab, prompt_batch(vocab, 20, ("piano",)), procs, 60)
        return [i for row in out.tolist() for i in note_ons(vocab, row)]

    free = count([PreferPiano(), MusicGrammarLogitsProcessor(vocab)])
    steered = count([PreferPiano(), InstrumentSteeringLogitsProcessor(vocab, "flute", mode="hard"),
                     MusicGrammarLogitsProcessor(vocab)])
    print(f"\nnote-ons in 20 x 60 tokens: free {len(free)}, hard-steered onto flute {len(steered)}")
    assert set(steered) == {vocab.instrument_index["flute"]}
    assert len(steered) > 0.7 * len(free)


def test_resolve_instruments_groups_and_errors(vocab):
    idx = vocab.instrument_index
    assert resolve_instruments(vocab, "piano,strings") == [idx["piano"], idx["violin"], idx["cello"]]
    assert resolve_instruments(vocab, ["winds"]) == [idx["flute"], idx["clarinet"], idx["trumpet"]]
    with pytest.raises(ValueError, match="unknown instrument 'kazoo'"):
        resolve_instruments(vocab, "kazoo")


# ------------------------------------------------------------------ length
def test_target_length_ends_within_tolerance(vocab, tiny):
    tracker = NoteStateTracker(vocab)
    procs = [MusicGrammarLogitsProcessor(vocab, max_polyphony=6, tracker=tracker),
             TargetLengthLogitsProcessor(vocab, 3.0, tracker=tracker)]
    out = sample(tiny, vocab, prompt_batch(vocab, 20), procs, 250)
    lengths = []
    for row in out.tolist():
        assert vocab.end_id in row and grammar_violations(vocab, row) == []
        lengths.append(vocab.seconds(row))
    print(f"\ntarget 3.0 s: lengths {min(lengths):.2f}-{max(lengths):.2f} s over 20 pieces")
    assert all(2.7 - 1e-9 <= s <= 3.3 + 1e-9 for s in lengths)


def test_long_form_beyond_the_context(vocab, tiny):
    """A piece longer than the 256-token context: more tokens, ends on time, positions consistent."""
    context = tiny.config.max_position_embeddings
    prompt = prompt_batch(vocab, 1)[0].tolist()
    torch.manual_seed(0)
    procs = default_logits_processors(vocab, seconds=12.0)
    out = generate_long(tiny, vocab, prompt, seconds=12.0, num_samples=2, step=64, logits_processor=procs,
                        progress=False, top_k=0)
    for seq, done, secs in zip(out.sequences, out.finished, out.seconds):
        assert len(seq) > context
        assert done and seq[-1] == vocab.end_id and 10.8 - 1e-9 <= secs <= 13.2 + 1e-9
        assert grammar_violations(vocab, seq) == []  # the state carried across every window
    assert len(out.windows) >= 3
    # The part/countdown each window gave its tokens equal those of the whole piece seen at once,
    # so they are monotonic: parts never go down, the countdown never goes up.
    p = out.prefix_length
    for s_i, seq in enumerate(out.sequences):
        full = tiny.structure_ids(torch.tensor([seq]), 12.0, 0.0)
        part, count = full["part_ids"][0, p:], full["countdown_ids"][0, p:]
        assert (part.diff() >= 0).all() and (count.diff() <= 0).all() and part[-1] > 100
        body = seq[p:]
        for w in out.windows:
            if s_i not in w["rows"]:
                continue
            r = w["rows"].index(s_i)
            start, stop = w["body_start"], min(len(body), w["body_start"] + context - p)
            win = torch.tensor([seq[:p] + body[start:stop]])
            ids = tiny.structure_ids(win, 12.0, w["time_offset_seconds"][r])
            assert torch.equal(ids["part_ids"][0, p:], part[start:stop])
            assert torch.equal(ids["countdown_ids"][0, p:], count[start:stop])
            assert abs(w["time_offset_seconds"][r] - float(vocab.wait_units[body[:start]].sum()) * 0.01) < 1e-9


# ------------------------------------------------------------------ critic
def test_critic_scores_and_rerank(vocab, tiny):
    out = sample(tiny, vocab, prompt_batch(vocab, 3), [MusicGrammarLogitsProcessor(vocab)], 60)
    short = [row for row in out.tolist()]
    scores = critic_scores(tiny, vocab, short)
    with torch.no_grad():  # one window each: the critic logit of a plain forward
        direct = [float(tiny(torch.tensor([s]), piece_seconds=vocab.seconds(s)).critic_logits[0]) for s in short]
    assert scores == pytest.approx(direct, abs=1e-5)
    assert rerank([0.1, 0.7, -2.0, 0.7]) == [1, 3, 0, 2]
    # a sequence longer than the window is scored as the mean of its windows
    long_seq = short[0][:3] + short[0][3:] * 4
    s_long = critic_scores(tiny, vocab, [long_seq], seconds=[8.0], max_window=64)[0]
    prefix, body = split_prompt(vocab, long_seq)
    room, windows, units = 64 - len(prefix), [], 0
    for start in range(0, len(body), room):  # prefix + each body chunk, placed where it sits in the piece
        chunk = body[start:start + room]
        windows.append((prefix + chunk, units * vocab.wait_unit_seconds))
        units += int(vocab.wait_units[chunk].sum())
    assert len(windows) > 1
    with torch.no_grad():
        each = [float(tiny(torch.tensor([w]), piece_seconds=torch.tensor([8.0], dtype=torch.float64),
                           time_offset_seconds=torch.tensor([offset], dtype=torch.float64)).critic_logits[0])
                for w, offset in windows]
    assert isinstance(s_long, float) and s_long == pytest.approx(sum(each) / len(each), abs=1e-5)


# ------------------------------------------------------------------ prompts
def test_prompt_prefix_and_blend(vocab):
    from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

    tok = MuseNetTokenizer(vocabulary=vocab)
    ids = build_prompt(tok, composer=("bach", "mozart"), instruments="piano,violin")
    assert ids == [vocab.composer_id("bach"), vocab.composer_id("mozart"), vocab.instrumentation_id(["piano", "strings"]),
                   vocab.start_id]
    assert build_prompt(tok) == [vocab.start_id]
    with pytest.raises(KeyError):
        build_prompt(tok, composer="nobody-at-all")


@pytest.mark.parametrize("source", SOURCES)
def test_primer_cut_by_seconds_and_notes(vocab, source, made_midi):
    from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

    tok = MuseNetTokenizer(vocabulary=vocab)
    path = primer_piece(source, made_midi)
    full = tok.encode_midi(path, add_end=False)
    _, full_body = split_prompt(vocab, full)
    ids = build_prompt(tok, composer="bach", primer=path, primer_seconds=5.0)
    prefix, body = split_prompt(vocab, ids)
    assert prefix[0] == vocab.composer_id("bach") and vocab.is_instrumentation[prefix[1]]
    assert body == full_body[: len(body)] and 0 < len(body) < len(full_body)
    # cut at the first wait that would carry the primer past 5 s
    assert vocab.seconds(body) <= 5.0 < vocab.seconds(full_body[: len(body) + 1])
    ids = build_prompt(tok, primer=path, primer_notes=10, instruments="piano")
    _, body = split_prompt(vocab, ids)
    assert sum(bool(vocab.is_note_on[t]) for t in body) == 10 and vocab.is_note_on[body[-1]]
    at_zero = cut_primer(vocab, full_body, seconds=0.0)  # the events of the first moment only
    assert at_zero and not any(vocab.is_wait[t] for t in at_zero) and vocab.is_wait[full_body[len(at_zero)]]


# ------------------------------------------------------------------ issue 12: no silent pieces, Ctrl-C
def test_grammar_requires_a_first_note_within_the_silence_bound(vocab):
    """Issue 12, item 1: after `start`, no wait may carry a piece with no note past
    max_silence_seconds, at the bound only note-ons are left, and `end` needs a note first."""
    inf = -float("inf")
    head = [vocab.composer_id("bach"), vocab.start_id]
    proc = MusicGrammarLogitsProcessor(vocab)  # default bound: 2 s
    assert proc.max_silence_units == 200
    out = proc(torch.tensor([head]), torch.zeros(1, len(vocab)))[0]
    assert out[vocab.end_id] == inf  # no empty piece
    assert out[vocab.wait_ids(100)[0]] == 0 and out[vocab.note_id("flute", 80, 72)] == 0
    near = proc(torch.tensor([head + vocab.wait_ids(190)]), torch.zeros(1, len(vocab)))[0]
    assert near[vocab.wait_ids(10)[0]] == 0 and near[vocab.wait_ids(11)[0]] == inf  # no wait past 2 s
    at = proc(torch.tensor([head + vocab.wait_ids(200)]), torch.zeros(1, len(vocab)))[0]
    allowed = (at > inf).nonzero().flatten()
    assert len(allowed) > 0 and all(vocab.is_note_on[int(t)] for t in allowed)  # strike a note, nothing else
    # after a note (drums count too) the rule is gone
    for note in (vocab.note_id("piano", 80, 60), vocab.note_id("drums", 80, 36)):
        ids = head + vocab.wait_ids(200) + [note]
        if vocab.note_instrument[note] != vocab.drum_index:
            ids.append(vocab.note_id("piano", 0, 60))
        later = proc(torch.tensor([ids]), torch.zeros(1, len(vocab)))[0]
        assert later[vocab.wait_ids(128)[0]] == 0 and later[vocab.end_id] == 0
    # a sliding window: with an initial state the piece may have struck notes before it
    tracker = NoteStateTracker(vocab)
    windowed = MusicGrammarLogitsProcessor(vocab, tracker=tracker)
    keys = len(vocab.instruments) * 128
    tracker.set_initial_state(torch.zeros(1, keys, dtype=torch.bool), torch.tensor([500]), started=True)
    out = windowed(torch.tensor([head]), torch.zeros(1, len(vocab)))[0]
    assert out[vocab.wait_ids(128)[0]] == 0 and out[vocab.end_id] == 0
    tracker.set_initial_state(torch.zeros(1, keys, dtype=torch.bool), torch.tensor([500]), started=True, struck=False)
    out = windowed(torch.tensor([head]), torch.zeros(1, len(vocab)))[0]
    assert out[vocab.wait_ids(1)[0]] == inf and out[vocab.end_id] == inf
    tracker.reset()
    # the bound switched off: the old behaviour
    free = MusicGrammarLogitsProcessor(vocab, max_silence_seconds=None)
    out = free(torch.tensor([head + vocab.wait_ids(500)]), torch.zeros(1, len(vocab)))[0]
    assert out[vocab.end_id] == 0 and out[vocab.wait_ids(128)[0]] == 0


def test_a_model_that_wants_silence_still_plays(vocab, tiny):
    """Issue 12, item 1: a model pushed to wait and end (a bias far above anything else) still
    strikes a note within 2 s of every piece, under the default processors."""

    class WantsSilence(torch.nn.Module):  # a LogitsProcessor in front: waits and end +50
        def __call__(self, input_ids, scores):
            scores = scores.clone()
            scores[:, vocab.first_wait_id: vocab.first_wait_id + vocab.config.max_wait] += 50.0
            scores[:, vocab.end_id] += 50.0
            return scores

    procs = [WantsSilence()] + list(default_logits_processors(vocab, seconds=6.0, instruments="flute", steering="hard"))
    out = sample(tiny, vocab, prompt_batch(vocab, 8, ("winds",)), procs, 200)
    for row in out.tolist():
        body = row[3:]
        first = next(i for i, t in enumerate(body) if vocab.is_note_on[t])
        assert vocab.seconds(body[:first]) <= 2.0
        assert vocab.note_instrument[body[first]] == vocab.instrument_index["flute"]
        assert grammar_violations(vocab, row) == []


def test_generate_long_on_ctrl_c_keeps_the_music_so_far(vocab, tiny, monkeypatch):
    """Issue 12, item 5: Ctrl-C inside generate() (here: the model's 150th forward, in a later
    window) raises GenerationInterrupted with every sample as far as it got, the interrupted
    call's tokens included, valid, and decodable with every note closed."""
    from conftest import interrupt_forward_at
    from musenet_hf.generation.generate import GenerationInterrupted
    from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

    interrupt_forward_at(monkeypatch, tiny, 150)
    torch.manual_seed(0)
    prompt = prompt_batch(vocab, 1)[0].tolist()
    with pytest.raises(GenerationInterrupted) as caught:
        generate_long(tiny, vocab, prompt, seconds=60.0, num_samples=2, max_window=64, step=16, progress=False,
                      max_new_tokens=10_000)
    assert isinstance(caught.value, KeyboardInterrupt)
    out = caught.value.output
    assert len(out.windows) >= 3 and not any(out.finished)
    assert out.windows[-1]["new_tokens"] > 0  # the interrupted call's tokens are kept
    tok = MuseNetTokenizer(vocabulary=vocab)
    for seq in out.sequences:
        body = seq[out.prefix_length:]
        # every window before the interrupted one, plus the interrupted call's tokens (one fewer
        # than its forwards: the last token was being sampled)
        assert len(body) >= sum(w["new_tokens"] for w in out.windows[:-1]) > 0
        assert grammar_violations(vocab, seq) == [] and vocab.end_id not in seq
        notes = tok.decode_to_notes(seq)
        assert notes and all(n.end >= n.start for n in notes)
