"""Fine-tuning data: clips → codec tokens, the genre-balanced sampler, the delay pattern and the batches.

Shapes: codes ``[K, T_frames]`` per clip (K codebooks at the codec's frame rate, 50 Hz for MusicGen); a batch's
labels ``[B, T + K - 1, K]`` in MusicGen's delay pattern; chroma ``[B, n_chroma_frames, 12]`` for MusicGen-Melody.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import file_hash
from ..captions import build_caption, caption_fields
from ..config import cpu_workers
from ..dataset import genre_weights, load_metadata, real_duration
from ..errors import InputError
from ..models import frame_rate, is_melody
from .token_cache import chroma_for_clips, encode_clips


# ============================================================================================== data
def stage_input_dir(cfg) -> Path:
    """The newest stage folder with clip metadata: ``03_alignment``, else ``02_annotation``, else ``01_curation``."""
    for stage in ("03_alignment", "02_annotation", "01_curation"):
        folder = cfg.paths.stage(stage)
        if (folder / "metadata.jsonl").is_file():
            return folder
    raise InputError(f"{cfg.paths.root}: no metadata.jsonl in 03_alignment, 02_annotation or 01_curation; "
                     f"run the curation stage first (echoscript run <params> --stages 01)")


@dataclass
class ClipTokens:
    """One training or validation clip, ready for the loop.

    Attributes:
        clip_id: the clip's id.
        codes: ``int16 [K, T]`` codec tokens (T frames at the codec's frame rate).
        genre: genre used by the sampler ("" when unknown).
        fields: caption attributes (``scene``, ``genre``, ``moods``, ``instruments``, ``bpm``, ``key``).
        caption: the stage's own caption when it has one (used when no attribute is dropped).
        chroma: ``float32 [N, 12]`` melody chroma at 7.8125 Hz (MusicGen-Melody only).
        n_frames: frames of music when the clip is a short cue padded with silence (``None``: all ``T``); the
            frames after it never reach the loss.
    """

    clip_id: str
    codes: np.ndarray
    genre: str
    fields: dict[str, Any]
    caption: str | None = None
    chroma: np.ndarray | None = None
    n_frames: int | None = None


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def load_training_clips(cfg, model, *, device: str = "cpu", progress: bool = True,
                        is_main: bool = True, wait: Callable[[], None] | None = None) -> dict[str, list[ClipTokens]]:
    """Read the run's clip metadata and return ``{"train": [...], "valid": [...]}`` with cached codec tokens.

    Clips with ``kept == False`` (dropped by the alignment stage) are left out. Tokens (and chroma for
    MusicGen-Melody) come from the content-hashed cache under ``cfg.paths.cache``; only the main process fills
    it, the others ``wait()`` and then read.
    """

    src = stage_input_dir(cfg)
    df = load_metadata(src)
    if "kept" in df.columns:
        df = df[df["kept"].map(lambda v: v is None or (isinstance(v, float) and math.isnan(v)) or bool(v))]
    df = df[df["split"].isin(["train", "valid"])].reset_index(drop=True)
    if not (df["split"] == "train").any():
        raise InputError(f"{src / 'metadata.jsonl'}: no clips in the train split; check curation.splits")
    missing = [p for p in df["path"] if not Path(p).is_file()]
    if missing:
        raise InputError(f"{missing[0]}: clip audio listed in {src / 'metadata.jsonl'} is missing; rerun curation")
    hashes = [file_hash(p) for p in df["path"]]
    melody = is_melody(model)

    def compute() -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        codes = encode_clips(model, list(df["path"]), cache_dir=cfg.paths.cache, device=device, hashes=hashes,
                             batch_size=cfg.training.encode_batch_size, progress=progress,
                             num_workers=cpu_workers(cfg))
        chroma = chroma_for_clips(list(df["path"]), cache_dir=cfg.paths.cache, hashes=hashes,
                                  progress=progress) if melody else None
        return codes, chroma

    if is_main:
        codes, chroma = compute()
    if wait is not None:
        wait()
    if not is_main:
        codes, chroma = compute()  # every clip is a cache hit now
    out: dict[str, list[ClipTokens]] = {"train": [], "valid": []}
    fps = frame_rate(model)
    for i, row in enumerate(df.to_dict("records")):
        music = real_duration(row)
        n_frames = int(math.ceil(music * fps)) if music < float(row["duration_s"]) - 1e-6 else None
        stored = row.get("caption_fields")
        fields = stored if isinstance(stored, dict) and stored else caption_fields(row)
        out[row["split"]].append(ClipTokens(
            clip_id=str(row["clip_id"]), codes=codes[i], genre=str(fields.get("genre") or ""), fields=fields,
            caption=_clean(row.get("caption")) or None, chroma=chroma[i] if chroma is not None else None,
            n_frames=n_frames))
    return out


# ============================================================================================ sampler
class GenreSampler:
    """Epoch orders that balance genres: item ``i`` is drawn with probability ∝ ``freq(genre_i) ** -temperature``.

    ``temperature = 0`` gives a plain shuffle (every clip once per epoch); above 0, ``num_samples`` draws with
    replacement. The order of epoch ``e`` depends only on ``(seed, e)``, so the sampler's state is its
    settings plus the epoch, and a resumed run draws exactly what the uninterrupted one would have.

    Args:
        genres: one genre per training clip.
        temperature: balancing strength (``training.sampler_temperature``).
        seed: the run seed.
        num_samples: draws per epoch (default: the number of clips).
    """

    def __init__(self, genres: Sequence[str], *, temperature: float = 1.0, seed: int = 0,
                 num_samples: int | None = None):

        self.genres = list(genres)
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.num_samples = int(num_samples or len(self.genres))
        self.epoch = 0
        w = genre_weights(self.genres, temperature=self.temperature)
        self.probabilities = w / w.sum() if len(w) else w

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """Clip indices for the current epoch, ``int64 [num_samples]``."""
        rng = np.random.default_rng([self.seed, 7919, self.epoch])
        if self.temperature == 0:
            reps = math.ceil(self.num_samples / len(self.genres))
            return np.concatenate([rng.permutation(len(self.genres)) for _ in range(reps)])[: self.num_samples]
        return rng.choice(len(self.genres), size=self.num_samples, replace=True, p=self.probabilities)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def expected_mix(self) -> dict[str, float]:
        """Share of draws each genre gets in expectation."""
        mix: Counter = Counter()
        for g, p in zip(self.genres, self.probabilities, strict=True):
            mix[g] += float(p)
        return dict(mix)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seed": self.seed, "temperature": self.temperature,
                "num_samples": self.num_samples, "n_items": len(self.genres)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("n_items") != len(self.genres) or state.get("seed") != self.seed:
            raise ValueError("sampler state belongs to a different dataset or seed")
        self.epoch = int(state["epoch"])


# ============================================================================================ batches
def delay_pattern(codes, pad_id: int):
    """MusicGen's delay pattern: ``codes [B, K, T]`` → ``labels [B, T + K - 1, K]``.

    Codebook ``k`` is shifted right by ``k`` frames; the ``K - 1`` positions it leaves empty at the start and
    end hold ``pad_id`` (the decoder's pad/BOS id = codebook size). MusicGen's forward masks ``pad_id`` out of
    the loss and turns the shifted labels into decoder inputs, so this is exactly the layout
    ``generate()`` produces one step at a time (``build_delay_pattern_mask``).
    """
    import torch

    codes = torch.as_tensor(codes).long()
    b, k, t = codes.shape
    out = codes.new_full((b, k, t + k - 1), pad_id)
    for i in range(k):
        out[:, i, i : i + t] = codes[:, i]
    return out.transpose(1, 2).contiguous()


@dataclass
class BatchSpec:
    """What :func:`make_batch` needs to know, fixed for a run."""

    pad_id: int
    segment_frames: int | None
    cfg_dropout: float
    melody_dropout: float
    caption_dropout: dict[str, float]
    chroma_per_frame: float = 0.0  # chroma frames per codec frame (melody)


def _caption(item: ClipTokens, spec: BatchSpec, rng: np.random.Generator, *, train: bool) -> str:

    if train and any(p > 0 for p in spec.caption_dropout.values()):
        return build_caption(item.fields, dropout=spec.caption_dropout, rng=rng)
    return item.caption or build_caption(item.fields)


def make_batch(items: Sequence[ClipTokens], spec: BatchSpec, rng: np.random.Generator, *,
               train: bool = True) -> dict[str, Any]:
    """Crop, caption and lay out a batch.

    Returns ``{"captions": [B] str, "null_text": bool [B], "labels": long [B, T + K - 1, K], "chroma":
    float [B, N, 12] or None, "genres": [B], "frames": int}``; clips shorter than the segment are padded with
    ``-100`` (ignored by the loss). A short cue padded with silence counts as only its ``n_frames`` of music: crops
    start inside them and stop at their end, so its padding is laid out as ``-100`` too and is never learned.
    All randomness comes from ``rng`` (crops, caption and condition dropout).
    """
    import torch

    crops, chromas, captions, null_text = [], [], [], []
    for item in items:
        k, t = item.codes.shape
        if item.n_frames is not None:
            t = max(1, min(t, int(item.n_frames)))
        seg = t if spec.segment_frames is None else min(spec.segment_frames, t)
        start = int(rng.integers(0, t - seg + 1)) if train and t > seg else 0
        crops.append(item.codes[:, start : start + seg])
        drop_all = train and rng.random() < spec.cfg_dropout
        null_text.append(drop_all)
        captions.append("" if drop_all else _caption(item, spec, rng, train=train))
        if item.chroma is not None:
            c0 = int(round(start * spec.chroma_per_frame))
            n = max(1, int(round(seg * spec.chroma_per_frame)))
            chroma = item.chroma[c0 : c0 + n]
            if train and rng.random() < spec.melody_dropout:
                chroma = np.zeros_like(chroma)
                chroma[:, 0] = 1.0  # the model's own "no melody" condition
            chromas.append(chroma)
    length = max(c.shape[1] for c in crops)
    labels = []
    for c in crops:
        lab = delay_pattern(torch.from_numpy(c.astype(np.int64))[None], spec.pad_id)[0]
        if c.shape[1] < length:
            lab = torch.cat([lab, lab.new_full((length - c.shape[1], lab.shape[1]), -100)])
        labels.append(lab)
    chroma_t = None
    if chromas:
        n = max(c.shape[0] for c in chromas)
        chroma_t = torch.zeros(len(chromas), n, 12)
        for i, c in enumerate(chromas):
            chroma_t[i, : len(c)] = torch.from_numpy(c)
    return {"captions": captions, "null_text": torch.tensor(null_text), "labels": torch.stack(labels),
            "chroma": chroma_t, "genres": [it.genre for it in items], "frames": int(length) * len(items)}


def tokenizer_of(processor):
    return getattr(processor, "tokenizer", processor)


def model_inputs(batch: dict[str, Any], processor, device) -> dict[str, Any]:
    """Tokenise the captions (cut at the tokenizer's ``model_max_length``, 512 for T5) and move a batch to
    ``device``: keyword arguments for the model's forward."""
    tok = tokenizer_of(processor)(batch["captions"], padding=True, truncation=True, return_tensors="pt")
    mask = tok["attention_mask"].clone()
    mask[batch["null_text"]] = 0  # the null condition: zero text states, fully masked
    kwargs = {"input_ids": tok["input_ids"].to(device), "attention_mask": mask.to(device),
              "labels": batch["labels"].to(device)}
    if batch.get("chroma") is not None:
        kwargs["input_features"] = batch["chroma"].to(device)
    return kwargs
