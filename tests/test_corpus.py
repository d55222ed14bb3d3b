"""The embedded music21 corpus: real works converted, labelled, cached, failures isolated."""

import csv
import json
import os
import shutil
import time
from pathlib import Path

import mido
import pytest

pytest.importorskip("music21")

from musenet_hf.cli import cli_corpus
from musenet_hf.corpus import corpus_works as cw
from musenet_hf.corpus import music21_corpus as mc

# One string quartet movement, a chorale with a horn, three Essen songs (#101 is one whose
# time signature music21's ABC reader shares between two measures, which its MIDI export
# rejects unless unshared), two Irish fiddle tunes (one with a Q: tempo) and a Josquin chanson
# stored as one ABC tune per voice.
SMALL = [
    "haydn/opus1no1/movement1",
    "bach/bwv1.6",
    "essenFolksong/kinder0.abc#50",
    "essenFolksong/kinder0.abc#51",
    "essenFolksong/kinder0.abc#101",
    "ryansMammoth/IrishHornpipe",
    "oneills1850/0001-0050.abc#3",
    "josquin/milleRegrets",
]
FILES = {
    "haydn": "haydn/haydn__opus1no1__movement1.mid",
    "bach": "bach/bach__bwv1.6.mid",
    "kinder50": "folk/essenFolksong__kinder0__50.mid",
    "kinder51": "folk/essenFolksong__kinder0__51.mid",
    "kinder101": "folk/essenFolksong__kinder0__101.mid",
    "hornpipe": "irish/ryansMammoth__IrishHornpipe.mid",
    "oneills": "irish/oneills1850__0001-0050__3.mid",
    "josquin": "josquin/josquin__milleRegrets.mid",
}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    report = mc.prepare_corpus(out, collections=SMALL, num_proc=2, progress=False)
    return out, report


def track_programs(path: Path) -> list[int]:
    """The program of every track that plays notes, in track order."""
    programs = []
    for track in mido.MidiFile(str(path)).tracks:
        changes = [m.program for m in track if m.type == "program_change"]
        if any(m.type == "note_on" and m.velocity > 0 for m in track):
            programs.append(changes[0] if changes else 0)
    return programs


def test_small_set_converts_with_labels(small):
    out, report = small
    assert report.failures == []
    assert report.files_per_label == {"haydn": 1, "bach": 1, "folk": 3, "irish": 2, "josquin": 1}
    assert report.converted == 8 and report.cached == 0
    for rel in FILES.values():
        assert mido.MidiFile(str(out / rel)).length > 5
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mid")) == sorted(FILES.values())


def test_quartet_gets_violin_viola_cello(small):
    out, _ = small
    # Violin I, Violin II, Viola (GM 41, MuseNet's violin), Cello; music21 gives Haydn's parts a Piano.
    assert track_programs(out / FILES["haydn"]) == [40, 40, 41, 42]


def test_voices_get_voice_program_and_instruments_keep_theirs(small):
    out, _ = small
    # bwv1.6: "Horn 2" (GM 60, trumpet class) then soprano, alto, tenor, bass.
    assert track_programs(out / FILES["bach"]) == [60, 52, 52, 52, 52]
    assert track_programs(out / FILES["kinder50"]) == [52]  # Essen tunes are songs
    assert track_programs(out / FILES["oneills"]) == [0]  # a fiddle tune without instrument: piano
    assert track_programs(out / FILES["josquin"]) == [52, 52, 52, 52]  # four voices merged


def test_tempo_marks_are_kept(small):
    out, _ = small
    tempos = [m.tempo for t in mido.MidiFile(str(out / FILES["hornpipe"])).tracks for m in t if m.type == "set_tempo"]
    assert tempos and set(tempos) == {600000}  # Q:1/4=100


def test_shared_time_signature_is_unshared(small):
    out, _ = small
    mid = mido.MidiFile(str(out / FILES["kinder101"]))
    assert sum(1 for t in mid.tracks for m in t if m.type == "note_on" and m.velocity > 0) == 33
    meters = [(m.numerator, m.denominator) for t in mid.tracks for m in t if m.type == "time_signature"]
    assert meters[0] == (2, 4)  # M: 2/4


def test_metadata_csv(small):
    out, _ = small
    rows = {r["path"]: r for r in csv.DictReader(open(out / "metadata.csv", encoding="utf-8"))}
    assert set(rows) == set(FILES.values())
    r = rows[FILES["kinder50"]]
    assert (r["label"], r["collection"], r["number"]) == ("folk", "essenFolksong", "50")
    assert r["source"] == "essenFolksong/kinder0.abc"
    assert r["title"] == "HAENSCHEN SASS IM SCHORNSTEIN"
    mid = mido.MidiFile(str(out / r["path"]))
    ons = sum(1 for t in mid.tracks for m in t if m.type == "note_on" and m.velocity > 0)
    assert int(r["notes"]) == ons > 20
    assert float(r["seconds"]) == pytest.approx(mid.length, abs=1e-3)
    assert rows[FILES["haydn"]]["instruments"] == "violin cello"
    assert rows[FILES["haydn"]]["programs"] == "40 41 42"
    assert rows[FILES["bach"]]["instruments"] == "piano trumpet"
    assert rows[FILES["haydn"]]["number"] == "" and rows[FILES["haydn"]]["tokens"] == ""


def test_report_json(small):
    out, report = small
    data = json.loads((out / "report.json").read_text())
    assert data["files"] == 8 and data["failures"] == []
    assert data["labels"]["folk"]["files"] == 3
    rows = list(csv.DictReader(open(out / "metadata.csv", encoding="utf-8")))
    folk_minutes = sum(float(r["seconds"]) for r in rows if r["label"] == "folk") / 60
    assert data["labels"]["folk"]["minutes"] == pytest.approx(folk_minutes, abs=0.01)
    assert data["minutes"] == pytest.approx(report.total_minutes, abs=0.01)
    text = report.summary()
    assert "haydn" in text and "total" in text and "failures: 0" in text


def test_rerun_uses_cache(small, tmp_path, monkeypatch):
    src, _ = small
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.mid")}

    def must_not_run(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(mc, "convert_work", must_not_run)
    start = time.perf_counter()
    report = mc.prepare_corpus(out, collections=SMALL, progress=False)
    assert time.perf_counter() - start < 10
    assert (report.converted, report.cached, report.failures) == (0, 8, [])
    assert report.files_per_label["irish"] == 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mid")} == mtimes

    # A deleted file is converted again (here: fails, proving the cache was not trusted blindly).
    (out / FILES["oneills"]).unlink()
    report = mc.prepare_corpus(out, collections=SMALL, progress=False)
    assert report.converted == 1
    assert [f["work"] for f in report.failures] == ["oneills1850/0001-0050.abc#3"]


def test_failures_are_reported_and_isolated(tmp_path, monkeypatch):
    works = ["essenFolksong/kinder0.abc#50", "essenFolksong/kinder0.abc#51", "essenFolksong/kinder0.abc#52"]
    real_convert = mc.convert_work

    def flaky(work, out_path, voice_program=mc.DEFAULT_VOICE_PROGRAM):
        if work.number == 50:
            raise RuntimeError("duplicated time signature")
        if work.number == 51:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.with_name(out_path.name + f".{os.getpid()}.part").write_bytes(b"MThd")
            time.sleep(60)  # hangs past the timeout
        return real_convert(work, out_path, voice_program)

    monkeypatch.setattr(mc, "convert_work", flaky)
    report = mc.prepare_corpus(tmp_path, collections=works, num_proc=2, timeout_s=4, progress=False)
    failures = {f["work"]: f for f in report.failures}
    assert failures["essenFolksong/kinder0.abc#50"]["status"] == "error"
    assert "RuntimeError: duplicated time signature" in failures["essenFolksong/kinder0.abc#50"]["reason"]
    assert failures["essenFolksong/kinder0.abc#51"]["status"] == "timeout"
    assert report.files_per_label == {"folk": 1}
    assert [p.name for p in tmp_path.rglob("*.mid*")] == ["essenFolksong__kinder0__52.mid"]  # no debris
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["failures_by_status"] == {"error": 1, "timeout": 1}

    # Re-run with the real converter: music21's errors are not retried, timeouts only with more time.
    monkeypatch.setattr(mc, "convert_work", real_convert)
    assert mc.prepare_corpus(tmp_path, collections=works, timeout_s=4, progress=False).converted == 0
    report = mc.prepare_corpus(tmp_path, collections=works, timeout_s=30, progress=False)
    assert report.converted == 1
    assert report.files_per_label == {"folk": 2}
    assert [f["work"] for f in report.failures] == ["essenFolksong/kinder0.abc#50"]


def test_dead_worker_is_reported(tmp_path, monkeypatch):
    works = ["essenFolksong/kinder0.abc#50", "essenFolksong/kinder0.abc#51"]
    real_convert = mc.convert_work

    def dies(work, out_path, voice_program=mc.DEFAULT_VOICE_PROGRAM):
        if work.number == 50:
            os._exit(3)
        return real_convert(work, out_path, voice_program)

    monkeypatch.setattr(mc, "convert_work", dies)
    report = mc.prepare_corpus(tmp_path, collections=works, num_proc=1, progress=False)
    assert report.failures == [{"work": "essenFolksong/kinder0.abc#50", "status": "crashed",
                                "reason": "worker died (exit code 3)"}]
    assert report.files_per_label == {"folk": 1}


def test_list_works_covers_the_corpus():
    works = mc.list_works()
    assert 14_000 < len(works) < 15_500  # music21 10.x ships about 15,000 works
    labels = {w.label for w in works}
    assert {"bach", "palestrina", "monteverdi", "josquin", "beethoven", "mozart", "haydn", "handel",
            "schumann", "trecento", "folk", "irish", "scottish", "chinese"} <= labels
    assert not any(w.collection in cw.EXCLUDED_COLLECTIONS or w.source.endswith(".rntxt") for w in works)
    assert len({w.relpath for w in works}) == len(works)  # one format per work, unique files
    # Opus files become one work per tune; Josquin's voice-per-tune files one work per piece.
    assert sum(w.source == "essenFolksong/kinder0.abc" for w in works) > 100
    assert all(w.number is None for w in works if w.collection == "josquin")
    # Round-robin: the first works cover every label, and a limit is a prefix.
    assert {w.label for w in works[: len(labels)]} == labels
    assert mc.list_works(["beethoven/opus18no1"]) == [w for w in works if w.source.startswith("beethoven/opus18no1/")]


def test_program_from_name_and_musenet_mapping():
    names = {"Violin II": 40, "Viola": 41, "Violoncello.": 42, "Horn 2": 60, "Piano": 0, "Continuo": 0,
             "Soprano": 52, "Basso": 52, "Cantus": 52, "Contratenor": 52, "MusicXML Part": None}
    assert {n: cw.program_from_name(n, 52) for n in names} == names
    assert [cw.musenet_instrument(p) for p in (0, 41, 42, 33, 25, 73, 71, 60, 46, 52)] == [
        "piano", "violin", "cello", "bass", "guitar", "flute", "clarinet", "trumpet", "harp", "piano"]
    assert cw.musenet_instrument(0, channel=9) == "drums"


def test_cli_hooks_and_token_counts(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    cli_corpus.add_prepare_corpus_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--collections", "essenFolksong/kinder0.abc#50",
                              "--num-proc", "1", "--timeout", "30", "--no-progress"])
    assert cli_corpus.run_prepare_corpus(args) == 0
    printed = capsys.readouterr().out
    assert "folk" in printed and "total" in printed and "metadata.csv" in printed

    def count_note_ons(path: Path) -> int:  # a real per-file count, standing in for a tokenizer
        return sum(1 for t in mido.MidiFile(str(path)).tracks for m in t if m.type == "note_on" and m.velocity > 0)

    report = mc.prepare_corpus(tmp_path, collections=["essenFolksong/kinder0.abc#50"], progress=False,
                               count_tokens=count_note_ons)
    assert report.cached == 1 and report.tokens_per_label == report.notes_per_label == {"folk": 78}
    assert "tokens" in report.summary()
    rows = list(csv.DictReader(open(tmp_path / "metadata.csv", encoding="utf-8")))
    assert rows[0]["tokens"] == "78"
