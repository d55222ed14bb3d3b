"""``musenet demo``: the MuseNet demo app (Gradio), local and offline.

Simple mode is MuseNet's: a composer/style, instruments, a length; Generate makes 4 candidates in
one batch, each with an audio player, a piano roll and a MIDI download; Continue extends the
chosen one (4 new candidates); Undo steps back; the history is a branching tree
(:mod:`musenet_hf.demo.demo_history`) the user can go back into. Advanced mode adds a MIDI primer,
the sampling knobs, steering, samples with critic reranking, max polyphony, a seed and any local
model folder. A second tab draws the composer and instrument map
(:mod:`musenet_hf.demo.embeddings_plot`).

Install with ``pip install -e ".[demo]"`` and run ``musenet demo``. Nothing leaves the machine:
Gradio's analytics are off (set before Gradio is imported), the theme uses the system's fonts
(no font CDN), there is no share link and no server-side rendering process.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from ..generation.piece_check import check_summary
from .demo_backend import MAX_SAMPLES, MAX_SECONDS, SHOWN, DemoError, Request, Studio, audio_available, read_primer
from .demo_history import HistoryTree

SLOT_FIELDS = ("info", "audio", "roll", "midi")
# What every history-changing endpoint returns, in order (the session's state is not part of the API).
OUTPUTS = ["status"] + [f"{f}{k}" for k in range(1, SHOWN + 1) for f in SLOT_FIELDS] + ["choice", "history", "goto"]
# How to go on from a piece of one's own (the README's "Continue your own song", in the page's words).
CONTINUE_HELP = ("**Continue your own song:** choose *Advanced*, upload a MIDI file as the primer, set how many of "
                 "its seconds to keep (the rest is new music: *Length*), leave the composer empty or pick one, and "
                 "press Generate. Each candidate says when the new music did not follow the song (held notes, "
                 "notes on other instruments); `musenet generate --primer song.mid` does the same.")
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "Menlo", "Consolas", "monospace"]


def _no_network() -> None:
    """Switch off every call home Gradio and the Hub make (must run before ``import gradio``)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ------------------------------------------------------------------------------------ the views
def _describe(node: Any) -> str:
    """One line about a piece for the history outline."""
    i = node.info
    score = i.get("critic_score")
    critic = f", critic {score:+.2f}" if isinstance(score, float) and score == score else ""
    return f"{i.get('composer') or 'no composer'}, {float(i.get('seconds') or 0):.1f} s{critic}"


def _slot_text(node: Any) -> str:
    """The Markdown over a candidate: its label, length, critic score, notes per instrument."""
    i = node.info
    seconds, primer = float(i.get("seconds") or 0), float(i.get("primer_seconds") or 0)
    length = f"{seconds:.1f} s" + (f" (first {primer:.1f} s kept, {seconds - primer:.1f} s new)" if primer else "")
    score = i.get("critic_score")
    critic = f" · critic score **{score:+.2f}**" if isinstance(score, float) and score == score else ""
    counts = (i.get("files") or {}).get("notes") or {}
    notes = ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "no notes"
    note = (i.get("files") or {}).get("audio_note") or ""
    failed = check_summary(i.get("check"))  # the pipeline's check: what about it is not what was asked
    return (f"**Candidate {node.label}** · {length}{critic}\n\nnotes: {notes}"
            + (f"\n\n**Not what was asked:** {failed}; try another seed or other settings" if failed else "")
            + (f"\n\n_{note}_" if note else ""))


def view(tree: HistoryTree | None, status: str) -> list[Any]:
    """Every output of the history endpoints (see :data:`OUTPUTS`), state first."""
    import gradio as gr

    tree = tree or HistoryTree()
    shown = tree.shown
    slots: list[Any] = []
    for k in range(SHOWN):
        if k < len(shown):
            node = tree.node(shown[k])
            files = node.info.get("files") or {}
            slots += [_slot_text(node), files.get("wav"), files.get("png"), files.get("mid")]
        else:
            slots += ["", None, None, None]
    chosen = str(shown.index(tree.selected) + 1) if tree.selected in shown else "1"
    outline = tree.outline(_describe)
    history = ("```text\n" + "\n".join(outline) + "\n```\n`>` chosen piece, `*` the candidates shown"
               if outline else "_nothing generated yet_")
    labels = [tree.node(n).label for n in tree.nodes if n]
    selected = tree.node(tree.selected).label if tree.selected else None
    return [tree, status, *slots, chosen, history,
            gr.update(choices=labels, value=selected)]


def _guarded(fn: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    """Run a handler; a DemoError or any other failure becomes a sentence in the page (the state and
    the candidates shown stay as they were), never a traceback, and the app keeps serving."""
    import functools

    @functools.wraps(fn)
    def wrapper(tree: HistoryTree | None, *args: Any) -> list[Any]:
        try:
            return fn(tree, *args)
        except DemoError as err:
            return view(tree, f"**Problem:** {err}")
        except Exception as err:  # noqa: BLE001 - the page gets a sentence, the console the traceback
            traceback.print_exc(file=sys.stderr)
            return view(tree, f"**Something went wrong** ({type(err).__name__}: {str(err)[:300]}). "
                              "The app is still running: change the settings and try again.")
    return wrapper


# ------------------------------------------------------------------------------------ the app
def _generation_handlers(studio: Studio, settings: Any) -> tuple[Callable, Callable]:
    """The Generate and Continue handlers (each returns the page's outputs, :func:`view`); ``settings``
    are the model's own sampling settings, what the Advanced inputs start at."""
    default_guidance = settings.guidance
    def add_and_render(tree: HistoryTree, parent: int | None, candidates: list[dict[str, Any]]) -> list[int]:
        ids = tree.add_batch(parent, candidates)
        nodes = [tree.node(i) for i in ids]
        rendered = studio.render([(n.midi, n.label, f"{n.label}: {_describe(n)}") for n in nodes],
                                 model=nodes[0].info.get("model"))
        for node, files in zip(nodes, rendered):
            node.info["files"] = files
        return ids

    # The advanced inputs have defaults, so the API marks them optional: a script calls /generate with
    # the four simple ones (Gradio reads a None default, or the component's initial value).
    @_guarded
    def generate(tree, mode, composer, ticked, seconds, inst_text="", primer=None, primer_seconds=10.0,
                 temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k,
                 guidance=default_guidance, steering=settings.steering, strength=settings.steering_strength,
                 samples=SHOWN, rerank=False, polyphony=0, seed=-1, model=""):
        tree = tree or HistoryTree()
        instruments = list(ticked or []) or None
        req = Request(composer=(composer or "").strip() or None, instruments=instruments, seconds=seconds)
        if mode == "Advanced":
            text = [s.strip() for s in (inst_text or "").split(",") if s.strip()]
            req = Request(composer=req.composer, instruments=text or instruments, seconds=seconds,
                          primer=read_primer(primer) if primer else None,
                          primer_seconds=primer_seconds if primer else None, temperature=temperature,
                          top_p=top_p, top_k=top_k or 0, steering=steering or "auto",
                          guidance=None if abs(guidance - default_guidance) < 1e-6 else guidance,
                          strength=strength, samples=samples, rerank=bool(rerank), max_polyphony=polyphony or None,
                          seed=seed, model=(model or "").strip() or None)
        candidates = studio.generate(req)
        add_and_render(tree, None, candidates)
        untrained = candidates[0].get("coverage") if candidates else None
        return view(tree, f"{len(candidates)} candidates. Listen, choose one and press Continue to go on."
                          + (f" **Note:** {untrained}." if untrained else ""))

    @_guarded
    def go_on(tree, choice, seconds):
        if tree is None or not tree.shown:
            raise DemoError("nothing to continue yet: press Generate first")
        try:
            chosen = tree.select_index(int(choice or 1) - 1)
        except IndexError as err:
            raise DemoError(str(err)) from None
        node = tree.node(chosen)
        candidates = studio.continue_piece(node.info, node.midi, seconds)
        add_and_render(tree, chosen, candidates)
        return view(tree, f"Continued candidate {node.label} by {float(seconds):g} s: "
                          f"{len(candidates)} new candidates.")

    return generate, go_on


def _history_handlers(studio: Studio) -> tuple[Callable, Callable, Callable, Callable]:
    """The Undo, Go back, candidate choice and composer-map handlers."""
    @_guarded
    def undo(tree):
        if tree is None or not tree.undo():
            return view(tree, "Nothing to undo: these candidates are where the piece begins.")
        return view(tree, f"Back to candidate {tree.node(tree.selected).label} and the candidates it came from.")

    @_guarded
    def go_to(tree, label):
        if tree is None or not label:
            raise DemoError("choose a piece of the history first")
        try:
            tree.go_to(tree.find(str(label)))
        except KeyError as err:
            raise DemoError(str(err.args[0]) if err.args else str(err)) from None
        return view(tree, f"Back at candidate {label}: Continue goes on from it, on a new branch.")

    def choose(tree, choice):
        if tree is not None and tree.shown and choice:
            try:
                tree.select_index(int(choice) - 1)
            except (IndexError, ValueError):
                pass
        return tree, view(tree, "")[-2]

    def draw_map(model):
        from .embeddings_plot import CAPTION, plot_embeddings

        try:
            pipe = studio.pipeline((model or "").strip() or None)
            out = studio.workdir / f"map-{abs(hash(pipe.model.name_or_path)) % 10**8}.png"
            if not out.is_file():
                plot_embeddings(pipe.model, pipe.tokenizer, out)
            return str(out), CAPTION
        except DemoError as err:
            return None, f"**Problem:** {err}"
        except Exception as err:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            return None, f"**Something went wrong** drawing the map ({type(err).__name__}: {str(err)[:300]})."
    return undo, go_to, choose, draw_map


def _advanced_panel(gr: Any, studio: Studio, settings: Any, exceptions: list[str]) -> dict[str, Any]:
    """The Advanced settings (hidden in Simple mode), starting at the model's own sampling settings;
    the panel itself under ``"advanced"`` and each input under its name."""
    default_guidance, against = settings.guidance, settings.guidance_against
    with gr.Column(visible=False, elem_id="advanced") as advanced:
        gr.Markdown("### Advanced")
        with gr.Row():
            primer = gr.File(label="MIDI primer (its opening starts the piece)", file_types=[".mid", ".midi"],
                             type="filepath", elem_id="primer")
            primer_seconds = gr.Number(10, label="Primer seconds kept", elem_id="primer-seconds")
            inst_text = gr.Textbox("", label="Instruments or groups (overrides the ticks)",
                                   placeholder="piano,strings", elem_id="inst-text")
        with gr.Row():
            temperature = gr.Slider(0, 2, settings.temperature, step=0.05, label="Temperature (0: greedy)")
            top_p = gr.Slider(0.05, 1.0, settings.top_p, step=0.01, label="Top-p")
            top_k = gr.Number(settings.top_k, precision=0, label="Top-k (0: off)")
            guidance = gr.Slider(0, 3, default_guidance, step=0.1, label="Composer guidance",
                                 info="how strongly the composer is followed"
                                      + (f" (set apart from {against})" if against else "")
                                      + "; 1: off, about 1.4x as fast"
                                      + (f"; left at {default_guidance:g}, the model's own setting "
                                         f"for {', '.join(sorted(exceptions))}" if exceptions else ""),
                                 elem_id="guidance")
        with gr.Row():
            steering = gr.Radio(["auto", "none", "soft", "hard"], value=settings.steering, label="Steering",
                                info="auto: soft toward the named (or the composer's usual) instruments",
                                elem_id="steering")
            strength = gr.Slider(0, 20, settings.steering_strength, step=0.5, label="Soft-steering strength")
            polyphony = gr.Number(0, precision=0,
                                  label="Max polyphony (0: the model's own for the label, else no limit)")
        with gr.Row():
            samples = gr.Slider(1, MAX_SAMPLES, SHOWN, step=1, label="Samples (the best 4 are shown)")
            rerank = gr.Checkbox(False, label="Rerank by the critic")
            seed = gr.Number(-1, precision=0, label="Seed (-1: random)")
            model = gr.Textbox(studio.default_model, label="Model folder (any local checkpoint)",
                               elem_id="model")
    return dict(advanced=advanced, primer=primer, primer_seconds=primer_seconds, inst_text=inst_text,
                temperature=temperature, top_p=top_p, top_k=top_k, guidance=guidance, steering=steering,
                strength=strength, polyphony=polyphony, samples=samples, rerank=rerank, seed=seed, model=model)


def _candidates_panel(gr: Any) -> tuple[list[Any], Any, Any, Any, Any]:
    """The candidates (text, audio, piano roll, MIDI each), the choice, the history and going back to it."""
    slots: list[Any] = []
    for row in range(SHOWN // 2):
        with gr.Row():
            for col in range(2):
                k = row * 2 + col + 1
                with gr.Column(elem_id=f"candidate-{k}", elem_classes=["candidate"]):
                    slots += [gr.Markdown(elem_id=f"info-{k}"),
                              gr.Audio(type="filepath", interactive=False, label=f"Candidate {k}",
                                       buttons=["download"], elem_id=f"audio-{k}"),
                              gr.Image(type="filepath", format="png", interactive=False,
                                       buttons=["download", "fullscreen"], label=f"Piano roll {k}",
                                       elem_id=f"roll-{k}"),
                              gr.File(interactive=False, label=f"MIDI {k}", elem_id=f"midi-{k}")]
    with gr.Row():
        choice = gr.Radio([str(k) for k in range(1, SHOWN + 1)], value="1",
                          label="Chosen candidate (Continue goes on from it)",
                          elem_id="choice")
        goto = gr.Dropdown([], label="Go back to a piece of the history", elem_id="goto")
        goto_btn = gr.Button("Go back", elem_id="goto-button")
    history = gr.Markdown("_nothing generated yet_", elem_id="history")
    return slots, choice, goto, goto_btn, history


def _map_tab(gr: Any) -> tuple[Any, Any, Any]:
    """The composer map tab: its button, image and caption."""
    with gr.Tab("Composer map", elem_id="tab-map"):
        gr.Markdown("The learned embeddings of the composer/style and instrumentation tokens, projected to 2-D "
                    "with t-SNE (`musenet embeddings-plot` draws the same).")
        map_btn = gr.Button("Draw the map", elem_id="map-button")
        map_img = gr.Image(type="filepath", format="png", interactive=False, label="Composer and instrument map",
                           buttons=["download", "fullscreen"], elem_id="map")
        map_caption = gr.Markdown(elem_id="map-caption")
    return map_btn, map_img, map_caption


def build_demo(studio: Studio) -> Any:
    """The Gradio Blocks of the app around a :class:`~musenet_hf.demo.demo_backend.Studio`."""
    _no_network()
    import gradio as gr

    v = studio.vocabulary()
    # the model's own settings (its generation config), so Advanced starts where Simple is; guidance left
    # at the model's default keeps each label's own preset
    settings = studio.pipeline().sampling_settings()
    exceptions = sorted({p["when"]["label"] for p in studio.pipeline().generation_settings().presets
                         if {"guidance", "guidance_against"} & set(p["set"])})
    instrument_names = [i.name for i in v.instruments]
    generate, go_on = _generation_handlers(studio, settings)
    undo, go_to, choose, draw_map = _history_handlers(studio)
    composers = studio.composer_choices()
    no_audio = audio_available()

    theme = gr.themes.Base(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    with gr.Blocks(analytics_enabled=False, title="MuseNet") as demo:
        demo.musenet_theme = theme  # Gradio 6 takes the theme at launch(); see launch_demo
        demo.musenet_files = str(studio.workdir)  # the rendered candidates, served from there
        state = gr.State(None)
        gr.Markdown(f"# MuseNet\nModel: `{studio.default_model}`" + (f"\n\n**{no_audio}**" if no_audio else ""))
        with gr.Tab("Compose", elem_id="tab-compose"):
            mode = gr.Radio(["Simple", "Advanced"], value="Simple", label="Mode", elem_id="mode")
            gr.Markdown(CONTINUE_HELP, elem_id="continue-help")
            with gr.Row():
                composer = gr.Dropdown(composers, value=composers[0][1] if composers else None,
                                       label="Composer / style",
                                       allow_custom_value=True, elem_id="composer")
                seconds = gr.Number(20, label=f"Length (seconds, up to {MAX_SECONDS:g})", elem_id="seconds")
            ticked = gr.CheckboxGroup(instrument_names, label="Instruments (none ticked: the composer's usual ones)",
                                      elem_id="instruments")
            adv = _advanced_panel(gr, studio, settings, exceptions)
            with gr.Row():
                gen_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                cont_seconds = gr.Number(10, label="Continue by (seconds)", elem_id="continue-seconds")
                cont_btn = gr.Button("Continue", elem_id="continue")
                undo_btn = gr.Button("Undo", elem_id="undo")
            status = gr.Markdown("Choose a composer and instruments, then press Generate.", elem_id="status")
            slots, choice, goto, goto_btn, history = _candidates_panel(gr)
        map_btn, map_img, map_caption = _map_tab(gr)
        outs = [state, status, *slots, choice, history, goto]
        heavy = dict(concurrency_limit=1, concurrency_id="model")  # one generation at a time on the CPU
        mode.change(lambda m: gr.update(visible=m == "Advanced"), mode, adv["advanced"], queue=False,
                    api_visibility="private")
        advanced_inputs = [adv[k] for k in ("inst_text", "primer", "primer_seconds", "temperature", "top_p", "top_k",
                                            "guidance", "steering", "strength", "samples", "rerank", "polyphony",
                                            "seed", "model")]  # generate()'s parameters, in order
        gen_btn.click(generate, [state, mode, composer, ticked, seconds, *advanced_inputs], outs, api_name="generate",
                      **heavy)
        cont_btn.click(go_on, [state, choice, cont_seconds], outs, api_name="continue", **heavy)
        undo_btn.click(undo, [state], outs, api_name="undo", **heavy)
        goto_btn.click(go_to, [state, goto], outs, api_name="go_to", **heavy)
        choice.input(choose, [state, choice], [state, history], api_visibility="private", queue=False)
        map_btn.click(draw_map, [adv["model"]], [map_img, map_caption], api_name="map", **heavy)
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def launch_demo(demo: Any, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> Any:
    """Start the app's server (offline: no share link, no analytics, no server-side rendering)."""
    return demo.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
                       quiet=True, ssr_mode=False, mcp_server=False, inbrowser=False, theme=demo.musenet_theme,
                       allowed_paths=[demo.musenet_files], show_error=False)


# ------------------------------------------------------------------------------------ musenet demo
def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint folder (default: the bundled checkpoints/musenet-small-music21)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default $MUSENET_THREADS, else 1)")


def run_demo(args: argparse.Namespace) -> int:
    _no_network()
    try:
        import gradio  # noqa: F401
    except ImportError:
        print('musenet demo: error: the app needs Gradio: pip install -e ".[demo]"', file=sys.stderr)
        return 2
    import time

    from ..defaults import DEFAULT_THREADS
    from ..generation.pipeline_musenet import resolve_threads
    from ..loading import bundled_checkpoint

    started = time.time()
    path = Path(args.model) if args.model else bundled_checkpoint()
    try:
        threads = resolve_threads(args.threads) or DEFAULT_THREADS
        studio = Studio(path, threads=threads)
    except (DemoError, ValueError) as err:
        print(f"musenet demo: error: {err}", file=sys.stderr)
        return 2
    demo = build_demo(studio)
    launch_demo(demo, args.host, args.port, block=False)
    print(f"MuseNet demo ({path.name}, loaded in {time.time() - started:.1f} s): open http://{args.host}:{args.port} "
          "in a browser (Ctrl-C stops it)", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0


__all__ = ["CONTINUE_HELP", "OUTPUTS", "add_demo_arguments", "build_demo", "launch_demo", "run_demo", "view"]
