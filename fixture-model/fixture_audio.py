"""Synthesize and augment German speech clips with espeak-ng and sox (16 kHz mono int16)."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

SAMPLE_RATE = 16000
_DATA_PATH: Optional[Path] = None  # espeak-ng --path, set by install_random_variants()


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
    rate: float = 1.0  # resampling factor: > 1 shortens and raises pitch and formants


def tool_version(argv: Sequence[str]) -> str:
    """First line of a tool's version output (recorded in the manifest)."""
    out = subprocess.run(list(argv), check=True, capture_output=True, text=True)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """Speak `text` with espeak-ng and resample it with sox to 16 kHz mono int16 (no dither)."""
    path_arg = ["--path=%s" % _DATA_PATH] if _DATA_PATH else []
    argv = ["espeak-ng"] + path_arg + ["-v", "de+" + voice.variant, "-s", str(voice.speed),
                                       "-p", str(voice.pitch), "-g", str(voice.gap), "--stdout", text]
    spoken = subprocess.run(
        argv, check=True, capture_output=True,
    ).stdout
    if len(spoken) < 1000:
        raise RuntimeError("espeak-ng produced no audio for %r with %s" % (text, voice.describe()))
    raw = subprocess.run(
        ["sox", "-V1", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed",
         "-b", "16", "-c", "1", "-D", "-"],
        input=spoken, check=True, capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def random_variant(name: str, rng: np.random.RandomState) -> str:
    """An espeak-ng voice variant file with random pitch, formants, voicing and roughness."""
    base = int(rng.randint(60, 200))
    scale = rng.uniform(0.88, 1.15)  # vocal tract length: all formants move together
    lines = ["language variant", "name %s" % name, "pitch %d %d" % (base, base + rng.randint(15, 90))]
    for k in range(9):
        lines.append("formant %d %d %d %d" % (k, round(100 * scale * rng.uniform(0.94, 1.06)),
                                              rng.randint(60, 140), rng.randint(60, 150)))
    lines += ["flutter %d" % rng.randint(0, 20), "roughness %d" % rng.randint(0, 5),
              "voicing %d" % rng.randint(50, 140), "consonants %d %d" % (rng.randint(60, 150),
                                                                      rng.randint(60, 150))]
    if rng.randint(4) == 0:
        lines.append("klatt %d" % rng.randint(1, 7))
    if rng.randint(4) == 0:
        lines.append("breath %s" % " ".join(str(rng.randint(0, 8)) for _ in range(8)))
    return "\n".join(lines) + "\n"


def install_random_variants(work: Path, count: int, rng: np.random.RandomState) -> List[str]:
    """Copy espeak-ng's data to `work`, add `count` random variants and use that data from now on."""
    global _DATA_PATH
    match = re.search(r"Data at:\s*(\S+)", tool_version(["espeak-ng", "--version"]))
    if not match:
        raise RuntimeError("cannot find espeak-ng's data directory in `espeak-ng --version`")
    data = work / "espeak-ng-data"
    if data.exists():
        shutil.rmtree(str(data))
    shutil.copytree(match.group(1), str(data))
    names = ["fx_random_%02d" % k for k in range(count)]
    for name in names:
        (data / "voices" / "!v" / name).write_text(random_variant(name, rng), encoding="ascii")
    _DATA_PATH = work
    return names


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
    """Resample, pad, scale to a peak level and add noise at an SNR measured over the speech."""
    speech = clean.astype(np.float64) / 32768.0
    if aug.rate != 1.0:
        positions = np.arange(0.0, speech.size - 1, aug.rate)
        speech = np.interp(positions, np.arange(speech.size), speech)
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
