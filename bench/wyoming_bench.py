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
as a share of that decode; streaming's intermediate decodes are reported apart. Both decode without
a scorer (the fixture model alone), so they do the same work. The CLI times one call that decodes
the whole buffer in a new process; the server feeds a stream in batches, so the time the server
itself spent in the library for the same request (from its log line) is reported too, and the
overhead relative to that.

With --baseline CHECKOUT a no-streaming server from another checkout of this repository (e.g. a
`git worktree` of an older commit) answers too, interleaved: a before/after of the same run.

    .venv/bin/python bench/wyoming_bench.py [--repeat 15] [--baseline DIR] > bench/wyoming.md

Needs the fixture model (files/fixture), the official x86_64 TFLite library (fetched by
python/deepspeech-compat/tests/dscompat_support.py into the cache) and the wyoming package.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
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


LIBRARY_LINE = re.compile(r"library ([0-9.]+) s in (\d+) calls, final decode ([0-9.]+) s")


class LogTail:
    """The server's log, read on from where the last look ended."""

    def __init__(self, path: str) -> None:
        self.file = open(path, encoding="utf-8", errors="replace")

    def library(self) -> Dict[str, float]:
        """The last utterance's library time, calls and final decode from the server's log line."""
        found = LIBRARY_LINE.findall(self.file.read())
        if not found:
            raise RuntimeError("no 'library ... s in N calls' line in the server's log")
        seconds, calls, final = found[-1]
        return {"library_s": float(seconds), "calls": float(calls), "final_s": float(final)}


def loadavg() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as source:
            return " ".join(source.read().split()[:3])
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--baseline", default="", metavar="CHECKOUT",
                        help="also time a --no-streaming server from this checkout (interleaved)")
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
    baseline_rev = ""
    if args.baseline:
        baseline_rev = subprocess.run(["git", "-C", args.baseline, "rev-parse", "--short", "HEAD"],
                                      stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    load_before = loadavg()

    with tempfile.TemporaryDirectory() as tmp:
        kinds = [("streaming", [], env), ("plain", ["--no-streaming"], env)]
        if args.baseline:
            old = Path(args.baseline).resolve() / "python"
            kinds.append(("baseline", ["--no-streaming"], dict(env, PYTHONPATH=os.pathsep.join(
                [str(old / "deepspeech-compat"), str(old / "voice-appliance")]))))
        servers, logs = {}, {}
        try:
            for name, extra, server_env in kinds:
                log = os.path.join(tmp, name + ".log")
                servers[name] = subprocess.Popen(
                    [sys.executable, "-m", "voice_appliance.wyoming_asr", "--model", model, "--host", "127.0.0.1",
                     "--port", "0"] + extra, env=server_env, stdout=subprocess.PIPE, stderr=open(log, "w"),
                    universal_newlines=True)
                logs[name] = LogTail(log)
            ports = {name: int(server.stdout.readline().split()[1])  # type: ignore
                     for name, server in servers.items()}
            for name, port in ports.items():  # warm-up
                asyncio.run(wyoming_check.transcribe("127.0.0.1", port, mono))
            rows: Dict[str, List[float]] = {"cli_wall": [], "cli_decode": [], "wy_mono": [], "wy_stereo": [],
                                            "wy_latency": [], "wy_plain": [], "lib_mono": [], "lib_plain": [],
                                            "calls_mono": [], "calls_plain": [], "final_plain": []}
            if args.baseline:
                rows["wy_baseline"] = []
            for _ in range(args.repeat):
                run = cli(model, wav, env)
                assert run["text"] == expected, run
                rows["cli_wall"].append(run["wall_s"])
                rows["cli_decode"].append(run["decode_s"])
                logs["streaming"].library()  # skip the log up to here
                heard = asyncio.run(wyoming_check.transcribe("127.0.0.1", ports["streaming"], mono))
                assert heard["transcript"] == expected, heard
                rows["wy_mono"].append(heard["seconds"])
                rows["wy_latency"].append(heard["latency_s"])
                served = logs["streaming"].library()
                rows["lib_mono"].append(served["library_s"])
                rows["calls_mono"].append(served["calls"])
                heard = asyncio.run(wyoming_check.transcribe("127.0.0.1", ports["streaming"], stereo))
                assert heard["transcript"] == expected, heard
                rows["wy_stereo"].append(heard["seconds"])
                heard = asyncio.run(wyoming_check.transcribe("127.0.0.1", ports["plain"], mono))
                assert heard["transcript"] == expected and not heard["chunks"], heard
                rows["wy_plain"].append(heard["seconds"])
                served = logs["plain"].library()
                rows["lib_plain"].append(served["library_s"])
                rows["calls_plain"].append(served["calls"])
                rows["final_plain"].append(served["final_s"])
                if args.baseline:
                    heard = asyncio.run(wyoming_check.transcribe("127.0.0.1", ports["baseline"], mono))
                    assert heard["transcript"] == expected and not heard["chunks"], heard
                    rows["wy_baseline"].append(heard["seconds"])
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(10)
    load_after = loadavg()

    med = {key: statistics.median(values) for key, values in rows.items()}
    decode = med["cli_decode"]
    # The same request's round trip over the server's own library time, per repetition.
    own = statistics.median(wall / lib - 1.0 for wall, lib in zip(rows["wy_plain"], rows["lib_plain"]))
    own_abs = statistics.median(wall - lib for wall, lib in zip(rows["wy_plain"], rows["lib_plain"]))

    def pct(value: float) -> str:
        return "{:+.0f} %".format(100.0 * (value - decode) / decode)

    print("# Wyoming round trip vs the deepspeech command line\n")
    print("Machine: {} {}, {} CPUs, Python {}; {}. Fixture model (TFLite, official x86_64 0.7.4 library through the "
          "project's binding), no scorer, the recorded WAV ({:.2f} s of audio), {} interleaved repetitions, "
          "medians. Load average (1/5/15 min) {} before, {} after.\n".format(
              platform.system(), platform.machine(), os.cpu_count(), platform.python_version(),
              time.strftime("%Y-%m-%d %H:%M"), audio_s, args.repeat, load_before, load_after))
    print("| path | median s | vs the CLI's decode | RTF |")
    print("| --- | ---: | ---: | ---: |")
    print("| CLI: decode alone (its \"Inference took\") | {:.4f} | – | {:.4f} |".format(decode, decode / audio_s))
    print("| CLI: whole command (process, model load, decode) | {:.4f} | {} | {:.4f} |".format(
        med["cli_wall"], pct(med["cli_wall"]), med["cli_wall"] / audio_s))
    print("| Wyoming, 16 kHz mono: audio-start → transcript | {:.4f} | {} | {:.4f} |".format(
        med["wy_mono"], pct(med["wy_mono"]), med["wy_mono"] / audio_s))
    print("| Wyoming, 16 kHz mono, without streaming (--no-streaming) | {:.4f} | {} | {:.4f} |".format(
        med["wy_plain"], pct(med["wy_plain"]), med["wy_plain"] / audio_s))
    if args.baseline:
        print("| Wyoming, 16 kHz mono, without streaming, server of {} (baseline) | {:.4f} | {} | {:.4f} |".format(
            baseline_rev, med["wy_baseline"], pct(med["wy_baseline"]), med["wy_baseline"] / audio_s))
    print("| Wyoming, 44.1 kHz stereo (converted): audio-start → transcript | {:.4f} | {} | {:.4f} |".format(
        med["wy_stereo"], pct(med["wy_stereo"]), med["wy_stereo"] / audio_s))
    print("| Wyoming: audio-stop → transcript (what a user waits for) | {:.4f} | – | – |".format(med["wy_latency"]))
    print("| Server's own library time, without streaming (feeds and final decode) | {:.4f} | {} | {:.4f} |".format(
        med["lib_plain"], pct(med["lib_plain"]), med["lib_plain"] / audio_s))
    print("| Server's own library time, 16 kHz mono with streaming | {:.4f} | {} | {:.4f} |".format(
        med["lib_mono"], pct(med["lib_mono"]), med["lib_mono"] / audio_s))
    print()
    print("Protocol overhead (Wyoming 16 kHz mono without streaming minus the CLI's decode): {:.4f} s = {:.1f} % of the "
          "decode (target: under 10 %). Streaming's intermediate decodes add {:.4f} s ({:.1f} % of the decode).".format(
              med["wy_plain"] - decode, 100.0 * (med["wy_plain"] - decode) / decode,
              med["wy_mono"] - med["wy_plain"], 100.0 * (med["wy_mono"] - med["wy_plain"]) / decode))
    print()
    print("Against the server's own library time for the same request (round trip minus it, median of the "
          "per-request differences): {:.4f} s = {:.1f} % (the round trip outside the library: protocol, "
          "conversion, thread hops, scheduling). Library calls per utterance (median): {:g} without streaming, "
          "{:g} with; final decode alone {:.4f} s.".format(own_abs, 100.0 * own, med["calls_plain"],
                                                           med["calls_mono"], med["final_plain"]))
    if args.baseline:
        print()
        print("Baseline server ({}) vs this one, both without streaming, same run: {:.4f} s vs {:.4f} s "
              "({:+.1f} %); over the CLI's decode {:.1f} % vs {:.1f} %.".format(
                  baseline_rev, med["wy_baseline"], med["wy_plain"],
                  100.0 * (med["wy_plain"] - med["wy_baseline"]) / med["wy_baseline"],
                  100.0 * (med["wy_baseline"] - decode) / decode, 100.0 * (med["wy_plain"] - decode) / decode))
    print("\nRaw seconds: " + json.dumps({key: [round(v, 4) for v in values] for key, values in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
