"""Streaming-exact features and a small CTC acoustic model (Dense -> LSTM -> Dense), trained on CPU."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

WIN = 512  # 32 ms at 16 kHz
STEP = 320  # 20 ms
N_FEATURES = 26
N_CONTEXT = 9


def stream_windows(audio: np.ndarray) -> np.ndarray:
    """The 512-sample windows libdeepspeech 0.7.4 feeds its MFCC graph for a whole utterance.

    Full windows every 320 samples, then one final window made of the leftover samples; the
    TFLite runtime leaves the previous window's samples in the rest of the input tensor (the
    TF runtime zero-fills it: that differs only inside the trailing silence).
    """
    samples = audio.astype(np.float32) / 32768.0
    windows: List[np.ndarray] = []
    start = 0
    previous = np.zeros(WIN, dtype=np.float32)
    while start + WIN <= samples.size:
        previous = samples[start:start + WIN]
        windows.append(previous)
        start += STEP
    leftover = samples[start:] if windows else samples
    final = previous.copy() if windows else np.zeros(WIN, dtype=np.float32)
    final[:leftover.size] = leftover
    windows.append(final)
    return np.stack(windows)


def mfcc_of_windows(windows: np.ndarray) -> np.ndarray:
    """[n, 512] windows -> [n, 26] MFCCs with the same TF ops (and parameters) as the model graph."""
    out: List[np.ndarray] = []
    for lo in range(0, windows.shape[0], 20000):
        chunk = tf.constant(windows[lo:lo + 20000].T)  # channels = windows, one frame each
        spec = tf.raw_ops.AudioSpectrogram(input=chunk, window_size=WIN, stride=STEP,
                                           magnitude_squared=True)
        mfcc = tf.raw_ops.Mfcc(spectrogram=spec, sample_rate=16000, upper_frequency_limit=8000.0,
                               lower_frequency_limit=20.0, filterbank_channel_count=40,
                               dct_coefficient_count=N_FEATURES)
        out.append(mfcc.numpy().reshape(-1, N_FEATURES))
    return np.concatenate(out)


def features(clips: Sequence[np.ndarray]) -> List[np.ndarray]:
    """MFCC frames [T_i, 26] for each int16 clip, computed in one batch."""
    windows = [stream_windows(c) for c in clips]
    flat = mfcc_of_windows(np.concatenate(windows))
    result: List[np.ndarray] = []
    pos = 0
    for w in windows:
        result.append(flat[pos:pos + w.shape[0]])
        pos += w.shape[0]
    return result


@dataclass
class Weights:
    """Trained parameters with the feature normalisation folded into the first layer."""

    w1: np.ndarray  # [19*26, H1]
    b1: np.ndarray
    kernel: np.ndarray  # LSTM, Keras layout: [H1, 4H], gates i, f, c, o
    recurrent: np.ndarray  # [H, 4H]
    bias: np.ndarray  # [4H]
    w3: np.ndarray  # [H, n_classes]
    b3: np.ndarray


class AcousticModel(tf.keras.Model):
    """Context window -> normalise -> Dense relu -> LSTM -> Dense (logits; softmax at export)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int, cell: int,
                 n_classes: int, dropout: float) -> None:
        super().__init__()
        self.mean = tf.constant(mean, tf.float32)
        self.std = tf.constant(std, tf.float32)
        self.dense1 = tf.keras.layers.Dense(hidden, activation="relu")
        self.dropout = tf.keras.layers.Dropout(dropout)
        self.lstm = tf.keras.layers.LSTM(cell, return_sequences=True)
        self.dense3 = tf.keras.layers.Dense(n_classes)

    def call(self, mfcc: tf.Tensor, training: bool = False) -> tf.Tensor:  # [B, T, 26]
        padded = tf.pad(mfcc, [[0, 0], [N_CONTEXT, N_CONTEXT], [0, 0]])
        ctx = tf.signal.frame(padded, 2 * N_CONTEXT + 1, 1, axis=1)  # [B, T, 19, 26]
        ctx = (ctx - self.mean) / self.std
        ctx = tf.reshape(ctx, [tf.shape(mfcc)[0], tf.shape(mfcc)[1], (2 * N_CONTEXT + 1) * N_FEATURES])
        hidden = self.dropout(self.dense1(ctx), training=training)
        return self.dense3(self.lstm(hidden))

    def export_weights(self) -> Weights:
        w1, b1 = [v.numpy() for v in self.dense1.weights]
        reps = 2 * N_CONTEXT + 1
        mean = np.tile(self.mean.numpy(), reps)
        std = np.tile(self.std.numpy(), reps)
        w1f = w1 / std[:, None]
        b1f = b1 - (mean / std) @ w1
        kernel, recurrent, bias = [v.numpy() for v in self.lstm.weights]
        w3, b3 = [v.numpy() for v in self.dense3.weights]
        return Weights(w1f.astype(np.float32), b1f.astype(np.float32), kernel, recurrent, bias, w3, b3)


def greedy_decode(logits: np.ndarray, alphabet: Sequence[str]) -> str:
    """Best path: argmax per frame, collapse repeats, drop the blank (last class)."""
    best = np.argmax(logits, axis=-1)
    blank = len(alphabet)
    out: List[str] = []
    prev = -1
    for k in best:
        if k != prev and k != blank:
            out.append(alphabet[k])
        prev = k
    return "".join(out)


def _batches(lengths: Sequence[int], batch_size: int, rng: np.random.RandomState) -> List[np.ndarray]:
    """Batches of similar length (less padding), shuffled each epoch."""
    order = np.argsort(np.asarray(lengths) + rng.uniform(0, 8, len(lengths)), kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _pad(feats: Sequence[np.ndarray]) -> np.ndarray:
    t = max(f.shape[0] for f in feats)
    out = np.zeros((len(feats), t, N_FEATURES), dtype=np.float32)
    for i, f in enumerate(feats):
        out[i, :f.shape[0]] = f
    return out


def train(feats: List[np.ndarray], labels: List[List[int]], alphabet: Sequence[str], *,
          hidden: int, cell: int, dropout: float, epochs: int, batch_size: int,
          learning_rate: float, seed: int,
          dev: Tuple[List[np.ndarray], List[str]], log: Callable[[str], None]) -> Tuple[AcousticModel, Dict[str, object]]:
    """Train with CTC; returns the model and a per-epoch history (loss, dev accuracy, seconds)."""
    tf.keras.utils.set_random_seed(seed)
    frames = np.concatenate(feats)
    mean = frames.mean(axis=0).astype(np.float32)
    std = (frames.std(axis=0) + 1e-3).astype(np.float32)
    n_classes = len(alphabet) + 1
    model = AcousticModel(mean, std, hidden, cell, n_classes, dropout)
    model(tf.zeros([1, 4, N_FEATURES]))
    steps_per_epoch = math.ceil(len(feats) / batch_size)
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps_per_epoch,
                                                         alpha=0.05)
    optimizer = tf.keras.optimizers.Adam(schedule, clipnorm=5.0)

    @tf.function(reduce_retracing=True)
    def step(x: tf.Tensor, x_len: tf.Tensor, y: tf.Tensor, y_len: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.ctc_loss(y, logits, y_len, x_len, logits_time_major=False,
                                                 blank_index=-1))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.RandomState(seed)
    lengths = [f.shape[0] for f in feats]
    history: List[Dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        started = time.time()
        losses = []
        for idx in _batches(lengths, batch_size, rng):
            x = _pad([feats[i] for i in idx])
            x_len = np.array([lengths[i] for i in idx], dtype=np.int32)
            lab = [labels[i] for i in idx]
            y = np.zeros((len(lab), max(len(l) for l in lab)), dtype=np.int32)
            for i, l in enumerate(lab):
                y[i, :len(l)] = l
            y_len = np.array([len(l) for l in lab], dtype=np.int32)
            losses.append(float(step(x, x_len, y, y_len)))
        dev_acc = evaluate(model, dev[0], dev[1], alphabet)[0]
        entry = {"epoch": epoch, "loss": float(np.mean(losses)), "dev_exact": dev_acc,
                 "seconds": round(time.time() - started, 1)}
        history.append(entry)
        log("epoch %(epoch)d loss %(loss).3f dev exact %(dev_exact).3f (%(seconds).0f s)" % entry)
    return model, {"epochs": history}


def evaluate(model: AcousticModel, feats: List[np.ndarray], texts: List[str],
             alphabet: Sequence[str]) -> Tuple[float, List[str]]:
    """Greedy-decoded exact-sentence accuracy of the in-memory model (a development signal)."""
    hyps: List[str] = []
    for lo in range(0, len(feats), 64):
        chunk = feats[lo:lo + 64]
        logits = model(_pad(chunk)).numpy()
        hyps.extend(greedy_decode(logits[i, :f.shape[0]], alphabet) for i, f in enumerate(chunk))
    correct = sum(h == t for h, t in zip(hyps, texts))
    return correct / max(1, len(texts)), hyps
