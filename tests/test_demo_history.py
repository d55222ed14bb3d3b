"""The demo's branching history (musenet_hf.demo.demo_history): plain Python, no Gradio."""

import copy

import pytest

from musenet_hf.demo.demo_history import ROOT, HistoryTree


def batch(tag: str, n: int = 4) -> list[dict]:
    return [{"midi": f"{tag}{k}".encode(), "seconds": 10.0 + k} for k in range(n)]


def test_generate_continue_undo_and_branch():
    tree = HistoryTree()
    assert tree.shown == [] and not tree.can_undo() and not tree.undo()
    first = tree.add_batch(None, batch("a"))
    assert [tree.node(i).label for i in first] == ["1", "2", "3", "4"]
    assert tree.shown == first and tree.selected == first[0]
    assert tree.node(first[1]).midi == b"a1" and tree.node(first[1]).info == {"seconds": 11.0}
    assert not tree.can_undo()  # a fresh Generate is where the piece begins

    tree.select_index(1)
    second = tree.add_batch(tree.selected, batch("b"))
    assert [tree.node(i).label for i in second] == ["2.1", "2.2", "2.3", "2.4"]
    assert tree.path(second[2]) == [first[1], second[2]]

    assert tree.undo()  # back to the first batch, the continued candidate chosen
    assert tree.shown == first and tree.selected == first[1]

    # continuing the same candidate again opens a new branch; the old one stays
    third = tree.add_batch(first[1], batch("c", 2))
    assert [tree.node(i).label for i in third] == ["2.5", "2.6"]
    assert tree.node(first[1]).children == second + third
    tree.go_to(tree.find("2.3"))
    assert tree.shown == second and tree.selected == second[2]
    assert len(tree) == 10


def test_outline_marks_the_chosen_piece_and_the_shown_batch():
    tree = HistoryTree()
    first = tree.add_batch(None, batch("a", 2))
    tree.add_batch(first[0], batch("b", 2))
    lines = tree.outline(lambda n: f"{n.info['seconds']:.0f} s")
    assert lines == ["  1  10 s", "  > 1.1  10 s", "  * 1.2  11 s", "  2  11 s"]


def test_errors_and_copies():
    tree = HistoryTree()
    with pytest.raises(ValueError):
        tree.add_batch(None, [])
    with pytest.raises(KeyError):
        tree.add_batch(99, batch("x"))
    ids = tree.add_batch(ROOT, batch("a"))
    with pytest.raises(IndexError):
        tree.select_index(4)
    with pytest.raises(KeyError):
        tree.go_to(ROOT)
    with pytest.raises(KeyError):
        tree.find("7.1")
    # gr.State deep-copies a session's value: a copy is independent of the original
    twin = copy.deepcopy(tree)
    twin.add_batch(ids[0], batch("b"))
    assert len(twin) == 8 and len(tree) == 4
