"""Hearing and seeing generated music: WAV through FluidSynth, piano-roll PNG with matplotlib.

Audio needs the FluidSynth program and a General MIDI soundfont; on Debian/Ubuntu::

    sudo apt-get install fluidsynth fluid-soundfont-gm

(:data:`SOUNDFONT_PATHS` lists where soundfonts are looked for; ``MUSENET_SOUNDFONT`` or the
``soundfont`` argument name another). Without them :func:`render_wav` raises
:class:`AudioRenderError` saying what to install. The piano roll needs ``matplotlib`` only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Sequence

import mido

SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
)
INSTALL_HINT = ("install FluidSynth and a General MIDI soundfont "
                "(Debian/Ubuntu: sudo apt-get install fluidsynth fluid-soundfont-gm; macOS: brew install fluid-synth "
                "and download a GM .sf2), or pass the soundfont's path")

# One colour per MuseNet instrument (matplotlib's tab10, in the vocabulary's instrument order).
INSTRUMENT_COLOURS = {
    "piano": "#1f77b4", "violin": "#d62728", "cello": "#8c564b", "bass": "#9467bd", "guitar": "#ff7f0e",
    "flute": "#17becf", "clarinet": "#2ca02c", "trumpet": "#bcbd22", "harp": "#e377c2", "drums": "#3a3a3a",
}


class AudioRenderError(RuntimeError):
    """FluidSynth or a soundfont is missing, or FluidSynth failed (the message says which and why)."""


def find_soundfont(soundfont: str | os.PathLike | None = None) -> Path:
    """The soundfont to use: the argument, ``$MUSENET_SOUNDFONT``, or the first of :data:`SOUNDFONT_PATHS`."""
    if soundfont is not None:
        path = Path(soundfont)
        if not path.is_file():
            raise AudioRenderError(f"soundfont {path} not found")
        return path
    env = os.environ.get("MUSENET_SOUNDFONT")
    for cand in ([env] if env else []) + list(SOUNDFONT_PATHS):
        if Path(cand).is_file():
            return Path(cand)
    raise AudioRenderError(f"no General MIDI soundfont found: {INSTALL_HINT}")


def render_wav(midi: mido.MidiFile | str | os.PathLike, path: str | os.PathLike,
               soundfont: str | os.PathLike | None = None, sample_rate: int = 44100,
               gain: float = 0.6, tail: float | None = 2.0, timeout: float = 600.0) -> Path:
    """Render a MIDI file (or ``mido.MidiFile``) to a 16-bit stereo WAV file with FluidSynth.

    FluidSynth renders until the last voice has died away, which for low piano or harp notes
    can be many seconds past the music; ``tail`` keeps that many seconds after the last MIDI
    event (fading out over the last half second), None keeps everything.

    Raises:
        AudioRenderError: FluidSynth or a soundfont is missing, or rendering failed.
    """
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise AudioRenderError(f"the fluidsynth program was not found: {INSTALL_HINT}")
    sf2 = find_soundfont(soundfont)
    out = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(midi, mido.MidiFile):
            src = Path(tmp) / "piece.mid"
            midi.save(str(src))
        else:
            src = Path(midi)
        # -n: no MIDI input, -i: no shell, -F: render to file as fast as possible
        cmd = [exe, "-ni", "-q", "-g", str(gain), "-r", str(sample_rate), "-T", "wav", "-O", "s16",
               "-F", str(out), str(sf2), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
        raise AudioRenderError(f"fluidsynth failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}")
    if tail is not None:
        length = midi.length if isinstance(midi, mido.MidiFile) else mido.MidiFile(str(midi)).length
        _trim_wav(out, length + tail, fade=min(0.5, tail))
    return out


def _trim_wav(path: Path, seconds: float, fade: float) -> None:
    """Cut a 16-bit WAV file to ``seconds``, fading out linearly over its last ``fade`` seconds."""
    import wave

    import numpy as np

    with wave.open(str(path)) as w:
        params = w.getparams()
        keep = int(seconds * params.framerate)
        if w.getnframes() <= keep or params.sampwidth != 2:
            return
        audio = np.frombuffer(w.readframes(keep), dtype=np.int16).reshape(-1, params.nchannels).astype(np.float32)
    n = min(len(audio), int(fade * params.framerate))
    if n:
        audio[-n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)[:, None]
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(audio.astype(np.int16).tobytes())


def _notes_of(src: Any) -> list[Any]:
    """Note events (objects with program, is_drum, pitch, start, end) from notes, a MidiFile or a path."""
    if isinstance(src, (str, os.PathLike, bytes, mido.MidiFile)):
        from .midi_io import read_midi

        return list(read_midi(src).notes)
    return list(src)


def render_pianoroll(notes: Sequence[Any] | mido.MidiFile | str | os.PathLike, path: str | os.PathLike,
                     vocabulary: Any = None, title: str | None = None, dpi: int = 120) -> Path:
    """Draw a piano roll PNG: one bar per note (time in seconds x pitch), coloured by instrument.

    Args:
        notes: note events (``midi_io.Note`` or anything with ``program``, ``is_drum``,
            ``pitch``, ``start``, ``end``), a ``mido.MidiFile`` or a MIDI path.
        path: the PNG to write.
        vocabulary: maps General MIDI programs to instruments (default: the ``musenet`` preset's).
        title: a title over the plot.
    Drums are drawn as ``x`` marks at their key number.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from ..tokenizer.vocabulary import MuseNetVocabulary

    vocab = vocabulary or MuseNetVocabulary.from_preset("musenet")
    events = _notes_of(notes)
    groups: dict[str, list[Any]] = {}
    for n in events:
        name = "drums" if n.is_drum else vocab.instruments[vocab.instrument_of_program(n.program)].name
        groups.setdefault(name, []).append(n)
    end = max((n.end for n in events), default=1.0)
    width = min(24.0, max(8.0, end / 4.0))
    fig, ax = plt.subplots(figsize=(width, 5.0))
    handles = []
    order = [i.name for i in vocab.instruments]
    for name in sorted(groups, key=lambda g: order.index(g) if g in order else len(order)):
        group = groups[name]
        colour = INSTRUMENT_COLOURS.get(name, "#7f7f7f")
        if name == "drums":
            ax.scatter([n.start for n in group], [n.pitch for n in group], marker="x", s=12, color=colour, linewidths=0.8)
        else:
            ax.barh([n.pitch for n in group], [max(n.end - n.start, 0.02) for n in group], left=[n.start for n in group],
                    height=0.8, color=colour, edgecolor="none", alpha=0.85)
        handles.append(Patch(color=colour, label=f"{name} ({len(group)})"))
    if events:
        lo, hi = min(n.pitch for n in events), max(n.pitch for n in events)
        ax.set_ylim(lo - 2, hi + 2)
    ax.set_xlim(0, end * 1.01)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch (MIDI key)")
    ax.grid(True, axis="x", alpha=0.3)
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title(title or f"{len(events)} notes, {end:.1f} s")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


__all__ = ["AudioRenderError", "INSTRUMENT_COLOURS", "SOUNDFONT_PATHS", "find_soundfont", "render_pianoroll", "render_wav"]
