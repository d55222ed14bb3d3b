"""A warm start onto a longer context: the learned position rows are kept, the new ones repeat the
table's late rows, and the grown model computes what the old one did on the old positions."""

import json

import torch

from musenet_hf.model.configuration_musenet import MuseNetConfig
from musenet_hf.model.modeling_musenet import MuseNetForCausalLM
from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer
from musenet_hf.training.training_config import TrainConfig, build_model, grow_position_embeddings

from conftest import REPO


def _tiny(positions: int) -> MuseNetForCausalLM:
    vocab = MuseNetTokenizer.from_preset("extended").vocabulary
    cfg = json.loads((REPO / "configs" / "musenet-tiny.json").read_text())
    for key in ("model_type", "architectures"):
        cfg.pop(key, None)
    cfg.update(vocab.model_config_kwargs(), max_position_embeddings=positions, attention_layout="full")
    torch.manual_seed(0)
    return MuseNetForCausalLM(MuseNetConfig(**cfg)).eval()


def test_grown_table_keeps_old_rows_and_repeats_the_late_ones():
    model = _tiny(64)
    before = model.model.embeddings.embed_positions.weight.detach().clone()
    assert grow_position_embeddings(model, 200, period=16)
    after = model.model.embeddings.embed_positions.weight.detach()
    assert after.shape == (200, before.shape[1]) and model.config.max_position_embeddings == 200
    assert torch.equal(after[:64], before)
    assert torch.equal(after[64], before[48]) and torch.equal(after[79], before[63]) and torch.equal(after[80], before[48])
    assert not grow_position_embeddings(model, 100)  # never shrinks


def test_build_model_warm_starts_onto_a_longer_sparse_context(tmp_path):
    old = _tiny(64)
    old.save_pretrained(tmp_path / "ckpt")
    tok = MuseNetTokenizer.from_preset("extended")
    cfg = TrainConfig(init_from=str(tmp_path / "ckpt"), context_length=256, tokenizer_preset="extended",
                      model_overrides={"attention_layout": "strided", "attention_block_size": 16,
                                       "attention_stride": 64})
    grown = build_model(cfg, tok).eval()
    assert grown.config.max_position_embeddings == 256 and grown.config.attention_layout == "strided"
    ids = torch.tensor([tok.vocabulary.prefix_ids("bach", "piano") + list(range(100, 140))])
    with torch.no_grad():
        a = old(ids).logits
        b = grown(torch.cat([ids, ids[:, -1:].repeat(1, 200)], dim=1)).logits[:, : ids.shape[1]]
    # within the first stride block the strided layout sees what full attention saw
    n = 16
    assert torch.allclose(a[:, :n], b[:, :n], atol=1e-5)


def test_warm_start_with_new_labels_grows_the_vocabulary_tables(tmp_path):
    """New labels of a corpus (unknown_labels: add) append token rows; the tables the embeddings
    derive from the vocabulary grow with them, so a prompt with a new label runs."""
    old = _tiny(64)
    old.save_pretrained(tmp_path / "ckpt")
    tok = MuseNetTokenizer.from_preset("extended")
    n_old = len(tok.vocabulary)
    tok.vocabulary.add_composers(["scarlatti", "pop"])
    cfg = TrainConfig(init_from=str(tmp_path / "ckpt"), context_length=64, tokenizer_preset="extended")
    model = build_model(cfg, tok).eval()
    assert model.config.vocab_size == n_old + 2
    emb = model.model.embeddings
    assert emb.wait_units.shape == (n_old + 2,) and emb.composer_slot.shape == (n_old + 2,)
    ids = torch.tensor([tok.vocabulary.prefix_ids("pop", "piano") + list(range(100, 120))])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], n_old + 2) and torch.isfinite(logits).all()


def test_a_step_checkpoint_of_a_run_that_added_labels_exports(made_midi, tmp_path):
    """The run saves its vocabulary (with the labels its data appended); the export of a loop
    checkpoint rebuilds the network with it, so the grown token rows fit."""
    import importlib.util
    import shutil

    from musenet_hf.training.loop import TOKENIZER_DIR, train

    root = tmp_path / "labelled" / "scarlatti"  # not a composer of the extended vocabulary
    root.mkdir(parents=True)
    for f in made_midi.song_files[:4]:
        shutil.copy(f, root / f.name)
    tiny = REPO / "configs" / "train" / "tiny.yaml"
    more = {"data_dir": str(root.parent), "data_cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "run"),
            "num_proc": 1, "validation_fraction": 0.0, "context_length": 128, "per_device_batch_size": 2,
            "max_steps": 2, "warmup_steps": 1, "eval_every": 1000, "checkpoint_every": 2, "critic_every": 0,
            "torch_threads": 1, "unknown_labels": "add"}
    train(TrainConfig.from_yaml(tiny, more), resume="never", progress=False)
    saved = MuseNetTokenizer.from_pretrained(tmp_path / "run" / TOKENIZER_DIR)
    assert saved.vocabulary.config.added_composers == ["scarlatti"]
    spec = importlib.util.spec_from_file_location("export_checkpoint", REPO / "examples" / "export_checkpoint.py")
    export = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export)
    model, tok = export.load_training_checkpoint(tmp_path / "run" / "checkpoints" / "step-0000002", tiny, more)
    assert model.config.vocab_size == len(tok.vocabulary) == len(saved.vocabulary)


def test_a_warm_start_does_not_inherit_the_starting_checkpoints_sampling_settings(tmp_path):
    """The bundled model's presets are its own: a model warm-started from it gets a fresh generation
    config (derived later by musenet derive-sampling), and the recipe's model overrides stay out of it."""
    from musenet_hf.generation.generation_config import MuseNetGenerationConfig
    from musenet_hf.loading import bundled_checkpoint
    from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer
    from musenet_hf.training.training_config import TrainConfig, build_model

    bundled = bundled_checkpoint()
    cfg = TrainConfig(init_from=str(bundled), tokenizer_path=str(bundled), context_length=512,
                      model_overrides={"embd_dropout": 0.0, "attention_layout": "full"})
    model = build_model(cfg, MuseNetTokenizer.from_pretrained(bundled))
    saved = model.generation_config.to_dict()
    assert "presets" not in saved and "attention_layout" not in saved and "embd_dropout" not in saved
    assert MuseNetGenerationConfig.from_model(model).presets == []
    assert model.generation_config.eos_token_id == model.config.eos_token_id
