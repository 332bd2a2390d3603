"""Stage 06, evaluation: FAD and KAD on several embeddings with intervals, FAD∞, per-clip outliers, CLAP score, tag KL.

The notebook ``06_evaluation`` walks through it step by step; :func:`run` does the whole stage. The maths lives
below the stages (:mod:`echoscript_utils.fad`, :mod:`echoscript_utils.kad`, :mod:`echoscript_utils.stats`), the embedders in
:mod:`echoscript_utils.embeddings`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import cached, file_hash, read_json, text_hash, write_metrics
from .audio import load
from .config import cpu_workers
from .dataset import load_metadata
from .embeddings import MusicnnEmbedder, embed_files, embed_files_many, get_embedder, measure_parity
from .errors import DependencyError, InputError
from .fad import (
    RELIABILITY_FLAGS,
    FADInfinity,
    bootstrap_fad,
    clips_needed,
    fad_infinity,
    frechet_distance,
    paired_bootstrap_difference,
    per_clip_contribution,
    reliability_flags,
)
from .kad import bootstrap_kad, kad_bandwidth, kernel_audio_distance, per_clip_kad
from .models import musicnn
from .notebook import display_audio
from .stats import clap_score, tag_kl_divergence


# ============================================================================================== helpers
def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


# ============================================================================================== the stage
#: Folders under 05_generation that are not text-to-music systems to score (MIDI-sketch control).
_NOT_SYSTEMS = ("sketch",)


@dataclass
class EvaluationSets:
    """The audio the evaluation stage compares: one reference set and one set per generating model."""

    reference: list[Path]
    reference_source: str  # in words: where the reference came from
    generated: dict[str, list[Path]]  # model label → WAV files
    prompts: dict[str, list[str | None]]  # model label → prompt of each file (from its JSON sidecar)

    def summary(self):
        """DataFrame ``set, files, source``."""
        import pandas as pd

        rows = [{"set": "reference", "files": len(self.reference), "source": self.reference_source}]
        rows += [{"set": m, "files": len(f), "source": f"05_generation/{m}"} for m, f in self.generated.items()]
        return pd.DataFrame(rows)


def audio_files(folder: str | os.PathLike, *, extensions: Sequence[str] = (".wav", ".flac", ".ogg", ".mp3", ".aiff",
                                                                          ".aif")) -> list[Path]:
    """Audio files under ``folder`` (recursive, sorted); :class:`InputError` when it is missing or has none."""
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"{p}: no such folder; pass a folder of audio files")
    exts = {e.lower() for e in extensions}
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts and not f.name.startswith("."))
    if not files:
        raise InputError(f"{p}: no audio files ({', '.join(sorted(exts))}) in this folder")
    return files


def _order_models(labels: Sequence[str], cfg) -> list[str]:
    first = [cfg.listening.baseline_label, cfg.listening.system_label]
    return [m for m in first if m in labels] + sorted(m for m in labels if m not in first)


def evaluation_sets(cfg) -> EvaluationSets:
    """Find the reference and generated audio of a run.

    Reference: ``evaluation.reference_dir`` when set, else the curated clips of ``01_curation`` whose split is in
    ``evaluation.reference_splits`` (the held-out ``eval`` split by default, never seen in fine-tuning).
    Generated: ``05_generation/<model>/*.wav`` for ``evaluation.models`` (default: every model folder there).
    """

    ev = cfg.evaluation
    if ev.reference_dir is not None:
        reference = audio_files(ev.reference_dir, extensions=cfg.curation.extensions)
        source = f"folder {Path(ev.reference_dir).name}/ ({len(reference)} files)"
    else:
        meta = load_metadata(cfg.paths.curation)
        splits = list(ev.reference_splits)
        chosen = meta[meta["split"].isin(splits)]
        if chosen.empty:
            raise InputError(f"{cfg.paths.curation}: no curated clips in split(s) {', '.join(splits)}; set "
                             "evaluation.reference_dir or evaluation.reference_splits")
        reference = [Path(p) for p in chosen["path"]]
        source = f"01_curation clips, split {'+'.join(splits)} ({len(reference)} clips)"
    gen_dir = cfg.paths.generation
    if not gen_dir.is_dir():
        raise InputError(f"{gen_dir}: no generated audio; run the 05_generation stage first")
    available = [d.name for d in gen_dir.iterdir() if d.is_dir() and any(d.glob("*.wav"))]
    wanted = list(ev.models) or [m for m in available if m not in _NOT_SYSTEMS]
    missing = [m for m in wanted if m not in available]
    if missing:
        raise InputError(f"{gen_dir}: no WAV files for model(s) {', '.join(missing)}; "
                         f"found {', '.join(available) or 'none'}")
    generated, prompts = {}, {}
    for m in _order_models(wanted, cfg):
        files = sorted((gen_dir / m).glob("*.wav"))
        generated[m] = files
        prompts[m] = [_sidecar(f).get("prompt") for f in files]
    return EvaluationSets(reference=reference, reference_source=source, generated=generated, prompts=prompts)


def _sidecar(wav: Path) -> dict[str, Any]:

    side = wav.with_suffix(".json")
    try:
        return read_json(side) if side.is_file() else {}
    except ValueError:
        raise InputError(f"{side}: not valid JSON; rerun the generation stage") from None


@dataclass
class EmbeddedSets:
    """Per-clip embeddings of every set under every embedding that could be built."""

    data: dict[str, dict[str, list[np.ndarray]]]  # embedding → set label ("reference", models) → clips
    names: dict[str, list[str]]  # set label → clip names (file stems)
    embedders: dict[str, dict[str, Any]]  # embedding → Embedder.describe()
    skipped: dict[str, str]  # embedding → why it was not computed
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)  # embedding → measure_parity() on a probe

    def summary(self):
        """DataFrame ``embedding, set, clips, rows, dim, row, normalisation`` (plus skipped embeddings)."""
        import pandas as pd

        rows = []
        for emb, sets in self.data.items():
            info = self.embedders[emb]
            for label, clips in sets.items():
                rows.append({"embedding": emb, "set": label, "clips": len(clips),
                             "rows": int(sum(c.shape[0] for c in clips)), "dim": int(clips[0].shape[1]),
                             "row": info["row"], "sample_rate": info["sample_rate"]})
        for emb, why in self.skipped.items():
            rows.append({"embedding": emb, "set": "(skipped)", "clips": 0, "rows": 0, "dim": 0, "row": why,
                         "sample_rate": None})
        return pd.DataFrame(rows)


#: Key of the musicnn taggram that :func:`embed_sets` computes beside the musicnn embedding (for
#: :func:`tag_distributions`, which then reads it from the cache).
_TAGGRAM = "musicnn-taggram"

#: Seconds of each probe clip that :func:`embed_sets` runs through an embedding's reference code.
PARITY_PROBE_S = 10.0


def _parity_probe(sets: EvaluationSets, n: int) -> tuple[list, list]:
    """Up to ``n`` reference and ``n`` generated clips (first model), their first :data:`PARITY_PROBE_S` s."""
    generated = next(iter(sets.generated.values()), [])
    out = []
    for files in (sets.reference[:n], generated[:n]):
        clips = []
        for f in files:
            wav, sr = load(f)
            clips.append((wav[:, : int(PARITY_PROBE_S * sr)], sr))
        out.append(clips)
    return out[0], out[1]


#: Registry packages whose code the parity probes run (their versions are part of the parity cache key).
_REFERENCE_PACKAGES = ("transformers", "resampy", "torchvggish", "panns-inference", "torch")


def _parity_key(sets: EvaluationSets, n: int, embedder) -> str:
    """Content hash of what :func:`measure_parity` depends on: the probe files, the embedder, the probe length
    and the versions of the reference packages."""
    from importlib.metadata import PackageNotFoundError, version

    def _version(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "absent"

    generated = next(iter(sets.generated.values()), [])
    return text_hash([file_hash(f) for f in sets.reference[:n]], [file_hash(f) for f in generated[:n]],
                     embedder.identity, PARITY_PROBE_S, {p: _version(p) for p in _REFERENCE_PACKAGES})


def embed_sets(sets: EvaluationSets, cfg, *, embeddings: Sequence[str] | None = None,
               progress: bool = True) -> EmbeddedSets:
    """Embed the reference and every generated set with each of ``evaluation.embeddings`` (cached per file).

    An embedding whose weights are not available (e.g. VGGish offline without a local weights file) is skipped
    and the reason recorded, so the other embeddings still produce a table. While each embedder is loaded, the
    first ``evaluation.parity_clips`` clips of the reference and of the first model also go through the
    embedding's reference implementation with the same weights (:func:`~echoscript_utils.embeddings.measure_parity`),
    so the comparability table states the parity measured in this run.

    Each file is decoded once for all embeddings (each resamples it as its reference does) and forward passes
    are batched across files (:func:`~echoscript_utils.embeddings.embed_files_many`); with ``evaluation.relevance``
    the musicnn taggram that :func:`tag_distributions` reads comes from the musicnn embedding's forward pass.
    Parity results are cached by the probes' content, the embedder and the reference packages' versions.
    """

    all_sets = {"reference": sets.reference, **sets.generated}
    data: dict[str, dict[str, list[np.ndarray]]] = {}
    described, skipped, parity = {}, {}, {}
    n_probe = cfg.evaluation.parity_clips
    probe: list = []  # decoded on the first parity cache miss
    embedders = {}
    for name in embeddings or cfg.evaluation.embeddings:
        try:
            embedders[name] = get_embedder(name, cfg)
        except DependencyError as exc:
            skipped[name] = str(exc)
    extra = {}
    if "musicnn" in embedders and cfg.evaluation.relevance:  # tag_distributions' taggram, from the same forward pass
        extra[_TAGGRAM] = MusicnnEmbedder(embedders["musicnn"].model_name, layer="taggram",
                                          cache_dir=cfg.paths.cache, device=embedders["musicnn"].device)
    # each file decoded once for all embedders; forward passes batched across files; every result cached
    unique = list(dict.fromkeys(f for fs in all_sets.values() for f in fs))
    rows = embed_files_many(unique, {**embedders, **extra}, cache_dir=cfg.paths.cache, progress=progress,
                            num_workers=cpu_workers(cfg))
    for name, embedder in embedders.items():
        data[name] = {label: [rows[name][str(f)] for f in fs] for label, fs in all_sets.items()}
        described[name] = embedder.describe()
        if n_probe > 0 and sets.reference and next(iter(sets.generated.values()), []):
            # cached by content: a rerun with the same probes, weights and reference code measures nothing again
            def measure(embedder=embedder):
                probe[:] = probe or _parity_probe(sets, n_probe)
                return measure_parity(embedder, *probe)

            parity[name] = cached(cfg.paths.cache / "parity" / name / f"{_parity_key(sets, n_probe, embedder)}.json",
                                  measure, valid=lambda v: isinstance(v, dict) and "rows_max_rel" in v)
    del embedders, extra
    names = {label: [Path(f).stem for f in files] for label, files in all_sets.items()}
    return EmbeddedSets(data=data, names=names, embedders=described, skipped=skipped, parity=parity)


def fad_table(embedded: EmbeddedSets, cfg, *, progress: bool = False):
    """FAD of every model against the reference under every embedding, with bootstrap intervals and FAD∞.

    Returns:
        DataFrame ``embedding, model, fad, ci_low, ci_high, bias, fad_inf, fad_inf_r2, n_ref, n_gen, rows_ref,
        rows_gen, dim, flags, clips_needed, clips_needed_ref, inputs`` (clips counted in ``n_*``; embedding rows in
        ``rows_*``).
        ``flags`` lists the :data:`~echoscript_utils.fad.RELIABILITY_FLAGS` that apply (``rows<dim``,
        ``clips<min`` against ``evaluation.min_clips``); ``clips_needed`` / ``clips_needed_ref`` are the generated
        and reference clips an interval ``evaluation.target_ci_width`` × FAD wide would need
        (:func:`~echoscript_utils.fad.clips_needed`; the reference grows alike because it is resampled too).
    """
    import pandas as pd

    ev = cfg.evaluation
    rows = []
    for emb, sets in embedded.data.items():
        ref = sets["reference"]
        for model, clips in sets.items():
            if model == "reference":
                continue
            row: dict[str, Any] = {"embedding": emb, "model": model}
            res = inf = None
            if ev.bootstrap > 0:
                res = bootstrap_fad(ref, clips, n=ev.bootstrap, confidence=ev.confidence, seed=cfg.seed,
                                    progress=progress)
                row |= {"fad": res.point, "ci_low": res.ci_low, "ci_high": res.ci_high, "bias": res.bias}
            else:
                row |= {"fad": frechet_distance(ref, clips), "ci_low": np.nan, "ci_high": np.nan, "bias": np.nan}
            try:
                inf = fad_infinity(ref, clips, n_points=ev.fad_inf_points, seed=cfg.seed)
                row |= {"fad_inf": inf.fad_inf, "fad_inf_r2": inf.r2}
            except InputError:
                row |= {"fad_inf": np.nan, "fad_inf_r2": np.nan}
            counts = {"n_ref": len(ref), "n_gen": len(clips), "rows_ref": int(sum(c.shape[0] for c in ref)),
                      "rows_gen": int(sum(c.shape[0] for c in clips)), "dim": int(clips[0].shape[1])}
            need = None
            if res is not None and row["fad"] > 0:
                need = clips_needed(res, width=ev.target_ci_width * row["fad"], fad_inf=inf)
            row |= counts | {"flags": " ".join(reliability_flags(**counts, min_clips=ev.min_clips)),
                             "clips_needed": need.n_gen if need else None,
                             "clips_needed_ref": need.n_ref if need else None,
                             "inputs": embedded.embedders[emb]["normalisation"]}
            rows.append(row)
    return pd.DataFrame(rows)


def comparability_table(embedded: EmbeddedSets):
    """How each computed embedding relates to the tool its published FADs come from.

    Returns:
        DataFrame ``embedding, reference, sample_rate, resampler, window, row, pooling, head, parity_rows,
        parity_fad, parity_note``: the reference implementation, the input rate and resampler, window / hop and
        what one row covers, how rows become the Gaussian, which output layer is used (activation, PCA), and
        the parity measured in this run (:func:`embed_sets`; largest per-row relative difference of the
        embeddings and relative difference of the FAD, ours against the reference code with the same weights).
    """
    import pandas as pd

    rows = []
    for emb, info in embedded.embedders.items():
        par = embedded.parity.get(emb, {})
        note = par.get("note", "not measured (evaluation.parity_clips = 0)" if not par else "")
        if par and not note:
            note = f"{par['clips']} probe clips, first {PARITY_PROBE_S:g} s each"
        rows.append({"embedding": emb, "reference": info.get("reference", "ours"),
                     "sample_rate": info["sample_rate"], "resampler": info.get("resampler", ""),
                     "window": info.get("window", ""), "row": info["row"],
                     "pooling": "all rows of all clips pooled into one Gaussian per set; clips are the bootstrap "
                                "units",
                     "head": info.get("head", ""), "parity_rows": par.get("rows_max_rel"),
                     "parity_fad": par.get("fad_rel"), "parity_note": note})
    return pd.DataFrame(rows)


def reliability_note(table, cfg) -> str:
    """What the FAD table can support, stated from its own numbers (markdown, one bullet per flagged row).

    For each flagged FAD: which flags apply and why they matter, the FAD against FAD∞, the interval's width now
    and the clips an interval ``evaluation.target_ci_width`` × FAD wide would need.
    """
    ev = cfg.evaluation
    if table is None or len(table) == 0:
        return "No FAD was computed, so there is nothing to qualify."
    width_pct = round(100 * ev.target_ci_width)
    lines = []
    for r in table.to_dict("records"):
        flags = [f for f in str(r.get("flags") or "").split() if f]
        if not flags:
            continue
        parts = []
        if "rows<dim" in flags:
            parts.append(f"{min(r['rows_ref'], r['rows_gen'])} rows in {r['dim']} dimensions")
        if "clips<min" in flags:
            parts.append(f"{min(r['n_ref'], r['n_gen'])} clips (minimum {ev.min_clips})")
        line = f"- **{r['embedding']} / {r['model']}**: {', '.join(parts)}. "
        line += " ".join(RELIABILITY_FLAGS[f][0].upper() + RELIABILITY_FLAGS[f][1:] + "." for f in flags)
        if np.isfinite(r.get("fad_inf", np.nan)):
            line += f" FAD {r['fad']:.4g} against FAD∞ {r['fad_inf']:.4g} (fit R² {r['fad_inf_r2']:.2f})."
        if np.isfinite(r.get("ci_low", np.nan)) and r["fad"] > 0:
            now = 100 * (r["ci_high"] - r["ci_low"]) / r["fad"]
            line += f" The {round(100 * ev.confidence)}% interval spans {now:.0f}% of the FAD"
            if r.get("clips_needed") is not None and np.isfinite(r["clips_needed"]):
                line += f"; one {width_pct}% wide needs about {int(r['clips_needed'])} generated clips (now {r['n_gen']})"
                ref_need = r.get("clips_needed_ref")
                if ref_need is not None and np.isfinite(ref_need) and ref_need > r["n_ref"]:
                    line += f" and {int(ref_need)} reference clips (now {r['n_ref']})"
                line += ", from the bootstrap spread and the FAD∞ bias"
            line += "."
        lines.append(line)
    if not lines:
        return (f"No FAD in this run is flagged: every set has at least {ev.min_clips} clips and more embedding "
                "rows than dimensions.")
    head = (f"{len(lines)} of {len(table)} FADs are flagged; read them as tests of the pipeline, not as "
            "evidence about the models:")
    return "\n".join([head, *lines])


def paired_table(embedded: EmbeddedSets, cfg, *, a: str | None = None, b: str | None = None):
    """``FAD_a − FAD_b`` per embedding (a = fine-tuned, b = baseline by default) with paired bootstrap intervals.

    Generated sets are resampled with shared indices when both models made the same number of files (same
    prompts and seeds in the same order), otherwise independently.
    """
    import pandas as pd

    ev = cfg.evaluation
    a = a or cfg.listening.system_label
    b = b or cfg.listening.baseline_label
    rows = []
    for emb, sets in embedded.data.items():
        if a not in sets or b not in sets:
            continue
        paired = len(sets[a]) == len(sets[b]) and embedded.names.get(a) == embedded.names.get(b)
        res = paired_bootstrap_difference(sets["reference"], sets[a], sets[b], n=max(ev.bootstrap, 1),
                                          confidence=ev.confidence, seed=cfg.seed, paired_generated=paired)
        rows.append({"embedding": emb, "a": a, "b": b, **res.as_dict()})
    return pd.DataFrame(rows)


def fad_infinity_fits(embedded: EmbeddedSets, cfg, *, embedding: str | None = None) -> dict[str, FADInfinity]:
    """FAD∞ fit of every model for one embedding (default: the first computed), for the fit plot."""
    emb = embedding or next(iter(embedded.data), None)
    if emb is None:
        return {}
    sets = embedded.data[emb]
    out = {}
    for model, clips in sets.items():
        if model == "reference":
            continue
        try:
            out[model] = fad_infinity(sets["reference"], clips, n_points=cfg.evaluation.fad_inf_points, seed=cfg.seed)
        except InputError:
            continue
    return out


def outlier_table(embedded: EmbeddedSets, *, embedding: str | None = None, top: int | None = None):
    """Leave-one-out contribution of every generated clip (all models) for one embedding, largest first."""
    import pandas as pd

    emb = embedding or next(iter(embedded.data), None)
    if emb is None:
        return pd.DataFrame(columns=["embedding", "model", "clip", "fad_without", "delta", "z", "outlier"])
    sets = embedded.data[emb]
    frames = []
    for model, clips in sets.items():
        if model == "reference" or len(clips) < 3:
            continue
        df = per_clip_contribution(sets["reference"], clips, names=embedded.names[model])
        frames.append(df.assign(embedding=emb, model=model))
    if not frames:
        return pd.DataFrame(columns=["embedding", "model", "clip", "fad_without", "delta", "z", "outlier"])
    df = pd.concat(frames, ignore_index=True).sort_values("delta", ascending=False, ignore_index=True)
    df = df[["embedding", "model", "clip", "fad_without", "delta", "z", "outlier"]]
    return df.head(top) if top else df


def kad_rows(clips: list[np.ndarray], max_rows: int, *, seed: int = 0) -> list[np.ndarray]:
    """The per-clip row arrays of one set, thinned to about ``max_rows`` rows in all when it has more (0: all).

    KAD's kernel sums grow with the square of the rows (a 2-hour corpus gives some 10⁵ codec frames). Each clip keeps
    a seeded random share of its rows (at least one, in their order), so every clip still counts; KAD's estimator
    stays unbiased on the subset, its interval a little wider.
    """
    total = sum(c.shape[0] for c in clips)
    if not max_rows or total <= max_rows:
        return clips
    rng = np.random.default_rng(seed)
    share = max_rows / total
    return [c[np.sort(rng.choice(c.shape[0], size=max(1, int(round(c.shape[0] * share))), replace=False))]
            for c in clips]


def kad_table(embedded: EmbeddedSets, cfg, *, progress: bool = False):
    """KAD of every model against the reference under every embedding, with bootstrap intervals
    (:func:`~echoscript_utils.kad.bootstrap_kad`: clips resampled on both sides, ``evaluation.bootstrap`` times).

    Returns:
        DataFrame ``embedding, model, kad, ci_low, ci_high, bias, bandwidth, n_ref, n_gen, rows_ref, rows_gen, dim``;
        ``bandwidth`` is the kernel's σ, the reference's median pairwise distance.
    """
    import pandas as pd

    ev = cfg.evaluation
    rows = []
    for emb, sets in embedded.data.items():
        ref = kad_rows(sets["reference"], ev.kad_max_rows, seed=cfg.seed)
        if not any(m != "reference" for m in sets):
            continue
        sigma = kad_bandwidth(ref, None)  # the reference's median distance: one kernel for every model
        for model, clips in sets.items():
            if model == "reference":
                continue
            clips = kad_rows(clips, ev.kad_max_rows, seed=cfg.seed)
            row: dict[str, Any] = {"embedding": emb, "model": model}
            if ev.bootstrap > 0:
                res = bootstrap_kad(ref, clips, n=ev.bootstrap, confidence=ev.confidence, seed=cfg.seed,
                                    bandwidth=sigma, progress=progress)
                row |= {"kad": res.point, "ci_low": res.ci_low, "ci_high": res.ci_high, "bias": res.bias,
                        "bandwidth": res.bandwidth}
            else:
                row |= {"kad": kernel_audio_distance(ref, clips, bandwidth=sigma), "ci_low": np.nan,
                        "ci_high": np.nan, "bias": np.nan, "bandwidth": sigma}
            row |= {"n_ref": len(ref), "n_gen": len(clips), "rows_ref": int(sum(c.shape[0] for c in ref)),
                    "rows_gen": int(sum(c.shape[0] for c in clips)), "dim": int(clips[0].shape[1])}
            rows.append(row)
    return pd.DataFrame(rows)


def kad_bandwidths(kad) -> dict[str, float]:
    """``{embedding: σ}`` from :func:`kad_table` (every model of an embedding shares the reference's σ)."""
    if kad is None or len(kad) == 0:
        return {}
    return {str(e): float(b) for e, b in zip(kad["embedding"], kad["bandwidth"], strict=True)}


def kad_clip_table(embedded: EmbeddedSets, *, embedding: str | None = None, top: int | None = None,
                   max_rows: int = 0, seed: int = 0, bandwidths: dict[str, float] | None = None):
    """Each generated clip's own KAD to the reference (:func:`~echoscript_utils.kad.per_clip_kad`), all models on
    one scale per embedding (the reference's kernel), furthest first.

    Args:
        embedding: one embedding (default: every computed one). top: keep the ``top`` furthest clips per embedding.
        max_rows: thin the reference and the generated clips to about this many rows each (:func:`kad_rows`).
        bandwidths: ``{embedding: σ}`` already computed for these reference rows (:func:`kad_table`'s
            ``bandwidth`` column, with the same ``max_rows`` and ``seed``); missing ones are computed (the median
            over every pair of reference rows: most of this table's time on a big reference).

    Returns:
        DataFrame ``embedding, model, clip, rows, kad, z, outlier``; ``z`` is a robust z-score within the embedding.
    """
    import pandas as pd

    columns = ["embedding", "model", "clip", "rows", "kad", "z", "outlier"]
    frames = []
    for emb in [embedding] if embedding else list(embedded.data):
        sets = embedded.data[emb]
        models = [m for m in sets if m != "reference"]
        if not models:
            continue
        clips = kad_rows([c for m in models for c in sets[m]], max_rows, seed=seed)
        names = [f"{m}/{name}" for m in models for name in embedded.names[m]]  # model folders, file stems
        ref = kad_rows(sets["reference"], max_rows, seed=seed)
        sigma = (bandwidths or {}).get(emb)
        df = per_clip_kad(ref, clips, names=names, bandwidth=kad_bandwidth(ref, None) if sigma is None else sigma)
        df[["model", "clip"]] = df["clip"].str.split("/", n=1, expand=True)
        df["embedding"] = emb
        frames.append(df[columns].head(top) if top else df[columns])
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def play_most_influential(outliers, generation_dir: str | os.PathLike) -> None:
    """Show a player for the generated clip whose removal moves FAD most (the first row of
    :func:`outlier_table`), or say why there is none (the table needs at least three clips per model)."""
    from IPython.display import Markdown, display

    if outliers is None or len(outliers) == 0:
        display(Markdown("_No leave-one-out table: every model has fewer than three generated clips._"))
        return
    top = outliers.iloc[0]
    display_audio(Path(generation_dir) / str(top["model"]) / f"{top['clip']}.wav",
                  titles=[f"most influential clip: {top['model']}/{top['clip']}"])


def clap_scores(sets: EvaluationSets, cfg, *, progress: bool = True):
    """CLAP score of every model: cosine of each clip's CLAP audio embedding (mean over 10 s windows) with the
    CLAP text embedding of its own prompt (from the sidecar). Clips without a prompt are left out."""
    import pandas as pd

    empty = pd.DataFrame(columns=["model", "score", "ci_low", "ci_high", "confidence", "n", "clap_model"])
    if not cfg.evaluation.relevance:
        return empty
    try:
        embedder = get_embedder("clap", cfg)
    except DependencyError as exc:
        _warn(f"CLAP score skipped: {exc}")
        return empty
    rows = []
    for model, files in sets.generated.items():
        keep = [(f, p) for f, p in zip(files, sets.prompts[model]) if p]
        if not keep:
            continue
        embs = embed_files([f for f, _ in keep], embedder, cache_dir=cfg.paths.cache, progress=progress)
        audio = np.stack([e.mean(axis=0) for e in embs.values()])
        text = embedder.embed_text([p for _, p in keep])
        res = clap_score(audio, text, n_boot=max(cfg.evaluation.bootstrap, 1), confidence=cfg.evaluation.confidence,
                         seed=cfg.seed)
        rows.append({"model": model, **res.as_dict(), "clap_model": embedder.identity})
    return pd.DataFrame(rows)


def tag_distributions(sets: EvaluationSets, cfg, *, progress: bool = True):
    """musicnn clip-level tag probabilities (mean over 3 s patches) of every set: ``{label: DataFrame [clips, tags]}``."""
    import pandas as pd

    if not cfg.evaluation.relevance:
        return {}
    model = cfg.annotation.musicnn_model
    try:
        tagger = MusicnnEmbedder(model, layer="taggram", cache_dir=cfg.paths.cache)
    except DependencyError as exc:
        _warn(f"tag distributions skipped: {exc}")
        return {}
    labels = list(musicnn.LABELS[model])
    out = {}
    for label, files in {"reference": sets.reference, **sets.generated}.items():
        embs = embed_files(files, tagger, cache_dir=cfg.paths.cache, progress=progress)
        out[label] = pd.DataFrame([e.mean(axis=0) for e in embs.values()], columns=labels,
                                  index=[Path(f).stem for f in files])
    return out


def tag_kl_table(tags: Mapping[str, Any], *, top: int = 5):
    """KL(reference ‖ model) of mean musicnn tag distributions, with each set's top tags."""
    import pandas as pd

    if "reference" not in tags:
        return pd.DataFrame(columns=["set", "kl_from_reference", "clips", "top_tags"])
    ref = tags["reference"]
    rows = []
    for label, df in tags.items():
        top_tags = ", ".join(f"{t} {v:.2f}" for t, v in df.mean().sort_values(ascending=False).head(top).items())
        kl = 0.0 if label == "reference" else tag_kl_divergence(ref, df)
        rows.append({"set": label, "kl_from_reference": kl, "clips": len(df), "top_tags": top_tags})
    return pd.DataFrame(rows)


def verdict(paired, table=None) -> str:
    """Plain-language reading of the paired differences (one line per embedding), for the notebook and report."""
    if paired is None or len(paired) == 0:
        return "Only one model was generated, so there is no difference to test."
    lines = []
    for r in paired.to_dict("records"):
        pct = round(100 * r["confidence"])
        head = (f"{r['embedding']}: FAD({r['a']}) − FAD({r['b']}) = {r['difference']:+.4g} "
                f"[{pct}% CI {r['ci_low']:+.4g}, {r['ci_high']:+.4g}], {r['a']} lower in "
                f"{100 * r['share_a_better']:.0f}% of resamples")
        if r["significant"]:
            who = r["a"] if r["difference"] < 0 else r["b"]
            lines.append(f"{head} → {who} is closer to the reference on this embedding.")
        else:
            lines.append(f"{head} → the interval includes 0: no evidence of a difference at this sample size.")
    return "\n".join(lines)


def stage_metrics(sets: EvaluationSets, embedded: EmbeddedSets, table, paired, fits: Mapping[str, FADInfinity],
                  outliers, *, clap=None, tag_kl=None, kad=None, kad_clips=None) -> dict[str, Any]:
    """Everything the evaluation stage measured, as one JSON-ready dict for ``06_evaluation/metrics.json``."""
    return {
        "reference": {"source": sets.reference_source, "files": len(sets.reference)},
        "adherence": generation_adherence(sets),
        "generated": {m: len(f) for m, f in sets.generated.items()},
        "embedders": embedded.embedders,
        "skipped_embeddings": embedded.skipped,
        "comparability": comparability_table(embedded).to_dict(orient="records"),
        "fad": table.to_dict(orient="records"),
        "kad": kad.to_dict(orient="records") if kad is not None else [],
        "kad_clips": kad_clips.to_dict(orient="records") if kad_clips is not None else [],
        "paired_difference": paired.to_dict(orient="records") if paired is not None else [],
        "fad_infinity": {m: f.as_dict() for m, f in fits.items()},
        "outliers": outliers[outliers["outlier"]].to_dict(orient="records") if len(outliers) else [],
        "clap_score": clap.to_dict(orient="records") if clap is not None else [],
        "tag_kl": tag_kl.to_dict(orient="records") if tag_kl is not None else [],
        "verdict": verdict(paired),
    }


def generation_adherence(sets: EvaluationSets, *, n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """The generation stage's ``adherence.csv`` (does each file follow its scenario's brief?) summarised per model
    and metric: ``model, metric, value`` (the mean), ``ci_low, ci_high, n``; empty when the stage wrote none."""
    from .adherence import adherence_summary

    files = [f for fs in sets.generated.values() for f in fs]
    path = files[0].parent.parent / "adherence.csv" if files else None
    if path is None or not path.is_file():
        return []
    import pandas as pd

    summary = adherence_summary(pd.read_csv(path), n_boot=n_boot, seed=seed)
    return summary.rename(columns={"mean": "value"}).to_dict(orient="records")


# ============================================================================================== CLI


def run(cfg, *, progress: bool = True) -> dict[str, Any]:
    """Stage 06 in one call, the notebook's steps without its tables and figures; writes and returns
    ``06_evaluation/metrics.json``."""
    sets = evaluation_sets(cfg)
    embedded = embed_sets(sets, cfg, progress=progress)
    table = fad_table(embedded, cfg, progress=progress)
    paired = paired_table(embedded, cfg)
    fits = fad_infinity_fits(embedded, cfg)
    outliers = outlier_table(embedded)
    clap = clap_scores(sets, cfg, progress=progress)
    tag_kl = tag_kl_table(tag_distributions(sets, cfg, progress=progress))
    kad = kad_table(embedded, cfg, progress=progress)
    kad_clips = kad_clip_table(embedded, top=10, max_rows=cfg.evaluation.kad_max_rows, seed=cfg.seed,
                               bandwidths=kad_bandwidths(kad))
    metrics = stage_metrics(sets, embedded, table, paired, fits, outliers, clap=clap, tag_kl=tag_kl, kad=kad,
                            kad_clips=kad_clips)
    write_metrics(cfg.paths.evaluation, metrics)
    return metrics
