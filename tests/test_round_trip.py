"""Round trip on every file: decode_to_midi(encode_midi(f)) keeps the notes, note for note.

The files made in midi_fixtures.py run in the default suite; the 443 real files of ../shared/midi
in a slow sweep.

Both files are read by an independent reader written here on mido's merged-track iteration
(not musenet_hf.midi.midi_io). The expected notes are the original's, put through the changes the
encoding makes by design, each named and counted:

- ``quantized``: onsets and offsets move to the clock grid (10 ms);
- ``folded``: a GM program becomes its instrument class (viola -> violin, organ -> piano, ...);
- ``volume``: velocity becomes the nearest volume level (musenet: non-piano notes all v80);
- ``min_length``: a note shorter than one clock unit lasts one unit;
- ``doubled``: two notes of one class and pitch with the same onset are kept once (the longer);
- ``restruck``: a note re-struck while it sounds is cut at the re-strike;
- ``drum_length``: drums are note-on only and come back with a fixed length.

Any other difference fails the test. Notes are read without the sustain pedal on both sides:
how the pedal lengthens notes is a reading rule, tested in ``test_midi_io.py``, not an encoding
one (readers differ on edge cases such as a pedal pressed at the tick of a release). The exact-match rate per preset (notes that needed nothing
but quantization) is printed.
"""

from collections import Counter
from pathlib import Path

import mido
import numpy as np
import pytest

from musenet_hf.tokenizer.tokenization_musenet import MuseNetTokenizer, quantize

from midi_fixtures import needs_shared_midi, shared_midi


def reference_notes(mid: mido.MidiFile, sustain: bool) -> list[tuple]:
    """(program, is_drum, pitch, velocity, start_s, end_s) from mido's merged tracks.

    Seconds follow the tempo map (mido.tick2second per delta); note-offs pair first-in-first-out
    per (track, channel, pitch); the sustain pedal (CC64 >= 64; the state after the last CC64 of a tick
    counts for that whole tick; drums ignore it) holds released notes until it lifts or the key is
    struck again; notes still open at the end close at the last event.
    """
    events = []
    for k, track in enumerate(mid.tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            events.append((tick, k, len(events), msg))
    events.sort(key=lambda e: e[:3])  # time, then earlier track, then file order
    pedal_after: dict[tuple[int, int], bool] = {}  # (channel, tick) -> pedal down after that tick
    for tick, _, _, msg in events:
        if msg.type == "control_change" and msg.control == 64:
            pedal_after[(msg.channel, tick)] = msg.value >= 64
    program = [0] * 16
    pedal = [False] * 16
    open_notes: dict[tuple[int, int, int], list] = {}
    held: dict[int, list] = {c: [] for c in range(16)}
    out, now, last_tick, tempo = [], 0.0, 0, 500_000
    for tick, track, _, msg in events:
        now += mido.tick2second(tick - last_tick, mid.ticks_per_beat, tempo)
        last_tick = tick
        if msg.type == "set_tempo":
            tempo = msg.tempo
        elif msg.type == "program_change":
            program[msg.channel] = msg.program
        elif msg.type == "control_change" and msg.control == 64 and sustain and msg.channel != 9:
            down = msg.value >= 64
            if pedal[msg.channel] and not down:
                for rec in held[msg.channel]:
                    out.append((*rec[:4], rec[4], now))
                held[msg.channel] = []
            pedal[msg.channel] = down
        elif msg.type == "note_on" and msg.velocity > 0:
            ch = msg.channel
            # a note held only by the pedal ends when its key is struck again
            still = [rec for rec in held[ch] if rec[2] != msg.note]
            out += [(*rec[:4], rec[4], now) for rec in held[ch] if rec[2] == msg.note]
            held[ch] = still
            open_notes.setdefault((track, ch, msg.note), []).append(
                [program[ch] if ch != 9 else 0, ch == 9, msg.note, msg.velocity, now])
        elif msg.type in ("note_off", "note_on"):
            queue = open_notes.get((track, msg.channel, msg.note))
            if queue:
                rec = queue.pop(0)
                ch = msg.channel
                if sustain and ch != 9 and pedal_after.get((ch, tick), pedal[ch]):
                    held[ch].append(rec)
                else:
                    out.append((*rec[:4], rec[4], now))
    for queue in open_notes.values():
        out += [(*rec[:4], rec[4], now) for rec in queue]
    for recs in held.values():
        out += [(*rec[:4], rec[4], now) for rec in recs]
    return out


def expected_after_encoding(notes: list[tuple], tok: MuseNetTokenizer, kinds: Counter) -> list[tuple]:
    """The notes a round trip should give: (instrument, pitch, volume, on_unit, off_unit).

    Counts in ``kinds`` each by-design change, and under ``"exact"`` / ``"exact_timing"`` the
    notes that come back changed by quantization alone / with their timing untouched (volume
    and program folding aside).
    """
    v = tok.vocabulary
    unit = v.config.wait_unit
    by_key: dict[tuple[int, int], list] = {}
    for program, drum, pitch, vel, start, end in notes:
        inst = v.drum_index if drum else int(v.program_to_instrument[program])
        other = False  # changed in instrument or volume
        if v.instruments[inst].program != program and not drum:
            kinds["folded"] += 1
            other = True
        vol = int(v.note_volume[v.note_id(inst, max(1, vel), pitch)])
        if vol != vel:
            kinds["volume"] += 1
            other = True
        on, off = int(quantize(start, 1 / unit)), int(quantize(end, 1 / unit))
        timing = False  # changed in timing beyond quantization
        if drum:
            if off != on + v.config.drum_note_units:
                kinds["drum_length"] += 1
                timing = True
            off = on + v.config.drum_note_units
        elif off <= on:
            kinds["min_length"] += 1
            timing = True
            off = on + 1
        by_key.setdefault((inst, pitch), []).append([on, off, vol, timing, other])
    out = []
    for (inst, pitch), items in by_key.items():
        items.sort(key=lambda x: (x[0], -x[1], -x[2]))  # onset, longest, loudest
        kept = []
        for item in items:
            if kept and kept[-1][0] == item[0]:
                kinds["doubled"] += 1
                continue
            if kept and item[0] < kept[-1][1] and inst != v.drum_index:
                kinds["restruck"] += 1
                kept[-1][1], kept[-1][3] = item[0], True
            kept.append(item)
        if inst == v.drum_index:  # a re-hit drum's fixed-length note is cut by the next hit
            for a, b in zip(kept, kept[1:]):
                a[1] = min(a[1], b[0])
        kinds["exact_timing"] += sum(not k[3] for k in kept)
        kinds["exact"] += sum(not (k[3] or k[4]) for k in kept)
        out += [(inst, pitch, vol, on, off) for on, off, vol, _, _ in kept]
    return sorted(out)


def decoded_notes(mid: mido.MidiFile, tok: MuseNetTokenizer) -> list[tuple]:
    v = tok.vocabulary
    unit = v.config.wait_unit
    out = []
    for program, drum, pitch, vel, start, end in reference_notes(mid, sustain=False):
        inst = v.drum_index if drum else int(v.program_to_instrument[program])
        out.append((inst, pitch, vel, int(quantize(start, 1 / unit)), int(quantize(end, 1 / unit))))
    return sorted(out)


def readable_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in (".mid", ".midi") or not path.is_file():
            continue
        try:
            mid = mido.MidiFile(path)
        except Exception:
            continue  # files strict mido cannot read are covered by the tolerant-reader tests
        if mid.type == 2 or mid.ticks_per_beat <= 0:
            continue
        files.append(path)
    return files


def round_trip(files: list[Path], root: Path, preset: str, capsys) -> None:
    """Every file of ``files`` through the tokenizer of ``preset``: only the named changes."""
    tok = MuseNetTokenizer.from_preset(preset)
    kinds, total_notes, exact_files, mismatches = Counter(), 0, 0, []
    for path in files:
        original = mido.MidiFile(path)
        file_kinds = Counter()
        notes = reference_notes(original, sustain=False)
        expected = expected_after_encoding(notes, tok, file_kinds)
        got = decoded_notes(tok.decode_to_midi(tok.encode_midi(path, sustain=False)), tok)
        if got != expected:
            mismatches.append(path.relative_to(root))
        total_notes += len(notes)
        exact_files += file_kinds["exact"] == len(notes)
        kinds += file_kinds
    exact, timing = kinds.pop("exact", 0), kinds.pop("exact_timing", 0)
    with capsys.disabled():
        print(f"\n[{preset}] {len(files)} files, {total_notes} notes: {exact / total_notes:.1%} of notes "
              f"({exact_files / len(files):.1%} of files) come back changed by time quantization alone; "
              f"{timing / total_notes:.1%} with their timing exact (volume level and instrument folding aside); "
              f"by-design changes: {dict(kinds)}")
    assert not mismatches, f"{len(mismatches)} files differ beyond the named changes, e.g. {mismatches[:5]}"


@pytest.mark.parametrize("preset", ["musenet", "extended"])
def test_round_trip_every_made_file(preset, made_midi, capsys):
    """The 21 pieces made in midi_fixtures.py: piano with the pedal, strings, winds, guitar, bass and
    drums; type 0 and 1; 96 and 480 ticks a beat; tempo changes; program changes mid-track."""
    files = readable_files(made_midi.valid) + readable_files(made_midi.songs)
    assert len(files) == 21
    round_trip(files, made_midi.root, preset, capsys)


@needs_shared_midi
@pytest.mark.slow  # a whole-folder sweep (142 s for musenet alone), slow like its extended twin
@pytest.mark.parametrize("preset", ["musenet", "extended"])
def test_round_trip_every_valid_file(preset, capsys):
    root = shared_midi("valid")
    files = readable_files(root)
    assert len(files) > 400
    round_trip(files, root, preset, capsys)
