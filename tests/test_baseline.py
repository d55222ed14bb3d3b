"""The GPT-2 baseline is MuseNet without its additions: same config mapping, same network, same init."""

import math

import pytest
import torch
from transformers import GPT2LMHeadModel

from musenet_hf.model.baseline import GPT2Baseline, gpt2_config_for
from musenet_hf.model.configuration_musenet import MuseNetConfig
from musenet_hf.model.modeling_musenet import MuseNetForCausalLM

pytestmark = pytest.mark.usefixtures("one_thread")


def plain_config(**overrides) -> MuseNetConfig:
    """A small MuseNet with every addition switched off: full attention, no structural tables, no critic."""
    base = dict(vocab_size=300, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                max_position_embeddings=64, attention_layout="full", use_time_embedding=False,
                use_chord_embedding=False, use_part_embedding=False, use_countdown_embedding=False, use_critic=False,
                embd_dropout=0.0, resid_dropout=0.0, num_note_tokens=200, first_wait_token_id=200,
                num_wait_tokens=50, bos_token_id=250, eos_token_id=251, pad_token_id=299)
    return MuseNetConfig(**{**base, **overrides})


def musenet_state_from_gpt2(gpt2: GPT2LMHeadModel, layers: int) -> dict[str, torch.Tensor]:
    g = gpt2.state_dict()
    sd = {"model.embeddings.embed_tokens.weight": g["transformer.wte.weight"],
          "model.embeddings.embed_positions.weight": g["transformer.wpe.weight"],
          "model.ln_f.weight": g["transformer.ln_f.weight"], "model.ln_f.bias": g["transformer.ln_f.bias"],
          "lm_head.weight": g["transformer.wte.weight"]}
    for i in range(layers):
        for ln in ("ln_1", "ln_2"):
            for p in ("weight", "bias"):
                sd[f"model.h.{i}.{ln}.{p}"] = g[f"transformer.h.{i}.{ln}.{p}"]
        for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):  # Conv1D stores weights transposed
            sd[f"model.h.{i}.{name}.weight"] = g[f"transformer.h.{i}.{name}.weight"].T
            sd[f"model.h.{i}.{name}.bias"] = g[f"transformer.h.{i}.{name}.bias"]
    return sd


def test_musenet_without_its_additions_computes_what_gpt2_computes():
    config = plain_config()
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(gpt2_config_for(config)).eval()
    musenet = MuseNetForCausalLM(config).eval()
    result = musenet.load_state_dict(musenet_state_from_gpt2(gpt2, config.num_hidden_layers), strict=False)
    assert not result.unexpected_keys and not [k for k in result.missing_keys if "embed" in k or ".h." in k]
    ids = torch.randint(0, 250, (2, 40), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0  # right padding
    with torch.no_grad():
        a = gpt2(ids, attention_mask=mask).logits
        b = musenet(ids, attention_mask=mask).logits
    assert (a[0] - b[0]).abs().max().item() < 1e-5 and (a[1, :30] - b[1, :30]).abs().max().item() < 1e-5


def test_initialization_matches_gpt2_scaling():
    """Residual projections start at std 0.02 / sqrt(2 * layers), as GPT-2's do (it changes how fast
    the first hundred steps learn); the other matrices at 0.02."""
    config = plain_config(hidden_size=256, intermediate_size=1024, num_hidden_layers=8)
    torch.manual_seed(0)
    musenet, gpt2 = MuseNetForCausalLM(config), GPT2Baseline(gpt2_config_for(config))
    scaled = 0.02 / math.sqrt(2 * 8)
    for block, ref in zip(musenet.model.h, gpt2.transformer.h):
        for ours, theirs in ((block.attn.c_proj, ref.attn.c_proj), (block.mlp.c_proj, ref.mlp.c_proj)):
            assert ours.weight.std().item() == pytest.approx(scaled, rel=0.05)
            assert theirs.weight.std().item() == pytest.approx(scaled, rel=0.05)
            assert float(ours.bias.abs().max()) == 0.0
        assert block.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert block.mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_gpt2_config_mirrors_the_musenet_config():
    config = plain_config(hidden_act="gelu_new", embd_dropout=0.1, resid_dropout=0.2, attn_dropout=0.0)
    g = gpt2_config_for(config)
    assert (g.n_layer, g.n_embd, g.n_head, g.n_inner, g.n_positions, g.vocab_size) == (4, 64, 4, 256, 64, 300)
    assert (g.activation_function, g.embd_pdrop, g.resid_pdrop, g.attn_pdrop) == ("gelu_new", 0.1, 0.2, 0.0)
    assert (g.bos_token_id, g.eos_token_id, g.pad_token_id, g.tie_word_embeddings) == (250, 251, 299, True)
    out = GPT2Baseline(g)(torch.tensor([[1, 2, 3]]), piece_seconds=torch.tensor([9.0]), critic_labels=torch.ones(1),
                          time_offset_seconds=torch.zeros(1), labels=torch.tensor([[1, 2, 3]]))
    assert out.loss is not None and GPT2Baseline.critic is None
