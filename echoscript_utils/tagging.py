"""Audio taggers behind one interface, each mapped onto the workbook's taxonomy (genre, moods, instruments).

Three taggers can be chosen in ``annotation.taggers`` and combined:

``panns``
    ``panns_inference.models.Cnn14`` (AudioSet, 527 classes, 32 kHz input) with a checkpoint given by path or
    URL in ``annotation.panns_checkpoint``. We never use the package's ``AudioTagging`` wrapper: importing the
    package runs ``wget`` for its label list and the wrapper re-downloads (and truncates) small checkpoints.
    Instead the model module is loaded on its own (:func:`panns_cnn14_class`), the checkpoint is fetched once
    by our own code into the model cache (:func:`resolve_checkpoint`) and the label list is our own copy
    (``data/audioset_labels.csv``: ``index, mid, display_name`` of the AudioSet release's class list, in
    Cnn14's output order; AudioSet labels by Google, CC BY 4.0).
``musicnn``
    The PyTorch port of musicnn (``echoscript_utils.models.musicnn``) with the port's own tag → taxonomy map.
``clap``
    Zero-shot CLAP: cosine similarity between the clip and text prompts per taxonomy label
    ("a piece of {label} music", ...), softmax within each field.

Every tagger returns the same structure, probabilities in [0, 1] over :data:`VOCAB`::

    {"genre": {"classical": 0.1, ...}, "moods": {"calming": 0.7, ...}, "instruments": {"piano": 0.9, ...}}

Genre probabilities sum to one (a clip has one genre); mood and instrument probabilities are independent.

AudioSet → taxonomy (``data/audioset_taxonomy.csv``): each row ties one AudioSet class (``index``,
``display_name``) to one taxonomy ``label`` of a ``field`` with a ``weight`` in (0, 1] and a short ``note``
saying why. A taxonomy label's score is the largest ``weight × p(class)`` over its rows (a max, so one
confident class is enough and unrelated classes cannot add up); genre scores are then normalised to sum to
one. Direct classes (``Classical music``, ``Piano``, ``Sad music``) carry weight 1; indirect evidence
(``String section`` for orchestral, ``Lullaby`` for calming) carries less.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import file_hash, text_hash
from .audio import model_input
from .config import resolve_device
from .errors import ConfigError, DependencyError, InputError
from .models import musicnn
from .models.clap import ClapEmbedder
from .models.hub import resolve_checkpoint
from .models.panns import CHECKPOINT_SOURCE, audioset_labels, load_cnn14
from .taxonomy import GENRES, INSTRUMENTS, MOODS

__all__ = [
    "FIELDS",
    "VOCAB",
    "ClapTagger",
    "MusicnnTagger",
    "PannsTagger",
    "Tagger",
    "TAGGERS",
    "audioset_labels",
    "audioset_taxonomy",
    "choose_labels",
    "combine_tags",
    "empty_tags",
    "get_tagger",
    "load_cnn14",
    "map_scores",
    "mapping_matrices",
    "register_tagger",
    "resolve_checkpoint",
]

#: The tagged fields, in order, and their vocabularies.
FIELDS: tuple[str, ...] = ("genre", "moods", "instruments")
VOCAB: dict[str, tuple[str, ...]] = {"genre": GENRES, "moods": MOODS, "instruments": INSTRUMENTS}

DATA_DIR = Path(__file__).resolve().parent / "data"
AUDIOSET_LABELS_CSV = DATA_DIR / "audioset_labels.csv"
AUDIOSET_TAXONOMY_CSV = DATA_DIR / "audioset_taxonomy.csv"

TagProbs = dict[str, dict[str, float]]


# ----------------------------------------------------------------------------------------- interface
class Tagger(abc.ABC):
    """One audio tagger: ``tag(wav, sr)`` → probabilities per taxonomy field.

    Attributes:
        name: short name used in params, tables and metadata (``"panns"``).
        version: identifies the weights and mapping; part of every cache key, so a new checkpoint re-tags.
        sample_rate: the rate (Hz) the model wants; callers may pass any rate, it is resampled here.
    """

    name: str = "tagger"
    version: str = "0"
    sample_rate: int = 32000

    @abc.abstractmethod
    def tag(self, wav: np.ndarray, sr: int) -> TagProbs:
        """Tag one clip.

        Args:
            wav: float audio ``[C, T]`` or ``[T]`` in [-1, 1].
            sr: its sample rate in Hz.

        Returns:
            ``{"genre": {label: p}, "moods": {label: p}, "instruments": {label: p}}`` over :data:`VOCAB`.
        """

    def tag_many(self, clips: Sequence[tuple[np.ndarray, int]]) -> list[TagProbs]:
        """Tag several clips ``(wav, sr)``: the same tags as :meth:`tag` on each (up to float rounding). Taggers
        whose model gains from it batch the forward passes across clips; the default tags clip by clip."""
        return [self.tag(wav, sr) for wav, sr in clips]

    def _mono(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """``[C, T]`` / ``[T]`` at ``sr`` → mono float32 ``[T]`` at :attr:`sample_rate`
        (:func:`echoscript_utils.audio.model_input`)."""
        return model_input(wav, sr, sr_out=self.sample_rate, what=f"{self.name} tagger")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r})"


def empty_tags(value: float = 0.0) -> TagProbs:
    """Tags with every label of :data:`VOCAB` set to ``value``."""
    return {f: {label: float(value) for label in VOCAB[f]} for f in FIELDS}


def _normalise_genre(scores: dict[str, float]) -> dict[str, float]:
    total = float(sum(scores.values()))
    if total <= 0 or not np.isfinite(total):
        return {g: 1.0 / len(scores) for g in scores}
    return {g: float(v) / total for g, v in scores.items()}


# ----------------------------------------------------------------------------------------- AudioSet labels


def audioset_taxonomy(path: str | os.PathLike | None = None, *, labels=None):
    """Read and validate an AudioSet → taxonomy mapping file (see the module docstring for its columns).

    Every row must name a class whose ``display_name`` matches ``labels`` at ``index`` (so a mapping written
    for another label order fails loudly), a known field, a label of that field and a weight in (0, 1].
    """
    import pandas as pd

    path = Path(path or AUDIOSET_TAXONOMY_CSV)
    if not path.is_file():
        raise InputError(f"{path}: mapping file not found")
    df = pd.read_csv(path)
    need = {"index", "display_name", "field", "label", "weight"}
    if not need.issubset(df.columns):
        raise InputError(f"{path}: missing columns {sorted(need - set(df.columns))}")
    labels = audioset_labels() if labels is None else labels
    names = labels["display_name"].tolist()
    for row_no, row in enumerate(df.itertuples(index=False), start=2):
        where = f"{path} line {row_no}"
        if not 0 <= int(row.index) < len(names) or names[int(row.index)] != row.display_name:
            raise InputError(f"{where}: class {row.index} is not {row.display_name!r} in the label list; "
                             "fix the index or the name")
        if row.field not in VOCAB:
            raise InputError(f"{where}: field {row.field!r} must be one of {', '.join(FIELDS)}")
        if row.label not in VOCAB[row.field]:
            raise InputError(f"{where}: label {row.label!r} is not in the {row.field} vocabulary "
                             f"({', '.join(VOCAB[row.field])})")
        if not 0 < float(row.weight) <= 1:
            raise InputError(f"{where}: weight must be in (0, 1], got {row.weight}")
    return df


def mapping_matrices(mapping, n_classes: int) -> dict[str, np.ndarray]:
    """Mapping rows → one weight matrix per field, ``[n_classes, len(VOCAB[field])]`` (0 where unmapped)."""
    mats = {f: np.zeros((n_classes, len(VOCAB[f])), dtype=np.float32) for f in FIELDS}
    for row in mapping.itertuples(index=False):
        j = VOCAB[row.field].index(row.label)
        mats[row.field][int(row.index), j] = max(mats[row.field][int(row.index), j], float(row.weight))
    return mats


def map_scores(probs: np.ndarray, matrices: dict[str, np.ndarray]) -> TagProbs:
    """Class probabilities ``[n_classes]`` → taxonomy tags: per label the max of ``weight × p`` over its rows.

    Genre scores are normalised to sum to one; moods and instruments stay independent probabilities.
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    out: TagProbs = {}
    for f in FIELDS:
        w = matrices[f]
        if w.shape[0] != p.shape[0]:
            raise ValueError(f"mapping has {w.shape[0]} classes, tagger gave {p.shape[0]}")
        scores = (w * p[:, None]).max(axis=0) if p.size else np.zeros(w.shape[1])
        out[f] = {label: float(s) for label, s in zip(VOCAB[f], scores, strict=True)}
    out["genre"] = _normalise_genre(out["genre"])
    return out


# ----------------------------------------------------------------------------------------- PANNs


class PannsTagger(Tagger):
    """PANNs Cnn14 (AudioSet) → taxonomy through ``data/audioset_taxonomy.csv``.

    Args:
        checkpoint: path or URL of the weights; ``None`` only with ``allow_random=True`` (tests).
        cache_dir: where a URL is downloaded to.
        device: torch device.
        mapping: path of a mapping file (default: the bundled one).
        max_s: tag at most this many seconds (from the start of the clip); Cnn14 pools over time.
    """

    name = "panns"
    sample_rate = 32000

    def __init__(self, checkpoint: str | os.PathLike | None, *, cache_dir: str | os.PathLike,
                 device: str = "cpu", mapping: str | os.PathLike | None = None, max_s: float = 30.0,
                 allow_random: bool = False, progress: bool = True):
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as pkg_version


        self.labels = audioset_labels()
        self.mapping = audioset_taxonomy(mapping, labels=self.labels)
        self.matrices = mapping_matrices(self.mapping, len(self.labels))
        if checkpoint is None and not allow_random:
            resolve_checkpoint(None, source=CHECKPOINT_SOURCE, cache_dir=cache_dir)  # raises the error
        path = None if checkpoint is None else resolve_checkpoint(checkpoint, source=CHECKPOINT_SOURCE, cache_dir=cache_dir,
                                                                    progress=progress)
        self.checkpoint = path
        self.device = device
        self.max_s = float(max_s)
        self.model = load_cnn14(path, classes_num=len(self.labels), device=device)
        try:
            pkg = pkg_version("panns-inference")
        except PackageNotFoundError:  # pragma: no cover
            pkg = "unknown"
        weights = file_hash(path)[:12] if path is not None else "random"
        map_hash = file_hash(mapping or AUDIOSET_TAXONOMY_CSV)[:8]
        self.version = f"panns_inference-{pkg}+cnn14-{weights}+map-{map_hash}"

    def class_probabilities(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """Cnn14 clip-wise AudioSet probabilities ``[527]`` for one clip."""
        import torch

        x = self._mono(wav, sr)[: int(self.max_s * self.sample_rate)]
        if x.size < self.sample_rate:  # Cnn14 pools 32× in time; give it at least one second
            x = np.pad(x, (0, self.sample_rate - x.size))
        with torch.inference_mode():
            out = self.model(torch.from_numpy(x)[None].to(self.device))
        return out["clipwise_output"][0].float().cpu().numpy()

    def tag(self, wav: np.ndarray, sr: int) -> TagProbs:
        return map_scores(self.class_probabilities(wav, sr), self.matrices)


# ----------------------------------------------------------------------------------------- musicnn
class MusicnnTagger(Tagger):
    """musicnn (the offline PyTorch port, :mod:`echoscript_utils.models.musicnn`) → taxonomy through the port's
    ``taxonomy_map(model)`` (rows ``tag, field, label, weight``); a label's score is the max of
    ``weight × p(tag)`` over its rows, where ``p(tag)`` is the clip probability (mean over 3 s patches).

    Args:
        model: ``"MTT_musicnn"`` or ``"MSD_musicnn"``.
        cache_dir: where the port keeps its converted weights (None → its default).
        device: torch device.
    """

    name = "musicnn"
    sample_rate = 16000

    def __init__(self, model: str = "MTT_musicnn", *, cache_dir: str | os.PathLike | None = None,
                 device: str = "cpu"):
        self._mod = musicnn
        self.model = model
        self.cache_dir = cache_dir
        self.device = device
        self.sample_rate = int(getattr(self._mod, "SR", 16000))
        tmap = self._mod.taxonomy_map
        try:
            table = tmap(model)
        except TypeError:
            table = tmap()
        if hasattr(table, "columns") and "model" in table.columns:
            table = table[table["model"] == model]
        self.rows = _normalise_tag_map(table)
        if not self.rows:
            raise DependencyError(f"echoscript_utils.models.musicnn.taxonomy_map() has no rows for {model}")
        self._mod.load_model(model, cache_dir=cache_dir, device=device)  # fails early if the wheel is absent
        port = getattr(self._mod, "_CONVERTER_VERSION", "1")

        self.version = f"musicnn-port{port}+{model}+map-{text_hash(self.rows)[:8]}"

    def tag(self, wav: np.ndarray, sr: int) -> TagProbs:
        return self.tags_from(self.predict(wav, sr))

    def predict(self, wav: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        """All of musicnn's outputs for one clip (:func:`echoscript_utils.models.musicnn.predict`: ``taggram``,
        ``penultimate``, ... one row per 3 s patch), from which :meth:`tags_from` makes the tags."""
        return self._mod.predict(wav, sr, model=self.model, cache_dir=self.cache_dir, device=self.device)

    def tags_from(self, outputs: Mapping[str, np.ndarray]) -> TagProbs:
        """Tags from :meth:`predict`'s outputs: clip probability of each tag = mean of the taggram over patches."""
        taggram = np.asarray(outputs["taggram"])
        probs = {str(t): float(p) for t, p in zip(self._mod.LABELS[self.model], taggram.mean(axis=0), strict=True)}
        out: TagProbs = empty_tags()
        for tag, field, label, weight in self.rows:
            p = probs.get(tag)
            if p is not None:
                out[field][label] = max(out[field][label], weight * p)
        out["genre"] = _normalise_genre(out["genre"])
        return out


def _normalise_tag_map(tmap) -> list[tuple[str, str, str, float]]:
    """A tag → taxonomy map as rows ``(tag, field, label, weight)``.

    Accepts a DataFrame or records with ``tag, field, label[, weight]`` (the port's ``taxonomy_map()``), or a
    nested dict ``{field: {label: [tag, ...] | {tag: weight}}}``. Rows whose field or label is not in
    :data:`VOCAB` are dropped; weights are clipped to (0, 1].
    """
    rows: list[tuple[str, str, str, float]] = []
    if hasattr(tmap, "to_dict") and hasattr(tmap, "columns"):
        tmap = tmap.to_dict("records")
    if isinstance(tmap, dict):
        for field, labels in tmap.items():
            for label, tags in (labels or {}).items():
                weighted = tags.items() if isinstance(tags, dict) else [(t, 1.0) for t in
                                                                       ([tags] if isinstance(tags, str) else tags)]
                rows.extend((str(t), str(field), str(label), float(w)) for t, w in weighted)
    else:
        for r in tmap or []:
            r = dict(r)
            w = r.get("weight", 1.0)
            rows.append((str(r["tag"]), str(r["field"]), str(r["label"]), 1.0 if w in (None, "") else float(w)))
    aliases = {"genres": "genre", "mood": "moods", "instrument": "instruments"}
    clean = set()
    for tag, field, label, w in rows:
        field = aliases.get(field, field)
        if field in VOCAB and label in VOCAB[field] and w > 0:
            clean.add((tag, field, label, min(w, 1.0)))
    return sorted(clean)


# ----------------------------------------------------------------------------------------- CLAP
#: Text prompts per field; ``{label}`` is the taxonomy label. Embeddings are averaged over the templates.
CLAP_TEMPLATES: dict[str, tuple[str, ...]] = {
    "genre": ("a piece of {label} music", "{label} music", "a {label} track"),
    "moods": ("{label} music", "a {label} piece of music", "music that sounds {label}"),
    "instruments": ("music played on {label}", "the sound of a {label}", "a recording with {label}"),
}


class ClapTagger(Tagger):
    """Zero-shot CLAP tagging against text prompts per taxonomy label.

    Audio and text go through the alignment stage's :class:`~echoscript_utils.models.clap.ClapEmbedder`, so the
    tags and the alignment stage's CLAP scores come from the same embeddings (deterministic windows of the
    feature extractor's length, 10 s for LAION CLAP, averaged). Each label's text embedding is the mean over
    its field's templates; per field, the cosine similarities scaled by the model's audio logit scale go
    through a softmax.

    Args:
        model: hub id, local folder or ``tiny-clap``.
        cache_dir: the run cache (``cfg.paths.cache``); models resolve under ``<cache_dir>/models``.
        device: torch device.
        seed: seed for building tiny models.
        templates: per-field prompt templates with ``{label}`` (default :data:`CLAP_TEMPLATES`).
        embedder: an existing ``ClapEmbedder`` to reuse (then ``model``/``cache_dir`` only name it).
        batch_size: windows per forward pass of the embedder built here (the alignment stage's, so that both
            compute the same embeddings).
    """

    name = "clap"
    sample_rate = 48000

    def __init__(self, model: str, *, cache_dir: str | os.PathLike, device: str = "cpu", seed: int = 1234,
                 templates: dict[str, Sequence[str]] | None = None, embedder: Any = None, batch_size: int = 8):
        import torch

        if embedder is None:
            embedder = ClapEmbedder(model, cache_dir=cache_dir, device=device, seed=seed, batch_size=batch_size)
        self.embedder = embedder
        self.model_name = str(model)
        self.sample_rate = int(embedder.sample_rate)
        self.templates = {f: tuple(t) for f, t in (templates or CLAP_TEMPLATES).items()}
        scale = getattr(embedder.model, "logit_scale_a", None)
        self.logit_scale = float(scale.detach().exp()) if scale is not None else 100.0
        self.text_emb = {f: self._embed_labels(f) for f in FIELDS}
        identity = getattr(embedder, "identity", None) or text_hash(self.model_name)
        self.version = f"clap-{identity}+prompts-{text_hash(self.templates)[:8]}"
        self._torch = torch

    def _embed_labels(self, field: str) -> np.ndarray:
        """``[n_labels, D]`` unit rows: per label, the normalised mean of its template embeddings."""
        rows = []
        for label in VOCAB[field]:
            e = self.embedder.embed_text([t.format(label=label) for t in self.templates[field]]).mean(axis=0)
            rows.append(e / max(float(np.linalg.norm(e)), 1e-12))
        return np.stack(rows).astype(np.float32)

    def audio_embedding(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """Unit CLAP audio embedding ``[D]`` of one clip ``[C, T]`` / ``[T]`` at ``sr`` Hz."""
        return np.asarray(self.embedder.embed_audio_array(np.asarray(wav, dtype=np.float32), sr), np.float32)

    def tag(self, wav: np.ndarray, sr: int) -> TagProbs:
        # each clip on its own (the base class's tag_many), as the alignment stage embeds it, so that the annotation
        # stage can hand it the same embeddings; windows of several clips in one batch were no faster on a CPU
        return self.tags_from(self.audio_embedding(wav, sr))

    def tags_from(self, a: np.ndarray) -> TagProbs:
        """The tags of one clip's :meth:`audio_embedding`."""
        out: TagProbs = {}
        for f in FIELDS:
            logits = self.logit_scale * (self.text_emb[f] @ a).astype(np.float64)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            out[f] = {label: float(v) for label, v in zip(VOCAB[f], p, strict=True)}
        return out


# ----------------------------------------------------------------------------------------- registry
def _make_panns(cfg) -> Tagger:

    return PannsTagger(cfg.annotation.panns_checkpoint, cache_dir=cfg.paths.models,
                       device=resolve_device(cfg.run.device))


def _make_musicnn(cfg) -> Tagger:

    return MusicnnTagger(cfg.annotation.musicnn_model, cache_dir=cfg.paths.cache,
                         device=resolve_device(cfg.run.device))


def _make_clap(cfg) -> Tagger:

    # the alignment stage's model and batch: the embeddings the tagger computes are the ones alignment would
    return ClapTagger(cfg.alignment.clap_model, cache_dir=cfg.paths.cache, device=resolve_device(cfg.run.device),
                      seed=cfg.seed, batch_size=cfg.alignment.batch_size)


#: name → factory ``(cfg) -> Tagger``.
TAGGERS: dict[str, Callable[[Any], Tagger]] = {"panns": _make_panns, "musicnn": _make_musicnn, "clap": _make_clap}


def register_tagger(name: str, factory: Callable[[Any], Tagger]) -> None:
    """Make ``name`` available to :func:`get_tagger` (``factory(cfg) -> Tagger``)."""
    TAGGERS[name] = factory


def get_tagger(name: str, cfg) -> Tagger:
    """Build the tagger ``name`` (``panns``, ``musicnn``, ``clap``) from a :class:`~echoscript_utils.config.Config`.

    Raises :class:`ConfigError` for an unknown name and :class:`DependencyError` when its model or weights
    are not available on this machine (the message says what to do).
    """
    if name not in TAGGERS:
        raise ConfigError(f"unknown tagger {name!r} in annotation.taggers: choose from {', '.join(TAGGERS)}")
    return TAGGERS[name](cfg)


# ----------------------------------------------------------------------------------------- combination
def combine_tags(tag_list: Iterable[TagProbs]) -> TagProbs:
    """Mean of probabilities over taggers, label by label (genre stays a distribution)."""
    tag_list = list(tag_list)
    if not tag_list:
        raise ValueError("combine_tags needs at least one tagger's tags")
    out: TagProbs = {}
    for f in FIELDS:
        out[f] = {label: float(np.mean([t[f].get(label, 0.0) for t in tag_list])) for label in VOCAB[f]}
    return out


def choose_labels(tags: TagProbs, *, threshold: float = 0.2, top_k: int = 3,
                  min_labels: int = 1, fallback: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """Pick labels from probabilities: genre = argmax; moods / instruments = the labels with
    ``p >= threshold``, highest first, at most ``top_k``, and at least ``min_labels``.

    The labels that fill up to ``min_labels`` are the most probable ones, or, when ``fallback`` gives scores per
    field and label (e.g. corpus z-scores from :func:`echoscript_utils.annotation.choose_all`), the ones with the
    highest score. Ties break in vocabulary order, so the choice is deterministic.
    """
    genre_probs = tags["genre"]
    out: dict[str, Any] = {"genre": max(VOCAB["genre"], key=lambda g: (genre_probs.get(g, 0.0),
                                                                      -VOCAB["genre"].index(g)))}
    for f in ("moods", "instruments"):
        ranked = sorted(VOCAB[f], key=lambda lab, f=f: (-tags[f].get(lab, 0.0), VOCAB[f].index(lab)))
        keep = [lab for lab in ranked if tags[f].get(lab, 0.0) >= threshold][:top_k]
        if len(keep) < min_labels:
            if fallback is not None and fallback.get(f):
                score = fallback[f]
                ranked = sorted(VOCAB[f], key=lambda lab, s=score, f=f: (-s.get(lab, float("-inf")),
                                                                         VOCAB[f].index(lab)))
            keep = keep + [lab for lab in ranked if lab not in keep][:min(min_labels, top_k) - len(keep)]
        out[f] = keep
    return out
