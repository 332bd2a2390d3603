"""A simulated study, so the demo has responses to analyse. Clearly labelled: the folder gets
``SIMULATED.txt`` and every table, figure and metrics file made from it says "SIMULATED responses".

The model behind the numbers: a latent score = the question's mean for the clip's model + a participant offset
+ a clip offset + noise, rounded and clipped to the 1-5 scale. By default the question means are the paper's
Tables 3-4 (EchoScript for every compared model, MusicGen for the baseline); ``effect`` replaces the compared
models' means with the baseline's plus a fixed shift. Preferences pick, per participant, scenario and criterion,
the clip with the higher latent dimension score plus logistic noise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import atomic_write_text, ensure_dir
from ..errors import InputError, OutputError
from .study import CRITERIA, QUESTIONS, SIMULATED_MARKER

__all__ = ["PAPER_MEANS", "simulate_study"]

#: The paper's Tables 3 and 4 (means on the 1-5 scale).
PAPER_MEANS: dict[str, dict[str, float]] = {
    "echoscript": {"audio_clarity": 4.02, "production_quality": 4.08, "transition_smoothness": 4.25,
                   "instrument_balance": 3.95, "mood_conveyance": 3.96, "scene_matching": 4.03,
                   "emotional_expressivity": 3.84, "script_adherence": 3.90},
    "musicgen": {"audio_clarity": 3.64, "production_quality": 3.54, "transition_smoothness": 3.48,
                 "instrument_balance": 3.64, "mood_conveyance": 3.59, "scene_matching": 3.66,
                 "emotional_expressivity": 3.54, "script_adherence": 3.54},
}

_MARKER_TEXT = """SIMULATED responses.

Every rating, preference and demographic answer in this folder was drawn at random by
echoscript_utils.listening.simulate_study (seed {seed}, {n} participants, effect {effect}).
No person listened to anything. Use it to check the analysis code, never as evidence about the models.
"""


def _read_key(key) -> pd.DataFrame:
    if isinstance(key, pd.DataFrame):
        df = key
    else:
        p = Path(key)
        if p.is_dir():
            p = p / "key.csv"
        if not p.is_file():
            raise InputError(f"{p}: answer key not found; build a pack first (echoscript listening pack)")
        df = pd.read_csv(p, dtype=str)
    missing = {"clip", "model", "scenario"} - set(df.columns)
    if missing:
        raise InputError(f"answer key lacks column(s) {', '.join(sorted(missing))}")
    return df[["clip", "model", "scenario"]].reset_index(drop=True)


def simulate_study(key, out_dir: str | os.PathLike, *, n_participants: int = 20, seed: int = 1234,
                   effect: float | None = None, baseline: str = "musicgen", participant_sd: float = 0.45,
                   clip_sd: float = 0.25, noise_sd: float = 0.8, preference_noise: float = 0.5) -> Path:
    """Write a simulated study folder (responses, key, preferences, demographics, questions, SIMULATED.txt).

    Args:
        key: the pack's answer key (``key.csv`` path, the folder holding it, or a DataFrame ``clip,model,scenario``).
        out_dir: the study folder to write (refuses to overwrite a folder that is not itself simulated).
        n_participants: simulated listeners (``P01`` ...).
        seed: random seed (same seed → same files).
        effect: ``None`` → the paper's per-question means; a number → every non-baseline model scores the
            baseline's (paper) means plus this many scale points.
        baseline: label of the baseline model in the key.
        participant_sd, clip_sd, noise_sd: standard deviations (scale points) of the participant offset, the
            clip offset and the rating noise.
        preference_noise: scale of the logistic noise in the binary preference (0 = always the better clip).

    Returns:
        ``out_dir`` as a Path.
    """
    if n_participants < 2:
        raise InputError("simulate_study: n_participants must be at least 2")
    kdf = _read_key(key)
    out = Path(out_dir)
    if out.exists() and (out / "responses.csv").exists() and not (out / SIMULATED_MARKER).exists():
        raise OutputError(f"{out}: holds a real study (no {SIMULATED_MARKER}); choose another folder for "
                          f"simulated responses")
    rng = np.random.default_rng(seed)
    base_means = PAPER_MEANS["musicgen"]

    def means_for(model: str) -> dict[str, float]:
        if model == baseline:
            return base_means
        if effect is None:
            return PAPER_MEANS["echoscript"]
        return {q: v + float(effect) for q, v in base_means.items()}

    participants = [f"P{i + 1:02d}" for i in range(n_participants)]
    p_off = dict(zip(participants, rng.normal(0, participant_sd, n_participants), strict=True))
    c_off = dict(zip(kdf["clip"], rng.normal(0, clip_sd, len(kdf)), strict=True))
    questions = list(QUESTIONS)
    resp_rows, latent = [], {}
    for p in participants:
        for clip, model, scenario in kdf[["clip", "model", "scenario"]].itertuples(index=False):
            mu = means_for(model)
            for q in questions:
                z = mu[q] + p_off[p] + c_off[clip] + rng.normal(0, noise_sd)
                latent[(p, clip, q)] = z
                resp_rows.append({"participant": p, "scenario": scenario, "clip": clip, "question": q,
                                  "score": int(np.clip(np.rint(z), 1, 5))})
    pref_rows = []
    for p in participants:
        for scenario, g in kdf.groupby("scenario", sort=False):
            for crit in CRITERIA:
                qs = [q for q in questions if QUESTIONS[q] == crit]
                util = [np.mean([latent[(p, c, q)] for q in qs]) + rng.logistic(0, preference_noise + 1e-9)
                        for c in g["clip"]]
                pref_rows.append({"participant": p, "scenario": scenario, "criterion": crit,
                                  "chosen_clip": g["clip"].iloc[int(np.argmax(util))]})
    demo = pd.DataFrame({
        "participant": participants,
        "age": rng.choice(np.r_[np.arange(18, 25).repeat(4), np.arange(25, 36)], n_participants),
        "gender": rng.choice(["female", "male", "non-binary"], n_participants, p=[0.45, 0.45, 0.10]),
        "musical_training": rng.choice(["none", "casual", "hobbyist", "professional"], n_participants,
                                       p=[0.3, 0.35, 0.3, 0.05]),
        "ai_music_familiarity": rng.choice(["low", "medium", "high"], n_participants, p=[0.4, 0.4, 0.2]),
    })
    ensure_dir(out)
    atomic_write_text(out / SIMULATED_MARKER, _MARKER_TEXT.format(  # first, so even a partial folder is marked
        seed=seed, n=n_participants, effect="paper means" if effect is None else f"+{effect} points"))
    tables = {
        "responses.csv": pd.DataFrame(resp_rows),
        "key.csv": kdf,
        "preferences.csv": pd.DataFrame(pref_rows),
        "demographics.csv": demo,
        "questions.csv": pd.DataFrame({"question": questions, "dimension": [QUESTIONS[q] for q in questions]}),
    }
    for name, df in tables.items():
        atomic_write_text(out / name, df.to_csv(index=False, lineterminator="\n"))
    return out
