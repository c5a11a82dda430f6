#!/usr/bin/env python3
"""Benchmark: the Wyoming round trip (voice-wyoming-asr) vs the deepspeech command line on one WAV.

Same run, same machine, interleaved: for each repetition the recorded test WAV goes
  1. through the project's `deepspeech` CLI (a new process: load the model, decode; its own
     "Inference took" line is the decode alone),
  2. through a running voice-wyoming-asr on 127.0.0.1 with the wyoming library's client, as Home
     Assistant sends it (16 kHz mono in 100 ms chunks; audio-start to transcript, model loaded),
  3. the same as 44.1 kHz stereo (the server converts it),
  4. 16 kHz mono to a second server started with --no-streaming (no intermediate decodes).
The protocol overhead is the Wyoming round trip without streaming minus the CLI's decode time,
as a share of that decode; streaming's intermediate decodes are reported apart. Both decode without a scorer (the fixture model alone), so they do the same work.

    .venv/bin/python bench/wyoming_bench.py [--repeat 15] > bench/wyoming.md

Needs the fixture model (files/fixture), the official x86_64 TFLite library (fetched by
python/deepspeech-compat/tests/dscompat_support.py into the cache) and the wyoming package.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "files" / "fixture"
COMPAT = REPO / "python" / "deepspeech-compat"
PACKAGE = REPO / "python" / "voice-appliance"
sys.path[:0] = [str(PACKAGE), str(PACKAGE / "tests"), str(COMPAT / "tests")]

from voice_appliance import wyoming_check  # noqa: E402


def library() -> str:
    import dscompat_support as support  # the project's sha256-checked wheel fetcher

    return support.extract_library(support.fetch_artifact(*support.FLAVOUR_WHEELS["tflite"]))


def cli(model: str, wav: str, env: Dict[str, str]) -> Dict[str, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "deepspeech", "--model", model, "--audio", wav], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=True)
    wall = time.monotonic() - started
    decode = next(float(line.split()[2].rstrip("s")) for line in proc.stderr.splitlines()
                  if line.startswith("Inference took"))
    return {"wall_s": wall, "decode_s": decode, "text": proc.stdout.strip().splitlines()[-1]}


def stereo_44k(pcm: bytes) -> bytes:
    import array

    src = array.array("h")
    src.frombytes(pcm)
    out = array.array("h")
    pos, step = 0.0, 16000 / 44100.0
    while pos < len(src) - 1:
        i = int(pos)
        value = int(src[i] + (src[i + 1] - src[i]) * (pos - i))
        out.extend((value, value))
        pos += step
    return out.tobytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    manifest = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
    model = str(FIXTURE / manifest["model"]["tflite"])
    wav = str(FIXTURE / manifest["test_wav"]["file"])
    expected = manifest["test_wav"]["transcript"]
    env = dict(os.environ, DEEPSPEECH_LIBRARY=library(), PYTHONPATH=os.pathsep.join([str(COMPAT), str(PACKAGE)]))
    with wave.open(wav, "rb") as source:
        pcm = source.readframes(source.getnframes())
    mono = {"rate": 16000, "width": 2, "channels": 1, "data": pcm}
    stereo = {"rate": 44100, "width": 2, "channels": 2, "data": stereo_44k(pcm)}
    audio_s = len(pcm) / 32000.0

    with tempfile.TemporaryDirectory() as tmp:
        log = open(os.path.join(tmp, "server.log"), "w")
        servers = [subprocess.Popen([sys.executable, "-m", "voice_appliance.wyoming_asr", "--model", model, "--host",
                                     "127.0.0.1", "--port", "0"] + extra, env=env, stdout=subprocess.PIPE, stderr=log,
                                    universal_newlines=True) for extra in ([], ["--no-streaming"])]
        try:
            port, plain = (int(server.stdout.readline().split()[1]) for server in servers)  # type: ignore
            asyncio.run(wyoming_check.transcribe("127.0.0.1", port, mono))  # warm-up
            asyncio.run(wyoming_check.transcribe("127.0.0.1", plain, mono))
            rows: Dict[str, List[float]] = {"cli_wall": [], "cli_decode": [], "wy_mono": [], "wy_stereo": [],
                                            "wy_latency": [], "wy_plain": []}
            for _ in range(args.repeat):
                run = cli(model, wav, env)
                assert run["text"] == expected, run
                rows["cli_wall"].append(run["wall_s"])
                rows["cli_decode"].append(run["decode_s"])
                heard = asyncio.run(wyoming_check.transcribe("127.0.0.1", port, mono))
                assert heard["transcript"] == expected, heard
                rows["wy_mono"].append(heard["seconds"])
                rows["wy_latency"].append(heard["latency_s"])
                heard = asyncio.run(wyoming_check.transcribe("127.0.0.1", port, stereo))
                assert heard["transcript"] == expected, heard
                rows["wy_stereo"].append(heard["seconds"])
                heard = asyncio.run(wyoming_check.transcribe("127.0.0.1", plain, mono))
                assert heard["transcript"] == expected and not heard["chunks"], heard
                rows["wy_plain"].append(heard["seconds"])
        finally:
            for server in servers:
                server.terminate()
                server.wait(10)

    med = {key: statistics.median(values) for key, values in rows.items()}
    decode = med["cli_decode"]

    def pct(value: float) -> str:
        return "{:+.0f} %".format(100.0 * (value - decode) / decode)

    print("# Wyoming round trip vs the deepspeech command line\n")
    print("Machine: {} {}, {} CPUs, Python {}; {}. Fixture model (TFLite, official x86_64 0.7.4 library through the "
          "project's binding), no scorer, the recorded WAV ({:.2f} s of audio), {} interleaved repetitions, "
          "medians.\n".format(platform.system(), platform.machine(), os.cpu_count(), platform.python_version(),
                              time.strftime("%Y-%m-%d"), audio_s, args.repeat))
    print("| path | median s | vs the CLI's decode | RTF |")
    print("| --- | ---: | ---: | ---: |")
    print("| CLI: decode alone (its \"Inference took\") | {:.4f} | – | {:.4f} |".format(decode, decode / audio_s))
    print("| CLI: whole command (process, model load, decode) | {:.4f} | {} | {:.4f} |".format(
        med["cli_wall"], pct(med["cli_wall"]), med["cli_wall"] / audio_s))
    print("| Wyoming, 16 kHz mono: audio-start → transcript | {:.4f} | {} | {:.4f} |".format(
        med["wy_mono"], pct(med["wy_mono"]), med["wy_mono"] / audio_s))
    print("| Wyoming, 16 kHz mono, without streaming (--no-streaming) | {:.4f} | {} | {:.4f} |".format(
        med["wy_plain"], pct(med["wy_plain"]), med["wy_plain"] / audio_s))
    print("| Wyoming, 44.1 kHz stereo (converted): audio-start → transcript | {:.4f} | {} | {:.4f} |".format(
        med["wy_stereo"], pct(med["wy_stereo"]), med["wy_stereo"] / audio_s))
    print("| Wyoming: audio-stop → transcript (what a user waits for) | {:.4f} | – | – |".format(med["wy_latency"]))
    print()
    print("Protocol overhead (Wyoming 16 kHz mono without streaming minus the CLI's decode): {:.4f} s = {:.1f} % of the "
          "decode (target: under 10 %). Streaming's intermediate decodes add {:.4f} s ({:.1f} % of the decode).".format(
              med["wy_plain"] - decode, 100.0 * (med["wy_plain"] - decode) / decode,
              med["wy_mono"] - med["wy_plain"], 100.0 * (med["wy_mono"] - med["wy_plain"]) / decode))
    print("\nRaw seconds: " + json.dumps({key: [round(v, 4) for v in values] for key, values in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
