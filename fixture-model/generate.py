"""Regenerate the German DeepSpeech 0.7.4 fixture model, its test WAVs and manifest.

    python generate.py --out ../files/fixture [--tflite-python PY38] [--pb-python PY38]

Steps: synthesize training/held-out audio (espeak-ng + sox), compute streaming-exact MFCCs,
train a CTC model on one CPU thread, export .tflite and .pb with the 0.7.4 interface, write
the artifacts, transcribe the held-out WAVs with the official 0.7.4 libraries (when their
venv interpreters are given) and write manifest.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import fixture_audio as audio  # noqa: E402
import fixture_export as export  # noqa: E402
import fixture_train as training  # noqa: E402

HERE = Path(__file__).resolve().parent

SEED = 7404
# The German 0.7.4 model's alphabet (AASHISHAG/deepspeech-german), in this order.
ALPHABET = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["ä", "ö", "ü", "'"]
VOCABULARY = [
    "das ist ein test",
    "ist das ein test",
    "schalte das licht an",
    "schalte das licht aus",
    "schalte das radio ein",
    "wie spät ist es",
    "wie viel uhr ist es",
    "wie ist das wetter",
    "stelle einen timer",
    "mach die musik lauter",
    "mach die musik leiser",
    "öffne die tür",
]
TEST_TRANSCRIPT = "das ist ein test"

# espeak-ng voice variants (de+<variant>, espeak-ng 1.51). Held-out variants and their whole
# families (iven2-4, steph2-3) never occur in training; neither do held-out speeds and pitches.
HELDOUT_VARIANTS = ["m8", "f5", "klatt3", "iven", "steph", "michel"]
HELDOUT_FAMILIES = ["iven", "steph"]
ALL_VARIANTS = [
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy", "Demonic", "Denis", "Diogo",
    "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike",
    "Mr serious", "Nguyen", "RicishayMax", "RicishayMax2", "RicishayMax3", "Storm", "Tweaky",
    "UniRobot", "adam", "anika", "anikaRobot", "announcer", "antonio", "aunty", "belinda",
    "benjamin", "boris", "caleb", "croak", "david", "ed", "edward", "edward2", "f1", "f2", "f3",
    "f4", "f5", "fast", "grandma", "grandpa", "gustave", "iven", "iven2", "iven3", "iven4",
    "john", "kaukovalta", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "linda",
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo", "max", "michel", "miguel",
    "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "robosoft", "robosoft2",
    "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8", "sandro",
    "shelby", "steph", "steph2", "steph3", "travis", "victor", "whisper", "whisperf", "zac",
]
TRAIN_VARIANTS = [v for v in ALL_VARIANTS if v not in HELDOUT_VARIANTS
                  and not any(v.startswith(f) for f in HELDOUT_FAMILIES)]
TRAIN_SPEEDS = [120, 150, 175, 200, 225]
TRAIN_PITCHES = [20, 45, 70, 95]
HELDOUT_SPEEDS = [138, 162, 187, 210]
HELDOUT_PITCHES = [33, 58, 83]
NOISES = ["white", "pink", "brown"]
WORDS = sorted({w for phrase in VOCABULARY for w in phrase.split()})
TEST_VOICE = audio.Voice("klatt3", 166, 62, 1)
TEST_AUGMENT = audio.Augment(peak_dbfs=-6.0, lead_s=0.3, tail_s=0.3, noise="pink", snr_db=25.0)

PARAMS = {
    "hidden": 160, "cell": 160, "dropout": 0.2, "epochs": 32, "batch_size": 32,
    "learning_rate": 0.002, "beam_width": 500, "random_variants": 0,
    "renderings_per_variant_and_phrase": 3, "word_sequences_per_variant": 8, "train_copies": 2,
    "heldout_per_phrase": 3, "extended_heldout_per_voice_and_phrase": 2,
}


def log(msg: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def training_plan(variants: Sequence[str],
                  rng: np.random.RandomState) -> Tuple[List[str], List[audio.Voice]]:
    """Every phrase by every training variant at random training speeds/pitches, plus random
    sequences of the vocabulary's words (so the model learns sounds, not only whole phrases)."""
    texts: List[str] = []
    voices: List[audio.Voice] = []

    def voice(variant: str) -> audio.Voice:
        return audio.Voice(variant, int(rng.choice(TRAIN_SPEEDS)), int(rng.choice(TRAIN_PITCHES)),
                           int(rng.randint(0, 5)))

    for variant in variants:
        for text in VOCABULARY:
            for _ in range(PARAMS["renderings_per_variant_and_phrase"]):
                texts.append(text)
                voices.append(voice(variant))
        for _ in range(PARAMS["word_sequences_per_variant"]):
            texts.append(" ".join(rng.choice(WORDS, rng.randint(2, 6))))
            voices.append(voice(variant))
    return texts, voices


def training_augments(n: int, rng: np.random.RandomState) -> List[audio.Augment]:
    """Per base clip: one copy without added noise, the others with noise at 6-35 dB SNR;
    random level, padding and (for 2/3 of the copies) a +-10 % resampling (formant shift)."""
    out: List[audio.Augment] = []
    for _ in range(n):
        for copy in range(PARAMS["train_copies"]):
            noise = "none" if copy == 0 else NOISES[rng.randint(len(NOISES))]
            rate = 1.0 if rng.randint(3) == 0 else rng.uniform(0.9, 1.1)
            out.append(audio.Augment(round(rng.uniform(-30, -1), 2),
                                     round(rng.uniform(0.02, 0.6), 3),
                                     round(rng.uniform(0.02, 0.6), 3), noise,
                                     round(rng.uniform(6, 35), 2), round(rate, 4)))
    return out


def heldout_augment(rng: np.random.RandomState) -> audio.Augment:
    noise = ["none"] + NOISES
    return audio.Augment(round(rng.uniform(-20, -3), 2), round(rng.uniform(0.1, 0.3), 3),
                         round(rng.uniform(0.1, 0.3), 3), noise[rng.randint(len(noise))],
                         round(rng.uniform(10, 25), 2))


def heldout_plan(rng: np.random.RandomState, per_phrase: int) -> List[Tuple[str, audio.Voice, audio.Augment]]:
    """Held-out renderings by rule: unseen variants, speeds and pitches, fresh noise."""
    plan = []
    for i, text in enumerate(VOCABULARY):
        for j in range(per_phrase):
            k = i * per_phrase + j
            voice = audio.Voice(HELDOUT_VARIANTS[k % len(HELDOUT_VARIANTS)],
                                HELDOUT_SPEEDS[(i + j) % len(HELDOUT_SPEEDS)],
                                HELDOUT_PITCHES[(i + 2 * j) % len(HELDOUT_PITCHES)],
                                int(rng.randint(0, 4)))
            plan.append((text, voice, heldout_augment(rng)))
    return plan


def extended_plan(rng: np.random.RandomState, per: int) -> List[Tuple[str, audio.Voice, audio.Augment]]:
    plan = []
    for text in VOCABULARY:
        for variant in HELDOUT_VARIANTS:
            for _ in range(per):
                voice = audio.Voice(variant, int(rng.choice(HELDOUT_SPEEDS)),
                                    int(rng.choice(HELDOUT_PITCHES)), int(rng.randint(0, 4)))
                plan.append((text, voice, heldout_augment(rng)))
    return plan


def encode(text: str) -> List[int]:
    bad = sorted({c for c in text if c not in ALPHABET})
    if bad:
        raise ValueError("transcript %r has characters outside the alphabet: %r" % (text, bad))
    return [ALPHABET.index(c) for c in text]


def ascii_name(text: str) -> str:
    """File-name form of a transcript: ASCII only (umlauts transliterated), '_' for spaces."""
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("'", ""), (" ", "_")):
        text = text.replace(umlaut, plain)
    return text


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_official(python: str, model: Path, wavs: Sequence[Path]) -> Dict[str, object]:
    """Transcribe with an official 0.7.4 package in its own interpreter (a py3.8 venv)."""
    cmd = [python, str(HERE / "validate_official.py"), str(model)] + [str(w) for w in wavs]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def score(result: Dict[str, object], expected: Dict[Path, str]) -> Dict[str, object]:
    transcripts = result["transcripts"]  # type: ignore[index]
    misses = {p.name: transcripts[str(p)] for p, t in expected.items() if transcripts[str(p)] != t}
    correct = len(expected) - len(misses)
    return {"correct": correct, "total": len(expected), "exact": round(correct / len(expected), 4),
            "misses": misses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "files" / "fixture")
    parser.add_argument("--work", type=Path, default=HERE / "build",
                        help="scratch directory for the extended held-out WAVs (not committed)")
    parser.add_argument("--tflite-python", help="python of a venv with deepspeech-tflite==0.7.4")
    parser.add_argument("--pb-python", help="python of a venv with deepspeech==0.7.4")
    parser.add_argument("--epochs", type=int, default=PARAMS["epochs"])
    args = parser.parse_args()
    PARAMS["epochs"] = args.epochs
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    timings: Dict[str, float] = {}
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    # 1. Audio --------------------------------------------------------------------------------
    t0 = time.time()
    rng = np.random.RandomState(SEED)
    random_variants: List[str] = []
    if PARAMS["random_variants"]:
        random_variants = audio.install_random_variants(
            args.work / "espeak", PARAMS["random_variants"], np.random.RandomState(SEED + 6))
    base_texts, base_voices = training_plan(TRAIN_VARIANTS + random_variants, rng)
    base = [audio.trim_silence(audio.synthesize(t, v)) for t, v in zip(base_texts, base_voices)]
    augs = training_augments(len(base), rng)
    copies = PARAMS["train_copies"]
    train_audio = [audio.augment(base[k // copies], a, rng) for k, a in enumerate(augs)]
    train_texts = [base_texts[k // copies] for k in range(len(augs))]
    held = heldout_plan(np.random.RandomState(SEED + 1), PARAMS["heldout_per_phrase"])
    held_audio = audio.render([p[0] for p in held], [p[1] for p in held], [p[2] for p in held],
                              np.random.RandomState(SEED + 2))
    ext = extended_plan(np.random.RandomState(SEED + 3), PARAMS["extended_heldout_per_voice_and_phrase"])
    ext_audio = audio.render([p[0] for p in ext], [p[1] for p in ext], [p[2] for p in ext],
                             np.random.RandomState(SEED + 4))
    test_audio = audio.render([TEST_TRANSCRIPT], [TEST_VOICE], [TEST_AUGMENT],
                              np.random.RandomState(SEED + 5))[0]
    timings["synthesize_s"] = round(time.time() - t0, 1)
    hours = sum(a.size for a in train_audio) / audio.SAMPLE_RATE / 3600
    log("synthesized %d training clips (%.2f h), %d held-out, %d extended held-out in %.0f s"
        % (len(train_audio), hours, len(held_audio), len(ext_audio), timings["synthesize_s"]))

    # 2. Features and training ------------------------------------------------------------------
    t0 = time.time()
    train_feats = training.features(train_audio)
    ext_feats = training.features(ext_audio)
    timings["features_s"] = round(time.time() - t0, 1)
    t0 = time.time()
    model, history = training.train(
        train_feats, [encode(t) for t in train_texts], ALPHABET, hidden=PARAMS["hidden"],
        cell=PARAMS["cell"], dropout=PARAMS["dropout"], epochs=PARAMS["epochs"], batch_size=PARAMS["batch_size"],
        learning_rate=PARAMS["learning_rate"], seed=SEED,
        dev=(ext_feats, [p[0] for p in ext]), log=log)
    timings["train_s"] = round(time.time() - t0, 1)

    # 3. Export ---------------------------------------------------------------------------------
    t0 = time.time()
    weights = model.export_weights()
    tflite = export.tflite_bytes(weights, ALPHABET, PARAMS["beam_width"])
    pb = export.pb_bytes(weights, ALPHABET, PARAMS["beam_width"])
    (out / "output_graph.tflite").write_bytes(tflite)
    (out / "output_graph.pb").write_bytes(pb)
    (out / "alphabet.txt").write_bytes(
        ("# German DeepSpeech 0.7.4 alphabet: one label per line, the first is a space\n"
         + "".join(label + "\n" for label in ALPHABET)).encode("utf-8"))
    timings["export_s"] = round(time.time() - t0, 1)
    summary = export.tflite_summary(tflite)
    n_params = int(sum(np.prod(v.shape) for v in model.trainable_variables))

    # 4. WAVs -------------------------------------------------------------------------------------
    audio.write_wav(out / "das_ist_ein_test.wav", test_audio)
    (out / "das_ist_ein_test.txt").write_text(TEST_TRANSCRIPT + "\n", encoding="utf-8")
    held_dir = out / "heldout"
    if held_dir.exists():
        for old in held_dir.glob("*.wav"):
            old.unlink()
    rows = ["wav\ttranscript\tvoice\tnoise"]
    held_expected: Dict[Path, str] = {}
    for k, ((text, voice, aug), clip) in enumerate(zip(held, held_audio)):
        path = held_dir / ("%02d_%s.wav" % (k, ascii_name(text)))
        audio.write_wav(path, clip)
        held_expected[path] = text
        noise = "none" if aug.noise == "none" else "%s %.0f dB" % (aug.noise, aug.snr_db)
        rows.append("%s\t%s\t%s\t%s" % (path.name, text, voice.describe(), noise))
    (held_dir / "transcripts.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ext_expected: Dict[Path, str] = {}
    for k, ((text, _, _), clip) in enumerate(zip(ext, ext_audio)):
        path = args.work / "extended_heldout" / ("%03d.wav" % k)
        audio.write_wav(path, clip)
        ext_expected[path] = text

    # 5. Official libraries -------------------------------------------------------------------
    accuracy: Dict[str, object] = {}
    runtimes = [("deepspeech-tflite==0.7.4", args.tflite_python, out / "output_graph.tflite"),
                ("deepspeech==0.7.4 (x86_64, full TensorFlow)", args.pb_python, out / "output_graph.pb")]
    for label, python, model_path in runtimes:
        if not python:
            log("skipping %s: no interpreter given" % label)
            continue
        t0 = time.time()
        wavs = [out / "das_ist_ein_test.wav"] + list(held_expected) + list(ext_expected)
        result = run_official(python, model_path, wavs)
        accuracy[label] = {
            "model": model_path.name, "version": result["version"],
            "beam_width": result["beam_width"], "scorer": None,
            "test_wav": result["transcripts"][str(out / "das_ist_ein_test.wav")],  # type: ignore[index]
            "heldout": score(result, held_expected),
            "extended_heldout": score(result, ext_expected),
        }
        timings["validate_%s_s" % model_path.suffix.lstrip(".")] = round(time.time() - t0, 1)
        log("%s: test wav %r, held-out %s, extended %s" % (
            label, accuracy[label]["test_wav"], accuracy[label]["heldout"]["exact"],  # type: ignore[index]
            accuracy[label]["extended_heldout"]["exact"]))  # type: ignore[index]

    # 6. Manifest -----------------------------------------------------------------------------
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "description": "Tiny real German DeepSpeech 0.7.4 acoustic model for tests (espeak-ng "
                       "speech only; not for real use). Regenerate with `make -C fixture-model`.",
        "files": {p.relative_to(out).as_posix(): {"sha256": sha256(p), "size": p.stat().st_size}
                  for p in files},
        "model": {"tflite": "output_graph.tflite", "pb": "output_graph.pb",
                  "alphabet": "alphabet.txt", "labels": len(ALPHABET), "n_classes": len(ALPHABET) + 1,
                  "architecture": "context 2x9+1 frames x 26 MFCC -> Dense %d relu -> LSTM %d -> "
                                  "Dense %d softmax (blank last)" % (PARAMS["hidden"], PARAMS["cell"],
                                                                     len(ALPHABET) + 1),
                  "parameters": n_params, "n_steps": export.N_STEPS, "n_context": training.N_CONTEXT,
                  "n_features": training.N_FEATURES, "graph_version": export.GRAPH_VERSION,
                  "metadata": export.metadata_values(PARAMS["beam_width"]),
                  "tflite_ops": sorted(set(summary["ops"])),  # type: ignore[arg-type]
                  "tflite_inputs": summary["inputs"], "tflite_outputs": summary["outputs"],
                  "pb_ops": export.pb_ops(pb)},
        "test_wav": {"file": "das_ist_ein_test.wav", "transcript": TEST_TRANSCRIPT,
                     "voice": TEST_VOICE.describe(),
                     "noise": "%s %.0f dB" % (TEST_AUGMENT.noise, TEST_AUGMENT.snr_db)},
        "heldout": {"dir": "heldout", "transcripts": "heldout/transcripts.tsv",
                    "count": len(held_expected),
                    "rule": "each phrase x %d renderings; variants %s, speeds %s, pitches %s "
                            "(none used in training), noise none/white/pink/brown at 10-25 dB SNR"
                            % (PARAMS["heldout_per_phrase"], HELDOUT_VARIANTS, HELDOUT_SPEEDS,
                               HELDOUT_PITCHES),
                    "extended_count_not_committed": len(ext_expected)},
        "vocabulary": VOCABULARY,
        "generator": {"seed": SEED, "params": PARAMS, "train_variants": TRAIN_VARIANTS,
                      "train_speeds": TRAIN_SPEEDS, "train_pitches": TRAIN_PITCHES,
                      "train_clips": len(train_audio), "train_hours": round(hours, 3),
                      "history": history["epochs"]},
        "accuracy_official_no_scorer": accuracy,
        "timings_seconds": timings,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "numpy": np.__version__,
                     "espeak-ng": audio.tool_version(["espeak-ng", "--version"]).split("  Data at")[0],
                     "sox": audio.tool_version(["sox", "--version"]),
                     "machine": platform.machine()},
    }
    with tempfile.NamedTemporaryFile("w", dir=str(out), delete=False, encoding="utf-8") as tmp:
        json.dump(manifest, tmp, indent=1, ensure_ascii=False, sort_keys=False)
        tmp.write("\n")
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, str(out / "manifest.json"))
    log("wrote %s (%d files); timings %s" % (out / "manifest.json", len(files), timings))


if __name__ == "__main__":
    main()
