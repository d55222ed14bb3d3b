"""The demo app through gradio_client, against the app launched on 127.0.0.1 in this test (tiny model)."""

import io
import math
import threading
import wave
from pathlib import Path

import mido
import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

import demo_app  # noqa: E402  (tests/demo_app.py)

from musenet_hf.demo.app import OUTPUTS  # noqa: E402
from musenet_hf.demo.demo_backend import Request, Studio, audio_available  # noqa: E402
from musenet_hf.midi.midi_io import read_midi  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
DEFAULTS = dict(inst_text="", primer=None, primer_seconds=10, temperature=1.0, top_p=0.95, top_k=0, guidance=1.5,
                steering="auto", strength=5, samples=4, rerank=False, polyphony=0, seed=-1, model="")


@pytest.fixture(scope="module")
def app(tiny, tok, tmp_path_factory):
    folder = demo_app.save_model(tiny, tok, tmp_path_factory.mktemp("demo-model"))
    demo, url = demo_app.launch(folder, tmp_path_factory.mktemp("demo-files"))
    yield url
    demo.close()


def generate(client, mode="Simple", composer="bach", instruments=("piano",), seconds=2, **advanced):
    args = {**DEFAULTS, **advanced}
    out = client.predict(mode, composer, list(instruments), seconds, *args.values(), api_name="/generate")
    return dict(zip(OUTPUTS, out))


def files(result, kind):
    return [result[f"{kind}{k}"] for k in range(1, 5) if result[f"{kind}{k}"]]


def test_simple_generate_gives_four_midis_and_wavs(app):
    client = gradio_client.Client(app, verbose=False)
    r = generate(client, seconds=3)
    assert r["status"].startswith("4 candidates"), r["status"]
    midis = [mido.MidiFile(path) for path in files(r, "midi")]
    assert len(midis) == 4 and all(m.length > 1.0 for m in midis)
    assert len(files(r, "roll")) == 4 and all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in files(r, "roll"))
    assert all("critic score" in r[f"info{k}"] for k in range(1, 5))
    if audio_available():
        pytest.skip(f"WAV part skipped: {audio_available()}")
    wavs = files(r, "audio")
    assert len(wavs) == 4
    for path in wavs:
        with wave.open(path) as w:
            assert w.getnframes() / w.getframerate() > 1.0


def test_continue_and_undo_walk_the_history(app):
    client = gradio_client.Client(app, verbose=False)
    first = generate(client, seconds=2)
    seconds_2 = mido.MidiFile(first["midi2"]).length
    cont = dict(zip(OUTPUTS, client.predict("2", 1, api_name="/continue")))
    assert cont["status"].startswith("Continued candidate 2"), cont["status"]
    assert [cont[f"info{k}"].split("**")[1] for k in range(1, 5)] == [f"Candidate 2.{k}" for k in range(1, 5)]
    # each continuation starts with candidate 2, note for note, and is longer
    before = [(n.pitch, round(n.start, 2)) for n in read_midi(first["midi2"]).notes]
    for path in files(cont, "midi"):
        after = [(n.pitch, round(n.start, 2)) for n in read_midi(path).notes]
        assert after[:len(before)] == before and mido.MidiFile(path).length > seconds_2
    assert "> 2.1" in cont["history"] and "* 2.4" in cont["history"]

    back = dict(zip(OUTPUTS, client.predict(api_name="/undo")))
    assert back["choice"] == "2" and back["info1"].startswith("**Candidate 1**")
    assert "> 2 " in back["history"] and "2.4" in back["history"]  # the branch is kept
    again = dict(zip(OUTPUTS, client.predict(api_name="/undo")))
    assert again["status"].startswith("Nothing to undo")
    there = dict(zip(OUTPUTS, client.predict("2.3", api_name="/go_to")))
    assert there["choice"] == "3" and there["info1"].startswith("**Candidate 2.1**")


def test_advanced_primer_with_hard_steering_plays_only_the_requested_instruments(app, tmp_path, tok):
    client = gradio_client.Client(app, verbose=False)
    primer = demo_app.write_primer(tmp_path / "primer.mid", program=0, seconds=3)
    r = generate(client, mode="Advanced", instruments=("piano", "flute"), seconds=2, steering="hard",
                 primer=gradio_client.handle_file(str(primer)), primer_seconds=2, samples=3, rerank=True, seed=1)
    assert r["status"].startswith("3 candidates"), r["status"]
    v = tok.vocabulary
    allowed = {v.instrument_index["piano"], v.instrument_index["flute"]}
    scores = []
    for k, path in enumerate(files(r, "midi"), 1):
        notes = read_midi(path).notes
        assert notes and {v.instrument_of_program(n.program, n.is_drum) for n in notes} <= allowed
        assert min(n.start for n in notes) < 0.1  # the primer's opening is there
        scores.append(float(r[f"info{k}"].split("critic score **")[1].split("**")[0]))
    assert scores == sorted(scores, reverse=True)  # reranked: best critic score first


def test_an_uploaded_piece_continues_past_the_context(app, tmp_path, tok, tiny):
    client = gradio_client.Client(app, verbose=False)
    primer = demo_app.write_primer(tmp_path / "long.mid", program=0, seconds=16, chord=5)
    tokens = tok.encode_midi(str(primer))
    assert len(tokens) > tiny.config.max_position_embeddings  # the primer alone overflows the window
    r = generate(client, mode="Advanced", seconds=2, primer=gradio_client.handle_file(str(primer)),
                 primer_seconds=16, samples=1)
    assert r["status"].startswith("1 candidates"), r["status"]
    assert mido.MidiFile(r["midi1"]).length > 16.5
    assert r["midi2"] is None


@pytest.mark.parametrize("change, words", [
    (dict(composer="bahc"), "unknown composer/style 'bahc' (did you mean bach"),
    (dict(seconds=0), "Length must be above 0"),
    (dict(seconds=10000), "Length must be at most 120 seconds"),
    (dict(mode="Advanced", inst_text="tuba"), "unknown instrument 'tuba'"),
    (dict(mode="Advanced", model="/no/such/folder"), "model folder /no/such/folder not found"),
    (dict(mode="Advanced", primer="broken"), "is not a MIDI file that can be read"),
])
def test_bad_input_gives_a_sentence_and_the_app_keeps_serving(app, tmp_path, change, words):
    client = gradio_client.Client(app, verbose=False)
    if change.get("primer") == "broken":
        path = tmp_path / "broken.mid"
        path.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x10\x00\x90\x3c")  # cut short
        change = {**change, "primer": gradio_client.handle_file(str(path))}
    r = generate(client, **change)
    assert r["status"].startswith("**Problem:**") and words in r["status"], r["status"]
    assert "Traceback" not in r["status"] and r["midi1"] is None
    cont = dict(zip(OUTPUTS, client.predict("1", 2, api_name="/continue")))
    assert "nothing to continue yet" in cont["status"]


def test_a_non_midi_upload_is_refused_in_words(app, tmp_path):
    client = gradio_client.Client(app, verbose=False)
    path = tmp_path / "notes.txt"
    path.write_text("not music")
    with pytest.raises(gradio_client.exceptions.AppError, match="Invalid file type"):
        generate(client, mode="Advanced", primer=gradio_client.handle_file(str(path)))
    assert generate(client, mode="Advanced", samples=1)["status"].startswith("1 candidates")  # still serving


def test_four_users_at_once_all_get_their_pieces(app):
    results, errors = {}, []

    def user(k):
        try:
            client = gradio_client.Client(app, verbose=False)
            results[k] = generate(client, mode="Advanced", composer=["bach", "mozart", "chopin", "jazz"][k],
                                  seconds=2, samples=1, seed=k)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=user, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and sorted(results) == [0, 1, 2, 3]
    for r in results.values():
        assert r["status"].startswith("1 candidates") and mido.MidiFile(r["midi1"]).length > 1.0


def test_studio_reads_broken_primers_and_bounds_lengths(tiny, tok, tmp_path):
    """The backend alone: errors are DemoErrors (ValueError) with the reason, before any generation."""
    from musenet_hf.demo.demo_backend import DemoError, check_request, read_primer

    with pytest.raises(DemoError, match="damaged, and no notes survive"):
        read_primer(io.BytesIO(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0").getvalue())
    with pytest.raises(DemoError, match="Top-p"):
        check_request(Request(top_p=0))
    with pytest.raises(DemoError, match="Length"):
        check_request(Request(seconds=math.inf))
    folder = demo_app.save_model(tiny, tok, tmp_path / "model")
    studio = Studio(folder, workdir=tmp_path / "files")
    assert [c[1] for c in studio.composer_choices()][:3] == tok.vocabulary.composers[:3]


def test_studio_passes_the_guidance_scale_on_and_continues_with_it(tiny, tok, tmp_path):
    """Guidance 1 (off) and 3 sample different pieces from one seed; the pipeline's own result for
    the same scale and seed is what the page gets, and Continue keeps the piece's scale."""
    from musenet_hf.demo.demo_backend import DemoError, check_request

    with pytest.raises(DemoError, match="Guidance must be at least 0"):
        check_request(Request(guidance=-1))
    studio = Studio(demo_app.save_model(tiny, tok, tmp_path / "model"), workdir=tmp_path / "files")

    def notes(midi_bytes):
        return [(n.start, n.pitch) for n in read_midi(midi_bytes).notes]

    off, strong = (studio.generate(Request(composer="bach", seconds=2, samples=1, seed=3, guidance=g))[0]
                   for g in (1.0, 3.0))
    assert strong["guidance"] == 3.0 and off["guidance"] == 1.0
    direct = studio.pipeline()(composer="bach", seconds=2, num_samples=1, seed=3, guidance=3.0, threads=1)[0]
    buf = io.BytesIO()
    direct["midi"].save(file=buf)
    assert notes(strong["midi"]) == notes(buf.getvalue()) != notes(off["midi"])
    cont = studio.continue_piece(strong, strong["midi"], 1.0, seed=4, samples=1)
    assert cont[0]["guidance"] == 3.0


def test_the_api_marks_the_advanced_inputs_optional(app):
    """Issue 34, item 8: a script calls /generate in simple mode with the four simple inputs (before:
    `inst_text` and `primer` were required, so it had to pass "" and None)."""
    client = gradio_client.Client(app, verbose=False)
    parameters = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/generate"]["parameters"]
    required = [p["parameter_name"] for p in parameters if not p["parameter_has_default"]]
    assert required == [], required
    r = dict(zip(OUTPUTS, client.predict("Simple", "bach", ["piano"], 2, api_name="/generate")))
    assert r["status"].startswith("4 candidates"), r["status"]
