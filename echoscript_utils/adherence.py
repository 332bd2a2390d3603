"""Does a cue follow its brief? Per-cue adherence scores, validated on music whose truth is known.

A *brief* (:class:`Brief`) is what a cue was asked to be: a tempo, a key, hit points, a planned intensity and arc,
a leitmotif or sketch, a length and a delivery loudness. It is read from the cue's JSON sidecar
(:func:`brief_from_sidecar`); a field that is missing leaves its metric unscored for that cue. The audio is analysed
once (:func:`analyse`) and scored against a brief (:func:`score_cue`), so one analysis can be scored against many
briefs (the validation's shuffled briefs).

Metrics (:data:`METRICS`; the table is long: one row per ``model, cue, metric, value``):

* **tempo** ``tempo_acc1`` / ``tempo_acc2`` / ``tempo_octave_error``: the estimated tempo
  (:func:`echoscript_utils.features.estimate_tempo`) within 4 % of the planned one; Acc2 also accepts ×2, ×½, ×3,
  ×⅓ (MIREX), and octave errors are counted apart (:func:`echoscript_utils.features.tempo_scores`).
* **hits** ``hit_rate`` / ``hit_distance_s``: for each hit point, the distance to the nearest detected beat or onset
  (librosa); the rate counts hits within ±70 ms. Without spotting the hits are the scene boundaries inside the cue.
* **key** ``key_weighted``: the Krumhansl–Schmuckler key (:func:`echoscript_utils.features.estimate_key`) scored with
  ``mir_eval.key.weighted_score`` (1 same, 0.5 ascending fifth, 0.3 relative, 0.2 parallel).
* **melody** ``melody_chroma_cosine``: frame-wise cosine of the audio's one-hot chroma against the sketch's
  (MusicGen-Melody's frames, :mod:`echoscript_utils.melody`), on frames where the sketch sounds; ``melody_raw_pitch``
  / ``melody_raw_chroma`` (``mir_eval.melody``) and ``melody_note_f1`` (``mir_eval.transcription``, onsets within
  100 ms, pitch within 50 cents, only notes that start while the sketch sounds) of the top line of a basic-pitch transcription (:func:`transcribe`: the ONNX model
  shipped in the ``basic-pitch`` wheel, run with onnxruntime) against the sketch's notes.
* **intensity** ``intensity_rho`` (one row per model, ``cue = "*"``): Spearman ρ across cues between the planned
  intensity and the measured level (z-scored integrated loudness plus z-scored onset density); ``arc_rho``: within a
  cue whose plan builds (or settles), Spearman ρ of the 1 s loudness curve against time (sign flipped for settle).
* **length** ``length_error_s``: ``|samples / sr − planned|`` (planned = ``frames / fps`` when spotted, else the
  cue's planned seconds); **loudness** ``loudness_error_lu`` (``|integrated − target|``) and ``true_peak_over_db``
  (``max(0, true peak − target)``) against the delivery target, else the loudness policy the cue was rendered with.
* **text** ``clap_own`` / ``clap_margin``: CLAP relevance of the cue to its own scene and its margin over the other
  scenes (:mod:`echoscript_utils.scoring.relevance`), added by the scoring stage.

Validation (:func:`validate`): the demo corpus is rendered from MIDI with known tempo, key, melody, bar lines, mood
loudness and length. Every metric scored against each clip's own truth gives its *ceiling*; against the other clips'
briefs (derangements) its *floor*, i.e. chance. A metric whose ceiling does not clear its floor by
:data:`MIN_MARGIN` is reported as not validated.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DependencyError, InputError
from .parallel import fork_map

__all__ = [
    "METRICS",
    "MIN_MARGIN",
    "Brief",
    "CueAnalysis",
    "adherence_means",
    "adherence_summary",
    "analyse",
    "brief_from_sidecar",
    "intensity_rows",
    "paired_difference",
    "score_cue",
    "score_folder",
    "transcribe",
    "validate",
    "validate_demo",
    "write_adherence",
]

#: ``metric: (higher_is_better, what it is)``.
METRICS: dict[str, tuple[bool, str]] = {
    "tempo_acc1": (True, "estimated tempo within 4 % of the plan (0/1)"),
    "tempo_acc2": (True, "within 4 % of the plan or of ×2, ×½, ×3, ×⅓ (0/1)"),
    "tempo_octave_error": (False, "tempo off by ×2, ×½, ×3 or ×⅓ (0/1)"),
    "hit_rate": (True, "share of hit points within ±70 ms of a beat or onset"),
    "hit_distance_s": (False, "mean distance of a hit point to the nearest beat or onset (s)"),
    "hit_rate_over_chance": (True, "hit_rate minus the share of the cue within ±70 ms of a beat or onset (what "
                                   "hits placed at random would score: dense onsets make hit_rate easy)"),
    "key_weighted": (True, "MIREX weighted key score (mir_eval.key)"),
    "melody_chroma_cosine": (True, "frame-wise chroma cosine with the sketch"),
    "melody_raw_pitch": (True, "raw pitch accuracy of the transcribed top line (mir_eval.melody)"),
    "melody_raw_chroma": (True, "raw chroma accuracy of the transcribed top line (mir_eval.melody)"),
    "melody_note_f1": (True, "note onset F1 of the transcribed top line (mir_eval.transcription)"),
    "intensity_rho": (True, "Spearman ρ across cues: planned intensity vs loudness + onset density"),
    "arc_rho": (True, "Spearman ρ of the loudness curve against time, signed by the planned build/settle"),
    "length_error_s": (False, "|length − planned length| (s)"),
    "loudness_error_lu": (False, "|integrated loudness − target| (LU)"),
    "true_peak_over_db": (False, "true peak above its target (dB, 0 when under)"),
    "clap_own": (True, "CLAP cosine of the cue with its own scene"),
    "clap_margin": (True, "CLAP cosine with its own scene minus the mean over the other scenes"),
}
#: Least ceiling − floor gap (in the metric's better direction) for a metric to count as validated; for the
#: error metrics it is relative to the floor.
MIN_MARGIN = 0.15
#: Hit tolerance (s).
HIT_TOLERANCE_S = 0.07
#: Tempo tolerance (relative), as MIREX.
TEMPO_TOLERANCE = 0.04
#: Onset tolerance (s) of the note-level melody score: wider than MIREX's 50 ms, because basic-pitch places the
#: onsets of slow-attack instruments (strings, pads) 50–100 ms late, and a sketch is not a click track.
NOTE_ONSET_TOLERANCE_S = 0.1
#: Seconds per block of the loudness curve.
CURVE_BLOCK_S = 1.0

#: Columns of the adherence table (``adherence.csv``).
TABLE_COLUMNS = ["model", "cue", "metric", "value"]
#: Columns of :func:`validate`'s table.
VALIDATION_COLUMNS = ["metric", "ceiling", "floor", "margin", "n", "higher_is_better", "validated"]

# basic-pitch's model: 22.05 kHz mono, 2 s windows less one hop, 256-sample hop, 88 piano keys from A0.
_BP_SR = 22050
_BP_HOP = 256
_BP_WINDOW = 2 * _BP_SR - _BP_HOP  # 43844 samples → 172 frames
_BP_FRAMES = 172
_BP_OVERLAP = 30  # frames shared by consecutive windows (half dropped at each side)
_BP_MIN_MIDI = 21
#: Output frames per second once the windows are joined: each window advances 43844 − 30 × 256 = 36164 samples
#: and keeps 172 − 30 = 142 frames, i.e. 86.58 frames/s (not 22050 / 256).
_BP_FPS = (_BP_FRAMES - _BP_OVERLAP) * _BP_SR / (_BP_WINDOW - _BP_OVERLAP * _BP_HOP)


# ================================================================================================= brief
@dataclass
class Brief:
    """What one cue was asked to be; ``None`` leaves the metric unscored.

    Attributes:
        bpm: planned tempo. key: e.g. ``"D minor"``. hits_s: hit points in seconds from the cue's start.
        intensity: planned intensity in [0, 1]. arc: ``"build"``, ``"settle"`` or ``None`` (steady).
        length_s: planned length in seconds. melody: the sketch's notes ``[n, 3]`` (start s, end s, MIDI pitch).
        loudness_lufs / true_peak_dbtp: delivery targets.
    """

    bpm: float | None = None
    key: str | None = None
    hits_s: list[float] | None = None
    intensity: float | None = None
    arc: str | None = None
    length_s: float | None = None
    melody: np.ndarray | None = field(default=None, repr=False)
    loudness_lufs: float | None = None
    true_peak_dbtp: float | None = None


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def midi_notes(path_or_pm, *, instruments: list[int] | None = None) -> np.ndarray:
    """Pitched notes of a MIDI file as ``[n, 3]`` (start s, end s, MIDI pitch), sorted by start (drums left out)."""
    import pretty_midi

    if isinstance(path_or_pm, pretty_midi.PrettyMIDI):
        pm = path_or_pm
    else:
        try:
            pm = pretty_midi.PrettyMIDI(os.fspath(path_or_pm))
        except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
            raise InputError(f"{path_or_pm}: cannot read MIDI file ({exc}); pass a standard .mid file") from None
    chosen = pm.instruments if instruments is None else [pm.instruments[i] for i in instruments]
    rows = [(n.start, n.end, n.pitch) for inst in chosen if not inst.is_drum for n in inst.notes if n.end > n.start]
    out = np.array(sorted(rows), dtype=np.float64).reshape(-1, 3)
    return out


def _fit_melody(notes: np.ndarray, length_s: float | None, *, loop_s: float | None) -> np.ndarray:
    """The sketch over the cue: cut at ``length_s``; with ``loop_s`` repeated every ``loop_s`` seconds first."""
    if length_s is None or notes.size == 0:
        return notes
    if loop_s:
        reps = int(math.ceil(length_s / loop_s))
        notes = np.concatenate([notes + np.array([k * loop_s, k * loop_s, 0.0]) for k in range(reps)])
    notes = notes[notes[:, 0] < length_s].copy()
    notes[:, 1] = np.minimum(notes[:, 1], length_s)
    return notes


def _arc(side: dict[str, Any]) -> str | None:
    arc = side.get("arc")
    if arc in ("build", "settle"):
        return arc
    text = str(side.get("direction") or "")
    if re.search(r"\bbuild", text, re.IGNORECASE):
        return "build"
    if re.search(r"\bsettle", text, re.IGNORECASE):
        return "settle"
    return None


def brief_from_sidecar(side: dict[str, Any], *, folder: str | os.PathLike | None = None,
                       midi: str | os.PathLike | None = None) -> Brief:
    """The brief a cue's JSON sidecar records (fields as ``echoscript score`` writes them; all optional).

    ``bpm``, ``key``, ``intensity``; ``hits_s`` (else the scene end inside a cue that runs past it); the arc from
    ``arc`` or the direction line ("build" / "settle"); the planned length from ``frames / fps``, else ``cue_s``,
    else the generation setting ``duration_s``; the melody from ``melody_path`` / ``theme`` (a MIDI path, relative to
    the cue's folder) or a ``leitmotif`` / ``melody`` label ``midi:NAME`` naming a file beside the model folders (a
    leitmotif loops over the cue, a sketch does not); loudness targets from ``loudness_target_lufs`` /
    ``true_peak_target_dbtp``, else the ``settings`` the cue was standardised with (``target_lufs``,
    ``peak_limit_db``). ``midi`` is the sketch or theme file to use when the sidecar names one by its label only
    and it is not beside the model folders (a user's ``generation.melody_midi`` / ``scoring.leitmotif_midi``).
    """
    settings = side.get("settings") or {}
    folder = Path(folder) if folder is not None else None
    frames, fps = _num(side.get("frames")), _num(side.get("fps"))
    if frames is not None and fps:
        length = frames / fps
    else:
        length = _num(side.get("cue_s"))
        if length is None:
            length = _num(settings.get("long_form_s")) or _num(settings.get("duration_s"))
    hits = side.get("hits_s")
    if hits is not None:
        hits = [float(h) for h in hits if _num(h) is not None]
    else:
        scene_s, cue_s = _num(side.get("duration_s")), _num(side.get("cue_s"))
        hits = [scene_s] if scene_s is not None and cue_s is not None and 0 < scene_s < cue_s - 0.05 else None
    melody = None
    path, loop = side.get("melody_path") or side.get("theme"), False
    if path is None:
        for name, looping in (("leitmotif", True), ("melody", False)):
            label = side.get(name)
            if isinstance(label, str) and label.startswith("midi:"):
                path, loop = label[5:], looping
                break
    if isinstance(path, str) and path:
        p = Path(path)
        candidates = [p] if p.is_absolute() or folder is None else [folder / p, folder.parent / p]
        if midi is not None and Path(midi).name == p.name:
            candidates.insert(0, Path(midi))
        found = next((c for c in candidates if c.is_file()), None)
        if found is not None:
            from .melody import CHROMA_FRAME_RATE, n_chroma_frames

            notes = midi_notes(found)
            period = n_chroma_frames(float(notes[:, 1].max()), frame_rate=CHROMA_FRAME_RATE) / CHROMA_FRAME_RATE \
                if loop and notes.size else None
            melody = _fit_melody(notes, length, loop_s=period)
    key = side.get("key")
    return Brief(bpm=_num(side.get("bpm")) or None, key=key if isinstance(key, str) and key.strip() else None,
                 hits_s=hits, intensity=_num(side.get("intensity")), arc=_arc(side), length_s=length,
                 melody=melody,
                 loudness_lufs=_num(side.get("loudness_target_lufs", settings.get("target_lufs"))),
                 true_peak_dbtp=_num(side.get("true_peak_target_dbtp", settings.get("peak_limit_db"))))


# ============================================================================================ transcribe
def basic_pitch_model_path() -> Path:
    """The ONNX model file inside the installed ``basic-pitch`` wheel (the package itself is not imported, so
    TensorFlow is never loaded)."""
    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError("basic-pitch is not installed; run `pip install --no-deps basic-pitch==0.4.0` "
                              "(see requirements-nodeps.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "saved_models" / "icassp_2022" / "nmp.onnx"
    if not path.is_file():
        raise DependencyError(f"{path}: basic-pitch's ONNX model is missing; reinstall basic-pitch 0.4.0")
    return path


@lru_cache(maxsize=1)
def _session():
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover
        raise DependencyError("onnxruntime is not installed; run `pip install onnxruntime`") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(basic_pitch_model_path()), opts, providers=["CPUExecutionProvider"])


def posteriors(wav, sr: int, *, batch: int = 16) -> dict[str, np.ndarray]:
    """basic-pitch's frame posteriors of ``wav`` (``[C, T]`` or ``[T]`` at ``sr``): ``note`` and ``onset``
    ``[frames, 88]`` (MIDI 21–108) at :data:`_BP_FPS` ≈ 86.6 frames per second.

    The audio is folded to mono, resampled to 22.05 kHz, cut into the model's 43 844-sample windows overlapping by 30
    frames (the first window starts 15 frames early), and the outputs are joined keeping each window's central part.
    """
    from .audio import resample, to_mono

    x = to_mono(np.asarray(wav, dtype=np.float32))[0]
    if sr != _BP_SR:
        x = resample(x, sr, _BP_SR)
    n_frames = int(math.ceil(x.size / _BP_SR * _BP_FPS))
    half = _BP_OVERLAP // 2
    hop = _BP_WINDOW - _BP_OVERLAP * _BP_HOP
    x = np.concatenate([np.zeros(half * _BP_HOP, np.float32), x])
    starts = list(range(0, max(x.size, 1), hop))
    windows = np.zeros((len(starts), _BP_WINDOW, 1), np.float32)
    for i, s in enumerate(starts):
        seg = x[s:s + _BP_WINDOW]
        windows[i, :seg.size, 0] = seg
    sess = _session()
    name = sess.get_inputs()[0].name
    outs = {"note": [], "onset": []}
    for i in range(0, len(windows), batch):
        note, onset = sess.run(["StatefulPartitionedCall:1", "StatefulPartitionedCall:2"], {name: windows[i:i + batch]})
        outs["note"].append(note)
        outs["onset"].append(onset)
    return {k: np.concatenate(v)[:, half:-half].reshape(-1, 88)[:n_frames] for k, v in outs.items()}


def notes_from_posteriors(note: np.ndarray, onset: np.ndarray, *, frame_threshold: float = 0.3,
                          onset_threshold: float = 0.5, min_frames: int = 11) -> np.ndarray:
    """Notes ``[n, 3]`` (start s, end s, MIDI pitch) from frame and onset posteriors ``[frames, 88]``.

    A note is a run of frames whose note posterior exceeds ``frame_threshold``, split where the onset posterior
    has a local peak above ``onset_threshold``; runs shorter than ``min_frames`` (11 frames ≈ 127 ms) are dropped.
    """
    fps = _BP_FPS
    rows = []
    for k in range(note.shape[1]):
        active = note[:, k] > frame_threshold
        if not active.any():
            continue
        o = onset[:, k]
        peak = (o > onset_threshold) & (o >= np.roll(o, 1)) & (o >= np.roll(o, -1))
        start = None
        for t in range(note.shape[0] + 1):
            on = t < note.shape[0] and active[t]
            if start is not None and (not on or (peak[t] and t - start >= 2)):
                if t - start >= min_frames:
                    rows.append((start / fps, t / fps, _BP_MIN_MIDI + k))
                start = None
            if on and start is None:
                start = t
    return np.array(sorted(rows), dtype=np.float64).reshape(-1, 3)


def transcribe(wav, sr: int) -> np.ndarray:
    """Notes ``[n, 3]`` (start s, end s, MIDI pitch) of ``wav`` by basic-pitch's pretrained model (ONNX)."""
    p = posteriors(wav, sr)
    return notes_from_posteriors(p["note"], p["onset"])


def top_line(notes: np.ndarray) -> np.ndarray:
    """The notes that are the highest pitch sounding at their own onset (a melody from a polyphonic
    transcription), ``[m, 3]``; overtone ghosts (an octave, twelfth or two octaves above a longer note struck with
    them) are dropped first."""
    if notes.size == 0:
        return notes
    # an overtone ghost: 12, 19 or 24 semitones above a longer note that starts with it (within 30 ms)
    dur = notes[:, 1] - notes[:, 0]
    ghost = np.zeros(len(notes), bool)
    for i, (s, _e, p) in enumerate(notes):
        under = (np.abs(notes[:, 0] - s) <= 0.03) & np.isin(p - notes[:, 2], (12, 19, 24)) & (dur > dur[i])
        ghost[i] = under.any()
    notes = notes[~ghost]
    keep = []
    for i, (s, _e, p) in enumerate(notes):
        # notes held over this onset (a tail ending within 100 ms does not count) or struck with it
        sounding = notes[(notes[:, 0] <= s + 0.03) & (notes[:, 1] > s + 0.1)]
        if not sounding.size or p >= sounding[:, 2].max():
            keep.append(i)
    return notes[keep]


def _frame_pitch(notes: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Pitch in Hz at each time (0 = silent): of the sounding notes, the one that started last (the highest of
    those starting together), so a ringing tail does not hide the next note."""
    f = np.zeros(times.size)
    for s, e, p in notes[np.lexsort((notes[:, 2], notes[:, 0]))]:
        f[(times >= s) & (times < e)] = 440.0 * 2 ** ((p - 69) / 12)
    return f


# =============================================================================================== analyse
@dataclass
class CueAnalysis:
    """What the audio of one cue is: measured once, scored against any brief."""

    duration_s: float
    bpm: float | None
    key: str | None  # e.g. "D minor"
    onsets_s: np.ndarray
    beats_s: np.ndarray
    lufs: float
    true_peak_dbtp: float
    onset_density: float  # onsets per second
    curve_db: np.ndarray  # RMS level (dB) per CURVE_BLOCK_S block
    chroma: np.ndarray  # one-hot [frames, 12] at the melody frame rate
    notes: np.ndarray | None = None  # basic-pitch transcription [n, 3], None when not transcribed


def level_curve(wav, sr: int, *, block_s: float = CURVE_BLOCK_S) -> np.ndarray:
    """RMS level in dB ``[n_blocks]`` of consecutive ``block_s`` blocks of ``wav`` (``[C, T]`` or ``[T]``, folded
    to mono; a last partial block is left out; at least one block)."""
    from .audio import as_float, to_mono

    mono = to_mono(as_float(wav))[0].astype(np.float64)
    block = max(1, int(round(block_s * sr)))
    n_blocks = max(1, mono.size // block)
    seg = mono[: n_blocks * block]
    if seg.size < n_blocks * block:
        seg = np.pad(seg, (0, n_blocks * block - seg.size))
    rms = np.sqrt(np.mean(np.square(seg.reshape(n_blocks, -1)), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-6))


def analyse(wav, sr: int, *, transcription: bool = False) -> CueAnalysis:
    """Measure one cue: tempo, key, beats and onsets, loudness, true peak, level curve, chroma and (with
    ``transcription``) basic-pitch's notes. ``wav`` is ``[C, T]`` or ``[T]`` float at ``sr`` Hz."""
    import librosa

    from .audio import as_float, loudness, true_peak_db
    from .features import ANALYSIS_SR, HOP, clip_features
    from .melody import chroma_from_audio

    x = as_float(wav)
    x = x[None] if x.ndim == 1 else x
    feats = clip_features(x, sr, return_frames=True)
    mel_db = feats["_frames"]["mel_db"]
    env = librosa.onset.onset_strength(S=mel_db, sr=ANALYSIS_SR, hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=ANALYSIS_SR, hop_length=HOP, units="time")
    beats = np.empty(0)
    if feats["bpm"]:
        _, beats = librosa.beat.beat_track(onset_envelope=env, sr=ANALYSIS_SR, hop_length=HOP, bpm=feats["bpm"],
                                           units="time")
    duration = x.shape[-1] / sr
    curve = level_curve(x, sr)
    key = f"{feats['key']} {feats['mode']}" if feats["key"] else None
    lufs = loudness(x[:5], sr)
    return CueAnalysis(duration_s=duration, bpm=feats["bpm"], key=key, onsets_s=np.asarray(onsets, float),
                       beats_s=np.asarray(beats, float), lufs=lufs, true_peak_dbtp=true_peak_db(x, sr),
                       onset_density=len(onsets) / max(duration, 1e-9), curve_db=curve,
                       chroma=chroma_from_audio(x, sr),
                       notes=transcribe(x, sr) if transcription else None)


def warmup() -> None:
    """Compile :func:`analyse`'s code here once (librosa's numba kernels, on the float32 mono and stereo input cues
    have): worker processes forked afterwards inherit it. Workers that compile it themselves, all at once, crash or
    leave numba's on-disk cache half written, on a fresh install."""
    sr = 44100
    t = np.arange(3 * sr) / sr
    pulse = (0.5 * (np.sin(2 * np.pi * 2.0 * t) > 0.98) + 0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for wav in (pulse[None], np.stack([pulse, 0.5 * pulse])):
        analyse(wav, sr)


# ================================================================================================= score
def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _mark_coverage(marks: np.ndarray, duration_s: float, *, tolerance_s: float = HIT_TOLERANCE_S) -> float:
    """Share of ``[0, duration_s]`` lying within ``tolerance_s`` of a mark: the hit rate of a uniformly random hit."""
    if duration_s <= 0 or not marks.size:
        return 0.0
    lo = np.clip(np.sort(marks) - tolerance_s, 0.0, duration_s)
    hi = np.clip(np.sort(marks) + tolerance_s, 0.0, duration_s)
    covered, end = 0.0, 0.0
    for a, b in zip(lo, hi):
        a = max(a, end)
        if b > a:
            covered += b - a
            end = b
    return float(covered / duration_s)


def score_cue(an: CueAnalysis, brief: Brief) -> dict[str, float]:
    """Every metric the brief allows, as ``{metric: value}`` (see :data:`METRICS`; ``intensity_rho`` is across
    cues, see :func:`intensity_rows`)."""
    import mir_eval

    from .features import tempo_scores
    from .melody import CHROMA_FRAME_RATE, chroma_from_midi

    out: dict[str, float] = {}
    if brief.bpm:
        t = tempo_scores([an.bpm], [brief.bpm], tolerance=TEMPO_TOLERANCE)
        if t["n"]:
            out["tempo_acc1"] = float(t["accuracy"])
            out["tempo_acc2"] = float(t["accuracy2"])
            out["tempo_octave_error"] = float(t["octave_errors"])
    hits = [h for h in (brief.hits_s or []) if 0 <= h <= an.duration_s]
    if hits:
        marks = np.concatenate([an.beats_s, an.onsets_s])
        if marks.size:
            d = np.array([np.min(np.abs(marks - h)) for h in hits])
            out["hit_rate"] = float(np.mean(d <= HIT_TOLERANCE_S))
            out["hit_distance_s"] = float(np.mean(d))
            out["hit_rate_over_chance"] = out["hit_rate"] - _mark_coverage(marks, an.duration_s)
        else:
            out["hit_rate"], out["hit_distance_s"], out["hit_rate_over_chance"] = 0.0, float(an.duration_s), 0.0
    if brief.key:
        ref = _mir_key(brief.key)
        if ref is not None:
            est = _mir_key(an.key) if an.key else None
            out["key_weighted"] = float(mir_eval.key.weighted_score(ref, est)) if est else 0.0
    if brief.melody is not None and brief.melody.size:
        ref = brief.melody
        import pretty_midi

        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=0)
        inst.notes = [pretty_midi.Note(velocity=100, pitch=int(p), start=float(s), end=float(e)) for s, e, p in ref]
        pm.instruments.append(inst)
        sketch = chroma_from_midi(pm, n_frames=an.chroma.shape[0], frame_rate=CHROMA_FRAME_RATE)
        active = sketch.sum(axis=1) > 0
        if active.any():
            a, s = an.chroma[active], sketch[active]
            norms = np.linalg.norm(a, axis=1) * np.linalg.norm(s, axis=1)
            out["melody_chroma_cosine"] = float(np.mean(np.einsum("ij,ij->i", a, s) / np.maximum(norms, 1e-12)))
        if an.notes is not None:
            out.update(_melody_scores(ref, top_line(an.notes), an.duration_s))
    if brief.arc in ("build", "settle") and an.curve_db.size >= 3:
        rho = _spearman(np.arange(an.curve_db.size), an.curve_db)
        if math.isfinite(rho):
            out["arc_rho"] = rho if brief.arc == "build" else -rho
    if brief.length_s is not None:
        out["length_error_s"] = abs(an.duration_s - brief.length_s)
    if brief.loudness_lufs is not None and math.isfinite(an.lufs):
        out["loudness_error_lu"] = abs(an.lufs - brief.loudness_lufs)
    if brief.true_peak_dbtp is not None and math.isfinite(an.true_peak_dbtp):
        out["true_peak_over_db"] = max(0.0, an.true_peak_dbtp - brief.true_peak_dbtp)
    return out


def _mir_key(key: str | None) -> str | None:
    """``"d minor"`` / ``"Bb major"`` / ``"A#"`` (major) → mir_eval's ``"D minor"``; ``None`` if unreadable."""
    from .features import _pc
    from .taxonomy import PITCH_CLASSES

    if not key:
        return None
    parts = str(key).replace(":", " ").split()
    pc = _pc(parts[0])
    mode = parts[1].lower() if len(parts) > 1 else "major"
    mode = {"maj": "major", "min": "minor", "m": "minor"}.get(mode, mode)
    if pc is None or mode not in ("major", "minor"):
        return None
    return f"{PITCH_CLASSES[pc]} {mode}"


def _melody_scores(ref: np.ndarray, est: np.ndarray, duration_s: float) -> dict[str, float]:
    import mir_eval

    times = np.arange(0.0, duration_s, 0.01)
    ref_f, est_f = _frame_pitch(ref, times), _frame_pitch(est, times)
    out: dict[str, float] = {}
    if (ref_f > 0).any():
        rv, rc, ev, ec = mir_eval.melody.to_cent_voicing(times, ref_f, times, est_f)
        out["melody_raw_pitch"] = float(mir_eval.melody.raw_pitch_accuracy(rv, rc, ev, ec))
        out["melody_raw_chroma"] = float(mir_eval.melody.raw_chroma_accuracy(rv, rc, ev, ec))
    if ref.size:
        # only where the sketch sounds: in a mix the top line between its phrases belongs to the accompaniment
        starts = est[:, 0] if est.size else np.empty(0)
        inside = np.array([np.any((ref[:, 0] - 0.05 <= s) & (s < ref[:, 1])) for s in starts], bool)
        est = est[inside] if est.size else est
        if est.size:
            hz = lambda n: 440.0 * 2 ** ((n[:, 2] - 69) / 12)  # noqa: E731
            _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
                ref[:, :2], hz(ref), est[:, :2], hz(est), offset_ratio=None, onset_tolerance=NOTE_ONSET_TOLERANCE_S)
            out["melody_note_f1"] = float(f1)
        else:
            out["melody_note_f1"] = 0.0
    return out


def intensity_rows(levels: pd.DataFrame) -> pd.DataFrame:
    """``intensity_rho`` per model: Spearman ρ across its cues between the planned ``intensity`` and the measured
    level ``z(lufs) + z(onset_density)`` (``levels``: columns ``model, cue, intensity, lufs, onset_density``).
    Models with fewer than three planned cues, or a constant plan, get no row."""
    rows = []
    for model, d in levels.dropna(subset=["intensity", "lufs"]).groupby("model", sort=False):
        d = d[np.isfinite(d["lufs"].astype(float))]
        if len(d) < 3:
            continue
        z = lambda v: (v - v.mean()) / v.std() if v.std() > 0 else v * 0.0  # noqa: E731
        level = z(d["lufs"].astype(float)) + z(d["onset_density"].astype(float))
        rho = _spearman(d["intensity"], level)
        if math.isfinite(rho):
            rows.append({"model": model, "cue": "*", "metric": "intensity_rho", "value": rho})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


# ============================================================================================ a folder
def _cue_files(folder: Path) -> list[Path]:
    """Cue WAVs with a sidecar, in ``folder`` itself or one level down (one folder per model)."""
    wavs = sorted(p for p in list(folder.glob("*.wav")) + list(folder.glob("*/*.wav"))
                  if p.with_suffix(".json").is_file())
    return wavs


def _as_delivered(an: CueAnalysis, brief: Brief, side: dict[str, Any], wav_path: Path) -> tuple[CueAnalysis, Brief]:
    """Delivery targets are judged where they apply. A delivery profile's loudness is a programme loudness, met by
    the delivered score as a whole (``delivery.csv`` and the run's metrics report it), so a cue with a delivered
    stem (``stem``, relative to the run folder) has no loudness error of its own; its true peak is measured on
    that stem against ``true_peak_target_dbtp``. A cue with no delivered stem is held to the level it was
    standardised to (its ``settings``)."""
    from .audio import load, true_peak_db

    stem = side.get("stem")
    found = None
    if isinstance(stem, str) and stem:
        found = next((c for c in (wav_path.parent.parent / stem, wav_path.parent / stem) if c.is_file()), None)
    if found is not None:
        x, sr = load(found)
        return replace(an, true_peak_dbtp=true_peak_db(x, sr)), replace(brief, loudness_lufs=None)
    if "loudness_target_lufs" in side or "true_peak_target_dbtp" in side:
        settings = side.get("settings") or {}
        brief = replace(brief, loudness_lufs=_num(settings.get("target_lufs")),
                        true_peak_dbtp=_num(settings.get("peak_limit_db")))
    return an, brief


def score_folder(folder: str | os.PathLike, *, files: list[Path] | None = None,
                 briefs: dict[Path, Brief] | None = None, transcription: bool = True,
                 progress: bool = False, num_workers: int = 1) -> pd.DataFrame:
    """Score every cue WAV with a JSON sidecar of the same stem in ``folder`` or its model subfolders.

    Args:
        files: score only these WAVs (each with its sidecar); ``None`` = every cue found.
        briefs: ``{wav path: Brief}`` to use instead of the sidecar's own brief (the stages pass the brief they
            planned; a path not in it falls back to its sidecar).
        transcription: run basic-pitch on cues that have a melody to follow.
        num_workers: forked processes that decode and analyse the cues (:func:`~echoscript_utils.parallel.fork_map`).

    Returns:
        long table ``model, cue, metric, value`` (``cue`` = file stem; ``model`` from the sidecar, else the folder
        name), with ``intensity_rho`` rows (``cue = "*"``) per model.

    Raises:
        InputError: not a folder, or no cue WAV with a sidecar in it.
    """
    from .audio import load

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; pass the folder of cue WAVs with their JSON sidecars")
    wavs = _cue_files(root) if files is None else [Path(f) for f in files if Path(f).with_suffix(".json").is_file()]
    if not wavs:
        raise InputError(f"{root}: no cue WAV with a JSON sidecar of the same stem; pass a folder written by "
                         "`echoscript score` or the generation stage")
    sides, cue_briefs = [], []
    for wav_path in wavs:
        try:
            side = json.loads(wav_path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{wav_path.with_suffix('.json')}: unreadable sidecar ({exc}); rewrite or remove it") \
                from None
        if not isinstance(side, dict):
            raise InputError(f"{wav_path.with_suffix('.json')}: the sidecar is not a JSON object; rewrite it")
        sides.append(side)
        cue_briefs.append((briefs or {}).get(wav_path) or brief_from_sidecar(side, folder=wav_path.parent))

    def measure(i: int) -> CueAnalysis:
        melody = cue_briefs[i].melody
        return analyse(*load(wavs[i]), transcription=transcription and melody is not None and melody.size > 0)

    analyses = fork_map(measure, range(len(wavs)), num_workers=num_workers, progress=progress, desc="adherence",
                        unit="cue", before_fork=warmup)
    rows, levels = [], []
    for wav_path, side, brief, an in zip(wavs, sides, cue_briefs, analyses, strict=True):
        model = str(side.get("model") or wav_path.parent.name)
        levels.append({"model": model, "cue": wav_path.stem, "intensity": brief.intensity, "lufs": an.lufs,
                       "onset_density": an.onset_density})
        an, brief = _as_delivered(an, brief, side, wav_path)
        for metric, value in score_cue(an, brief).items():
            rows.append({"model": model, "cue": wav_path.stem, "metric": metric, "value": value})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    inten = intensity_rows(pd.DataFrame(levels))
    return pd.concat([table, inten], ignore_index=True) if len(inten) else table


def write_adherence(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the long table atomically as CSV."""
    from .artifacts import atomic_write_text

    return atomic_write_text(path, table.to_csv(index=False, lineterminator="\n"))


# ============================================================================================= summaries
def adherence_summary(table: pd.DataFrame, *, n_boot: int = 1000, confidence: float = 0.95,
                      seed: int = 0) -> pd.DataFrame:
    """Per model × metric: mean over cues with a percentile-bootstrap interval (:func:`stats.mean_ci`) and ``n``.

    ``intensity_rho`` has one value per model (no interval)."""
    from .stats import mean_ci

    rows = []
    for (model, metric), d in table.groupby(["model", "metric"], sort=False):
        v = d["value"].astype(float).to_numpy()
        v = v[np.isfinite(v)]
        lo, hi = mean_ci(v, n_boot=n_boot, confidence=confidence, seed=seed)
        rows.append({"model": model, "metric": metric, "mean": float(v.mean()) if v.size else float("nan"),
                     "ci_low": lo, "ci_high": hi, "n": int(v.size),
                     "higher_is_better": METRICS.get(metric, (True, ""))[0]})
    order = {m: i for i, m in enumerate(METRICS)}
    out = pd.DataFrame(rows, columns=["model", "metric", "mean", "ci_low", "ci_high", "n", "higher_is_better"])
    return out.sort_values(["model", "metric"], key=lambda s: s.map(order) if s.name == "metric" else s,
                           kind="stable").reset_index(drop=True)


def adherence_means(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{model: {metric: mean over cues}}`` (for a stage's metrics.json)."""
    if not len(table):
        return {}
    means = table.assign(value=table["value"].astype(float)).groupby(["model", "metric"], sort=False)["value"].mean()
    return {m: {k: float(v) for k, v in means[m].items()} for m in dict.fromkeys(table["model"])}


def paired_difference(table: pd.DataFrame, *, a: str, b: str, n_boot: int = 1000, confidence: float = 0.95,
                      seed: int = 0) -> pd.DataFrame:
    """Model ``b`` minus model ``a`` on the same cues (same brief and seed: the same file stem), per metric: the
    mean paired difference with its bootstrap interval and the two-sided Wilcoxon signed-rank test
    (:func:`stats.wilcoxon_paired`). Only per-cue metrics (not ``intensity_rho``)."""
    from .stats import mean_ci, wilcoxon_paired

    t = table[table["cue"] != "*"]
    wide = t[t["model"].isin([a, b])].pivot_table(index=["cue", "metric"], columns="model", values="value",
                                                  aggfunc="first")
    rows = []
    cols = ["metric", "a", "b", "n", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "statistic", "p_value",
            "method"]
    if a not in wide.columns or b not in wide.columns:
        return pd.DataFrame(columns=cols)
    wide = wide.dropna(subset=[a, b])
    for metric, d in wide.groupby(level="metric", sort=False):
        x, y = d[a].to_numpy(float), d[b].to_numpy(float)
        lo, hi = mean_ci(y - x, n_boot=n_boot, confidence=confidence, seed=seed)
        stat, p, method = wilcoxon_paired(y, x)
        rows.append({"metric": metric, "a": a, "b": b, "n": int(x.size), "mean_a": float(x.mean()),
                     "mean_b": float(y.mean()), "diff": float((y - x).mean()), "ci_low": lo, "ci_high": hi,
                     "statistic": stat, "p_value": p, "method": method})
    order = {m: i for i, m in enumerate(METRICS)}
    return pd.DataFrame(rows, columns=cols).sort_values("metric", key=lambda s: s.map(order)).reset_index(drop=True)


# ============================================================================================ validation
#: Names of the melody part in the demo corpus's MIDI files (per genre), in order of preference.
_MELODY_PARTS = ("melody", "violins", "synth lead", "piano", "bowed glass")
#: Gain ramp (dB) applied to corpus clips to give them a known build or settle.
_ARC_RAMP_DB = 12.0


def _corpus_truth(corpus: Path, *, max_clips: int | None, seed: int, min_s: float, max_s: float):
    """Clips cut from the demo corpus with their true briefs: ``[(wav [C, T], sr, Brief)]``."""
    import pretty_midi

    from .audio import load
    from .demo_corpus import MOOD_STYLE

    meta = json.loads((corpus / "corpus.json").read_text(encoding="utf-8"))
    tracks = meta["tracks"][:max_clips] if max_clips else meta["tracks"]
    velocities = [s["velocity"] for s in MOOD_STYLE.values()]
    lo_v, hi_v = min(velocities), max(velocities)
    rng = np.random.default_rng(seed)
    out = []
    for i, t in enumerate(tracks):
        wav, sr = load(corpus / t["file"])
        length = float(min(rng.uniform(min_s, max_s), wav.shape[-1] / sr - 1.0))
        wav = wav[:, : int(round(length * sr))].copy()
        arc = "build" if i % 2 == 0 else "settle"
        ramp = np.linspace(-_ARC_RAMP_DB, 0.0, wav.shape[-1]) if arc == "build" else \
            np.linspace(0.0, -_ARC_RAMP_DB, wav.shape[-1])
        lufs_target = float(t["target_lufs"])
        pm = pretty_midi.PrettyMIDI(str(corpus / t["midi"]))
        parts = {inst.name: k for k, inst in enumerate(pm.instruments)}
        part = next((parts[n] for n in _MELODY_PARTS if n in parts), None)
        melody = midi_notes(pm, instruments=[part]) if part is not None else None
        melody = _fit_melody(melody, length, loop_s=None) if melody is not None else None
        spb = 60.0 / float(t["bpm"])
        hits = [b * 4 * spb for b in range(1, int(length / (4 * spb)) + 1) if b * 4 * spb < length - 0.5]
        mood = t["moods"][0]
        brief = Brief(bpm=float(t["bpm"]), key=f"{t['key']} {t['mode']}", hits_s=hits,
                      intensity=(MOOD_STYLE[mood]["velocity"] - lo_v) / (hi_v - lo_v), arc=arc, length_s=length,
                      melody=melody, loudness_lufs=lufs_target, true_peak_dbtp=-1.0)
        out.append((wav, sr, brief, (10 ** (ramp / 20)).astype(np.float32)))
    return out


def _derangements(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    while len(out) < k:
        p = rng.permutation(n)
        if n < 2 or not np.any(p == np.arange(n)):
            out.append(p)
    return out


def validate(corpus: str | os.PathLike, *, max_clips: int | None = None, n_shuffles: int = 20, seed: int = 0,
             min_s: float = 15.0, max_s: float = 30.0, transcription: bool = True,
             num_workers: int = 1) -> pd.DataFrame:
    """Ceiling and floor of every metric on the demo corpus (:func:`echoscript_utils.demo_corpus.build_corpus`).

    Each clip is cut to a seeded length between ``min_s`` and ``max_s`` seconds; its true brief is its tempo, key,
    bar lines as hit points, melody part, mood intensity (the mood's base velocity, scaled to [0, 1]), length, mood
    loudness target and the corpus's −1 dBTP ceiling. For the arc, even clips get a 12 dB fade-in (build) and odd
    clips a fade-out (settle) before their arc is scored (the other metrics see the clip as rendered). The
    ceiling is the mean score against the true briefs; the floor the mean over ``n_shuffles`` derangements, each
    clip scored against another clip's brief. ``num_workers`` forked processes analyse the clips
    (:func:`~echoscript_utils.parallel.fork_map`).

    Returns:
        one row per metric: ``metric, ceiling, floor, margin, n, higher_is_better, validated`` (``margin`` is
        in the metric's better direction; error metrics are validated on ``margin / floor``).
    """
    corpus = Path(corpus)
    if not (corpus / "corpus.json").is_file():
        raise InputError(f"{corpus}: not a demo corpus (no corpus.json); build one with `echoscript demo-data`")
    clips = _corpus_truth(corpus, max_clips=max_clips, seed=seed, min_s=min_s, max_s=max_s)

    def measure(i: int) -> tuple[CueAnalysis, np.ndarray]:
        wav, sr, _brief, gain = clips[i]
        return analyse(wav, sr, transcription=transcription), level_curve(wav * gain, sr)

    analyses, arcs = (list(col) for col in zip(*fork_map(measure, range(len(clips)), num_workers=num_workers,
                                                         before_fork=warmup), strict=True))
    briefs = [c[2] for c in clips]
    n = len(clips)

    def scores(perm) -> dict[str, list[float]]:
        got: dict[str, list[float]] = {}
        levels = []
        for i, j in enumerate(perm):
            b = briefs[j]
            own = score_cue(analyses[i], replace(b, arc=None))
            own.update(score_cue(replace(analyses[i], curve_db=arcs[i]), Brief(arc=b.arc)))
            for k, v in own.items():
                got.setdefault(k, []).append(v)
            levels.append({"model": "corpus", "cue": str(i), "intensity": b.intensity, "lufs": analyses[i].lufs,
                           "onset_density": analyses[i].onset_density})
        inten = intensity_rows(pd.DataFrame(levels))
        if len(inten):
            got["intensity_rho"] = [float(inten["value"].iloc[0])]
        return got

    ceiling = scores(np.arange(n))
    floors: dict[str, list[float]] = {}
    for perm in _derangements(n, n_shuffles, np.random.default_rng(seed + 1)):
        for k, v in scores(perm).items():
            floors.setdefault(k, []).extend(v)
    rows = []
    for metric in METRICS:
        if metric not in ceiling:
            continue
        hib = METRICS[metric][0]
        c, f = float(np.mean(ceiling[metric])), float(np.mean(floors.get(metric, [np.nan])))
        margin = c - f if hib else f - c
        ok = margin >= MIN_MARGIN if hib else (f > 0 and margin / f >= MIN_MARGIN)
        rows.append({"metric": metric, "ceiling": c, "floor": f, "margin": margin, "n": len(ceiling[metric]),
                     "higher_is_better": hib, "validated": bool(ok)})
    return pd.DataFrame(rows, columns=VALIDATION_COLUMNS)


#: Bump when a metric or the validation protocol changes, so cached validations are recomputed.
VALIDATION_VERSION = 1


def validate_demo(cfg, *, min_s: float = 12.0, max_s: float = 24.0, progress: bool = True) -> pd.DataFrame:
    """:func:`validate` on the run's demo corpus (built by :func:`~echoscript_utils.demo_corpus.ensure_demo_corpus`
    when missing), cached under the run's cache folder by the corpus's settings hash and :data:`VALIDATION_VERSION`
    (so stages 05 and 08 share one computation)."""
    from .artifacts import cached, read_json, text_hash
    from .config import cpu_workers
    from .demo_corpus import ensure_demo_corpus

    corpus = ensure_demo_corpus(cfg, progress=progress)
    key = text_hash(read_json(corpus / "corpus.json")["settings_hash"], VALIDATION_VERSION, cfg.seed, min_s, max_s)
    rows = cached(Path(cfg.paths.cache) / "adherence" / f"validation_{key}.json",
                  lambda: validate(corpus, seed=cfg.seed, min_s=min_s, max_s=max_s,
                                   num_workers=cpu_workers(cfg)).to_dict("records"))
    return pd.DataFrame(rows)[VALIDATION_COLUMNS]
