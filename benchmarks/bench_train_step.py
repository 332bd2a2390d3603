"""CPU benchmark: the workbook's training step against a plain transformers loop on the same batches.

Both sides train the same tiny MusicGen (identical starting weights, text encoder and codec frozen) on the same
pre-built batches with AdamW, a cosine schedule and gradient clipping; steps alternate between the two so that
machine load hits both alike. The workbook's step adds the non-finite checks, the accelerate wrapper and the
null-condition masking; the printed ratio (workbook / plain, per step) should be about 1.

    python benchmarks/bench_train_step.py                 # 20 timed steps, batch 4 x 5 s
    python benchmarks/bench_train_step.py --steps 50 --batch 8 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per side")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per side first")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0, help="audio length per example (50 frames / s)")
    ap.add_argument("--model", default="tiny-musicgen")
    ap.add_argument("--cache", default=None, help="model cache folder (default: a temporary folder)")
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import get_scheduler

    from echoscript_utils import finetuning
    from echoscript_utils.config import load_config
    from echoscript_utils.models import load_musicgen

    cache = args.cache or tempfile.mkdtemp(prefix="bench-train-")
    cfg = load_config(None, {"run.device": "cpu", "run.cache_dir": cache, "training.model": args.model,
                             "training.batch_size": args.batch, "training.learning_rate": 1e-4,
                             "training.warmup_steps": 2})
    plain_model, processor = load_musicgen(args.model, cache_dir=cfg.paths.models)
    ours_model, _ = load_musicgen(args.model, cache_dir=cfg.paths.models)
    total = args.warmup + args.steps

    # the same batches for both sides: random codes, a caption each, no dropout
    rng = np.random.default_rng(0)
    k = plain_model.decoder.num_codebooks
    vocab = plain_model.config.decoder.vocab_size
    frames = int(args.seconds * plain_model.config.audio_encoder.frame_rate)
    spec = finetuning.BatchSpec(pad_id=plain_model.config.decoder.pad_token_id, segment_frames=frames,
                              cfg_dropout=0.0, melody_dropout=0.0, caption_dropout={})
    batches = []
    for i in range(total):
        items = [finetuning.ClipTokens(clip_id=str(j), codes=rng.integers(0, vocab, (k, frames)).astype(np.int16),
                                     genre="ambient", fields={}, caption=f"slow ambient pads number {i} {j}")
                 for j in range(args.batch)]
        batches.append(finetuning.make_batch(items, spec, rng, train=False))

    # plain transformers loop
    for p in plain_model.audio_encoder.parameters():
        p.requires_grad_(False)
    for p in plain_model.text_encoder.parameters():
        p.requires_grad_(False)
    plain_model.train()
    plain_model.audio_encoder.eval()
    plain_model.text_encoder.eval()
    params = [p for p in plain_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.01},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95))
    sched = get_scheduler("cosine", opt, num_warmup_steps=2, num_training_steps=total)

    def plain_step(batch):
        inputs = processor.tokenizer(batch["captions"], padding=True, return_tensors="pt")
        loss = plain_model(**inputs, labels=batch["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    run = finetuning.TrainingRun.from_model(cfg, ours_model, processor, total_updates=total)

    def ours_step(batch):
        return run.train_step([batch])["loss"]

    times = {"plain": [], "workbook": []}
    losses = {"plain": [], "workbook": []}
    for i, batch in enumerate(batches):
        for name, fn in (("plain", plain_step), ("workbook", ours_step)):
            torch.manual_seed(i)  # same dropout masks on both sides
            t0 = time.perf_counter()
            losses[name].append(fn(batch))
            dt = time.perf_counter() - t0
            if i >= args.warmup:
                times[name].append(dt)
    med = {n: statistics.median(v) for n, v in times.items()}
    tokens = args.batch * (frames + k - 1)
    print(f"model {args.model}, batch {args.batch} x {args.seconds:g} s ({tokens} frames/step), "
          f"{args.steps} timed steps per side, torch threads {torch.get_num_threads()}")
    for n in ("plain", "workbook"):
        print(f"  {n:9s} median {med[n] * 1e3:8.1f} ms/step  ({tokens / med[n]:8.0f} frames/s)")
    print(f"  ratio workbook / plain = {med['workbook'] / med['plain']:.3f}")
    diff = max(abs(a - b) for a, b in zip(losses["plain"], losses["workbook"], strict=True))
    print(f"  largest loss difference between the two over {total} steps: {diff:.2e}")


if __name__ == "__main__":
    main()
