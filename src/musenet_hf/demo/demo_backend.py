"""What the demo app does behind its page, without Gradio: check a request, generate, render.

:class:`Studio` holds the loaded pipelines (the app's model and any other local checkpoint a user
names), turns a :class:`Request` into candidates with the ``musenet-generation`` pipeline (all
candidates in one batch), continues a piece by using it whole as the primer, and writes each
candidate's MIDI, WAV (FluidSynth) and piano-roll PNG. Every problem a user can cause comes out
as :class:`DemoError` with a sentence for the page.
"""

from __future__ import annotations

import math
import tempfile
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

MAX_SECONDS = 120.0  # per Generate/Continue: a CPU makes 4 x 120 s in a few minutes; Continue goes further
MAX_SAMPLES = 8  # candidates one request may generate (the page shows the best 4)
SHOWN = 4  # candidate slots on the page
WAV_RATE = 22050  # half CD rate: a quarter of the bytes to send, plenty for a General MIDI preview


class DemoError(ValueError):
    """A request the app cannot serve, with the reason in words for the page."""


@dataclass
class Request:
    """One Generate (or Continue) request, as the page sends it.

    ``instruments`` are instrument or group names (None: the composer's usual ones, or the
    primer's); ``primer`` is MIDI bytes; ``steering`` is ``"auto"`` (soft toward the named
    instruments, or the composer's usual ones), ``"none"``, ``"soft"`` or ``"hard"``; ``model`` is a local checkpoint folder (None:
    the app's own); ``guidance`` is the composer guidance scale (1: off, about 1.4x as fast). A
    sampling setting left None is the model's own (its generation config, its preset for the label).
    """

    composer: str | None = None
    instruments: list[str] | None = None
    seconds: float = 20.0
    primer: bytes | None = None
    primer_seconds: float | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    guidance: float | None = None
    steering: str = "auto"
    strength: float | None = None
    samples: int = SHOWN
    rerank: bool = False
    max_polyphony: int | None = None
    seed: int | None = None
    model: str | None = None


def _number(name: str, value: Any, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> float:
    """``value`` as a finite float within the bounds, or a DemoError naming ``name``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DemoError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or (low is not None and (x <= low if low_open else x < low)) or \
            (high is not None and x > high):
        bounds = f"{'above' if low_open else 'at least'} {low:g}" if low is not None else ""
        if high is not None:
            bounds += f"{' and ' if bounds else ''}at most {high:g}"
        raise DemoError(f"{name} must be {bounds}, got {value!r}")
    return x


def check_request(req: Request) -> Request:
    """The request with its numbers checked and normalised (raises DemoError with the reason)."""
    seconds = _number("Length", req.seconds, 0, None, low_open=True) if req.seconds is not None else 0.0
    if seconds > MAX_SECONDS:
        raise DemoError(f"Length must be at most {MAX_SECONDS:g} seconds per step, got {req.seconds:g}: on a CPU that "
                        f"would take many minutes. Generate up to {MAX_SECONDS:g} s, then press Continue to go on "
                        "(or use `musenet generate --seconds N` for one long piece).")
    if req.seconds is None or seconds <= 0:
        raise DemoError("Length must be a positive number of seconds.")
    out = replace(req, seconds=seconds, samples=int(_number("Samples", req.samples, 1, MAX_SAMPLES)))
    if req.temperature is not None:
        out.temperature = _number("Temperature", req.temperature, 0, 5)
    if req.top_p is not None:
        out.top_p = _number("Top-p", req.top_p, 0, 1, low_open=True)
    if req.top_k is not None:
        out.top_k = int(_number("Top-k", req.top_k or 0, 0, 10000))
    if req.strength is not None:
        out.strength = _number("Strength", req.strength, 0, 50)
    if req.guidance is not None:
        out.guidance = _number("Guidance", req.guidance, 0, 10)
    if req.primer_seconds is not None:
        out.primer_seconds = _number("Primer seconds", req.primer_seconds, 0)
    if req.max_polyphony:
        out.max_polyphony = int(_number("Max polyphony", req.max_polyphony, 1, 64))
    else:
        out.max_polyphony = None
    if req.seed is not None and str(req.seed).strip() not in ("", "-1"):
        out.seed = int(_number("Seed", req.seed, 0, 2 ** 31 - 1))
    else:
        out.seed = None
    if req.steering not in ("auto", "none", "soft", "hard"):
        raise DemoError(f"Steering must be auto, none, soft or hard, got {req.steering!r}")
    if req.steering in ("soft", "hard") and not req.instruments:
        raise DemoError(f"{req.steering.capitalize()} steering needs instruments: tick some, or choose steering none.")
    return out


def read_primer(data: bytes | str | Path) -> bytes:
    """A primer's MIDI bytes from bytes or a path, checked to hold notes (DemoError otherwise)."""
    from ..errors import MidiReadError
    from ..midi.midi_io import read_midi

    name = Path(data).name if isinstance(data, (str, Path)) else "the primer"
    try:
        raw = Path(data).read_bytes() if isinstance(data, (str, Path)) else bytes(data)
    except OSError as err:
        raise DemoError(f"could not read the uploaded file {name}: {err.strerror}") from None
    try:
        with warnings.catch_warnings(record=True) as repairs:  # the reader mends damaged files and says how
            warnings.simplefilter("always")
            score = read_midi(raw)
    except (MidiReadError, ValueError, EOFError, OSError, IndexError) as err:
        raise DemoError(f"{name} is not a MIDI file that can be read ({str(err)[:200]}). "
                        "Upload a Standard MIDI File (.mid).") from None
    if not score.notes:
        damage = "; ".join(str(w.message) for w in repairs)[:200]
        raise DemoError(f"{name} is " + (f"not a MIDI file that can be read: damaged, and no notes survive ({damage})"
                                         if damage else "a MIDI file without notes") + ". Upload one with music in it.")
    return raw


class Studio:
    """The loaded models and the work of the app (thread safe: one generation at a time)."""

    def __init__(self, model: str | Path, threads: int = 1, workdir: str | Path | None = None,
                 device: str = "cpu") -> None:
        self.default_model = str(Path(model).resolve())
        self.threads = threads
        self.device = device
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="musenet-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pipes: dict[str, Any] = {}
        self._lock = threading.Lock()  # torch threads and matplotlib are process-wide
        self._count = 0
        self.pipeline()  # fail at start, not at the first click, when the model is missing

    # ------------------------------------------------------------------ models
    def pipeline(self, model: str | None = None) -> Any:
        """The pipeline of a local checkpoint folder (the app's own by default), loaded once."""
        import torch
        from transformers import pipeline

        from ..generation.pipeline_musenet import TASK, register_pipeline
        from ..loading import load_model, tokenizer_for_model

        key = str(Path(model).expanduser().resolve()) if model and str(model).strip() else self.default_model
        if key not in self._pipes:
            if not Path(key).is_dir():
                raise DemoError(f"model folder {key} not found: give a local checkpoint folder "
                                "(written by save_pretrained or `musenet train`); nothing is downloaded")
            register_pipeline()
            try:
                loaded = load_model(key, self.device)
            except (FileNotFoundError, ImportError, OSError, ValueError, KeyError) as err:
                raise DemoError(f"could not load a model from {key}: {str(err)[:300]}") from None
            if len(self._pipes) >= 3:  # keep memory bounded: forget the oldest extra model
                oldest = next(k for k in self._pipes if k != self.default_model)
                del self._pipes[oldest]
            self._pipes[key] = pipeline(TASK, model=loaded, tokenizer=tokenizer_for_model(loaded),
                                        device=torch.device(self.device))
        return self._pipes[key]

    def vocabulary(self, model: str | None = None) -> Any:
        return self.pipeline(model).tokenizer.vocabulary

    def composer_choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs: the styles the model trained on first (with piece counts), then the
        ones it never trained on, marked so (:mod:`musenet_hf.generation.styles`, the names `musenet list` gives);
        unmarked in vocabulary order when the model records no coverage."""
        from ..generation.styles import trained_styles, untrained_styles

        pipe = self.pipeline()
        names = pipe.tokenizer.vocabulary.composers
        coverage = getattr(pipe.model.config, "training_coverage", None)
        trained = trained_styles(coverage, names)
        if not trained:
            return [(n, n) for n in names]
        return ([(f"{n} (trained on {count} pieces)", n) for n, count in trained.items()]
                + [(f"{n} (untrained)", n) for n in untrained_styles(coverage, names)])

    # ------------------------------------------------------------------ generating
    def generate(self, req: Request) -> list[dict[str, Any]]:
        """Candidates for a checked request: dicts with ``midi`` (bytes), ``seconds``, ``primer_seconds``,
        ``critic_score``, the pipeline's ``check`` of the piece, ``coverage`` (what the model never
        trained on, in a sentence, or None) and the request's ``composer``, ``instruments``,
        ``steering``. Best first with ``rerank``; at most :data:`SHOWN` of them."""
        import io

        from ..generation.generate import GenerationInterrupted
        from ..generation.styles import unknown_style_message

        req = check_request(req)
        pipe = self.pipeline(req.model)
        v = pipe.tokenizer.vocabulary
        if req.composer:
            try:
                v.composer_id(req.composer)
            except KeyError:
                raise DemoError(unknown_style_message(v, req.composer, getattr(pipe.model.config, "training_coverage",
                                                                                 None))) from None
        if req.instruments:
            from ..generation.logits_processors import resolve_instruments

            try:
                resolve_instruments(v, req.instruments)
            except ValueError as err:
                raise DemoError(str(err)) from None
        kwargs: dict[str, Any] = dict(
            composer=req.composer or None, instruments=req.instruments or None, seconds=req.seconds,
            num_samples=req.samples, rerank=req.rerank, seed=req.seed, max_polyphony=req.max_polyphony,
            threads=self.threads)
        for name in ("temperature", "top_p", "top_k"):  # None: the model's own
            if getattr(req, name) is not None:
                kwargs[name] = getattr(req, name)
        if req.steering != "auto":
            kwargs["steering"] = None if req.steering == "none" else req.steering
        if req.strength is not None:
            kwargs["strength"] = req.strength
        if req.guidance is not None:
            kwargs["guidance"] = req.guidance
        if req.primer is not None:
            kwargs["primer"] = read_primer(req.primer)
            kwargs["primer_seconds"] = req.primer_seconds
        coverage = pipe.coverage_message({"composer": req.composer, "instruments": req.instruments}, {})
        with self._lock:
            try:
                results = pipe(**kwargs)
            except GenerationInterrupted as err:
                results = err.results
            except (KeyError, ValueError) as err:  # what the pipeline itself refuses
                raise DemoError(str(err.args[0]) if err.args else str(err)) from None
        out = []
        for r in results[:SHOWN]:
            buf = io.BytesIO()
            r["midi"].save(file=buf)
            out.append({"midi": buf.getvalue(), "seconds": r["seconds"], "primer_seconds": r["primer_seconds"],
                        "critic_score": r["critic_score"], "composer": req.composer, "instruments": req.instruments,
                        "steering": req.steering, "strength": req.strength, "model": req.model,
                        "temperature": req.temperature, "top_p": req.top_p, "top_k": req.top_k,
                        "guidance": req.guidance,
                        "max_polyphony": req.max_polyphony, "check": r.get("check"), "coverage": coverage})
        return out

    def continue_piece(self, piece: dict[str, Any], midi: bytes, seconds: float, seed: int | None = None,
                       samples: int = SHOWN) -> list[dict[str, Any]]:
        """Candidates that go on from a whole piece (``midi``, its settings in ``piece``) by ``seconds``.

        The piece is the primer, all of it (``primer_seconds`` past its end), so every candidate starts
        with the piece note for note; the pipeline's long-form generator slides its window past the
        model's context, so pieces longer than the context continue too.
        """
        whole = float(piece.get("seconds") or 0.0) + 1.0
        req = Request(composer=piece.get("composer"), instruments=piece.get("instruments"), seconds=seconds,
                      primer=midi, primer_seconds=whole, steering=piece.get("steering") or "auto",
                      strength=piece.get("strength"), samples=samples, seed=seed, model=piece.get("model"),
                      temperature=piece.get("temperature"), top_p=piece.get("top_p"),
                      top_k=piece.get("top_k"), guidance=piece.get("guidance"),
                      max_polyphony=piece.get("max_polyphony"))
        return self.generate(req)

    # ------------------------------------------------------------------ rendering
    def render(self, pieces: list[tuple[bytes, str, str]], model: str | None = None) -> list[dict[str, Any]]:
        """Write ``NAME.mid``, ``NAME.png`` (piano roll) and ``NAME.wav`` for each ``(midi, name, title)``.

        Returns one ``{"mid", "png", "wav" (None without FluidSynth), "audio_note", "notes"}`` per
        piece, ``notes`` counting the notes per instrument name. FluidSynth runs as a separate
        process per piece, all at once, while this thread draws the piano rolls.
        """
        from concurrent.futures import ThreadPoolExecutor

        from ..midi.midi_io import read_midi
        from ..midi.render import AudioRenderError, render_pianoroll, render_wav

        def wav_of(mid: Path) -> tuple[str | None, str]:
            try:
                return str(render_wav(mid, mid.with_suffix(".wav"), sample_rate=WAV_RATE)), ""
            except AudioRenderError as err:
                return None, f"no audio: {err}"

        v = self.vocabulary(model)
        out, mids = [], []
        for midi, name, _ in pieces:
            with self._lock:
                self._count += 1
                folder = self.workdir / f"{self._count:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in name) or "piece"
            mids.append(folder / f"musenet-{safe}.mid")
            mids[-1].write_bytes(midi)
        with ThreadPoolExecutor(max_workers=max(1, len(pieces))) as pool:
            wavs = [pool.submit(wav_of, mid) for mid in mids]
            for (midi, _, title), mid in zip(pieces, mids):
                notes = list(read_midi(midi).notes)
                counts: dict[str, int] = {}
                for n in notes:
                    try:
                        idx = v.instrument_of_program(n.program, n.is_drum)
                    except ValueError:  # drums in a vocabulary without a kit: the tokenizer reads them as piano
                        idx = v.instrument_index.get("piano", 0)
                    counts[v.instruments[idx].name] = counts.get(v.instruments[idx].name, 0) + 1
                png = mid.with_suffix(".png")
                with self._lock:  # pyplot's state is global
                    render_pianoroll(notes, png, vocabulary=v, title=title or None, dpi=60)
                out.append({"mid": str(mid), "png": str(png), "notes": counts})
            for item, job in zip(out, wavs):
                item["wav"], item["audio_note"] = job.result()
        return out


def audio_available() -> str:
    """Empty when FluidSynth and a soundfont are there, else what to install (for a note on the page)."""
    import shutil

    from ..midi.render import INSTALL_HINT, AudioRenderError, find_soundfont

    if shutil.which("fluidsynth") is None:
        return f"No audio players: the fluidsynth program is missing ({INSTALL_HINT}). MIDI and piano rolls still work."
    try:
        find_soundfont()
    except AudioRenderError as err:
        return f"No audio players: {err}. MIDI and piano rolls still work."
    return ""


__all__ = ["DemoError", "MAX_SAMPLES", "MAX_SECONDS", "Request", "SHOWN", "Studio", "audio_available",
           "check_request", "read_primer"]
