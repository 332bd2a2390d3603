"""Fine-tuning MusicGen (stage ``04_finetuning``): the paper's recipe, resumable, on ``accelerate``.

:func:`train_from_config` takes the run's newest clip metadata (``03_alignment`` → ``02_annotation`` →
``01_curation``), turns every clip into codec tokens once (:mod:`echoscript_utils.finetuning.token_cache`), and trains the
MusicGen decoder with the text encoder and codec frozen:

* **Labels.** Codes ``[B, K, T]`` are laid out in MusicGen's delay pattern before they reach the model
  (codebook ``k`` shifted right by ``k`` frames, the gaps filled with the pad id, which the model's loss
  ignores): ``MusicgenForConditionalGeneration.forward`` only shifts ``labels`` right by one step, it does not
  apply the delay itself (see :func:`delay_pattern`).
* **Optimiser.** AdamW (weight decay on matrices only, betas from the params), a warmup + cosine (or linear /
  constant) schedule from ``transformers.get_scheduler``, gradient clipping, gradient accumulation to the
  effective ``batch_size``, fp16 / bf16 autocast through ``accelerate``, SDPA or FlashAttention-2 attention,
  optional gradient checkpointing, optional LoRA through ``peft`` (adapter saved, plus a merged copy).
* **Data.** Genre-balanced sampling (weights ``freq(genre) ** -sampler_temperature``, see
  :func:`echoscript_utils.dataset.genre_weights`), random crops of ``segment_s`` seconds in token space,
  classifier-free-guidance dropout (the whole caption becomes ``""`` with an all-zero text mask, the same null
  condition ``generate(guidance_scale=...)`` uses), per-attribute caption dropout with the alignment stage's
  caption template (:func:`echoscript_utils.captions.build_caption`, probabilities from
  ``alignment.caption_dropout``) and, for MusicGen-Melody, chroma dropout to the model's null chroma.
* **Safety.** A step whose loss (or gradient norm) is not finite is skipped and counted; past
  ``max_nonfinite_steps`` the run stops with a message naming the usual causes. A checkpoint (trainable
  weights, optimiser, scheduler, grad scaler, sampler position and RNG states) is written atomically at the end
  of every epoch and every ``save_every_steps``; the last ``keep_checkpoints`` stay. A run killed at any moment
  (SIGKILL included) continues from its newest complete checkpoint when started again with the same
  parameters, and ends with the same weights as an uninterrupted run: every random draw of a step is derived
  from ``(seed, epoch, step)``.
* **Products** in ``<run>/04_finetuning/``: ``final/`` (a standard transformers folder with the processor, so
  ``MusicgenForConditionalGeneration.from_pretrained(final)`` works), ``adapter/`` for LoRA runs,
  ``checkpoints/``, ``train_log.csv`` (per step: loss, lr, grad norm, tokens/s), ``val_log.csv`` (per epoch),
  ``genre_mix.csv`` (the genres the sampler actually drew, per epoch), ``samples/epoch_NN.wav`` (a short
  sample after every epoch), ``tensorboard/``, ``summary.json`` and ``metrics.json``.

Several GPUs
------------
The same command scales out with ``accelerate``: run ``accelerate config`` once (or pass flags), then
``accelerate launch -m echoscript_utils train params/colab_a100.yaml`` (e.g. ``--multi_gpu --num_processes 4``;
``torchrun --nproc_per_node 4 -m echoscript_utils train ...`` works too, and is the way to try it on CPUs).
Each process trains on its own share of every batch (``batch_size`` stays the effective batch:
``batch_size = per-GPU batch × grad_accum × processes``), gradients are averaged by DDP, only the main process
writes files, and the token cache is filled by the main process before the others read it. The mixed precision
comes from ``training.precision`` in the params, not from ``accelerate config``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import audio
from ..artifacts import (
    atomic_path,
    atomic_write_text,
    ensure_dir,
    read_json,
    text_hash,
    write_json,
    write_metrics,
)
from ..cards import demo_reasons, preflight, publish
from ..config import resolve_device
from ..errors import ConfigError, InputError
from ..melody import CHROMA_FRAME_RATE
from ..models.hub import model_identity, sampling_attention, unwrap
from ..models.musicgen import is_melody, load_musicgen
from .data import (
    BatchSpec,
    GenreSampler,
    load_training_clips,
    make_batch,
    model_inputs,
    tokenizer_of,
)

__all__ = [
    "GenreSampler",
    "NonFiniteLossError",
    "TrainingRun",
    "load_training_clips",
    "train_from_config",
]

#: Log columns of ``train_log.csv``.
LOG_COLUMNS = ("step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "skipped")
#: Melody null condition: MusicGen-Melody's "no melody" is a chroma whose every frame is pitch class 0.
_CHECKPOINT_RE = re.compile(r"^step-(\d{8})$")


class NonFiniteLossError(RuntimeError):
    """Raised when more than ``max_nonfinite_steps`` steps gave a non-finite loss or gradient."""


# ============================================================================================ checkpoints
def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (a ``step-NNNNNNNN`` folder with ``state.json``), oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = []
    for p in ckpt_dir.iterdir():
        m = _CHECKPOINT_RE.match(p.name)
        if m and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an older folder of the same name is removed afterwards."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _CsvLog:
    """Append-only CSV log that a resumed run first cuts back to the checkpoint."""

    def __init__(self, path: Path, columns: Sequence[str], *, enabled: bool):
        self.path, self.columns, self.enabled = path, list(columns), enabled

    def truncate(self, keep: Callable[[dict[str, str]], bool]) -> None:
        if not self.enabled:
            return
        rows = []
        if self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    if None not in row.values() and keep(row):
                        rows.append(row)
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            w.writeheader()
            w.writerows(rows)

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        if not self.enabled or not rows:
            return
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            w.writerows(rows)
            f.flush()


# ============================================================================================ the run
@dataclass
class _State:
    epoch: int = 0  # epoch in progress (0-based)
    update: int = 0  # optimizer updates done in that epoch
    global_step: int = 0
    nonfinite: int = 0
    epoch_genres: dict[str, int] = field(default_factory=dict)
    epoch_loss_sum: float = 0.0
    epoch_loss_n: int = 0
    val_history: list[dict[str, Any]] = field(default_factory=list)
    mix_history: list[dict[str, Any]] = field(default_factory=list)


def _step_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _attn_implementation(name: str, log) -> dict[str, str]:
    """Per-submodule attention: EnCodec only has eager attention, T5 and the decoder take the choice."""
    if name == "flash_attention_2":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is None:
            log("flash_attention_2 asked for but flash-attn is not installed: using sdpa (PyTorch's fused "
                "attention, which runs FlashAttention kernels on recent GPUs)")
            name = "sdpa"
    text = "sdpa" if name == "flash_attention_2" else name  # T5 has no FlashAttention-2 path
    return {"decoder": name, "text_encoder": text, "audio_encoder": "eager"}


def _precision(precision: str, device: str, log) -> str:
    if precision == "fp16" and device == "cpu":
        log("fp16 autocast is not available on CPU: training in fp32 (use bf16 on CPU if wanted)")
        return "no"
    return precision


class TrainingRun:
    """One fine-tuning run of a parameter file (``cfg``); :meth:`fit` trains, resumes and saves.

    Args:
        cfg: the validated :class:`~echoscript_utils.config.Config`.
        log: where one-line progress messages go (``print``).
        on_step: called with the global step after every optimizer update (progress hooks, tests).
        progress: show tqdm bars.
    """

    def __init__(self, cfg, *, log: Callable[[str], None] = print, on_step: Callable[[int], None] | None = None,
                 progress: bool = True):
        self.cfg = cfg
        self.t = cfg.training
        self.log_fn = log
        self.on_step = on_step
        self.progress = progress
        self.stage_dir = cfg.paths.finetuning
        self.ckpt_dir = self.stage_dir / "checkpoints"

    # ---------------------------------------------------------------------------------------- setup
    def log(self, msg: str) -> None:
        if self.accelerator is None or self.accelerator.is_main_process:
            self.log_fn(msg)

    accelerator = None
    model_identity = None

    def _params_hash(self) -> str:

        t = self.t.model_dump(mode="json")
        for k in ("save_every_steps", "keep_checkpoints", "push_to_hub", "tensorboard", "sample_prompt",
                  "sample_duration_s", "encode_batch_size", "max_nonfinite_steps"):
            t.pop(k, None)
        # the base model's identity too: a checkpoint's trainable weights only fit the frozen rest they grew on
        return text_hash(self.cfg.seed, t, dict(self.cfg.alignment.caption_dropout), self.model_identity)

    def _setup(self) -> None:

        t = self.t
        if t.push_to_hub:  # refused now rather than after training: bad repo name, demo model, offline, no token
            preflight(demo_reasons(self.cfg), model_repo=t.push_to_hub)
        self._start_accelerator()
        model, processor = load_musicgen(t.model, cache_dir=self.cfg.paths.models, device="cpu",
                                         attn_implementation=_attn_implementation(t.attn_implementation, self.log),
                                         seed=self.cfg.seed)
        self.model_identity = None
        with contextlib.suppress(Exception):

            self.model_identity = model_identity(t.model)
        acc = self.accelerator
        clips = load_training_clips(self.cfg, model, device=str(acc.device), progress=self.progress,
                                    is_main=acc.is_main_process, wait=acc.wait_for_everyone)
        self.train_items, self.val_items = clips["train"], clips["valid"]
        self.sampler = GenreSampler([it.genre for it in self.train_items], temperature=t.sampler_temperature,
                                    seed=self.cfg.seed)
        n_micro = math.ceil(len(self.sampler) / self.world / self.micro)
        self.updates_per_epoch = math.ceil(n_micro / t.grad_accum)
        if t.max_steps:
            self.updates_per_epoch = min(self.updates_per_epoch, t.max_steps)
        self._prepare(model, processor, total_updates=self.updates_per_epoch * t.epochs)

    def _start_accelerator(self) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState


        t = self.t
        device = resolve_device(self.cfg.run.device)
        mp = _precision(t.precision, device, self.log_fn)
        if AcceleratorState._shared_state and int(os.environ.get("WORLD_SIZE", "1")) == 1:
            AcceleratorState._reset_state(reset_partial_state=True)  # a fresh precision per run in one process
        self.accelerator = acc = Accelerator(mixed_precision=mp, cpu=device == "cpu")
        self.world = acc.num_processes
        per_update = t.grad_accum * self.world
        if t.batch_size % per_update:
            raise ConfigError(f"training.batch_size={t.batch_size} is not a multiple of grad_accum × processes "
                              f"= {t.grad_accum} × {self.world}; change batch_size or grad_accum")
        self.micro = t.batch_size // per_update

    def _prepare(self, model, processor, *, total_updates: int) -> None:
        """Freeze, wrap (LoRA, checkpointing), build optimizer and schedule, hand the model to accelerate."""
        import torch
        from transformers import get_scheduler


        t = self.t
        acc = self.accelerator
        self.processor = processor
        self.melody = is_melody(model)
        self.pad_id = int(model.config.decoder.pad_token_id)
        self.frame_rate = float(model.config.audio_encoder.frame_rate)
        self.sample_rate = int(model.config.audio_encoder.sampling_rate)
        # freeze: codec always, text encoder unless asked; everything else (decoder, projections) trains
        for p in model.audio_encoder.parameters():
            p.requires_grad_(False)
        for p in model.text_encoder.parameters():
            p.requires_grad_(t.train_text_encoder)
        if t.gradient_checkpointing:
            model.config.use_cache = False
            model.decoder.config.use_cache = False
            enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.2x name
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if t.lora.enabled:
            from peft import LoraConfig, get_peft_model

            lcfg = LoraConfig(r=t.lora.r, lora_alpha=t.lora.alpha, lora_dropout=t.lora.dropout,
                              target_modules=list(t.lora.target_modules))
            model = get_peft_model(model, lcfg)
            if t.train_text_encoder:
                for p in unwrap(model).text_encoder.parameters():
                    p.requires_grad_(True)
        self.trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not self.trainable:
            raise ConfigError("training: no trainable parameters (check training.lora.target_modules)")
        decay = [p for n, p in self.trainable if p.ndim >= 2]
        no_decay = [p for n, p in self.trainable if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=t.learning_rate, betas=tuple(t.betas), eps=1e-8, fused=acc.device.type == "cuda")
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self._train_mode()
        self.total_updates = total_updates
        name = {"constant": "constant_with_warmup"}.get(t.scheduler, t.scheduler)
        self.scheduler = get_scheduler(name, self.optimizer, num_warmup_steps=t.warmup_steps,
                                       num_training_steps=total_updates)
        seg = None if t.segment_s is None else max(1, int(round(t.segment_s * self.frame_rate)))
        self.spec = BatchSpec(pad_id=self.pad_id, segment_frames=seg, cfg_dropout=t.cfg_dropout,
                              melody_dropout=t.melody_dropout if self.melody else 0.0,
                              caption_dropout=dict(self.cfg.alignment.caption_dropout),
                              chroma_per_frame=CHROMA_FRAME_RATE / self.frame_rate)
        self.state = _State()
        self.params_hash = self._params_hash()

    def _train_mode(self) -> None:
        """Decoder in train mode (dropout on); frozen parts stay in eval mode, as in audiocraft."""
        self.model.train()
        base = unwrap(self.model)
        base.audio_encoder.eval()
        if not self.t.train_text_encoder:
            base.text_encoder.eval()

    @classmethod
    def from_model(cls, cfg, model, processor, *, total_updates: int = 1000) -> TrainingRun:
        """A run around an already-built model, ready for :meth:`train_step` (benchmarks; no data, no files)."""
        run = cls(cfg, log=lambda m: None, progress=False)
        run._start_accelerator()
        run._prepare(model, processor, total_updates=total_updates)
        return run

    # ---------------------------------------------------------------------------------------- steps
    def _forward(self, batch: dict[str, Any]):
        kwargs = model_inputs(batch, self.processor, self.accelerator.device)
        return self.model(**kwargs).loss

    def _all_finite(self, value) -> bool:
        import torch

        flag = torch.tensor([0.0 if torch.isfinite(value).all() else 1.0], device=self.accelerator.device)
        if self.world > 1:
            flag = self.accelerator.reduce(flag, reduction="sum")
        return bool(flag.item() == 0)

    def train_step(self, micro_batches: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """One optimizer update over ``micro_batches`` (gradient accumulation); returns the step's log values.

        A micro-batch with a non-finite loss is not back-propagated and the update is skipped (gradients
        zeroed, learning-rate schedule still advanced), as is an update whose gradient norm is not finite.
        """
        import torch

        acc, model = self.accelerator, self.model
        n = len(micro_batches)
        losses, finite = [], True
        for j, batch in enumerate(micro_batches):
            sync = j == n - 1 or self.world == 1
            ctx = contextlib.nullcontext() if sync else acc.no_sync(model)
            with ctx:
                loss = self._forward(batch)
                if not self._all_finite(loss.detach()):
                    finite = False
                    continue
                acc.backward(loss / n)
            losses.append(loss.detach())
        grad_norm = float("nan")
        if finite:
            params = [p for _, p in self.trainable]
            max_norm = self.t.max_grad_norm if self.t.max_grad_norm else float("inf")
            grad_norm = float(acc.clip_grad_norm_(params, max_norm))
            if not math.isfinite(grad_norm) and acc.scaler is None:
                finite = False  # fp16's scaler skips such steps itself and lowers its scale
        if finite:
            self.optimizer.step()
        with warnings.catch_warnings():  # a skipped update still advances the schedule, on purpose
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler")
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        skipped = not finite or bool(getattr(self.optimizer, "step_was_skipped", False))
        loss_value = float("nan")
        if losses and finite:
            mean = torch.stack(losses).mean()
            loss_value = float(acc.reduce(mean, reduction="mean") if self.world > 1 else mean)
        return {"loss": loss_value, "grad_norm": grad_norm, "skipped": int(not finite),
                "scaler_skipped": int(skipped and finite)}

    def validate(self) -> float | None:
        """Mean validation loss over the valid split (fixed crops, no dropout); ``None`` without a valid split."""
        import torch

        if not self.val_items:
            return None
        acc = self.accelerator
        mine = self.val_items[acc.process_index :: self.world]
        total = torch.zeros(2, device=acc.device)
        self.model.eval()
        with torch.no_grad():
            for i in range(0, len(mine), self.micro):
                chunk = mine[i : i + self.micro]
                rng = np.random.default_rng([self.cfg.seed, 4242, i])
                batch = make_batch(chunk, self.spec, rng, train=False)
                with acc.autocast():
                    loss = self._forward(batch)
                total += torch.stack([loss.float() * len(chunk), torch.tensor(float(len(chunk)), device=acc.device)])
        self._train_mode()
        if self.world > 1:
            total = acc.reduce(total, reduction="sum")
        return float(total[0] / total[1]) if total[1] > 0 else None

    def generate_sample(self, path: Path, *, seed: int) -> Path | None:
        """Write a short sample for ``training.sample_prompt`` (main process only)."""
        import torch


        if not self.t.sample_prompt:
            return None
        model = unwrap(self.accelerator.unwrap_model(self.model))
        model.eval()
        torch.manual_seed(seed)
        tok = tokenizer_of(self.processor)([self.t.sample_prompt], truncation=True,
                                           return_tensors="pt").to(self.accelerator.device)
        n = max(4, int(round(self.t.sample_duration_s * self.frame_rate)))
        half = self.t.precision in ("fp16", "bf16")  # autocast: attention runs in half precision
        with torch.no_grad(), self.accelerator.autocast(), sampling_attention(model, half=half):
            wav = model.generate(**tok, max_new_tokens=n, do_sample=True, guidance_scale=3.0)
        self._train_mode()
        wav = wav[0].float().cpu().numpy()
        audio.write(path, wav, self.sample_rate)
        return path

    # ---------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step-NNNNNNNN/`` atomically (main process) and prune to ``keep_checkpoints``."""
        import dataclasses

        import torch
        from safetensors.torch import save_file

        acc = self.accelerator
        acc.wait_for_everyone()
        if not acc.is_main_process:
            return None
        s = self.state
        final = self.ckpt_dir / f"step-{s.global_step:08d}"
        ensure_dir(self.ckpt_dir)
        tmp = self.ckpt_dir / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        weights = {n: p.detach().to("cpu").contiguous().clone() for n, p in self.trainable}
        save_file(weights, str(tmp / "trainable.safetensors"))
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
        if acc.scaler is not None:
            torch.save(acc.scaler.state_dict(), tmp / "scaler.pt")
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, tmp / "rng.pt")
        state = dataclasses.asdict(s) | {"params_hash": self.params_hash, "sampler": self.sampler.state_dict(),
                                         "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")  # last: marks complete
        _replace_dir(tmp, final)
        complete = [p for _, p in list_checkpoints(self.ckpt_dir)]
        for old in complete[: max(0, len(complete) - self.t.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.ckpt_dir.glob(".tmp-*"):  # left by killed runs
            if stale != tmp:
                shutil.rmtree(stale, ignore_errors=True)
        return final

    def resume(self) -> Path | None:
        """Load the newest complete checkpoint written with the same parameters; returns its path or None."""
        import torch
        from safetensors.torch import load_file

        chosen = None
        for _, path in reversed(list_checkpoints(self.ckpt_dir)):
            with contextlib.suppress(OSError, ValueError):
                state = read_json(path / "state.json")
                if state.get("params_hash") == self.params_hash:
                    chosen = (path, state)
                    break
                self.log(f"{path.name}: written with other training parameters, not resumed from")
        if chosen is None:
            return None
        path, state = chosen
        weights = load_file(str(path / "trainable.safetensors"))
        params = dict(self.trainable)
        if set(weights) != set(params):
            raise InputError(f"{path}: checkpoint weights do not match the model; delete it to start over")
        with torch.no_grad():
            for name, value in weights.items():
                params[name].copy_(value.to(params[name].device))
        self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False))
        self.scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=False))
        if self.accelerator.scaler is not None and (path / "scaler.pt").is_file():
            self.accelerator.scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=False))
        rng = torch.load(path / "rng.pt", weights_only=False)
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.sampler.load_state_dict(state["sampler"])
        fields = set(_State.__dataclass_fields__)
        self.state = _State(**{k: v for k, v in state.items() if k in fields})
        return path

    # ---------------------------------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        """Train (or resume) to the configured epochs, save ``final/``, return the run summary."""
        t0 = time.perf_counter()
        self._setup()
        main = self.accelerator.is_main_process
        if main:
            ensure_dir(self.stage_dir)
        resumed = self._resume_or_clear(main=main)
        s = self.state
        train_log, writer = self._open_logs(main=main)
        self.log(f"training {self.t.model}: {len(self.train_items)} train / {len(self.val_items)} valid clips, "
                 f"{self.t.epochs} epochs × {self.updates_per_epoch} steps, batch {self.t.batch_size} "
                 f"({self.micro} per micro-batch × {self.t.grad_accum} accumulation × {self.world} processes)")
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total_updates, initial=s.global_step, desc="fine-tuning", unit="step",
                   disable=not (self.progress and main))
        tokens_total, train_seconds = 0, 0.0
        while s.epoch < self.t.epochs:
            tokens_total, train_seconds = self._train_epoch(train_log, writer, bar, tokens_total, train_seconds)
            self._end_epoch(writer)
        bar.close()
        if writer is not None:
            writer.close()
        return self._finish(resumed, t0=t0, tokens_total=tokens_total, train_seconds=train_seconds)

    def _resume_or_clear(self, *, main: bool) -> Path | None:
        """Resume from the newest matching checkpoint, or remove checkpoints of other parameters."""
        resumed = self.resume()
        s = self.state
        if resumed:
            self.log(f"resuming from {resumed.name} (epoch {s.epoch + 1}, step {s.global_step})")
        else:
            stale = list_checkpoints(self.ckpt_dir)
            if stale and main:  # from other parameters: they would confuse resuming and checkpoint rotation
                self.log(f"removing {len(stale)} checkpoint(s) written with other training parameters")
                for _, path in stale:
                    shutil.rmtree(path, ignore_errors=True)
            self.accelerator.wait_for_everyone()
        return resumed

    def _open_logs(self, *, main: bool):
        """``train_log.csv`` cut back to the resumed step, and a tensorboard writer (or None)."""
        s = self.state
        train_log = _CsvLog(self.stage_dir / "train_log.csv", LOG_COLUMNS, enabled=main)
        train_log.truncate(lambda r: int(r["step"]) <= s.global_step)
        writer = None
        if main and self.t.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(str(self.stage_dir / "tensorboard"), purge_step=s.global_step + 1)
            except ImportError:
                self.log("tensorboard is not installed: logging to CSV only")
        return train_log, writer

    def _train_epoch(self, train_log: _CsvLog, writer, bar, tokens_total: int,
                     train_seconds: float) -> tuple[int, float]:
        """The remaining optimizer updates of the epoch in progress; returns the running token and time totals."""
        s = self.state
        rank = self.accelerator.process_index
        self.sampler.set_epoch(s.epoch)
        order = self.sampler.indices()[rank :: self.world]
        micro_batches = [order[i : i + self.micro] for i in range(0, len(order), self.micro)]
        while s.update < self.updates_per_epoch:
            window = micro_batches[s.update * self.t.grad_accum : (s.update + 1) * self.t.grad_accum]
            if not window:
                break
            batches, out, dt = self._run_update(window, rank=rank)
            frames = sum(b["frames"] for b in batches) * self.world
            tokens_total += frames
            train_seconds += dt
            self._count_update(batches, out)
            self._log_update(out, frames=frames, dt=dt, train_log=train_log, writer=writer, bar=bar)
            if self.on_step is not None:
                self.on_step(s.global_step)
            if self.t.save_every_steps and s.global_step % self.t.save_every_steps == 0 \
                    and s.update < self.updates_per_epoch:
                self.save_checkpoint()
        return tokens_total, train_seconds

    def _run_update(self, window: list, *, rank: int) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
        """Build the window's micro-batches from ``(seed, epoch, step)`` and train on them; returns the
        batches, :meth:`train_step`'s values and its wall time (s)."""
        import torch

        s = self.state
        seed = self.cfg.seed
        torch.manual_seed(_step_seed(seed, s.epoch, s.update, rank))  # model dropout, reproducibly
        batches = [make_batch([self.train_items[i] for i in idx], self.spec,
                              np.random.default_rng([seed, s.epoch, s.update, j, rank]))
                   for j, idx in enumerate(window)]
        tic = time.perf_counter()
        out = self.train_step(batches)
        dt = time.perf_counter() - tic
        return batches, out, dt

    def _count_update(self, batches: list[dict[str, Any]], out: dict[str, Any]) -> None:
        """Advance the step counters, count the genres drawn and the loss, or the skipped step (and stop past
        ``max_nonfinite_steps``)."""
        s = self.state
        s.update += 1
        s.global_step += 1
        for b in batches:
            for g in b["genres"]:
                s.epoch_genres[g] = s.epoch_genres.get(g, 0) + 1
        if out["skipped"]:
            s.nonfinite += 1
            self.log(f"step {s.global_step}: non-finite loss or gradient, update skipped "
                     f"({s.nonfinite}/{self.t.max_nonfinite_steps} allowed)")
            if s.nonfinite > self.t.max_nonfinite_steps:
                raise NonFiniteLossError(
                    f"{s.nonfinite} steps gave a non-finite loss or gradient (limit "
                    f"training.max_nonfinite_steps={self.t.max_nonfinite_steps}); lower "
                    f"training.learning_rate, use precision bf16 instead of fp16, or set max_grad_norm. "
                    f"The last good checkpoint is in {self.ckpt_dir}")
        else:
            s.epoch_loss_sum += out["loss"]
            s.epoch_loss_n += 1

    def _log_update(self, out: dict[str, Any], *, frames: int, dt: float, train_log: _CsvLog, writer, bar) -> None:
        """One row of ``train_log.csv``, the tensorboard scalars and the progress bar."""
        s = self.state
        lr = self.scheduler.get_last_lr()[0]
        row = {"step": s.global_step, "epoch": s.epoch + 1, "loss": out["loss"], "lr": lr,
               "grad_norm": out["grad_norm"], "tokens_per_s": frames / dt if dt > 0 else float("nan"),
               "skipped": out["skipped"] or out["scaler_skipped"]}
        train_log.append([row])
        if writer is not None:
            for k in ("loss", "lr", "grad_norm", "tokens_per_s"):
                if math.isfinite(row[k]):
                    writer.add_scalar(f"train/{k}", row[k], s.global_step)
        bar.update(1)
        bar.set_postfix(loss=f"{out['loss']:.3f}", lr=f"{lr:.2e}")

    def _end_epoch(self, writer) -> None:
        """End of epoch: validation, genre mix, sample, checkpoint."""
        s = self.state
        val = self.validate()
        epoch_no = s.epoch + 1
        train_loss = s.epoch_loss_sum / s.epoch_loss_n if s.epoch_loss_n else float("nan")
        s.val_history.append({"epoch": epoch_no, "step": s.global_step, "train_loss": train_loss,
                              "val_loss": val})
        mix = self._record_genre_mix(epoch_no)
        val_txt = f"{val:.4f}" if val is not None else "n/a"
        self.log(f"epoch {epoch_no}/{self.t.epochs}: train loss {train_loss:.4f}, val loss {val_txt}; "
                 f"genres drawn: {mix}")
        if writer is not None and val is not None:
            writer.add_scalar("val/loss", val, s.global_step)
        if self.accelerator.is_main_process:
            self.generate_sample(self.stage_dir / "samples" / f"epoch_{epoch_no:02d}.wav",
                                 seed=_step_seed(self.cfg.seed, 31337, epoch_no))
        s.epoch += 1
        s.update = 0
        s.epoch_genres, s.epoch_loss_sum, s.epoch_loss_n = {}, 0.0, 0
        self._write_histories()
        self.save_checkpoint()

    def _record_genre_mix(self, epoch_no: int) -> str:
        """Add the epoch's drawn / expected / corpus genre shares to the history; returns them as one line."""
        s = self.state
        counts = Counter(s.epoch_genres)
        if self.world > 1:
            counts = self._gather_counts(counts)
        expected = self.sampler.expected_mix()
        corpus = Counter(it.genre for it in self.train_items)
        n_drawn = sum(counts.values()) or 1
        for g in sorted(set(corpus) | set(counts)):
            s.mix_history.append({"epoch": epoch_no, "genre": g or "(none)", "drawn": counts.get(g, 0),
                                  "drawn_share": counts.get(g, 0) / n_drawn,
                                  "expected_share": expected.get(g, 0.0),
                                  "corpus_share": corpus.get(g, 0) / len(self.train_items)})
        return ", ".join(f"{r['genre']} {r['drawn_share']:.0%}" for r in s.mix_history if r["epoch"] == epoch_no)

    def _finish(self, resumed: Path | None, *, t0: float, tokens_total: int, train_seconds: float) -> dict[str, Any]:
        """Save ``final/``, write ``summary.json`` and ``metrics.json``; returns the summary."""
        final = self.save_final()
        summary = self._summary(final, resumed, time.perf_counter() - t0, tokens_total, train_seconds)
        if self.accelerator.is_main_process:
            write_json(self.stage_dir / "summary.json", summary)
            write_metrics(self.stage_dir, summary)
            if self.t.push_to_hub:  # final/ with its model card (written from the run's metrics so far)
                publish(self.cfg, model_repo=self.t.push_to_hub, log=self.log)
        self.accelerator.wait_for_everyone()
        return summary

    def _gather_counts(self, counts: Counter) -> Counter:
        from accelerate.utils import gather_object

        merged: Counter = Counter()
        for c in gather_object([dict(counts)]):
            merged.update(c)
        return merged

    def _write_histories(self) -> None:
        import pandas as pd

        if not self.accelerator.is_main_process:
            return
        for name, rows in (("val_log.csv", self.state.val_history), ("genre_mix.csv", self.state.mix_history)):
            atomic_write_text(self.stage_dir / name, pd.DataFrame(rows).to_csv(index=False, lineterminator="\n"))

    def save_final(self) -> Path:
        """``final/``: the fine-tuned model (LoRA merged) + processor as a standard transformers folder."""
        acc = self.accelerator
        acc.wait_for_everyone()
        final = self.stage_dir / "final"
        if not acc.is_main_process:
            return final
        model = acc.unwrap_model(self.model)
        if self.t.lora.enabled:
            tmp = self.stage_dir / f".tmp-adapter-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(str(tmp))
            self.processor.save_pretrained(str(tmp))
            _replace_dir(tmp, self.stage_dir / "adapter")
            model = model.merge_and_unload()
        model.eval()
        for m in (model, model.decoder):
            m.config.use_cache = True
        tmp = self.stage_dir / f".tmp-final-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        self.processor.save_pretrained(str(tmp))
        _replace_dir(tmp, final)
        return final

    def _summary(self, final: Path, resumed: Path | None, seconds: float, tokens: int,
                 train_seconds: float) -> dict[str, Any]:
        s = self.state
        vals = [r["val_loss"] for r in s.val_history if r["val_loss"] is not None]
        trains = [r["train_loss"] for r in s.val_history]
        return {
            "model": self.t.model, "model_identity": self.model_identity, "final_dir": str(final),
            "adapter_dir": str(self.stage_dir / "adapter") if self.t.lora.enabled else None,
            "epochs": self.t.epochs, "steps": s.global_step, "steps_per_epoch": self.updates_per_epoch,
            "train_clips": len(self.train_items), "valid_clips": len(self.val_items),
            "batch_size": self.t.batch_size, "micro_batch": self.micro, "processes": self.world,
            "precision": self.accelerator.mixed_precision, "train_loss_first_epoch": trains[0] if trains else None,
            "train_loss_last_epoch": trains[-1] if trains else None,
            "val_loss": vals, "val_loss_last": vals[-1] if vals else None,
            "nonfinite_steps": s.nonfinite, "resumed_from": resumed.name if resumed else None,
            "checkpoints": [p.name for _, p in list_checkpoints(self.ckpt_dir)],
            "tokens_per_s": tokens / train_seconds if train_seconds else None,
            "seconds": round(seconds, 2), "params_hash": self.params_hash,
        }


def train_from_config(cfg, *, log: Callable[[str], None] = print, on_step: Callable[[int], None] | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Run the fine-tuning stage for ``cfg`` (resuming from its newest checkpoint); returns the summary dict
    also written to ``<run>/04_finetuning/summary.json`` and ``metrics.json``."""
    return TrainingRun(cfg, log=log, on_step=on_step, progress=progress).fit()
