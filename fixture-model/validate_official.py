"""Transcribe WAVs with an official DeepSpeech 0.7.4 Python package (no scorer); print JSON.

Runs inside a Python 3.8 venv holding `deepspeech==0.7.4` (loads .pb) or
`deepspeech-tflite==0.7.4` (loads .tflite):

    python validate_official.py MODEL WAV [WAV ...]  >  result.json
"""
from __future__ import annotations

import json
import sys
import time
import wave

import deepspeech
import numpy as np


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: validate_official.py MODEL WAV [WAV ...]")
    model_path, wavs = argv[0], argv[1:]
    started = time.time()
    model = deepspeech.Model(model_path)
    load_s = time.time() - started
    if model.sampleRate() != 16000:
        sys.exit("model sample rate %d, expected 16000" % model.sampleRate())
    results = {}
    started = time.time()
    for path in wavs:
        with wave.open(path, "rb") as src:
            if (src.getframerate(), src.getnchannels(), src.getsampwidth()) != (16000, 1, 2):
                sys.exit("%s is not 16 kHz mono 16-bit" % path)
            audio = np.frombuffer(src.readframes(src.getnframes()), dtype=np.int16)
        results[path] = model.stt(audio)
    json.dump({"package": deepspeech.__name__, "version": deepspeech.version(),
               "beam_width": model.beamWidth(), "load_seconds": round(load_s, 3),
               "transcribe_seconds": round(time.time() - started, 3), "transcripts": results},
              sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
