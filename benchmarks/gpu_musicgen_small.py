"""GPU benchmark: the workbook's training step and sampler on MusicGen-small's real shapes (random weights), one call.

Builds MusicGen-small from its published configuration (T5-base text encoder, 32 kHz EnCodec with 4 codebooks of
2048, a 24-layer 1024-wide decoder: ~420 M decoder parameters) directly on the GPU with random weights, so no
download is needed, and times :meth:`echoscript_utils.finetuning.TrainingRun.train_step` at the paper's batch
(12 × 30 s) for each variant:

* precision fp16 vs bf16 (autocast through accelerate, fp32 master weights, AdamW fused),
* attention SDPA vs eager (and FlashAttention-2 when ``flash-attn`` is installed),
* with the token cache (codes ready) vs without it (EnCodec encodes the batch's audio inside every step),
* optionally gradient checkpointing, and the decoder under ``torch.compile``.

For each it prints tokens/s (decoder frames per second, 50 per second of audio), model FLOPs utilisation
(PaLM-style count: 6 × matmul parameters per token + 12 · layers · width · context for attention, plus the
frozen T5's forward), peak GPU memory, and the projected time of the paper's run: 5,000 clips × 30 s × 10
epochs, plus encoding every clip once (cache) or once per epoch (no cache). It also times the workbook's sampler
(:func:`echoscript_utils.musicgen_sampling.generate_batch`) on a batch of 8 × 30 s with classifier-free guidance
in each weight precision. Results go to a JSON file, rewritten after every measurement.

    python benchmarks/gpu_musicgen_small.py                      # the full set on one H100 / H200 (~4 min)
    python benchmarks/gpu_musicgen_small.py --quick              # bf16 + SDPA only
    python benchmarks/gpu_musicgen_small.py --quick --profile    # plus torch.profiler tables beside --out
    python benchmarks/gpu_musicgen_small.py --generation-only    # the sampler alone
    python benchmarks/gpu_musicgen_small.py --tiny --steps 2     # tiny shapes: exercises the script on a CPU
    python benchmarks/gpu_musicgen_small.py --dry                # print the shapes and FLOP counts, run nothing
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Dense bf16/fp16 tensor-core peaks (FLOP/s) by card name fragment; --peak-tflops overrides.
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
               "A10": 125.0, "V100": 125.0, "RTX 4090": 165.0}
MODEL_ID = "facebook/musicgen-small"
CAPTIONS = ["A tense night chase through rain-soaked streets. Cinematic score, suspenseful mood, featuring "
            "violin, percussion, 128 bpm, in D minor.",
            "Dawn over a quiet lake. Ambient score, calming mood, featuring piano, synthesizer, 70 bpm, in F major."]
#: The paper's run: ~5,000 training clips of 30 s, 10 epochs.
PAPER_CLIPS, PAPER_SECONDS, PAPER_EPOCHS = 5000, 30.0, 10


def small_config():
    """MusicGen-small's configuration as published (facebook/musicgen-small: t5-base + encodec_32khz + a 24 × 1024
    decoder), read by transformers from the copy of its ``config.json`` that the full-size dry run uses."""
    from echoscript_utils.models import fullsize

    return fullsize.build_config(MODEL_ID)


def tiny_config():
    from echoscript_utils.models import build_tiny_musicgen

    model, _ = build_tiny_musicgen(seed=0)
    return model.config


def flops_per_step(config, *, batch: int, frames: int, text_tokens: int) -> dict[str, float]:
    """Model FLOPs of one training step (forward + backward) and their parts."""
    d = config.decoder.hidden_size
    layers = config.decoder.num_hidden_layers
    ffn = config.decoder.ffn_dim
    k = config.decoder.num_codebooks
    vocab = config.decoder.vocab_size
    t5 = config.text_encoder
    # per decoder token: self-attention q,k,v,o (4 d²), cross-attention q,o (2 d²), FFN (2 d ffn), k heads
    per_token = layers * (6 * d * d + 2 * d * ffn) + k * d * vocab
    seq = frames + k - 1
    dec = 6 * per_token * batch * seq
    attn = 12 * layers * d * seq * batch * seq + 12 * layers * d * text_tokens * batch * seq
    cross_kv = 6 * layers * 2 * d * d * batch * text_tokens  # text states → cross-attention keys/values
    t5_params = t5.num_layers * (4 * t5.d_model * t5.num_heads * t5.d_kv + 2 * t5.d_model * t5.d_ff)
    text = 2 * t5_params * batch * text_tokens  # frozen: forward only
    return {"decoder_matmul": dec, "attention": attn, "cross_kv": cross_kv, "text_encoder": text,
            "total": dec + attn + cross_kv + text, "tokens": batch * seq}


def peak_flops(name: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    for frag, tf in PEAK_TFLOPS.items():
        if frag in name:
            return tf * 1e12
    return None


def build(config, attn: str, device: str):
    import torch
    from transformers import MusicgenForConditionalGeneration

    from echoscript_utils.models.fullsize import published
    from echoscript_utils.models.hub import _fill_decoder_start as fill_decoder_start

    with torch.device(device):
        model = MusicgenForConditionalGeneration._from_config(
            config, attn_implementation={"decoder": attn, "text_encoder": "eager" if attn == "eager" else "sdpa",
                                         "audio_encoder": "eager"}, dtype=torch.float32)
    if not getattr(config.decoder, "decoder_start_token_id", None):  # published: set in generation_config.json
        model.generation_config.decoder_start_token_id = published(MODEL_ID)["files"]["generation_config.json"][
            "decoder_start_token_id"]
        fill_decoder_start(model)  # what the workbook's loader does for the hub's configs
    return model


def make_batches(config, tokenizer, *, n: int, batch: int, frames: int, seed: int = 0):
    import numpy as np

    from echoscript_utils import finetuning

    rng = np.random.default_rng(seed)
    k, vocab = config.decoder.num_codebooks, config.decoder.vocab_size
    spec = finetuning.BatchSpec(pad_id=config.decoder.pad_token_id, segment_frames=frames, cfg_dropout=0.1,
                              melody_dropout=0.0, caption_dropout={})
    captions = CAPTIONS
    out = []
    for _ in range(n):
        items = [finetuning.ClipTokens(clip_id=str(j), codes=rng.integers(0, vocab, (k, frames)).astype(np.int16),
                                     genre="cinematic", fields={}, caption=captions[j % 2]) for j in range(batch)]
        out.append(finetuning.make_batch(items, spec, rng, train=True))
    text_tokens = len(tokenizer(captions[0])["input_ids"])
    return out, text_tokens


def profile_table(prof, path: str, title: str, *, wall_s: float) -> str:
    """Write the profiler's operator table (by own device time, or CPU time without a GPU) to ``path``; return a
    one-line summary: the share of ``wall_s`` that the GPU spent in kernels, and the three costliest operators."""
    events = prof.key_averages()
    on_gpu = any(e.self_device_time_total > 0 for e in events)
    key = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    busy_s = sum(e.self_device_time_total for e in events if e.self_cpu_time_total == 0) / 1e6  # kernels alone
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# {title}: {wall_s:.3f} s wall, {busy_s:.3f} s of device kernels\n")
        f.write(events.table(sort_by=key, row_limit=40))
    top = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:3]
    return (f"{title}: GPU busy {busy_s / wall_s:.0%} of {wall_s:.3f} s; top: "
            + ", ".join(f"{e.key[:48]} {getattr(e, key) / 1e6:.3f} s" for e in top) + f" ({path})")


def profiled(work, path: str, title: str, *, device: str) -> str:
    """Run ``work()`` under torch.profiler (CPU, and CUDA on a GPU), write its table to ``path``, and print and
    return :func:`profile_table`'s summary line."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    with profile(activities=acts) as prof:
        t0 = time.perf_counter()
        work()
        sync()
        wall = time.perf_counter() - t0
    line = profile_table(prof, path, title, wall_s=wall)
    print(line, flush=True)
    return line


def run_variant(args, config, tokenizer, *, precision: str, attn: str, cache: bool, checkpointing: bool,
                compile_decoder: bool = False, profile: str | None = None) -> dict:
    import torch

    from echoscript_utils import finetuning
    from echoscript_utils.config import load_config
    from echoscript_utils.models import encode_audio
    from echoscript_utils.models.hub import unwrap

    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    cfg = load_config(None, {"run.device": device, "training.precision": precision,
                             "training.attn_implementation": attn, "training.batch_size": args.batch,
                             "training.learning_rate": 5e-5, "training.warmup_steps": 1,
                             "training.gradient_checkpointing": checkpointing})
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = build(config, attn, device)
    build_s = time.perf_counter() - t0
    frames = int(round(args.seconds * config.audio_encoder.frame_rate))
    batches, text_tokens = make_batches(config, tokenizer, n=args.warmup + args.steps, batch=args.batch,
                                        frames=frames)
    sr = config.audio_encoder.sampling_rate
    run = finetuning.TrainingRun.from_model(cfg, model, tokenizer, total_updates=args.warmup + args.steps + 3)
    if compile_decoder:  # torch.compile of the 24-layer decoder: the first (warm-up) step pays the compilation
        base = unwrap(run.model)
        base.decoder = torch.compile(base.decoder)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times, encode_times, losses = [], [], []
    first_step_s = None
    for i, batch in enumerate(batches):
        sync()
        t0 = time.perf_counter()
        if not cache:  # the codec encodes the batch's audio inside the step, as a loop without the cache must
            wav = torch.randn(args.batch, 1, int(args.seconds * sr), device=device) * 0.1
            te = time.perf_counter()
            codes = encode_audio(unwrap(run.model), wav)[..., :frames]
            sync()
            encode_times.append(time.perf_counter() - te)
            batch = dict(batch, labels=finetuning.delay_pattern(codes.cpu(), config.decoder.pad_token_id))
        out = run.train_step([batch])
        sync()
        dt = time.perf_counter() - t0
        losses.append(out["loss"])
        first_step_s = dt if first_step_s is None else first_step_s
        if i >= args.warmup:
            times.append(dt)
    step_s = statistics.median(times)
    profile_line = None
    if profile and cache:
        def three_steps(run=run, last=batches[-3:]):  # bound now: both names are deleted below
            for batch in last:
                run.train_step([batch])

        profile_line = profiled(three_steps, profile, f"3 training steps, {precision} {attn}", device=device)
    fl = flops_per_step(config, batch=args.batch, frames=frames, text_tokens=text_tokens)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = peak_flops(name, args.peak_tflops)
    tokens_per_s = fl["tokens"] / step_s
    result = {
        "precision": precision, "attention": attn, "token_cache": cache, "gradient_checkpointing": checkpointing,
        "compiled_decoder": compile_decoder, "first_step_s": first_step_s, "profile": profile_line,
        "batch": args.batch, "seconds": args.seconds, "frames_per_example": frames + config.decoder.num_codebooks - 1,
        "step_s": step_s, "tokens_per_s": tokens_per_s, "tflops_per_s": fl["total"] / step_s / 1e12,
        "mfu": fl["total"] / step_s / peak if peak else None, "build_s": build_s,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "loss_first": losses[0], "loss_last": losses[-1], "skipped_steps": sum(1 for v in losses if v != v),
        "encode_s_per_batch": statistics.median(encode_times) if encode_times else None,
    }
    del run, model, batches
    gc.collect()
    return result


def measure_encode(args, config) -> float:
    """Seconds for EnCodec to encode one batch of ``args.batch`` × ``args.seconds`` audio (the cache fill rate)."""
    import torch

    from echoscript_utils.models import encode_audio

    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    model = build(config, "sdpa", device)
    wav = torch.randn(args.batch, 1, int(args.seconds * config.audio_encoder.sampling_rate), device=device) * 0.1
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    encode_audio(model, wav)
    sync()
    times = []
    for _ in range(max(1, min(3, args.steps))):
        t0 = time.perf_counter()
        encode_audio(model, wav)
        sync()
        times.append(time.perf_counter() - t0)
    del model
    gc.collect()
    return statistics.median(times)


def measure_generation(args, precisions: list[str], *, profile: str | None = None) -> list[dict]:
    """Sampling through the workbook's sampler (:func:`echoscript_utils.musicgen_sampling.generate_batch`): one
    batch of ``args.gen_batch`` prompts × ``args.gen_seconds`` s with classifier-free guidance at the colab
    profile's settings (guidance 3, top-k 250), once per weight precision. The model is built once at the
    published size with random weights (:func:`echoscript_utils.models.fullsize.build_model`)."""
    import numpy as np
    import torch

    from echoscript_utils.models import build_tiny_musicgen, fullsize
    from echoscript_utils.musicgen_sampling import frame_rate

    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    if args.tiny:
        model, processor = build_tiny_musicgen(seed=0)
    else:
        model, processor = fullsize.build_model(MODEL_ID), fullsize.standin_tokenizer(MODEL_ID)
    attn = getattr(model.decoder.config, "_attn_implementation", None)
    prompts = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.gen_batch)]
    steps = int(np.ceil(args.gen_seconds * frame_rate(model))) + 4
    out = []
    for precision in precisions:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        model = model.to(device=device, dtype=dtype)  # the sampler keeps half precision off cuDNN's attention
        out.append(_time_generation(args, model, processor, prompts, precision=precision, attn=attn, steps=steps,
                                    device=device, profile=profile))
    del model
    gc.collect()
    return out


def _time_generation(args, model, processor, prompts, *, precision, attn, steps, device, profile) -> dict:
    import numpy as np
    import torch

    from echoscript_utils.musicgen_sampling import generate_batch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    generate_batch(model, processor, prompts, seed=0, duration_s=1.0, guidance_scale=3.0, top_k=250)  # warm-up
    sync()
    profile_line = None
    if profile:  # one second of sampling under the profiler, apart from the timed run
        profile_line = profiled(lambda: generate_batch(model, processor, prompts, seed=0, duration_s=1.0,
                                                       guidance_scale=3.0, top_k=250),
                                f"{profile}-generate-{precision}.txt", f"1 s of sampling, {precision}", device=device)
    if args.gen_seconds <= 0:
        return {"precision": precision, "profile": profile_line}
    t0 = time.perf_counter()
    wav = generate_batch(model, processor, prompts, seed=0, duration_s=args.gen_seconds, guidance_scale=3.0,
                         top_k=250)
    sync()
    wall = time.perf_counter() - t0
    r = {"precision": precision, "attention": attn, "batch": args.gen_batch, "seconds": args.gen_seconds,
         "guidance_scale": 3.0, "top_k": 250, "decoder_steps": steps, "wall_s": wall,
         "audio_s_per_s": args.gen_batch * args.gen_seconds / wall, "decoder_steps_per_s": steps / wall,
         "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
         "finite": bool(np.isfinite(wav).all()), "rms": float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))),
         "profile": profile_line}
    print(f"generate {precision:5s} {attn}: batch {r['batch']} × {r['seconds']:g} s with CFG in {wall:.1f} s "
          f"({r['audio_s_per_s']:.1f} s of audio per s, {r['decoder_steps_per_s']:.0f} steps/s"
          + (f", peak {r['peak_memory_gb']:.1f} GB)" if r["peak_memory_gb"] is not None else ")"), flush=True)
    return r


def project(result: dict, encode_batch_s: float, *, batch: int, frame_rate: float, k: int) -> dict:
    """Projected wall time of the paper's 5,000 × 30 s × 10 epochs at this variant's speed."""
    tokens = PAPER_CLIPS * PAPER_EPOCHS * (int(PAPER_SECONDS * frame_rate) + k - 1)
    train_s = tokens / result["tokens_per_s"]
    encode_once = PAPER_CLIPS / batch * encode_batch_s
    if result["token_cache"]:
        total = train_s + encode_once  # every clip encoded once, then epochs read tokens
    else:
        total = train_s  # the measured step already includes encoding every batch, every epoch
    return {"paper_tokens": tokens, "paper_train_min": train_s / 60, "paper_cache_fill_min": encode_once / 60,
            "paper_total_min": total / 60}


def summary(report: dict) -> list[str]:
    """The closing lines: the headline variant against the goal and against eager attention (the plain
    transformers path) measured in the same run, and each sampling precision against float32."""
    ok = [r for r in report["results"] if "error" not in r]
    lines = []
    if ok:
        head = ok[0]
        mfu = f"{head['mfu']:.1%}" if head["mfu"] is not None else "n/a"
        lines.append(f"headline {head['precision']} {head['attention']} with the token cache: "
                     f"{head['tokens_per_s']:.0f} tokens/s, MFU {mfu}; the paper's run {head['paper_total_min']:.1f} min "
                     f"(goal: at most 30 min at 40 % MFU or more)")
        eager = next((r for r in ok if r["attention"] == "eager" and r["precision"] == head["precision"]
                      and r["token_cache"] and not r.get("gradient_checkpointing")), None)
        if eager:
            lines.append(f"  {head['tokens_per_s'] / eager['tokens_per_s']:.2f}x eager attention "
                         f"({eager['tokens_per_s']:.0f} tokens/s) in this run")
    timed = [g for g in report["generation"] if "wall_s" in g]
    base = next((g for g in timed if g["precision"] == "fp32"), None)
    for g in timed:
        ratio = f", {base['wall_s'] / g['wall_s']:.2f}x fp32's speed" if base and g is not base else ""
        lines.append(f"sampling {g['precision']}: {g['batch']} x {g['seconds']:g} s in {g['wall_s']:.1f} s, "
                     f"{g['audio_s_per_s']:.1f}x real time{ratio}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (runs on a CPU in seconds)")
    ap.add_argument("--dry", action="store_true", help="print shapes and FLOP counts only")
    ap.add_argument("--quick", action="store_true", help="only bf16 + SDPA, with and without the cache")
    ap.add_argument("--cpu", action="store_true", help="stay on the CPU even if a GPU is present")
    ap.add_argument("--batch", type=int, default=12, help="examples per step (paper: 12)")
    ap.add_argument("--seconds", type=float, default=30.0, help="audio per example (paper: 30)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    ap.add_argument("--checkpointing", action="store_true", help="also time gradient checkpointing (bf16, SDPA)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="card's dense bf16 peak, if not in the table")
    ap.add_argument("--compile", action="store_true", help="also time the headline variant with the decoder under "
                    "torch.compile")
    ap.add_argument("--profile", action="store_true", help="profile 3 steps of the headline variant and 1 s of "
                    "sampling in each precision (torch.profiler tables beside --out)")
    ap.add_argument("--generation-only", action="store_true", help="time sampling alone, no training step")
    ap.add_argument("--gen-batch", type=int, default=8, help="prompts per generation batch (colab profile: 8)")
    ap.add_argument("--gen-seconds", type=float, default=30.0, help="seconds generated per prompt")
    ap.add_argument("--gen-precisions", default="fp32,bf16",
                    help="weight precisions to generate in (fp32 is what the workbook's stages load); '' skips")
    ap.add_argument("--out", default="gpu_musicgen_small.json", help="where the results JSON goes (rewritten "
                    "after every measurement, so a run cut short keeps what it measured)")
    args = ap.parse_args()

    import importlib.util

    import torch
    import transformers

    from echoscript_utils.models import build_tiny_tokenizer, fullsize

    config = tiny_config() if args.tiny else small_config()
    if args.tiny and args.seconds == 30.0:
        args.seconds = 2.0
    if args.tiny and args.batch == 12:
        args.batch = 2
    if args.tiny and args.gen_seconds == 30.0:
        args.gen_seconds = 1.0
    if args.tiny and args.gen_batch == 8:
        args.gen_batch = 2
    tokenizer = build_tiny_tokenizer(kind="t5") if args.tiny else fullsize.standin_tokenizer(MODEL_ID)
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    frames = int(round(args.seconds * config.audio_encoder.frame_rate))
    fl = flops_per_step(config, batch=args.batch, frames=frames, text_tokens=32)
    print(f"device: {name}; torch {torch.__version__}; shapes: {'tiny' if args.tiny else 'musicgen-small'}; "
          f"batch {args.batch} × {args.seconds:g} s = {fl['tokens']} decoder tokens/step; "
          f"{fl['total'] / 1e12:.2f} TFLOP/step (decoder {fl['decoder_matmul'] / 1e12:.2f}, attention "
          f"{fl['attention'] / 1e12:.2f}, text {fl['text_encoder'] / 1e12:.3f})")
    if args.dry:
        return 0
    if device == "cpu" and not args.tiny:
        print("no GPU: the real shapes take minutes per step on a CPU; use --tiny to exercise the script")
        return 2
    precisions = ["bf16"] if args.quick else ["bf16", "fp16"]
    attns = ["sdpa"] if args.quick else ["sdpa", "eager"]
    if importlib.util.find_spec("flash_attn") is not None and device == "cuda" and not args.quick:
        attns.append("flash_attention_2")
    if device == "cpu":
        precisions = ["no", "bf16"] if not args.quick else ["no"]
    plan = [(p, a, True, False) for p in precisions for a in attns]
    plan.append((precisions[0], "sdpa", False, False))
    if args.checkpointing:
        plan.append((precisions[0], "sdpa", True, True))
    plan = [(p, a, c, k, False) for p, a, c, k in plan]
    if args.compile:
        plan.append((precisions[0], "sdpa", True, False, True))
    stem = args.out[:-5] if args.out.endswith(".json") else args.out
    report = {"device": name, "torch": torch.__version__, "transformers": transformers.__version__,
              "tiny": args.tiny, "batch": args.batch, "seconds": args.seconds,
              "paper_run": f"{PAPER_CLIPS} clips × {PAPER_SECONDS:g} s × {PAPER_EPOCHS} epochs",
              "results": [], "generation": []}

    def save() -> None:
        tmp = args.out + ".part"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.out)

    if not args.generation_only:  # the codec's rate feeds the training projections only
        encode_batch_s = report["encode_batch_s"] = measure_encode(args, config)
        print(f"EnCodec: {encode_batch_s:.3f} s to encode {args.batch} × {args.seconds:g} s")
        save()
    header = (f"{'precision':9s} {'attention':17s} {'cache':5s} {'ckpt':4s} {'step s':>7s} {'tokens/s':>9s} "
              f"{'TFLOP/s':>8s} {'MFU':>6s} {'peak GB':>8s} {'paper run':>10s}")
    gen_precisions = [p for p in args.gen_precisions.split(",") if p]
    if args.generation_only:
        report["generation"] = measure_generation(args, gen_precisions, profile=stem if args.profile else None)
        save()
        plan = []
    for i, (precision, attn, cache, ckpt, comp) in enumerate(plan):
        if i == 1 and gen_precisions:  # generation right after the headline variant: a run cut short has both
            report["generation"] = measure_generation(args, gen_precisions, profile=stem if args.profile else None)
            save()
        if i in (0, 1):
            print(header)
        try:
            r = run_variant(args, config, tokenizer, precision=precision, attn=attn, cache=cache,
                            checkpointing=ckpt, compile_decoder=comp,
                            profile=f"{stem}-train.txt" if args.profile and i == 0 else None)
        except Exception as exc:  # out of memory, an attention kernel that refuses fp32 weights, ...
            why = "out of memory" if isinstance(exc, torch.cuda.OutOfMemoryError) else \
                f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            print(f"{precision:9s} {attn:17s} {str(cache):5s} {str(ckpt):4s} {'compiled ' if comp else ''}{why}",
                  flush=True)
            report["results"].append({"precision": precision, "attention": attn, "token_cache": cache,
                                      "error": why})
            save()
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        r |= project(r, encode_batch_s, batch=args.batch, frame_rate=config.audio_encoder.frame_rate,
                     k=config.decoder.num_codebooks)
        report["results"].append(r)
        save()
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        mem = f"{r['peak_memory_gb']:.1f}" if r["peak_memory_gb"] is not None else "n/a"
        print(f"{precision:9s} {attn:17s} {str(cache):5s} {str(ckpt):4s} {r['step_s']:7.3f} "
              f"{r['tokens_per_s']:9.0f} {r['tflops_per_s']:8.1f} {mfu:>6s} {mem:>8s} "
              f"{r['paper_total_min']:8.1f} min" + (f" (compiled; first step {r['first_step_s']:.0f} s)" if comp else ""),
              flush=True)
    for line in summary(report):
        print(line)
    print(f"results: {args.out}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
