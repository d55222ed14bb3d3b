"""Classifier-free guidance on the composer token (musenet_hf.generation.guidance).

The tiny random model (conftest.py) is enough: what is checked is the arithmetic and the
bookkeeping (the unconditional side's cache follows generate() exactly), not the music.
"""

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import LogitsProcessorList

from musenet_hf.generation.generate import build_prompt, default_logits_processors, generate_long
from musenet_hf.generation.generation_config import MuseNetGenerationConfig
from musenet_hf.generation.guidance import ComposerGuidanceLogitsProcessor
from musenet_hf.generation.logits_processors import grammar_violations

pytestmark = pytest.mark.usefixtures("one_thread")


def guidance_of(pipe, label=None, **call):
    """(scale, label against) a request of ``label`` gets, the call's own settings on top."""
    settings = pipe.sampling_settings(label, **call)
    return settings.guidance, settings.guidance_against


def unconditional_reference(model, ids, piece_seconds, offset):
    """Next-token logits of the label-free sequence from one full forward, no cache."""
    with torch.no_grad():
        return model(input_ids=ids, piece_seconds=piece_seconds, time_offset_seconds=offset).logits[:, -1]


def test_unconditional_side_follows_the_sequence_through_its_cache(vocab, tiny):
    """Step by step, the cached unconditional logits equal a full forward on the sequence
    without its composer tokens, and a new window starts the cache afresh."""
    g = torch.Generator().manual_seed(3)
    prefix = [vocab.composer_id("bach"), vocab.instrumentation_id(["piano"]), vocab.start_id]
    pool = [vocab.note_id("piano", 80, p) for p in range(60, 72)] + vocab.wait_ids(12) + vocab.wait_ids(40)
    body = torch.tensor(pool)[torch.randint(len(pool), (2, 30), generator=g)]
    ids = torch.cat([torch.tensor([prefix] * 2), body], dim=1)
    piece, offset = torch.tensor([60.0, 60.0], dtype=torch.float64), torch.tensor([3.0, 7.5], dtype=torch.float64)
    proc = ComposerGuidanceLogitsProcessor(tiny, vocab, scale=3.0)
    proc.begin_window(piece, offset)
    for t in range(10, ids.shape[1] + 1):
        got = proc.unconditional_logits(ids[:, :t])
        want = unconditional_reference(tiny, ids[:, 1:t], piece, offset)
        assert torch.allclose(got, want.float(), atol=1e-4), t
    assert proc._cache.get_seq_length() == ids.shape[1] - 1  # fed one token a step, the label never
    # a shorter sequence (a new generate() call) is computed afresh, not appended
    got = proc.unconditional_logits(ids[:, :12])
    assert torch.allclose(got, unconditional_reference(tiny, ids[:, 1:12], piece, offset).float(), atol=1e-4)


def test_guided_scores_are_the_cfg_mixture_and_keep_ruled_out_tokens(vocab, tiny):
    ids = torch.tensor([build_prompt(vocab, "bach", "piano") + [vocab.note_id("piano", 80, 60)]])
    with torch.no_grad():
        cond = tiny(input_ids=ids).logits[:, -1]
    uncond = unconditional_reference(tiny, ids[:, 1:], None, None)
    assert not torch.allclose(cond, uncond)  # the label changes the prediction
    # rule out what a trained model's own masks would (note-offs of silent notes, `end` while one sounds)
    low = torch.finfo(cond.dtype).min
    ruled_out = torch.zeros_like(cond, dtype=torch.bool)
    ruled_out[:, [vocab.note_id("piano", 0, 61), vocab.end_id]] = True
    cond = cond.masked_fill(ruled_out, low)

    assert torch.equal(ComposerGuidanceLogitsProcessor(tiny, vocab, 1.0)(ids, cond.clone()), cond)  # 1 = off
    guided = ComposerGuidanceLogitsProcessor(tiny, vocab, 2.5, keep_note_off_share=False)(ids, cond.clone())
    lc, lu = torch.log_softmax(cond, -1), torch.log_softmax(uncond, -1)
    want = lu + 2.5 * (lc - lu)
    assert torch.allclose(guided[~ruled_out], want[~ruled_out], atol=1e-4)
    assert (guided[ruled_out] == low).all() and torch.isfinite(guided).all()
    # scale 0 samples from the unconditional model (among the tokens the conditional allows)
    zero = ComposerGuidanceLogitsProcessor(tiny, vocab, 0.0, keep_note_off_share=False)(ids, cond.clone())
    assert torch.allclose(torch.softmax(zero, -1), torch.softmax(uncond.masked_fill(ruled_out, low), -1), atol=1e-6)
    with pytest.raises(ValueError, match="guidance scale"):
        ComposerGuidanceLogitsProcessor(tiny, vocab, -1.0)


def test_guidance_keeps_the_conditional_note_off_share_by_default(vocab, tiny):
    """The note-offs together get the conditional model's probability; within the note-offs, and
    within every other token, the odds are the guided mixture's; ruled-out tokens stay out."""
    ids = torch.tensor([build_prompt(vocab, "bach", "piano") + [vocab.note_id("piano", 80, 60),
                                                                vocab.note_id("piano", 80, 64)] + vocab.wait_ids(30)])
    with torch.no_grad():
        cond = tiny(input_ids=ids).logits[:, -1]
    off = torch.as_tensor(vocab.is_note_off)[None]
    cond = cond + 1.0 * off  # as if the label ended notes sooner than the corpus does
    ruled_out = torch.zeros_like(cond, dtype=torch.bool)
    ruled_out[:, [vocab.note_id("piano", 0, 61), vocab.end_id]] = True
    cond = cond.masked_fill(ruled_out, torch.finfo(cond.dtype).min)
    plain = ComposerGuidanceLogitsProcessor(tiny, vocab, 3.0, keep_note_off_share=False)(ids, cond.clone())
    kept = ComposerGuidanceLogitsProcessor(tiny, vocab, 3.0)(ids, cond.clone())
    p_cond, p_plain, p_kept = (torch.softmax(x, -1) for x in (cond, plain, kept))
    assert p_plain[off].sum() > 1.5 * p_cond[off].sum()  # guidance amplified the label's note-offs
    assert math.isclose(p_kept[off].sum(), p_cond[off].sum(), rel_tol=1e-4)  # ... and it is put back
    assert math.isclose(p_kept.sum(), 1.0, rel_tol=1e-5)
    for group in (off & ~ruled_out, ~off & ~ruled_out):
        ratio = p_kept[group] / p_plain[group]  # the same odds inside each group
        assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-3)
    assert (p_kept[ruled_out] == 0).all()
    # with no note sounding there is nothing to end: the plain mixture
    quiet = torch.tensor([build_prompt(vocab, "bach", "piano")])
    with torch.no_grad():
        c = tiny(input_ids=quiet).logits[:, -1]
    c[:, off[0]] = torch.finfo(c.dtype).min
    got = ComposerGuidanceLogitsProcessor(tiny, vocab, 3.0)(quiet, c.clone())
    want = ComposerGuidanceLogitsProcessor(tiny, vocab, 3.0, keep_note_off_share=False)(quiet, c.clone())
    assert torch.allclose(torch.softmax(got, -1), torch.softmax(want, -1), atol=1e-6)


def test_guided_long_form_pieces_stay_valid_and_differ_from_unguided(vocab, tiny):
    """Through generate_long (several windows), guidance keeps every piece grammatical and
    ends it near its length; with the same seed, the guided pieces are other pieces."""
    prompt = build_prompt(vocab, "bach", "piano")
    pieces = {}
    for scale in (1.0, 3.0):
        procs = default_logits_processors(vocab, 6.0)
        procs.insert(0, ComposerGuidanceLogitsProcessor(tiny, vocab, scale))
        torch.manual_seed(0)
        out = generate_long(tiny, vocab, prompt, 6.0, num_samples=2, max_window=64, step=16,
                            logits_processor=LogitsProcessorList(procs), progress=False, top_k=0)
        assert len(out.windows) > 2  # past the context: the guidance was told of each window
        for seq, secs in zip(out.sequences, out.seconds):
            assert grammar_violations(vocab, seq, start=len(prompt)) == []
            assert math.isclose(secs, 6.0, rel_tol=0.15)
        pieces[scale] = out.sequences
    assert pieces[1.0] != pieces[3.0]


def test_pipeline_guidance_argument(tiny, tok):
    from transformers import pipeline

    from musenet_hf.generation.pipeline_musenet import TASK, register_pipeline

    register_pipeline()
    pipe = pipeline(TASK, model=tiny, tokenizer=tok, device=torch.device("cpu"))
    kw = dict(seconds=4.0, seed=0, max_window=64, step=16, instruments="piano", steering="none")
    # no composer: nothing to guide, so the same piece as without guidance
    assert pipe(guidance=4.0, **kw)[0]["tokens"] == pipe(**kw)[0]["tokens"]
    plain, guided = pipe(composer="bach", **kw)[0]["tokens"], pipe(composer="bach", guidance=4.0, **kw)[0]["tokens"]
    assert plain != guided and guided[:3] == plain[:3]
    with pytest.raises(ValueError, match="guidance"):
        pipe(composer="bach", guidance=float("nan"), **kw)


def test_guidance_against_a_label_uses_that_label_as_the_other_side(vocab, tiny):
    """With ``against``, the other side is the prompt with its label replaced (a blend's first
    label; the others go); a prompt of that label itself is left as it is."""
    folk, bach, chopin = (vocab.composer_id(c) for c in ("folk", "bach", "chopin"))
    note = vocab.note_id("piano", 80, 60)
    ids = torch.tensor([build_prompt(vocab, "bach", "piano") + [note]])
    proc = ComposerGuidanceLogitsProcessor(tiny, vocab, 2.5, keep_note_off_share=False, against="folk")
    assert proc.unconditional_ids(ids).tolist() == [[folk, *ids[0, 1:].tolist()]]
    blend = torch.tensor([[bach, chopin, *ids[0, 1:].tolist()]])
    fresh = ComposerGuidanceLogitsProcessor(tiny, vocab, 2.5, against=folk)
    assert fresh.unconditional_ids(blend).tolist() == [[folk, *ids[0, 1:].tolist()]]
    with torch.no_grad():
        cond = tiny(input_ids=ids).logits[:, -1]
        other = tiny(input_ids=torch.tensor([[folk, *ids[0, 1:].tolist()]])).logits[:, -1]
    guided = proc(ids, cond.clone())
    lc, lo = torch.log_softmax(cond, -1), torch.log_softmax(other, -1)
    assert torch.allclose(guided, lo + 2.5 * (lc - lo), atol=1e-4)
    # against no label, the mixture is a different one
    plain = ComposerGuidanceLogitsProcessor(tiny, vocab, 2.5, keep_note_off_share=False)(ids, cond.clone())
    assert not torch.allclose(plain, guided, atol=1e-3)
    # a folk prompt guided against folk: the scores come back untouched
    folk_ids = torch.tensor([build_prompt(vocab, "folk", "piano") + [note]])
    assert torch.equal(ComposerGuidanceLogitsProcessor(tiny, vocab, 2.5, against="folk")(folk_ids, cond.clone()), cond)
    with pytest.raises(KeyError, match="nosuchlabel"):
        ComposerGuidanceLogitsProcessor(tiny, vocab, 2.5, against="nosuchlabel")
    with pytest.raises(ValueError, match="composer/style token"):
        ComposerGuidanceLogitsProcessor(tiny, vocab, 2.5, against=note)


def test_pipeline_guidance_defaults_come_from_the_model_config(tiny, tok):
    """A checkpoint's (legacy) config.guidance / guidance_against are the pipeline's defaults; a call's own
    arguments win, ``"none"`` guides against no label, and an unknown label is a KeyError."""
    from transformers import pipeline

    from musenet_hf.generation.pipeline_musenet import TASK, register_pipeline

    register_pipeline()
    pipe = pipeline(TASK, model=tiny, tokenizer=tok, device=torch.device("cpu"))
    kw = dict(composer="bach", seconds=4.0, seed=0, max_window=64, step=16, instruments="piano", steering="none")
    assert guidance_of(pipe) == (1.0, None)
    against = pipe(guidance=4.0, guidance_against="folk", **kw)[0]["tokens"]
    label_free = pipe(guidance=4.0, **kw)[0]["tokens"]
    assert against != label_free
    tiny.config.guidance, tiny.config.guidance_against = 4.0, "folk"
    try:
        assert guidance_of(pipe) == (4.0, "folk")
        assert guidance_of(pipe, guidance=1.5, guidance_against="none") == (1.5, None)
        assert pipe(**kw)[0]["tokens"] == against
        assert pipe(guidance_against="none", **kw)[0]["tokens"] == label_free
        assert pipe(guidance=1.0, **kw)[0]["tokens"] == pipe(guidance=1.0, guidance_against="none", **kw)[0]["tokens"]
        with pytest.raises(KeyError, match="nosuchlabel"):
            pipe(guidance_against="nosuchlabel", **kw)
    finally:
        tiny.config.guidance, tiny.config.guidance_against = None, None
    with pytest.raises(ValueError, match="guidance must be"):
        MuseNetGenerationConfig.from_legacy(SimpleNamespace(guidance=-1.0))


def test_pipeline_sampling_by_label_overrides_the_model_default_for_that_label(tiny, tok):
    """config.sampling_by_label sets the scale or the other side for prompts whose first label is
    that one (matched as the vocabulary spells names); other labels keep the model's default, and
    a call's own arguments still win."""
    from transformers import pipeline

    from musenet_hf.generation.pipeline_musenet import TASK, register_pipeline

    register_pipeline()
    pipe = pipeline(TASK, model=tiny, tokenizer=tok, device=torch.device("cpu"))
    kw = dict(seconds=4.0, seed=0, max_window=64, step=16, instruments="piano", steering="none")

    def tokens(composer, **settings):
        return pipe(composer=composer, **settings, **kw)[0]["tokens"]

    irish_plain, irish_folk = tokens("irish", guidance=1.0), tokens("irish", guidance=6.0, guidance_against="folk")
    scottish_free = tokens("scottish", guidance=6.0, guidance_against="none")
    scottish_folk = tokens("scottish", guidance=6.0, guidance_against="folk")
    bach_folk = tokens("bach", guidance=6.0, guidance_against="folk")
    assert irish_plain != irish_folk and scottish_free != scottish_folk  # the settings matter here
    config = tiny.config
    config.guidance, config.guidance_against = 6.0, "folk"
    config.sampling_by_label = {"Irish": {"guidance": 1.0}, "scottish": {"guidance_against": "none"}}
    try:
        assert guidance_of(pipe, "irish") == (1.0, "folk")
        assert guidance_of(pipe, "scottish") == (6.0, None)
        assert guidance_of(pipe, "bach") == guidance_of(pipe) == (6.0, "folk")
        assert guidance_of(pipe, "scottish", guidance=2.0, guidance_against="bach") == (2.0, "bach")
        assert tokens("irish") == irish_plain
        assert tokens("scottish") == scottish_free
        assert tokens("bach") == bach_folk
        assert tokens("irish", guidance=6.0) == irish_folk  # the call's own scale wins
        assert tokens(["irish", "bach"]) == tokens(["irish", "bach"], guidance=1.0)  # a blend follows its first label
        assert tokens(["irish", "bach"]) != tokens(["irish", "bach"], guidance=6.0)
    finally:
        config.guidance = config.guidance_against = config.sampling_by_label = None
    with pytest.raises(ValueError, match="unknown sampling setting 'scale'"):
        MuseNetGenerationConfig.from_legacy(SimpleNamespace(sampling_by_label={"irish": {"scale": 2.0}}))
    with pytest.raises(ValueError, match="guidance must be >= 0"):
        MuseNetGenerationConfig.from_legacy(SimpleNamespace(sampling_by_label={"irish": {"guidance": -2.0}}))


class _Recorder:
    """A processor that keeps every step's scores (after guidance) as they come."""

    def __init__(self):
        self.steps = []

    def __call__(self, input_ids, scores):
        self.steps.append(scores.clone())
        return scores


def _guided_run(model, vocab, ids, batched, seconds=20.0, steps=40):
    """Greedy guided decoding of ``ids`` (guidance against folk): every step's guided scores and the tokens."""
    guide = ComposerGuidanceLogitsProcessor(model, vocab, 2.0, against="folk")
    record = _Recorder()
    procs = LogitsProcessorList([guide, *default_logits_processors(vocab, seconds), record])
    piece = torch.full((ids.shape[0],), seconds, dtype=torch.float64)
    guide.begin_window(piece, torch.zeros_like(piece))
    extra = {"guidance_batch": guide} if batched else {}
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps, do_sample=False,
                             logits_processor=procs, piece_seconds=piece, time_offset_seconds=torch.zeros_like(piece),
                             pad_token_id=vocab.pad_id, eos_token_id=vocab.end_id, **extra)
    return torch.stack(record.steps), out, guide


def test_guidance_in_one_batch_matches_the_two_forward_path(vocab, tiny):
    """Both sides as one batch of 2B rows (one cache, one forward a step) give the scores of the
    processor's own second forward, within float tolerance, and so the same greedy tokens."""
    ids = torch.tensor([build_prompt(vocab, "bach", "piano,violin")] * 2)
    two, out_two, guide_two = _guided_run(tiny, vocab, ids, batched=False)
    one, out_one, guide_one = _guided_run(tiny, vocab, ids, batched=True)
    assert guide_two._cache is not None and guide_one._cache is None  # the batched path never ran its own
    finite = torch.isfinite(two) & (two > -1e3)
    assert torch.equal(finite, torch.isfinite(one) & (one > -1e3))
    assert torch.allclose(one[finite], two[finite], atol=1e-4, rtol=1e-4)
    assert torch.equal(out_one, out_two)


def test_a_side_of_another_length_falls_back_to_the_processor_forward(vocab, tiny):
    """Guidance away from no label drops the label (a shorter side): not batched, still correct."""
    ids = torch.tensor([build_prompt(vocab, "bach", "piano")])
    guide = ComposerGuidanceLogitsProcessor(tiny, vocab, 2.0)
    assert guide.batch_side(ids) is None
    assert ComposerGuidanceLogitsProcessor(tiny, vocab, 2.0, against="folk").batch_side(ids).shape == ids.shape
    assert ComposerGuidanceLogitsProcessor(tiny, vocab, 1.0, against="folk").batch_side(ids) is None  # off
