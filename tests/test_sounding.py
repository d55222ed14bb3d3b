"""The one implementation of which notes sound (``musenet_hf.tokenizer.sounding``) against a slow
walk over the tokens, on random sequences (re-struck notes, note-offs of silent notes, drum hits,
non-note tokens) and on real music; and the grammar rule its two users (the grammar processor and
the model's masks) read from it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from musenet_hf.generation.generate import _held_at_cut
from musenet_hf.generation.logits_processors import MusicGrammarLogitsProcessor, NoteStateTracker
from musenet_hf.model.configuration_musenet import MuseNetConfig
from musenet_hf.model.embeddings_musenet import note_key_tables
from musenet_hf.model.modeling_musenet import MuseNetForCausalLM
from musenet_hf.tokenizer.sounding import NoteKeys, note_key, sounding_note_ons
from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer

from midi_fixtures import band

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def walk(v, ids):
    """After each token of ``ids``: ``(sounding, last)``, the sounding keys mapped to their note-on
    ``(position, id)``, and each key's latest event position; one Python step per token."""
    sounding, last, states = {}, {}, []
    for i, tid in enumerate(ids):
        if v.is_note[tid] and v.note_instrument[tid] != v.drum_index:
            key = int(v.note_instrument[tid]) * 128 + int(v.note_pitch[tid])
            last[key] = i
            if v.is_note_on[tid]:
                sounding.pop(key, None)  # struck again: it sounds from its newest note-on
                sounding[key] = (i, tid)
            else:
                sounding.pop(key, None)  # a note-off of a silent key changes nothing
        states.append((dict(sounding), dict(last)))
    return states


def random_rows(v, rows: int, length: int, seed: int) -> np.ndarray:
    """Notes of every slot (drums included) on 6 pitches, so keys are struck again and released
    when silent; waits, and now and then start, a composer or pad."""
    rng = np.random.default_rng(seed)
    notes = rng.integers(0, len(v.slots), (rows, length)) * 128 + rng.integers(58, 64, (rows, length))
    waits = rng.integers(v.first_wait_id, v.first_wait_id + 8, (rows, length))
    others = rng.choice([v.start_id, v.first_composer_id, v.pad_id, v.end_id], (rows, length))
    pick = rng.random((rows, length))
    return np.where(pick < 0.75, notes, np.where(pick < 0.95, waits, others))


def real_rows(tok, length: int) -> np.ndarray:
    """Slices of made band music (drums, bass, chords, melody): its opening, a slice from its
    middle (it releases notes struck before it) and its close."""
    ids = np.asarray(tok.encode_midi(band(bars=24)))
    assert len(ids) >= 3 * length
    middle = (len(ids) - length) // 2
    return np.stack([ids[:length], ids[middle:middle + length], ids[len(ids) - length:]])


@pytest.fixture(scope="module", params=["musenet", "extended"])
def tok(request) -> MuseNetTokenizer:
    return MuseNetTokenizer.from_preset(request.param)


@pytest.fixture(scope="module", params=["random", "real"])
def rows(request, tok) -> np.ndarray:
    v = tok.vocabulary
    ids = random_rows(v, 4, 300, seed=7) if request.param == "random" else real_rows(tok, 400)
    if request.param == "random":  # the cases the walk must agree on are there
        on, off = v.is_note_on[ids], v.is_note_off[ids]
        assert (v.note_instrument[ids[on]] == v.drum_index).any() and off.any()
    return ids


def test_tables_of_a_config_and_of_a_vocabulary_agree(tok):
    v = tok.vocabulary
    keys = NoteKeys.of_vocabulary(v)
    from_config = note_key_tables(MuseNetConfig(**v.model_config_kwargs()))
    for name, table in keys.tables().items():
        assert torch.equal(table, getattr(from_config, name)), name
    notes = np.arange(v.num_note_tokens)
    pitched = v.note_instrument[notes] != v.drum_index
    expected = np.where(pitched, v.note_instrument[notes] * 128 + v.note_pitch[notes], keys.num_keys)
    assert keys.note_key[: v.num_note_tokens].tolist() == expected.tolist()
    assert (keys.note_key[v.num_note_tokens:] == keys.num_keys).all()
    assert keys.strikes.numpy().tolist() == (v.is_note_on & (v.note_instrument != v.drum_index)).tolist()
    assert note_key(2, 61) == 2 * 128 + 61 and keys.num_keys == len(v.instruments) * 128


def test_the_state_after_each_token_and_after_the_last(tok, rows):
    """Per position (the model's sounding embedding), after the last token with and without an
    initial state (the tracker from scratch), one token at a time (the tracker incrementally) and
    the strike order (the data pipeline): each equals the walk."""
    v = tok.vocabulary
    keys = NoteKeys.of_vocabulary(v)
    ids = torch.as_tensor(rows)
    each = keys.sounding_after_each(ids)
    assert each.shape == (*ids.shape, keys.num_keys) and each.dtype == torch.bool
    rng = np.random.default_rng(0)
    initial = torch.zeros(len(rows), keys.num_keys + 1, dtype=torch.bool)
    initial[:, :-1] = torch.as_tensor(rng.random((len(rows), keys.num_keys)) < 0.05) & (keys.off_id >= 0)
    sounding, last = keys.sounding_after(ids)
    from_initial, _ = keys.sounding_after(ids, initial)
    stepped = initial.clone()
    for t in range(ids.shape[1]):
        keys.strike(stepped, ids[:, t])
    for r, row in enumerate(rows.tolist()):
        states = walk(v, row)
        for t, (now, _) in enumerate(states):
            assert set(each[r, t].nonzero().flatten().tolist()) == set(now), (r, t)
        now, latest = states[-1]
        assert set(sounding[r].nonzero().flatten().tolist()) == set(now)
        assert {k: int(last[r, k]) for k in latest} == latest
        untouched = torch.ones(keys.num_keys + 1, dtype=torch.bool)
        untouched[list(latest)] = False
        assert not sounding[r, -1] and (last[r, :-1][untouched[:-1]] == -1).all()
        expected = set(now) | {k for k in initial[r].nonzero().flatten().tolist() if k not in latest}
        assert set(from_initial[r].nonzero().flatten().tolist()) == expected
        assert set(stepped[r].nonzero().flatten().tolist()) == expected
        assert sounding_note_ons(v, rows[r]).tolist() == [tid for _, tid in sorted(now.values())]
    assert each.any() and (~each).any()


def test_the_cut_of_long_form_generation_holds_what_sounds_through_its_first_moment(tok, rows):
    v = tok.vocabulary
    for cut in (0, 1, 57, rows.shape[1] - 1, rows.shape[1]):
        held = _held_at_cut(v, rows, cut)
        for r, row in enumerate(rows.tolist()):
            waits = [i for i in range(cut, len(row)) if v.is_wait[row[i]]]
            now = walk(v, row[: waits[0] if waits else len(row)])[-1][0] if cut else {}
            assert set(held[r].nonzero().flatten().tolist()) == set(now), (cut, r)


def test_the_grammar_rule_and_both_of_its_users(tok, rows):
    """What no piece holds next (a note-off of a silent key, a note-on of a sounding one, `end`
    while a key sounds), and that the grammar processor and the model's masks are exactly it."""
    v = tok.vocabulary
    keys = NoteKeys.of_vocabulary(v)
    ids = torch.as_tensor(rows)
    each = keys.sounding_after_each(ids)  # (B, T, K)
    bad, bad_offs = keys.impossible_notes(each), keys.impossible_notes(each, note_ons=False)
    bad_end = keys.impossible_end(each)
    assert torch.equal(bad_end, keys.impossible_end(num_sounding=each.sum(-1)))  # from a count alike
    notes = np.arange(v.num_note_tokens)
    pitched = v.note_instrument[notes] != v.drum_index
    note_keys = v.note_instrument[notes] * 128 + v.note_pitch[notes]
    for r, t in [(0, 0), (0, 11), (1, 150), (2, ids.shape[1] - 1)]:
        now = each[r, t].numpy()
        sounds = pitched & now[np.where(pitched, note_keys, 0)]
        expected = (v.is_note_off[notes] & ~sounds) | (v.is_note_on[notes] & sounds)
        assert bad[r, t].numpy().tolist() == expected.tolist()
        assert bad_offs[r, t].numpy().tolist() == (v.is_note_off[notes] & ~sounds).tolist()
        assert bool(bad_end[r, t]) == bool(now.any())
    # the processor: after `start`, the notes it forbids are the rule's, `end` only when it allows
    body = torch.cat([torch.full((len(rows), 1), v.start_id), ids.clamp(max=v.num_note_tokens - 1)], 1)
    grammar = MusicGrammarLogitsProcessor(v, tracker=NoteStateTracker(v), max_silence_seconds=None)
    for t in (1, 40, body.shape[1]):
        allowed = grammar.allowed(body[:, :t])
        state = keys.sounding_after_each(body[:, :t])[:, -1]
        assert torch.equal(~allowed[:, : keys.num_notes], keys.impossible_notes(state))
        assert torch.equal(~allowed[:, v.end_id], keys.impossible_end(state))
    # the model: the config's subset of the rule (note-offs, `end`), after every position
    cfg = json.loads((REPO / "configs" / "musenet-tiny.json").read_text())
    for key in ("model_type", "architectures"):
        cfg.pop(key, None)
    cfg.update(v.model_config_kwargs(), mask_silent_note_offs=True, mask_end_while_sounding=True)
    torch.manual_seed(0)
    model = MuseNetForCausalLM(MuseNetConfig(**cfg)).eval()
    with torch.no_grad():
        low = torch.finfo(torch.float32).min
        masked = model.mask_impossible_tokens(torch.zeros(*ids.shape, len(v)), ids, None, 0) == low
    assert torch.equal(masked[..., : keys.num_notes], bad_offs) and torch.equal(masked[..., v.end_id], bad_end)
    assert not masked[..., keys.num_notes:v.end_id].any() and not masked[..., v.end_id + 1:].any()
