"""The demo's history of choices: a branching tree of generated pieces, without any Gradio.

Every Generate or Continue makes one *batch* of candidates (usually 4). A fresh Generate hangs
its batch under the (empty) root; Continue hangs it under the candidate being continued. The
tree keeps every batch ever made, so continuing the same candidate twice, or continuing a
different candidate after an Undo, opens a new branch and loses nothing.

What the page shows is one batch (:attr:`HistoryTree.shown`) with one of its candidates
selected. :meth:`HistoryTree.undo` steps back to the batch the shown batch's parent came from
(selecting that parent); :meth:`HistoryTree.go_to` jumps to any node's batch. The whole tree is
plain data (MIDI as bytes), so ``gr.State`` can copy it per session and tests need no browser.

Example::

    >>> tree = HistoryTree()
    >>> first = tree.add_batch(None, [{"midi": b"MThd..."}] * 4)   # Generate
    >>> tree.select(first[2])
    >>> second = tree.add_batch(first[2], [{"midi": b"..."}] * 4)  # Continue candidate 3
    >>> tree.undo(); tree.shown == first and tree.selected == first[2]
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

ROOT = 0  # the id of the empty root: the parent of every fresh Generate's batch


@dataclass
class Node:
    """One generated piece (or the root).

    Attributes:
        id: the node's number (0 is the root; candidates count up from 1 in creation order).
        parent: the parent's id (None for the root).
        batch: the id of the batch the node was generated in (its siblings share it).
        label: its place in the tree, ``"2"`` (second candidate of a fresh batch), ``"2.3"``
            (third child of node ``2``), ...
        midi: the piece as Standard MIDI File bytes (the whole piece, every ancestor's music included).
        info: what the app wants to keep with it (composer, seconds, critic score, rendered files).
        children: ids of the nodes generated from this one, oldest first.
    """

    id: int
    parent: int | None
    batch: int
    label: str
    midi: bytes = b""
    info: dict[str, Any] = field(default_factory=dict)
    children: list[int] = field(default_factory=list)


class HistoryTree:
    """The branching history of one user's session (see the module docs)."""

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {ROOT: Node(ROOT, None, -1, "")}
        self.batches: dict[int, list[int]] = {}  # batch id -> its node ids, in candidate order
        self.shown_batch: int | None = None
        self.selected: int | None = None

    # ------------------------------------------------------------------ building
    def add_batch(self, parent: int | None, candidates: Sequence[dict[str, Any]]) -> list[int]:
        """Add one batch of candidates under ``parent`` (None or :data:`ROOT`: a fresh Generate),
        show it and select its first candidate. Each candidate dict has ``midi`` (bytes) and any
        other keys, which go to the node's ``info``. Returns the new node ids."""
        parent = ROOT if parent is None else parent
        if parent not in self.nodes:
            raise KeyError(f"no node {parent} in the history")
        if not candidates:
            raise ValueError("a batch needs at least one candidate")
        batch = len(self.batches) + 1
        ids = []
        base = self.nodes[parent]
        for cand in candidates:
            node_id = len(self.nodes)
            index = len(base.children) + 1
            label = f"{base.label}.{index}" if base.label else str(index)
            info = {k: v for k, v in cand.items() if k != "midi"}
            self.nodes[node_id] = Node(node_id, parent, batch, label, bytes(cand.get("midi", b"")), info)
            base.children.append(node_id)
            ids.append(node_id)
        self.batches[batch] = ids
        self.shown_batch, self.selected = batch, ids[0]
        return ids

    # ------------------------------------------------------------------ moving
    @property
    def shown(self) -> list[int]:
        """The node ids of the batch on the page (empty before the first Generate)."""
        return list(self.batches.get(self.shown_batch, [])) if self.shown_batch is not None else []

    def select(self, node_id: int) -> None:
        """Select a candidate of the shown batch (the one Continue will extend)."""
        if node_id not in self.shown:
            raise KeyError(f"node {node_id} is not among the candidates shown")
        self.selected = node_id

    def select_index(self, index: int) -> int:
        """Select the shown batch's ``index``-th candidate (0-based); returns its node id."""
        shown = self.shown
        if not 0 <= index < len(shown):
            raise IndexError(f"there is no candidate {index + 1} (the page shows {len(shown)})")
        self.selected = shown[index]
        return self.selected

    def go_to(self, node_id: int) -> None:
        """Show the batch ``node_id`` was generated in, with it selected."""
        if node_id not in self.nodes or node_id == ROOT:
            raise KeyError(f"no piece {node_id} in the history")
        self.shown_batch, self.selected = self.nodes[node_id].batch, node_id

    def can_undo(self) -> bool:
        """Whether a step back exists (the shown batch continues an earlier piece)."""
        batch = self.shown
        return bool(batch) and self.nodes[batch[0]].parent not in (None, ROOT)

    def undo(self) -> bool:
        """Step back: show the batch the shown batch's parent belongs to, the parent selected.
        Returns False (and changes nothing) when the shown batch is a fresh Generate."""
        if not self.can_undo():
            return False
        self.go_to(self.nodes[self.shown[0]].parent)
        return True

    # ------------------------------------------------------------------ reading
    def node(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def path(self, node_id: int) -> list[int]:
        """The ids from the first generated ancestor down to ``node_id``."""
        out = []
        while node_id not in (None, ROOT):
            out.append(node_id)
            node_id = self.nodes[node_id].parent
        return out[::-1]

    def find(self, label: str) -> int:
        """The id of the node labelled ``label`` (``"2.3"``)."""
        for node in self.nodes.values():
            if node.id != ROOT and node.label == label.strip():
                return node.id
        raise KeyError(f"no piece {label!r} in the history")

    def __len__(self) -> int:
        """Pieces in the tree (the root not counted)."""
        return len(self.nodes) - 1

    def outline(self, describe: Any = None) -> list[str]:
        """One line per piece, depth-first, indented by depth; ``>`` marks the selected piece and
        ``*`` the shown batch. ``describe(node)`` adds text after the label."""
        lines: list[str] = []
        shown = set(self.shown)

        def walk(node_id: int, depth: int) -> None:
            for child in self.nodes[node_id].children:
                node = self.nodes[child]
                mark = ">" if child == self.selected else ("*" if child in shown else " ")
                extra = f"  {describe(node)}" if describe else ""
                lines.append(f"{'  ' * depth}{mark} {node.label}{extra}")
                walk(child, depth + 1)

        walk(ROOT, 0)
        return lines


__all__ = ["HistoryTree", "Node", "ROOT"]
