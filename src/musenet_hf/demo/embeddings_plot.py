"""The composer and instrument map: a 2-D t-SNE of a model's composer/style and instrumentation embeddings.

MuseNet's blog post drew the learned embeddings of its composer tokens on a plane; this draws the
same for any checkpoint (``musenet embeddings-plot --model PATH -o map.png``, and the demo's map
tab). The points are rows of the model's input embedding matrix, found through the tokenizer's
vocabulary (:meth:`~musenet_hf.tokenizer.vocabulary.MuseNetVocabulary` composer and instrumentation ids).

t-SNE keeps neighbours: rows that are close in the embedding space (cosine distance) land close
on the plane. It does not keep distances between far-apart groups, nor directions, and the axes
mean nothing; tokens the model never saw in training keep (near) their random initial rows, so
where they land says nothing about the music. :data:`CAPTION` says this under the figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

CAPTION = ("t-SNE of the model's input embeddings (cosine distance): tokens the model treats alike sit close. "
           "Only neighbourhoods mean something: distances between far clusters, directions and the axes do not, "
           "and labels it never trained on (hollow marks) stay near their random start.")


def embedding_points(model: Any, tokenizer: Any, composers: bool = True,
                     instrumentations: bool = True) -> tuple[list[str], list[str], np.ndarray]:
    """The labels, kinds (``"composer"`` / ``"instrumentation"``) and embedding rows to project.

    Rows come from ``model.get_input_embeddings()``; ids whose row the matrix lacks (a checkpoint
    that stops before a trailing id) are left out.
    """
    v = tokenizer.vocabulary
    weight = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    labels, kinds, rows = [], [], []
    wanted = (np.flatnonzero(v.is_composer) if composers else []), (np.flatnonzero(v.is_instrumentation)
                                                                    if instrumentations else [])
    for kind, ids in zip(("composer", "instrumentation"), wanted):
        for tid in ids:
            if tid < len(weight):
                labels.append(v.id_to_token(int(tid)))
                kinds.append(kind)
                rows.append(weight[tid])
    if len(rows) < 2:
        raise ValueError("the model has fewer than two composer/instrumentation embeddings to project")
    return labels, kinds, np.stack(rows)


def project(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE of ``vectors`` (cosine distance), deterministic for a seed."""
    from sklearn.manifold import TSNE

    n = len(vectors)
    # Perplexity must stay below the number of points; 30 (sklearn's default) only for big sets.
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="random", random_state=seed,
                n_jobs=1)
    return tsne.fit_transform(vectors.astype(np.float64))


def trained_labels_of(model: Any) -> set[str]:
    """The composer/style and instrumentation names the model trained on (its ``training_coverage``)."""
    coverage = getattr(model.config, "training_coverage", None) or {}
    names: set[str] = set()
    for label, insts in (coverage.get("labels") or {}).items():
        names.add(str(label))
        names |= {str(k) for k in (insts or {}) if k}
    return names


def plot_embeddings(model: Any, tokenizer: Any, path: str | Path, seed: int = 0, title: str | None = None,
                    dpi: int = 110) -> dict[str, Any]:
    """Draw the map to a PNG at ``path``.

    Returns ``{"path", "labels", "kinds", "xy"}``: every projected token with its 2-D point (all are
    labelled on the figure). Labels the model trained on (``config.training_coverage``) are filled
    marks; the others hollow, or all filled when the model records no coverage.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, kinds, vectors = embedding_points(model, tokenizer)
    xy = project(vectors, seed=seed)
    trained = trained_labels_of(model)
    n = len(labels)
    side = float(min(30.0, max(8.0, np.sqrt(n) * 0.9)))  # more points, bigger canvas, same font
    fig, ax = plt.subplots(figsize=(side * 1.25, side))
    colours = {"composer": "#d62728", "instrumentation": "#1f77b4"}
    for kind in ("instrumentation", "composer"):
        for filled in (True, False):
            idx = [i for i in range(n) if kinds[i] == kind and ((labels[i] in trained) == filled or not trained)]
            if not idx or (not trained and not filled):
                continue
            ax.scatter(xy[idx, 0], xy[idx, 1], s=28 if kind == "composer" else 14,
                       facecolors=colours[kind] if filled else "none", edgecolors=colours[kind],
                       label=f"{kind}{'' if not trained else (' (trained on)' if filled else ' (not trained on)')}")
    font = 7 if n <= 200 else 5
    for i, label in enumerate(labels):
        ax.annotate(label, xy[i], fontsize=font + (1 if kinds[i] == "composer" else 0), alpha=0.9,
                    color=colours[kinds[i]], xytext=(3, 2), textcoords="offset points")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or f"{Path(getattr(model, 'name_or_path', '') or 'model').name}: "
                          f"{kinds.count('composer')} composer/style and {kinds.count('instrumentation')} "
                          "instrumentation tokens")
    fig.text(0.01, 0.005, CAPTION, fontsize=8, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return {"path": out, "labels": labels, "kinds": kinds, "xy": xy}


# ------------------------------------------------------------------------- musenet embeddings-plot
def add_embeddings_plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint folder (default: the bundled checkpoints/musenet-small-music21)")
    parser.add_argument("-o", "--output", default="map.png", help="PNG to write (default map.png)")
    parser.add_argument("--seed", type=int, default=0, help="t-SNE's random seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def run_embeddings_plot(args: argparse.Namespace) -> int:
    import torch

    from ..generation.pipeline_musenet import register_pipeline
    from ..loading import bundled_checkpoint, load_model, tokenizer_for_model

    torch.set_num_threads(max(1, args.threads))
    register_pipeline()
    path = Path(args.model) if args.model else bundled_checkpoint()
    try:
        model = load_model(path, "cpu")
    except (FileNotFoundError, ImportError, OSError, ValueError) as err:
        print(f"musenet embeddings-plot: error: {err}", file=sys.stderr)
        return 2
    result = plot_embeddings(model, tokenizer_for_model(model), args.output, seed=args.seed)
    kinds = result["kinds"]
    print(f"{result['path']}: {kinds.count('composer')} composer/style and {kinds.count('instrumentation')} "
          f"instrumentation tokens\n{CAPTION}")
    return 0


__all__ = ["CAPTION", "add_embeddings_plot_arguments", "embedding_points", "plot_embeddings", "project",
           "run_embeddings_plot", "trained_labels_of"]
