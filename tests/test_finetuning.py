"""Fine-tuning: delay-pattern labels, sampler, dropout, token cache, the loop, checkpoints and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from echoscript_utils import audio, finetuning  # noqa: E402
from echoscript_utils.config import load_config  # noqa: E402
from echoscript_utils.dataset import write_metadata  # noqa: E402

SR = 32_000
GENRES = ["classical"] * 6 + ["electronic"] * 3 + ["ambient"] * 3


# --------------------------------------------------------------------------------------------- fixtures
def write_clips(run_dir: Path, *, seconds: float = 2.0, genres=GENRES) -> Path:
    """A curation stage folder with sine-tone clips and metadata (every 6th clip in the valid split)."""
    stage = run_dir / "01_curation"
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    rows = []
    for i, g in enumerate(genres):
        f = {"classical": 220.0, "electronic": 440.0, "ambient": 330.0}[g] * (1 + 0.05 * (i % 3))
        wav = (0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)[None]
        audio.write(stage / "clips" / f"c{i:02d}.wav", wav, SR)
        rows.append(dict(clip_id=f"c{i:02d}", track_id=f"t{i:02d}", source=f"t{i:02d}.wav",
                         path=f"clips/c{i:02d}.wav", start_s=0.0, duration_s=seconds, sample_rate=SR, channels=1,
                         split="valid" if i % 6 == 5 else "train",
                         truth={"genre": g, "moods": ["calming"], "instruments": ["piano"], "bpm": 90.0,
                                "key": "A", "mode": "minor"},
                         prompt=f"a {g} scene"))
    write_metadata(rows, stage / "metadata.jsonl")
    return stage


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def make_cfg(root: Path, cache: Path, **training):
    overrides = {"run.name": "t", "run.cache_dir": str(cache), "run.device": "cpu",
                 "training.epochs": 2, "training.batch_size": 4, "training.learning_rate": 3e-3,
                 "training.warmup_steps": 1, "training.segment_s": 1.0, "training.sample_prompt": None,
                 "training.tensorboard": False, "training.keep_checkpoints": 5}
    overrides.update({f"training.{k}": v for k, v in training.items()})
    cfg = load_config(None, overrides, output_root=root)
    if not (cfg.paths.root / "01_curation").is_dir():
        write_clips(cfg.paths.root)
    return cfg


@pytest.fixture(scope="module")
def tiny(cache_dir):
    from echoscript_utils.models import load_musicgen

    return load_musicgen("tiny-musicgen", cache_dir=cache_dir / "models")


def final_weights(cfg) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(cfg.paths.finetuning / "final" / "model.safetensors"))


# --------------------------------------------------------------------------------------------- labels
def test_delay_pattern_matches_transformers_delay_mask(tiny):
    model, _ = tiny
    pad = model.config.decoder.pad_token_id
    k = model.decoder.num_codebooks
    codes = torch.randint(0, pad, (2, k, 9))
    ours = finetuning.delay_pattern(codes, pad)  # [B, T + K - 1, K]
    assert ours.shape == (2, 9 + k - 1, k)
    # transformers' own layout: a BOS column, the delay mask, then the BOS column dropped
    with_bos = torch.cat([torch.full((2, k, 1), pad), codes], dim=-1).reshape(2 * k, -1)
    ids, mask = model.decoder.build_delay_pattern_mask(with_bos, pad, max_length=with_bos.shape[-1] + k)
    ref = model.decoder.apply_delay_pattern_mask(ids, mask).reshape(2, k, -1)[..., 1:]
    assert torch.equal(ours.transpose(1, 2)[..., : ref.shape[-1]], ref)
    # codebook k starts k frames late; the tail keeps every code
    for i in range(k):
        assert torch.equal(ours[:, i : i + 9, i], codes[:, i])
        assert (ours[:, :i, i] == pad).all()


def test_pad_positions_are_ignored_by_the_loss(tiny):
    model, processor = tiny
    pad = model.config.decoder.pad_token_id
    labels = finetuning.delay_pattern(torch.randint(0, pad, (1, 4, 6)), pad)
    tok = processor.tokenizer(["calm"], return_tensors="pt")
    out = model(**tok, labels=labels)
    logits = out.logits.reshape(1, 4, labels.shape[1], -1)
    masked = labels.masked_fill(labels == pad, -100)
    manual = sum(torch.nn.functional.cross_entropy(logits[0, i], masked[0, :, i], ignore_index=-100)
                 for i in range(4)) / 4
    assert torch.allclose(out.loss, manual, atol=1e-5)


# --------------------------------------------------------------------------------------------- sampler
def test_genre_sampler_balances_and_is_reproducible():
    genres = ["a"] * 80 + ["b"] * 15 + ["c"] * 5
    s = finetuning.GenreSampler(genres, temperature=1.0, seed=3, num_samples=6000)
    drawn = np.array(genres)[s.indices()]
    shares = {g: float((drawn == g).mean()) for g in "abc"}
    assert all(abs(v - 1 / 3) < 0.03 for v in shares.values()), shares
    assert np.array_equal(s.indices(), finetuning.GenreSampler(genres, temperature=1.0, seed=3,
                                                             num_samples=6000).indices())
    first = s.indices()
    s.set_epoch(1)
    assert not np.array_equal(first, s.indices())
    other = finetuning.GenreSampler(genres, temperature=1.0, seed=3, num_samples=6000)
    other.load_state_dict(s.state_dict())
    assert np.array_equal(other.indices(), s.indices())
    plain = finetuning.GenreSampler(genres, temperature=0.0, seed=3)
    assert sorted(plain.indices().tolist()) == list(range(100))  # a shuffle: every clip once


# --------------------------------------------------------------------------------------------- batches
def _items(n=4, melody=False):
    rng = np.random.default_rng(1)
    return [finetuning.ClipTokens(clip_id=str(i), codes=rng.integers(0, 64, (4, 100)).astype(np.int16),
                                genre="ambient", fields={"scene": "a dark alley", "genre": "ambient",
                                                         "moods": ["suspenseful"], "instruments": ["synthesizer"],
                                                         "bpm": 80.0, "key": "D minor"},
                                chroma=np.eye(12, dtype=np.float32)[rng.integers(0, 12, 16)] if melody else None)
            for i in range(n)]


def test_cfg_dropout_gives_null_condition_and_attribute_dropout_changes_captions(tiny):
    _, processor = tiny
    spec = finetuning.BatchSpec(pad_id=64, segment_frames=50, cfg_dropout=1.0, melody_dropout=0.0,
                              caption_dropout={})
    batch = finetuning.make_batch(_items(), spec, np.random.default_rng(0))
    assert batch["captions"] == [""] * 4 and batch["null_text"].all()
    assert batch["labels"].shape == (4, 50 + 3, 4)
    kwargs = finetuning.model_inputs(batch, processor, "cpu")
    assert int(kwargs["attention_mask"].sum()) == 0
    spec = finetuning.BatchSpec(pad_id=64, segment_frames=50, cfg_dropout=0.0, melody_dropout=0.0,
                              caption_dropout={"bpm": 1.0, "key": 1.0})
    batch = finetuning.make_batch(_items(), spec, np.random.default_rng(0))
    assert not batch["null_text"].any()
    assert all("dark alley" in c and "bpm" not in c and "minor" not in c for c in batch["captions"])
    kept = finetuning.make_batch(_items(), spec, np.random.default_rng(0), train=False)["captions"]
    assert all("80 bpm" in c and "D minor" in c for c in kept)  # validation keeps every attribute


def test_padding_of_a_short_cue_is_masked_out_of_the_loss(tiny):
    """A cue of 60 music frames padded to 100: its padded frames are -100 in the labels, crops stay inside the
    music, and whatever codes the padding holds, the loss is the same."""
    model, processor = tiny
    cue = _items(1)[0]
    cue.n_frames = 60
    full = _items(2)[1]
    spec = finetuning.BatchSpec(pad_id=64, segment_frames=None, cfg_dropout=0.0, melody_dropout=0.0,
                                caption_dropout={})
    batch = finetuning.make_batch([cue, full], spec, np.random.default_rng(0), train=False)
    lab = batch["labels"]
    assert lab.shape == (2, 100 + 3, 4)
    assert (lab[0, 60 + 3:] == -100).all()  # every codebook's padded frames (delay pattern: K - 1 more rows)
    for k in range(4):  # codebook k holds frame f at row f + k: music rows are real codes, then pad, then -100
        assert torch.equal(lab[0, k:60 + k, k], torch.from_numpy(cue.codes[k, :60].astype(np.int64)))
        after = lab[0, 60 + k:, k]
        assert ((after == 64) | (after == -100)).all()  # the pad id (masked by MusicGen's forward) or -100
    assert (lab[1] != -100).all()

    def loss(items):
        b = finetuning.make_batch(items, spec, np.random.default_rng(0), train=False)
        with torch.no_grad():
            return float(model(**finetuning.model_inputs(b, processor, "cpu")).loss)

    noisy = finetuning.ClipTokens(clip_id="0", codes=cue.codes.copy(), genre=cue.genre, fields=cue.fields,
                                  n_frames=60)
    noisy.codes[:, 60:] = np.random.default_rng(5).integers(0, 64, (4, 40))
    assert loss([cue, full]) == pytest.approx(loss([noisy, full]), rel=1e-6)
    unmasked = finetuning.ClipTokens(clip_id="0", codes=noisy.codes, genre=cue.genre, fields=cue.fields)
    assert loss([unmasked, full]) != pytest.approx(loss([noisy, full]), rel=1e-6)  # without the mask it would differ
    # training crops of the cue start and end inside its music
    spec.segment_frames = 50
    for seed in range(20):
        b = finetuning.make_batch([cue], spec, np.random.default_rng(seed))
        assert b["labels"].shape[1] == 50 + 3
        rows = b["labels"][0, :50, 0]
        starts = [s for s in range(0, 11) if torch.equal(rows, torch.from_numpy(cue.codes[0, s:s + 50].astype(np.int64)))]
        assert starts, seed


def test_melody_dropout_uses_the_null_chroma():
    spec = finetuning.BatchSpec(pad_id=64, segment_frames=50, cfg_dropout=0.0, melody_dropout=1.0,
                              caption_dropout={}, chroma_per_frame=7.8125 / 50)
    batch = finetuning.make_batch(_items(melody=True), spec, np.random.default_rng(0))
    chroma = batch["chroma"]
    assert chroma.shape[0] == 4 and chroma.shape[2] == 12
    assert (chroma[..., 0] == 1).all() and (chroma[..., 1:] == 0).all()
    spec.melody_dropout = 0.0
    assert not (finetuning.make_batch(_items(melody=True), spec, np.random.default_rng(0))["chroma"][..., 0] == 1).all()


# --------------------------------------------------------------------------------------------- cache
def test_token_cache_encodes_each_clip_once(tmp_path, cache_dir, tiny, monkeypatch):
    from echoscript_utils import models
    from echoscript_utils.finetuning import token_cache

    model, _ = tiny
    stage = write_clips(tmp_path, genres=["ambient"] * 3)
    paths = sorted((stage / "clips").glob("*.wav"))
    calls = []
    real = models.encode_audio
    monkeypatch.setattr(token_cache, "encode_audio", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = token_cache.encode_clips(model, paths, cache_dir=tmp_path / "c", batch_size=2, progress=False)
    assert len(calls) == 2 and first[0].dtype == np.int16 and first[0].shape == (4, 100)
    again = token_cache.encode_clips(model, paths, cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 2  # all hits
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    direct = models.encode_audio(model, audio.load(paths[0], sr=SR, mono=True)[0][None]).numpy()[0]
    assert (first[0] == direct).mean() > 0.9  # batched vs single convolutions may flip a near-tie code
    one_by_one = token_cache.encode_clips(model, paths, cache_dir=tmp_path / "d", progress=False)
    assert len(calls) == 5  # the default on a CPU: one clip per codec call
    assert all((a == b).mean() > 0.9 for a, b in zip(first, one_by_one, strict=True))
    forked = token_cache.encode_clips(model, paths, cache_dir=tmp_path / "e", progress=False, num_workers=2)
    assert len(calls) == 5  # encoded in two worker processes (which count in their own copies)
    assert all(np.array_equal(a, b) for a, b in zip(forked, one_by_one, strict=True))
    assert token_cache.encode_clips(model, paths, cache_dir=tmp_path / "e", progress=False)[2].shape == (4, 100)
    assert len(calls) == 5  # and stored there: all hits


# --------------------------------------------------------------------------------------------- the loop
def test_training_loss_falls_checkpoints_every_epoch_and_final_loads(tmp_path, cache_dir):
    from transformers import MusicgenForConditionalGeneration, MusicgenProcessor

    cfg = make_cfg(tmp_path, cache_dir, epochs=3, sample_prompt="calm piano", sample_duration_s=0.2,
                   tensorboard=True)
    summary = finetuning.train_from_config(cfg, progress=False, log=lambda m: None)
    stage = cfg.paths.finetuning
    logs = finetuning.read_logs(stage)
    assert list(logs["train"].columns) == list(finetuning.LOG_COLUMNS)
    assert len(logs["train"]) == summary["steps"] == 3 * summary["steps_per_epoch"]
    assert summary["train_loss_last_epoch"] < summary["train_loss_first_epoch"] - 0.05
    assert len(summary["val_loss"]) == 3 and summary["val_loss"][-1] < summary["val_loss"][0]
    ckpts = finetuning.checkpoint_table(stage)
    assert ckpts["completed_epochs"].tolist() == [1, 2, 3]
    assert set(logs["genre_mix"]["epoch"]) == {1, 2, 3}
    assert sorted(p.name for p in (stage / "samples").glob("*.wav")) == [f"epoch_0{i}.wav" for i in (1, 2, 3)]
    assert any((stage / "tensorboard").iterdir())
    model = MusicgenForConditionalGeneration.from_pretrained(stage / "final")
    MusicgenProcessor.from_pretrained(stage / "final")
    assert (stage / "metrics.json").is_file()
    # the decoder moved, the frozen codec and text encoder did not
    from echoscript_utils.models import load_musicgen

    base, _ = load_musicgen("tiny-musicgen", cache_dir=cfg.paths.models)
    sd, bsd = model.state_dict(), base.state_dict()
    assert not torch.equal(sd["decoder.lm_heads.0.weight"], bsd["decoder.lm_heads.0.weight"])
    assert all(torch.equal(sd[k], bsd[k]) for k in bsd if k.startswith(("audio_encoder.", "text_encoder.")))
    # a rerun resumes from the last checkpoint and changes nothing
    again = finetuning.train_from_config(cfg, progress=False, log=lambda m: None)
    assert again["resumed_from"] == ckpts["checkpoint"].iloc[-1]
    assert len(finetuning.read_logs(stage)["train"]) == summary["steps"]


def test_resumed_run_after_sigkill_ends_with_the_same_weights(tmp_path, cache_dir):
    opts = dict(save_every_steps=1, keep_checkpoints=2)
    ref = make_cfg(tmp_path / "ref", cache_dir, **opts)
    finetuning.train_from_config(ref, progress=False, log=lambda m: None)

    cfg = make_cfg(tmp_path / "killed", cache_dir, **opts)
    # the child gets the same parameters through a file
    params = tmp_path / "killed.yaml"
    import yaml

    data = cfg.to_dict()
    params.write_text(yaml.safe_dump(data))
    script = textwrap.dedent(f"""
        import time
        from echoscript_utils.config import load_config
        from echoscript_utils.finetuning import train_from_config
        cfg = load_config({str(params)!r})
        train_from_config(cfg, progress=False, on_step=lambda s: time.sleep(0.5))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    target = cfg.paths.finetuning / "checkpoints" / "step-00000003" / "state.json"
    deadline = time.time() + 120
    while not target.is_file() and child.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert child.poll() is None, child.stderr.read().decode()[-2000:]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not (cfg.paths.finetuning / "final").exists()

    cfg = load_config(params)
    summary = finetuning.train_from_config(cfg, progress=False, log=lambda m: None)
    assert summary["resumed_from"] is not None and int(summary["resumed_from"][5:]) >= 3
    a, b = final_weights(ref), final_weights(cfg)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= 1e-6, (worst, summary["resumed_from"], [k for k in a if not torch.equal(a[k], b[k])][:5])
    log = finetuning.read_logs(cfg.paths.finetuning)["train"]
    assert log["step"].tolist() == list(range(1, summary["steps"] + 1))


def test_nonfinite_loss_skips_the_step_then_stops_past_the_limit(tmp_path, cache_dir, monkeypatch):
    real = finetuning.TrainingRun._forward
    bad_steps = {2}

    def forward(self, batch):
        loss = real(self, batch)
        return loss * float("nan") if self.state.global_step + 1 in bad_steps else loss

    monkeypatch.setattr(finetuning.TrainingRun, "_forward", forward)
    cfg = make_cfg(tmp_path / "a", cache_dir, epochs=1, max_nonfinite_steps=1)
    summary = finetuning.train_from_config(cfg, progress=False, log=lambda m: None)
    assert summary["nonfinite_steps"] == 1
    log = finetuning.read_logs(cfg.paths.finetuning)["train"]
    assert log.loc[log["step"] == 2, "skipped"].item() == 1 and np.isnan(log.loc[log["step"] == 2, "loss"].item())

    bad_steps.update({1, 2, 3})
    cfg = make_cfg(tmp_path / "b", cache_dir, epochs=1, max_nonfinite_steps=1)
    with pytest.raises(finetuning.NonFiniteLossError, match="max_nonfinite_steps=1"):
        finetuning.train_from_config(cfg, progress=False, log=lambda m: None)


def test_lora_run_saves_adapter_and_merged_model(tmp_path, cache_dir):
    from transformers import MusicgenForConditionalGeneration

    cfg = make_cfg(tmp_path, cache_dir, epochs=1, **{"lora.enabled": True, "lora.r": 4, "lora.alpha": 8})
    finetuning.train_from_config(cfg, progress=False, log=lambda m: None)
    stage = cfg.paths.finetuning
    assert (stage / "adapter" / "adapter_config.json").is_file()
    merged = MusicgenForConditionalGeneration.from_pretrained(stage / "final")
    assert not any("lora" in k for k in merged.state_dict())


def test_melody_model_trains_with_chroma(tmp_path, cache_dir):
    from transformers import MusicgenMelodyForConditionalGeneration

    cfg = make_cfg(tmp_path, cache_dir, model="tiny-musicgen-melody", epochs=1, max_steps=2, melody_dropout=0.5)
    summary = finetuning.train_from_config(cfg, progress=False, log=lambda m: None)
    assert summary["steps"] == 2 and np.isfinite(summary["train_loss_last_epoch"])
    MusicgenMelodyForConditionalGeneration.from_pretrained(cfg.paths.finetuning / "final")
    assert any((cache_dir / "chroma").rglob("*.npy"))


def test_batch_size_must_split_into_accumulation(tmp_path, cache_dir):
    from echoscript_utils.errors import ConfigError

    cfg = make_cfg(tmp_path, cache_dir, batch_size=5, grad_accum=2)
    with pytest.raises(ConfigError, match="batch_size=5"):
        finetuning.train_from_config(cfg, progress=False, log=lambda m: None)


def test_settings_table_lists_the_papers_recipe(tmp_path, cache_dir):
    table = finetuning.settings_table(make_cfg(tmp_path, cache_dir))
    row = table.set_index("setting").loc["learning_rate"]
    assert row["paper"] == "5e-5" and row["this_run"] == "0.003"


def test_gradient_checkpointing_gives_the_same_first_step_and_bf16_autocast_runs(tmp_path, cache_dir, monkeypatch):
    plain = make_cfg(tmp_path / "plain", cache_dir, epochs=1, max_steps=1)
    ckpt = make_cfg(tmp_path / "ckpt", cache_dir, epochs=1, max_steps=1, gradient_checkpointing=True)
    a = finetuning.train_from_config(plain, progress=False, log=lambda m: None)
    b = finetuning.train_from_config(ckpt, progress=False, log=lambda m: None)
    assert a["train_loss_first_epoch"] == pytest.approx(b["train_loss_first_epoch"], abs=1e-6)
    wa, wb = final_weights(plain), final_weights(ckpt)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-5
    bf16 = make_cfg(tmp_path / "bf16", cache_dir, epochs=1, max_steps=1, precision="bf16", sample_prompt="calm piano",
                    sample_duration_s=0.2)
    import contextlib

    from echoscript_utils.finetuning import trainer

    seen, original = [], trainer.sampling_attention

    @contextlib.contextmanager
    def recording(model=None, *, half=None):
        with original(model, half=half):
            seen.append(torch.backends.cuda.cudnn_sdp_enabled())
            yield

    monkeypatch.setattr(trainer, "sampling_attention", recording)
    c = finetuning.train_from_config(bf16, progress=False, log=lambda m: None)
    assert c["precision"] == "bf16" and np.isfinite(c["train_loss_first_epoch"])
    assert c["train_loss_first_epoch"] == pytest.approx(a["train_loss_first_epoch"], abs=0.05)
    # the epoch's sample under bf16 autocast: written and finite, sampled with cuDNN's attention kernel off
    wav, _ = audio.load(bf16.paths.finetuning / "samples" / "epoch_01.wav")
    assert wav.size and np.isfinite(wav).all()
    assert seen == [False]


def test_changed_parameters_start_fresh_and_drop_old_checkpoints(tmp_path, cache_dir):
    first = make_cfg(tmp_path, cache_dir, epochs=2)
    finetuning.train_from_config(first, progress=False, log=lambda m: None)
    changed = make_cfg(tmp_path, cache_dir, epochs=1, learning_rate=1e-3)
    messages = []
    summary = finetuning.train_from_config(changed, progress=False, log=messages.append)
    assert summary["resumed_from"] is None
    assert any("other training parameters" in m for m in messages)
    assert finetuning.checkpoint_table(changed.paths.finetuning)["step"].tolist() == [summary["steps"]]
    assert len(finetuning.read_logs(changed.paths.finetuning)["train"]) == summary["steps"]
