"""The package's one worker pool: :func:`map_with_timeout` runs a function over items in worker
processes, and a work that raises, hangs past its time limit or kills its worker is that work's
result, never the end of the run. ``musenet prepare-corpus`` (music21 conversions, some of which
take minutes) and :meth:`~musenet_hf.tokenizer.tokenization_musenet.MuseNetTokenizer.encode_files` (the one
folder-encoding path, under ``encode_folder`` and :func:`~musenet_hf.training.data.load_midi_folder`) use it.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import warnings
from collections import deque
from multiprocessing.connection import wait as wait_for_connections
from typing import Any, Callable, Iterable, Iterator

_TASKS_PER_WORKER = 200  # restart workers now and then: libraries like music21 keep growing caches


def _worker_loop(conn: Any, fn: Callable[[Any], Any]) -> None:
    warnings.simplefilter("ignore")  # readers warn freely about the files they read; results say what failed
    while True:
        item = conn.recv()
        if item is None:
            return
        try:
            conn.send(("ok", fn(item)))
        except Exception as err:  # any failure of one work is that work's result
            reason = f"{type(err).__name__}: {err}".strip()
            conn.send(("error", reason[:500]))


def _mp_context() -> Any:
    # fork: workers inherit the imported modules (music21: no 1 s re-import each) and the
    # caller's objects; spawn elsewhere (then `fn` must be picklable).
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)


def map_with_timeout(
    fn: Callable[[Any], Any], items: Iterable[Any], num_proc: int, timeout_s: float | None = None
) -> Iterator[tuple[Any, str, Any]]:
    """Run ``fn`` on each item in ``num_proc`` worker processes; yield ``(item, status, value)``.

    ``status`` is ``"ok"`` (value: the result), ``"error"`` (value: the exception as text),
    ``"timeout"`` (the worker ran past ``timeout_s`` on it and was killed) or ``"crashed"``
    (the worker died). A killed or dead worker is replaced, so one item never stops the rest.
    Results come in completion order. ``timeout_s=None``: no time limit.
    """
    ctx = _mp_context()
    pending = deque(items)
    workers: list[dict[str, Any]] = []

    def start_worker() -> dict[str, Any]:
        parent_conn, child_conn = ctx.Pipe()
        proc = ctx.Process(target=_worker_loop, args=(child_conn, fn), daemon=True)
        proc.start()
        child_conn.close()  # only the child holds its end: its death then reads as EOF here
        return {"proc": proc, "conn": parent_conn, "item": None, "started": 0.0, "done": 0}

    def stop_worker(w: dict[str, Any], kill: bool) -> None:
        if kill:
            w["proc"].kill()
        else:
            try:
                w["conn"].send(None)
            except OSError:
                pass
        w["proc"].join(timeout=5)
        if w["proc"].is_alive():
            w["proc"].kill()
            w["proc"].join()
        w["conn"].close()

    def give_work(w: dict[str, Any]) -> None:
        w["item"], w["started"] = pending.popleft(), time.monotonic()
        w["conn"].send(w["item"])

    try:
        for _ in range(min(max(1, num_proc), len(pending))):
            workers.append(start_worker())
            give_work(workers[-1])
        while workers:
            if timeout_s is None:
                ready = wait_for_connections([w["conn"] for w in workers])
            else:
                deadline = min(w["started"] for w in workers) + timeout_s
                ready = wait_for_connections([w["conn"] for w in workers], max(0.0, deadline - time.monotonic()))
            finished: list[tuple[dict[str, Any], str, Any]] = []
            for w in workers:
                if w["conn"] in ready:
                    try:
                        status, value = w["conn"].recv()
                    except (EOFError, OSError):
                        w["proc"].join(timeout=5)
                        status, value = "crashed", f"worker died (exit code {w['proc'].exitcode})"
                    finished.append((w, status, value))
                elif timeout_s is not None and time.monotonic() - w["started"] > timeout_s:
                    finished.append((w, "timeout", f"took longer than {timeout_s:g} s"))
            for w, status, value in finished:
                yield w["item"], status, value
                w["done"] += 1
                healthy = status in ("ok", "error")
                workers.remove(w)
                if healthy and pending and w["done"] < _TASKS_PER_WORKER:
                    workers.append(w)
                else:
                    stop_worker(w, kill=not healthy)
                    if pending:
                        workers.append(start_worker())
                if pending:
                    give_work(workers[-1])
    finally:
        for w in workers:
            stop_worker(w, kill=True)


__all__ = ["map_with_timeout"]
