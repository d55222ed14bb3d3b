"""The composer and instrument map (musenet_hf.demo.embeddings_plot): labels, and points that follow the embeddings."""

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

import demo_app  # noqa: E402  (tests/demo_app.py)

from musenet_hf.cli import main  # noqa: E402
from musenet_hf.demo.embeddings_plot import CAPTION, embedding_points, plot_embeddings  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def twins():
    """The extended-vocabulary tiny model (26 composers), with bach's embedding row copied onto jazz's."""
    model, tok = demo_app.tiny_extended()
    v = tok.vocabulary
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[v.composer_id("jazz")] = weight[v.composer_id("bach")]
    return model, tok


def test_every_composer_token_is_labelled(twins, tmp_path):
    model, tok = twins
    out = plot_embeddings(model, tok, tmp_path / "map.png")
    assert out["path"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out["path"].stat().st_size > 20_000
    v = tok.vocabulary
    composers = [lb for lb, kind in zip(out["labels"], out["kinds"]) if kind == "composer"]
    assert composers == v.composers  # every composer/style token, each a labelled point
    assert out["kinds"].count("instrumentation") == int(v.is_instrumentation.sum())
    assert out["xy"].shape == (len(out["labels"]), 2) and np.isfinite(out["xy"]).all()
    assert "neighbourhoods" in CAPTION and "do not" in CAPTION  # what the projection can and cannot show

    # the projection follows the matrix: the two equal rows land together, nearer than any other pair
    xy = out["xy"]
    i, j = out["labels"].index("bach"), out["labels"].index("jazz")
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    twin = dist[i, j]
    others = np.sort(dist[np.triu_indices(len(xy), 1)])
    assert twin <= others[1], (twin, others[:5])  # the closest (or tied-closest) pair of all
    labels, _, rows = embedding_points(model, tok)
    assert np.array_equal(rows[labels.index("bach")], rows[labels.index("jazz")])


def test_the_command_writes_the_map(twins, tmp_path, capsys):
    model, tok = twins
    folder = demo_app.save_model(model, tok, tmp_path / "model")
    assert main(["embeddings-plot", "--model", str(folder), "-o", str(tmp_path / "m.png")]) == 0
    said = capsys.readouterr().out
    assert (tmp_path / "m.png").is_file() and "26 composer/style and 127 instrumentation tokens" in said
    assert main(["embeddings-plot", "--model", str(tmp_path / "missing"), "-o", str(tmp_path / "x.png")]) == 2
