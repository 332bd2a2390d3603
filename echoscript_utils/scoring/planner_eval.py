"""How well a cue planner reads real scenes: independently labelled scenes of real screenplays.

``data/screenplay_scene_labels.csv`` holds mood and intensity labels for scenes of real screenplays written by
other people, labelled blind (the readers saw only the scene text and the labelling guide, ``data/scene_labelling_guide.md``,
never the planner or its resources): ``mood`` / ``intensity`` from reader A on every scene, and ``mood_b`` /
``intensity_b`` from an independent reader B on 455 of them (empty elsewhere), to measure agreement. The readers were instruction-following language models given the guide, not people. Scripts are
assigned whole to ``dev`` (what the offline planner is fitted and tuned on) or ``test``
(never used for fitting or tuning). *Big Fish* is in neither: it is kept for an outside check.

The file holds no scene text. Scenes of the shared screenplay corpus are read from the script files themselves
(:func:`labelled_scenes`) and matched to the labels by heading, in script order, so the evaluation runs the same
parser as a user does. Scenes of the other scripts (public repositories without an open licence) are listed with
their source for provenance; their text is not redistributed.
"""

from __future__ import annotations

import io
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..stats import label_scores
from ..taxonomy import MOODS

#: Environment variable naming a folder with the labelled screenplays (the shared corpus, and others fetched).
SCREENPLAYS_ENV = "ECHOSCRIPT_SCREENPLAYS"

__all__ = ["SCREENPLAYS_ENV", "evaluate_planner", "label_agreement", "labelled_scenes", "load_scene_labels", "normalise_heading"]


def load_scene_labels():
    """The shipped labels as a DataFrame (one row per labelled scene)."""
    import pandas as pd

    text = resources.files("echoscript_utils").joinpath("data/screenplay_scene_labels.csv").read_text(encoding="utf-8")
    df = pd.read_csv(io.StringIO(text), keep_default_na=False)
    bad = df[~df["mood"].isin(MOODS)]
    if len(bad):
        raise InputError(f"screenplay_scene_labels.csv: row {bad.index[0] + 2}: mood {bad['mood'].iloc[0]!r} is not "
                         f"one of {', '.join(MOODS)}")
    return df


def normalise_heading(heading: str) -> str:
    """Upper case, no scene numbers (``#12#``), no leading forcing dot, single spaces, no trailing punctuation."""
    h = re.sub(r"#[^#]*#", " ", heading or "")
    h = re.sub(r"\s+", " ", h).strip().lstrip(".").strip().upper()
    return h.rstrip(" .:-–—")


def labelled_scenes(screenplay_dir: str | os.PathLike, *, split: str | None = None):
    """The labelled scenes whose script is in ``screenplay_dir``, matched to the parser's scenes.

    Returns a DataFrame with the label columns plus ``index``, ``heading_parsed``, ``action``, ``dialogue`` (from
    :func:`~echoscript_utils.scoring.parse.read_script`) and ``matched`` (False where no parsed scene with that
    heading was found after the previous match; those rows have empty text).
    """
    import pandas as pd

    from .parse import read_script

    labels = load_scene_labels()
    if split is not None:
        labels = labels[labels["split"] == split]
    rows: list[dict[str, Any]] = []
    for file, group in labels.groupby("file", sort=False):
        path = Path(screenplay_dir) / file
        if not path.is_file():
            continue
        scenes = read_script(path).scenes
        keys = [normalise_heading(s.heading) for s in scenes]
        pos = 0
        for rec in group.sort_values("order").to_dict("records"):
            want = normalise_heading(rec["heading"])
            hit = next((i for i in range(pos, len(scenes)) if keys[i] == want), None)
            if hit is None:
                rows.append({**rec, "matched": False, "index": None, "heading_parsed": "", "action": "",
                             "dialogue": ""})
                continue
            s = scenes[hit]
            rows.append({**rec, "matched": True, "index": s.index, "heading_parsed": s.heading,
                         "action": s.action_text, "dialogue": " ".join(s.dialogue)})
            pos = hit + 1
    return pd.DataFrame(rows)


def label_agreement(df) -> dict[str, Any]:
    """Agreement of the two readers: mood agreement, Cohen's κ and intensity Spearman ρ."""
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    both = df[df["mood_b"].isin(MOODS)]
    return {"n": int(len(both)), "mood_agreement": float((both["mood"] == both["mood_b"]).mean()),
            "mood_kappa": float(cohen_kappa_score(both["mood"], both["mood_b"])),
            "intensity_spearman": float(spearmanr(both["intensity"], both["intensity_b"]).statistic)}


def evaluate_planner(screenplay_dir: str | os.PathLike, *, split: str = "test", plan=None, n_boot: int = 1000,
                     seed: int = 0) -> tuple[dict[str, Any], Any]:
    """Plan every script of ``split`` found in ``screenplay_dir`` as a user would (the whole script, so the
    neighbour smoothing sees every scene) and score the labelled scenes against reader A.

    ``plan`` maps a list of parsed scenes to cue plans (default: the offline planner). Returns ``(scores, table)``:
    :func:`~echoscript_utils.stats.label_scores` plus ``scripts`` and, where reader B labelled the scenes, ``accuracy_vs_b``; and one row
    per labelled scene with the prediction.
    """
    import pandas as pd

    from .parse import read_script
    from .plan import offline_plan

    plan = plan or offline_plan
    df = labelled_scenes(screenplay_dir, split=split)
    if df.empty:
        raise InputError(f"{screenplay_dir}: none of the labelled {split} scripts is there")
    df = df[df["matched"]].copy()
    preds: dict[tuple[str, int], Any] = {}
    for file in df["file"].unique():
        for cue in plan(read_script(Path(screenplay_dir) / file).scenes):
            preds[(file, cue.scene)] = cue
    df["pred_mood"] = [preds[(f, int(i))].mood for f, i in zip(df["file"], df["index"])]
    df["pred_intensity"] = [preds[(f, int(i))].intensity for f, i in zip(df["file"], df["index"])]
    df["confidence"] = [preds[(f, int(i))].confidence for f, i in zip(df["file"], df["index"])]
    scores = label_scores(df["mood"], df["pred_mood"], df["intensity"], df["pred_intensity"], labels=MOODS,
                          n_boot=n_boot, seed=seed)
    scores["scripts"] = sorted(df["script"].unique().tolist())
    both = df[df["mood_b"].isin(MOODS)]
    if len(both):
        scores["accuracy_vs_b"] = float((both["mood_b"] == both["pred_mood"]).mean())
    return scores, pd.DataFrame(df)
