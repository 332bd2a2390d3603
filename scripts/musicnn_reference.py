"""Reference outputs of the original TensorFlow musicnn models, for the PyTorch port's parity test.

Run it once in a separate, throwaway environment that has TensorFlow (never the workbook's own)::

    python -m venv tfenv
    tfenv/bin/pip install tensorflow-cpu tf-keras librosa soundfile
    tfenv/bin/pip install --no-deps musicnn==0.1.0
    TF_USE_LEGACY_KERAS=1 tfenv/bin/python scripts/musicnn_reference.py tests/data/musicnn_reference.npz

It builds the original graph (``musicnn.models.define_model``), restores the checkpoint shipped in the wheel and
feeds it the log-mel patches of :func:`reference_audio`. The front end is musicnn's own (librosa mel power,
rounded to float16) except that the ``log10(10000 x + 1)`` compression is computed in float32: the shipped code
evaluates it in float16, which overflows to ``inf`` for ordinary loud music (the workbook's port does the same fix).

The ``.npz`` written holds, for 8 s of audio with 3 s patches every 61 frames (≈1 s):

* ``audio`` recipe parameters (``sr``, ``seconds``) and ``mel16``: the float16 mel power ``[T, 96]`` that is the
  network's exact input before the log, so the network can be compared independently of the audio front end;
* per model ``M`` (``MTT_musicnn``, ``MSD_musicnn``): ``M/taggram`` ``[N, 50]`` sigmoid probabilities and
  ``M/penultimate`` ``[N, 200]``, ``M/mean_pool`` and ``M/max_pool`` ``[N, 753]``;
* ``versions``: the TensorFlow, librosa and numpy versions used.

The top level of this file imports numpy only, so the test suite can load :func:`reference_audio` from it.
"""

from __future__ import annotations

import sys

import numpy as np

SR = 16000
SECONDS = 8.0
N_FRAMES = 187  # 3 s patches, as musicnn: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
PATCH_HOP = 61  # librosa.time_to_frames(1.0, sr=16000, n_fft=512, hop_length=256)
MODELS = ("MTT_musicnn", "MSD_musicnn")


def reference_audio(*, sr: int = SR, seconds: float = SECONDS) -> np.ndarray:
    """Deterministic test music, float32 mono ``[T]`` at ``sr`` Hz, peak about 0.9.

    Four 2 s sections: a decaying harmonic "piano" arpeggio, a sustained bowed-like chord with vibrato, a beat of
    noise bursts with a bass tone, and a bright sawtooth-like synth line. Built from closed-form signals and one
    seeded PCG64 noise stream, so numpy reproduces it on any machine.
    """
    n = int(round(sr * seconds))
    t = np.arange(n, dtype=np.float64) / sr
    out = np.zeros(n, dtype=np.float64)
    rng = np.random.Generator(np.random.PCG64(20240611))
    seg = n // 4

    def tone(f0, start, length, *, harmonics=6, decay=3.0, vibrato=0.0):
        tt = t[:length]
        phase = 2 * np.pi * f0 * tt + vibrato * np.sin(2 * np.pi * 5.5 * tt)
        sig = sum(np.sin(k * phase) / k ** 1.3 for k in range(1, harmonics + 1))
        env = np.exp(-decay * tt) * np.minimum(1.0, tt * 200)
        out[start:start + length] += sig * env

    # 1) arpeggio, 8 notes of 0.25 s (A minor / C major)
    for i, midi in enumerate([57, 60, 64, 69, 72, 69, 64, 60]):
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        start = i * seg // 8
        tone(f0, start, min(seg - start + seg // 4, n - start), decay=4.0)
    # 2) sustained chord with vibrato and slow attack
    for midi in (55, 59, 62, 67):
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        tt = t[:seg]
        phase = 2 * np.pi * f0 * tt + 0.8 * np.sin(2 * np.pi * 5.0 * tt)
        sig = sum(np.sin(k * phase) / k for k in range(1, 9))
        out[seg:2 * seg] += 0.35 * sig * np.minimum(1.0, tt / 0.3)
    # 3) beat: noise bursts every 0.25 s plus a decaying 55 Hz bass every 0.5 s
    noise = rng.standard_normal(seg)
    burst = np.exp(-40.0 * t[: seg // 8])
    for i in range(8):
        a = 2 * seg + i * seg // 8
        out[a:a + seg // 8] += 0.6 * noise[i * seg // 8:(i + 1) * seg // 8] * burst
        if i % 2 == 0:
            tone(55.0, a, seg // 4, harmonics=3, decay=6.0)
    # 4) bright synth line, many harmonics, no decay
    for i, midi in enumerate([64, 67, 71, 74]):
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        a = 3 * seg + i * seg // 4
        tone(f0, a, seg // 4, harmonics=20, decay=0.0)
    out /= np.max(np.abs(out)) / 0.9
    return out.astype(np.float32)


def mel_power16(wav: np.ndarray, sr: int = SR) -> np.ndarray:
    """musicnn's mel power, rounded to float16 as the original does: ``[T_frames, 96]``."""
    import librosa

    mel = librosa.feature.melspectrogram(y=wav, sr=sr, hop_length=256, n_fft=512, n_mels=96).T
    return mel.astype(np.float16)


def patches(mel16: np.ndarray, *, n_frames: int = N_FRAMES, hop: int = PATCH_HOP) -> np.ndarray:
    """Fixed front end (log in float32) and musicnn's patching: ``[N, n_frames, 96]`` float32."""
    logmel = np.log10(10000.0 * mel16.astype(np.float32) + 1.0)
    starts = range(0, logmel.shape[0] - n_frames + 1, hop)
    return np.stack([logmel[s:s + n_frames] for s in starts]).astype(np.float32)


def run_tf(model: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Original graph + shipped checkpoint → taggram and pooled/penultimate features for ``batch``."""
    import os

    import tensorflow as tf
    from musicnn import configuration, models

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    labels = configuration.MTT_LABELS if model.startswith("MTT") else configuration.MSD_LABELS
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, batch.shape[1], batch.shape[2]])
        is_training = tf.compat.v1.placeholder(tf.bool)
        y, _, _, _, _, _, mean_pool, max_pool, penultimate = models.define_model(x, is_training, model, len(labels))
        prob = tf.nn.sigmoid(y)
    ckpt = os.path.join(os.path.dirname(models.__file__), model) + "/"
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, ckpt)
        out = sess.run([prob, penultimate, mean_pool, max_pool], feed_dict={x: batch, is_training: False})
    return dict(zip(("taggram", "penultimate", "mean_pool", "max_pool"), (np.asarray(o, np.float32) for o in out),
                    strict=True))


def main(out_path: str) -> None:
    import librosa
    import tensorflow as tf

    wav = reference_audio()
    mel16 = mel_power16(wav)
    batch = patches(mel16)
    arrays: dict[str, np.ndarray] = {
        "sr": np.int64(SR), "seconds": np.float64(SECONDS), "n_frames": np.int64(N_FRAMES),
        "patch_hop": np.int64(PATCH_HOP), "mel16": mel16,
        "versions": np.array([f"tensorflow {tf.__version__}", f"librosa {librosa.__version__}",
                              f"numpy {np.__version__}"]),
    }
    for model in MODELS:
        for key, value in run_tf(model, batch).items():
            arrays[f"{model}/{key}"] = value
        top = np.argsort(-arrays[f"{model}/taggram"].mean(0))[:5]
        print(model, "patches", batch.shape[0], "top-5 tag indices", top.tolist())
    np.savez_compressed(out_path, **arrays)
    print("wrote", out_path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/musicnn_reference.npz")
