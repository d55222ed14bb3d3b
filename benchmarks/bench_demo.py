"""The demo app's speed, measured as a user gets it: `musenet demo` started, then gradio_client.

Starts ``musenet demo`` (the bundled model unless ``--model``) on a free local port, times how long
it takes to say where to open it, then times simple-mode Generate (4 candidates of ``--seconds``
in one batch, with their WAVs and piano rolls) through ``gradio_client``, ``--runs`` times.

    python benchmarks/bench_demo.py --seconds 20 --runs 2

Needs the ``demo`` extra. One torch thread (``MUSENET_THREADS=1``) as everywhere on a busy CPU.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="checkpoint folder (default: the bundled one)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--composer", default="bach")
    p.add_argument("--instruments", default="piano")
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MUSENET_THREADS": os.environ.get("MUSENET_THREADS", "1"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "musenet_hf.cli", "demo", "--port", str(port)]
    cmd += ["--model", args.model] if args.model else []
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in proc.stdout:
            if "open http://" in line:
                print(f"started in {time.time() - started:.1f} s: {line.strip()}")
                break
        else:
            print("musenet demo exited before it was ready", file=sys.stderr)
            return 1
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for run in range(args.runs):
            t = time.time()
            # by name, so a control added to the page cannot shift the others (Simple mode reads the first four)
            out = client.predict(mode="Simple", composer=args.composer, ticked=args.instruments.split(","),
                                 seconds=args.seconds, inst_text="", primer=None, primer_seconds=10, temperature=1.0,
                                 top_p=0.95, top_k=0, guidance=1.0, steering="auto", strength=5, samples=4,
                                 rerank=False, polyphony=0, seed=None, model="", api_name="/generate")
            took = time.time() - t
            midis = [x for x in out if isinstance(x, str) and x.endswith(".mid")]
            wavs = [x for x in out if isinstance(x, str) and x.endswith(".wav")]
            print(f"run {run + 1}: {len(midis)} candidates of {args.seconds:g} s ({len(wavs)} WAVs) in {took:.1f} s; "
                  f"{out[0]}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
