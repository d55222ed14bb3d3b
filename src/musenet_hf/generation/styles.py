"""Which composer/style tokens a model trained on, and the trained styles nearest an untrained one.

A MuseNet vocabulary has a token for every style MuseNet knew (the bundled model's 26), but a model
learns only the ones its data had: ``config.training_coverage`` (written by ``musenet train`` and
the fine-tuning examples) counts its training pieces per label. Everything that names styles to a
user takes them from here, so ``musenet list``, the warning for an untrained style, the error for
an unknown one and the demo's menu say the same thing:

* a **trained style** is a label of the coverage that has a token of its own (``--composer`` takes
  it); a label without one (music21's ``chinese``) trained as unlabelled music;
* an **untrained style** is a token the coverage never had. Its embedding is still near its random
  start, so the model's own embeddings cannot say which trained style it is close to; the nearest
  trained styles come from :data:`KINSHIP`, a fixed list of musical neighbours (period, genre,
  instrumentation) filtered by what the model did train on, then the most trained styles.

Nothing is hard-coded as trained: a model that trains on a new corpus names its own styles.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..tokenizer.vocabulary import style_token

# Each style's musical neighbours, nearest first (era, genre, instrumentation, the kind of tune).
# Only the ones a model trained on are offered; the list is no claim about what the model learned.
KINSHIP: dict[str, tuple[str, ...]] = {
    "chopin": ("schumann", "beethoven", "rachmaninoff", "mozart", "tchaikovsky", "haydn"),
    "rachmaninoff": ("tchaikovsky", "chopin", "schumann", "beethoven", "mozart"),
    "tchaikovsky": ("rachmaninoff", "beethoven", "schumann", "chopin", "mozart", "haydn"),
    "mozart": ("haydn", "beethoven", "schumann", "handel", "bach"),
    "beethoven": ("mozart", "haydn", "schumann", "chopin", "bach"),
    "haydn": ("mozart", "beethoven", "handel", "bach", "schumann"),
    "schumann": ("beethoven", "chopin", "mozart", "haydn", "bach"),
    "bach": ("handel", "palestrina", "monteverdi", "haydn", "mozart"),
    "handel": ("bach", "monteverdi", "haydn", "mozart", "palestrina"),
    "palestrina": ("josquin", "monteverdi", "trecento", "bach"),
    "monteverdi": ("palestrina", "josquin", "handel", "bach", "trecento"),
    "josquin": ("palestrina", "trecento", "monteverdi", "bach"),
    "trecento": ("josquin", "palestrina", "monteverdi", "folk"),
    "folk": ("irish", "scottish", "bluegrass", "country"),
    "irish": ("scottish", "folk", "bluegrass", "country"),
    "scottish": ("irish", "folk", "bluegrass", "country"),
    "bluegrass": ("country", "irish", "scottish", "folk"),
    "country": ("bluegrass", "folk", "irish", "scottish", "franksinatra"),
    "jazz": ("franksinatra", "broadway", "disney", "chopin", "schumann", "folk"),
    "franksinatra": ("jazz", "broadway", "disney", "country", "folk", "schumann"),
    "broadway": ("disney", "franksinatra", "jazz", "tchaikovsky", "mozart", "folk"),
    "disney": ("broadway", "tchaikovsky", "franksinatra", "mozart", "folk"),
    "video": ("disney", "broadway", "tchaikovsky", "folk", "irish", "bach"),
    "ladygaga": ("thebeatles", "journey", "disney", "broadway", "folk", "irish", "scottish"),
    "journey": ("thebeatles", "ladygaga", "country", "folk", "irish", "scottish"),
    "thebeatles": ("journey", "ladygaga", "folk", "country", "irish", "scottish"),
    # music21 corpus labels without a token of their own in MuseNet's vocabulary
    "chinese": ("folk", "scottish", "irish"),
    "claraschumann": ("schumann", "chopin", "beethoven"),
    "cpebach": ("bach", "haydn", "mozart"),
    "beach": ("schumann", "chopin", "beethoven"),
    "ciconia": ("trecento", "josquin", "palestrina"),
    "lusitano": ("palestrina", "josquin", "monteverdi"),
    "luca": ("monteverdi", "palestrina", "josquin"),
    "corelli": ("handel", "bach", "monteverdi"),
    "schubert": ("beethoven", "schumann", "mozart"),
    "weber": ("beethoven", "schumann", "mozart"),
    "verdi": ("monteverdi", "schumann", "beethoven"),
    "joplin": ("jazz", "broadway", "schumann", "folk"),
    "johnson": ("jazz", "broadway", "folk"),
    "schoenberg": ("schumann", "beethoven", "bach"),
    "webern": ("schumann", "bach", "beethoven"),
}


def _key(name: str) -> str:
    """A label as its token is spelled (``"Frank Sinatra" -> "frank_sinatra"``)."""
    return style_token(str(name), -1)


def trained_labels(coverage: dict[str, Any] | None) -> dict[str, int]:
    """The composer/style labels a model trained on with their piece counts, most first, from its
    ``config.training_coverage`` (empty when it records none), tokens of their own or not."""
    labels = (coverage or {}).get("labels") or {}
    counts = {str(lb): int(sum((insts or {}).values())) for lb, insts in labels.items() if lb}
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def trained_styles(coverage: dict[str, Any] | None, composers: Sequence[str]) -> dict[str, int]:
    """The styles ``--composer`` takes that the model trained on (a label of ``coverage`` with a
    token among ``composers``, the vocabulary's names), pieces each, most first."""
    names = set(composers)
    return {lb: n for lb, n in trained_labels(coverage).items() if _key(lb) in names}


def untrained_styles(coverage: dict[str, Any] | None, composers: Sequence[str]) -> list[str]:
    """The vocabulary's styles the model never trained on, in vocabulary order; empty when the
    model records no coverage (nothing can be said)."""
    trained = trained_styles(coverage, composers)
    return [c for c in composers if c not in trained] if trained else []


def nearest_trained_styles(name: str, coverage: dict[str, Any] | None, composers: Sequence[str],
                           n: int = 3) -> list[str]:
    """Up to ``n`` trained styles near ``name``: its :data:`KINSHIP` neighbours the model trained on,
    nearest first, then the most trained styles."""
    trained = trained_styles(coverage, composers)
    near = [s for s in KINSHIP.get(_key(name), ()) if s in trained]
    near += [s for s in trained if s not in near and s != _key(name)]
    return near[:n]


def untrained_style_message(names: str | Sequence[str] | None, coverage: dict[str, Any] | None,
                            composers: Sequence[str]) -> str | None:
    """One sentence about the requested styles the model never trained on (None: none of them)."""
    asked = [names] if isinstance(names, str) else list(names or [])
    untrained = set(untrained_styles(coverage, composers))
    near = {name: ", ".join(nearest_trained_styles(name, coverage, composers)) for name in asked
            if _key(name) in untrained}
    if not near:
        return None
    why = "its token is untrained, so expect notes scattered over instruments and registers"
    if len(near) == 1:
        ((name, styles),) = near.items()
        return f"{name} is a style this model never trained on (nearest trained styles: {styles}): {why}"
    return (" and ".join(f"{name} (nearest trained styles: {styles})" for name, styles in near.items())
            + f" are styles this model never trained on: {why.replace('its token is', 'their tokens are')}")


def unknown_style_message(vocabulary: Any, name: str, coverage: dict[str, Any] | None) -> str:
    """The error for a name that is no composer/style token of ``vocabulary``: for a label the model
    trained on without a token of its own, what that means and what to ask instead; otherwise the
    vocabulary's message with close matches (untrained ones marked) and the trained styles."""
    composers = vocabulary.composers
    pieces = trained_labels(coverage).get(_key(name))
    if pieces:
        near = ", ".join(nearest_trained_styles(name, coverage, composers))
        return (f"unknown composer/style {name!r}: this model trained on {pieces} {_key(name)} pieces, but the "
                f"vocabulary has no token of its own for them (they trained as unlabelled music): generate "
                f"without --composer (composer=None) for music like them, or ask for a trained style near it: {near}")
    return vocabulary.unknown_composer_message(name, trained_styles(coverage, composers),
                                               untrained=untrained_styles(coverage, composers))


__all__ = ["KINSHIP", "nearest_trained_styles", "trained_labels", "trained_styles", "unknown_style_message",
           "untrained_style_message", "untrained_styles"]
