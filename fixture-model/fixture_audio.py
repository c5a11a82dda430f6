"""Synthesize and augment German speech clips with espeak-ng and sox (16 kHz mono int16)."""
from __future__ import annotations

import io
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Voice:
    """One espeak-ng rendering: German voice variant, words/minute, pitch 0-99, word gap (10 ms)."""

    variant: str
    speed: int
    pitch: int
    gap: int

    def describe(self) -> str:
        return "de+%s s%d p%d g%d" % (self.variant, self.speed, self.pitch, self.gap)


@dataclass(frozen=True)
class Augment:
    """Post-processing of a clean clip: peak level (dBFS), padding (s), noise kind and SNR (dB)."""

    peak_dbfs: float
    lead_s: float
    tail_s: float
    noise: str  # "none", "white", "pink" or "brown"
    snr_db: float


def tool_version(argv: Sequence[str]) -> str:
    """First line of a tool's version output (recorded in the manifest)."""
    out = subprocess.run(list(argv), check=True, capture_output=True, text=True)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """Speak `text` with espeak-ng and resample it with sox to 16 kHz mono int16 (no dither)."""
    spoken = subprocess.run(
        ["espeak-ng", "-v", "de+" + voice.variant, "-s", str(voice.speed), "-p", str(voice.pitch),
         "-g", str(voice.gap), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    if len(spoken) < 1000:
        raise RuntimeError("espeak-ng produced no audio for %r with %s" % (text, voice.describe()))
    raw = subprocess.run(
        ["sox", "-V1", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed",
         "-b", "16", "-c", "1", "-D", "-"],
        input=spoken, check=True, capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def trim_silence(audio: np.ndarray, threshold: int = 64) -> np.ndarray:
    """Cut leading/trailing samples quieter than `threshold` (espeak pads unevenly)."""
    loud = np.nonzero(np.abs(audio.astype(np.int32)) > threshold)[0]
    if loud.size == 0:
        return audio
    return audio[max(0, loud[0] - 160): loud[-1] + 160]


def _noise(kind: str, n: int, rng: np.random.RandomState) -> np.ndarray:
    """Unit-RMS noise: white, pink (1/f power) or brown (1/f^2), shaped in the frequency domain."""
    exponents = {"white": 0.0, "pink": 1.0, "brown": 2.0}
    if kind not in exponents:
        raise ValueError("unknown noise kind %r (use none, white, pink or brown)" % kind)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spectrum *= np.maximum(freqs, 20.0) ** (-exponents[kind] / 2.0)
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def augment(clean: np.ndarray, aug: Augment, rng: np.random.RandomState) -> np.ndarray:
    """Pad, scale to a peak level and add noise at an SNR measured over the speech part."""
    speech = clean.astype(np.float64) / 32768.0
    peak = np.max(np.abs(speech)) + 1e-12
    speech *= (10.0 ** (aug.peak_dbfs / 20.0)) / peak
    lead = np.zeros(int(aug.lead_s * SAMPLE_RATE))
    tail = np.zeros(int(aug.tail_s * SAMPLE_RATE))
    signal = np.concatenate([lead, speech, tail])
    if aug.noise != "none":
        speech_rms = np.sqrt(np.mean(speech ** 2))
        noise_rms = speech_rms / (10.0 ** (aug.snr_db / 20.0))
        signal = signal + _noise(aug.noise, signal.size, rng) * noise_rms
    # A faint floor like a real microphone's, so silence is never digital zero.
    signal = signal + rng.standard_normal(signal.size) * (10.0 ** (-75.0 / 20.0))
    return np.clip(np.round(signal * 32768.0), -32768, 32767).astype(np.int16)


def write_wav(path: Path, audio: np.ndarray) -> None:
    """Write 16 kHz mono 16-bit PCM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(audio.astype("<i2").tobytes())
    path.write_bytes(buf.getvalue())


def read_wav(path: Path) -> np.ndarray:
    """Read a 16 kHz mono 16-bit WAV; refuse anything else."""
    with wave.open(str(path), "rb") as src:
        shape = (src.getframerate(), src.getnchannels(), src.getsampwidth())
        if shape != (SAMPLE_RATE, 1, 2):
            raise ValueError("%s: rate/channels/width %r, expected (16000, 1, 2)" % (path, shape))
        return np.frombuffer(src.readframes(src.getnframes()), dtype="<i2").astype(np.int16)


def render(texts: List[str], voices: List[Voice], augments: List[Augment],
           rng: np.random.RandomState) -> List[np.ndarray]:
    """Synthesize texts[i] with voices[i] and apply augments[i] (lists of equal length)."""
    if not (len(texts) == len(voices) == len(augments)):
        raise ValueError("texts, voices and augments differ in length")
    return [augment(trim_silence(synthesize(t, v)), a, rng) for t, v, a in zip(texts, voices, augments)]
