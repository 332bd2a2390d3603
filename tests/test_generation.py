"""Generation: identical seeds → identical audio, sidecars, skip on rerun, long form, MIDI-sketch control."""

import shutil
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from echoscript_utils import audio, generation, melody, musicgen_sampling
from echoscript_utils.artifacts import read_json
from echoscript_utils.config import load_config
from echoscript_utils.errors import InputError
from echoscript_utils.models import resolve_model

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _cfg(tmp_path, model_cache, **over):
    base = {"run.cache_dir": str(model_cache), "generation.duration_s": 1.0, "generation.seeds": [0, 1],
            "generation.use_eval_prompts": False, "generation.batch_size": 3, "generation.top_k": 20,
            "curation.target_lufs": -14.0}  # no curation stage here: a fixed target instead of the corpus's
    base.update(over)
    cfg = load_config(REPO / "params" / "demo.yaml", base, output_root=tmp_path)
    cfg.paths.ensure()
    return cfg


def _fake_final(cfg):
    src = resolve_model("tiny-musicgen", cache_dir=cfg.paths.models, seed=cfg.seed)
    shutil.copytree(src, cfg.paths.finetuning / "final")


def test_scenarios_are_the_papers_five():
    names = [s["name"] for s in generation.load_scenarios()]
    assert names == ["suspense", "tranquillity", "action", "melancholy", "triumph"]


def test_bad_scenario_file(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("- name: a\n")
    with pytest.raises(InputError, match="scene"):
        generation.load_scenarios(p)


def test_missing_finetuned_model_is_a_clear_error(tmp_path, model_cache):
    cfg = _cfg(tmp_path, model_cache)
    with pytest.raises(InputError, match="04_finetuning"):
        generation.model_plan(cfg)


def test_stage_writes_every_model_item_seed_with_sidecars(tmp_path, model_cache):
    cfg = _cfg(tmp_path, model_cache)
    _fake_final(cfg)
    res = generation.run_generation(cfg, progress=False)
    n_items = len(generation.load_scenarios())
    assert len(res.files) == 2 * n_items * 2  # models × scenarios × seeds
    for label in ("musicgen", "echoscript"):
        wavs = sorted((cfg.paths.generation / label).glob("*.wav"))
        assert len(wavs) == n_items * 2
        for w in wavs:
            x, sr = audio.load(w)
            assert sr == 44100 and x.shape == (1, 44100)  # exactly duration_s at the curation rate, mono
            side = read_json(w.with_suffix(".json"))
            for key in ("prompt", "scenario", "seed", "model", "checkpoint", "settings", "duration_s", "lufs",
                        "wall_time_s"):
                assert key in side, key
            assert side["model"] == label and side["settings"]["guidance_scale"] == cfg.generation.guidance_scale
    # identical prompts and seeds for both models
    a = read_json(cfg.paths.generation / "musicgen" / "action_s1.json")
    b = read_json(cfg.paths.generation / "echoscript" / "action_s1.json")
    assert a["prompt"] == b["prompt"] and a["seed"] == b["seed"] == 1
    # side by side: one row per scenario, one existing file per model, one embedded player per cell
    pairs = generation.pairs_table(res)
    assert list(pairs["scenario"]) == [s["name"] for s in generation.load_scenarios()]
    assert all(Path(p).is_file() for col in ("musicgen", "echoscript") for p in pairs[col])
    from echoscript_utils.notebook import audio_grid

    assert audio_grid(pairs, row="scenario", columns=["musicgen", "echoscript"]).data.count("<audio") == 2 * n_items
    # rerun: nothing regenerated, files untouched
    before = {p: p.stat().st_mtime_ns for p in cfg.paths.generation.rglob("*.wav")}
    res2 = generation.run_generation(cfg, progress=False)
    assert not res2.files["generated"].any()
    assert before == {p: p.stat().st_mtime_ns for p in cfg.paths.generation.rglob("*.wav")}


def test_identical_seeds_give_identical_audio(tmp_path, model_cache):
    outs = []
    for run in ("a", "b"):
        cfg = _cfg(tmp_path / run, model_cache, **{"generation.seeds": [7]})
        items = generation.generation_items(cfg)[:2]
        generation.generate_for_model(cfg, "musicgen", "tiny-musicgen", items, out_dir=cfg.paths.generation,
                                      progress=False)
        outs.append(audio.load(cfg.paths.generation / "musicgen" / "suspense_s7.wav")[0])
    assert np.array_equal(outs[0], outs[1])
    cfg = _cfg(tmp_path / "c", model_cache, **{"generation.seeds": [8]})
    generation.generate_for_model(cfg, "musicgen", "tiny-musicgen", generation.generation_items(cfg)[:2],
                                  out_dir=cfg.paths.generation, progress=False)
    other = audio.load(cfg.paths.generation / "musicgen" / "suspense_s8.wav")[0]
    assert not np.array_equal(outs[0], other)


def test_worker_processes_write_the_files_one_process_writes(tmp_path, model_cache):
    """With run.num_workers = 2 the jobs are shared between two forked processes: every WAV is byte for byte the
    one a single process writes (each job seeds its own sampling), and the sidecars agree but for the timing."""
    written = {}
    for workers in (1, 2):
        cfg = _cfg(tmp_path / f"w{workers}", model_cache, **{"run.num_workers": workers, "generation.batch_size": 1})
        items = generation.generation_items(cfg)[:3]
        df = generation.generate_for_model(cfg, "musicgen", "tiny-musicgen", items, out_dir=cfg.paths.generation,
                                           progress=False)
        assert len(df) == 6 and df["generated"].all()
        folder = cfg.paths.generation / "musicgen"
        written[workers] = {p.name: p.read_bytes() for p in sorted(folder.glob("*.wav"))}
        written[workers] |= {p.name: {k: v for k, v in read_json(p).items() if k != "wall_time_s"}
                             for p in sorted(folder.glob("*.json"))}
    assert len(written[1]) == 12 and written[1] == written[2]


def test_a_job_failing_in_a_worker_is_raised_and_named(tmp_path, model_cache):
    cfg = _cfg(tmp_path, model_cache, **{"run.num_workers": 2})
    jobs = [musicgen_sampling.RenderJob(prompts=[f"p{i}"], seed=i, stems=[f"f{i}"], key_parts=[(i,)], records=[{}])
            for i in range(4)]

    def render(model, processor, job):
        if job.seed in (1, 3):
            raise InputError(f"job {job.seed} cannot be rendered")
        return np.zeros((1, 1, 3200), np.float32)

    named = []
    settings = {"target_lufs": -14.0, "loudness_policy": "limit", "max_limiting_db": 6.0}
    with pytest.raises(InputError, match="job 1 cannot"):  # the first failure in job order
        musicgen_sampling.render_files(cfg, "m", "tiny-musicgen", jobs, out_dir=tmp_path / "out", settings=settings,
                                       render=render, progress=False, on_job=named.append)
    assert [j.seed for j in named] == [1]
    assert sorted(p.name for p in (tmp_path / "out" / "m").glob("*.wav")) == ["f0.wav", "f2.wav"]


def test_long_form_continuation_reaches_the_length(tmp_path, model_cache):
    cfg = _cfg(tmp_path, model_cache, **{"generation.seeds": [0], "generation.long_form_s": 2.5,
                                         "generation.continuation_context_s": 0.5, "generation.crossfade_s": 0.1})
    items = generation.generation_items(cfg)[:1]
    df = generation.generate_for_model(cfg, "musicgen", "tiny-musicgen", items, out_dir=cfg.paths.generation,
                                       progress=False)
    assert df["duration_s"].iloc[0] == pytest.approx(2.5, abs=1e-3)


def test_midi_sketch_conditions_the_melody_model(tmp_path, model_cache):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    for i, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72]):  # C major scale, 0.25 s a note
        inst.notes.append(pretty_midi.Note(velocity=100, pitch=pitch, start=i * 0.25, end=(i + 1) * 0.25))
    pm.instruments.append(inst)
    midi_path = tmp_path / "scale.mid"
    pm.write(str(midi_path))
    cfg = _cfg(tmp_path, model_cache, **{"generation.melody_model": "tiny-musicgen-melody",
                                         "generation.melody_midi": str(midi_path), "generation.seeds": [0],
                                         "generation.duration_s": 2.0, "generation.sketch_scenarios": 1})
    df = generation.run_sketch(cfg, progress=False)
    assert len(df) == 1
    side = read_json(cfg.paths.generation / "sketch" / "suspense_s0.json")
    assert side["melody"] == "midi:scale.mid" and side["model_id"] == "tiny-musicgen-melody"
    chroma = melody.chroma_from_midi(midi_path)
    # the condition the model saw follows the scale: C, D, E, F, G, A, B, C
    seen = [int(np.argmax(r)) for r in chroma if r.sum() > 0]
    assert seen[0] == 0 and 11 in seen and sorted(set(seen)) == [0, 2, 4, 5, 7, 9, 11]
    # a different sketch changes the generated audio (same seed, same prompt)
    pm2 = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst2 = pretty_midi.Instrument(program=0)
    inst2.notes.append(pretty_midi.Note(velocity=100, pitch=66, start=0, end=2.0))
    pm2.instruments.append(inst2)
    pm2.write(str(tmp_path / "fsharp.mid"))
    cfg2 = _cfg(tmp_path / "other", model_cache, **{"generation.melody_model": "tiny-musicgen-melody",
                                                     "generation.melody_midi": str(tmp_path / "fsharp.mid"),
                                                     "generation.seeds": [0], "generation.duration_s": 2.0,
                                                     "generation.sketch_scenarios": 1})
    generation.run_sketch(cfg2, progress=False)
    a = audio.load(cfg.paths.generation / "sketch" / "suspense_s0.wav")[0]
    b = audio.load(cfg2.paths.generation / "sketch" / "suspense_s0.wav")[0]
    assert not np.array_equal(a, b)


def test_standardise_matches_curation_format():
    sr = 32000
    wav = (0.5 * np.sin(2 * np.pi * 220 * np.arange(sr * 2) / sr))[None].astype(np.float32)
    out = generation.standardise(wav, sr, sr_out=44100, channels="stereo", target_lufs=-14.0, peak_db=-1.0)
    assert out.shape == (2, 88200)
    assert audio.loudness(out, 44100) == pytest.approx(-14.0, abs=0.3) or audio.peak_db(out) <= -0.99


def test_standardise_uses_the_curated_loudness_policy(tmp_path, model_cache):
    from echoscript_utils.artifacts import write_metrics

    cfg = _cfg(tmp_path, model_cache, **{"curation.target_lufs": "auto"})
    with pytest.raises(InputError, match="01_curation"):
        generation.corpus_loudness(cfg)
    write_metrics(cfg.paths.curation, {"loudness": {"target_lufs": -21.3}})
    loud = generation.corpus_loudness(cfg)
    assert loud == {"target_lufs": -21.3, "ceiling_dbtp": -1.0, "policy": "limit", "max_limiting_db": 6.0}
    assert generation.generation_settings(cfg)["target_lufs"] == -21.3
    # a peaky generation (a quiet tone, one click at full scale) reaches the target through the limiter, under
    # the ceiling; gain alone would stop about 5 dB short
    sr = 32000
    wav = (0.1 * np.sin(2 * np.pi * 220 * np.arange(sr * 4) / sr))[None].astype(np.float32)
    wav[0, sr] = 0.99
    out, rec = generation.standardise(wav, sr, sr_out=44100, channels="mono", target_lufs=-19.0,
                                      peak_db=-1.0, return_record=True)
    assert audio.loudness(out, 44100) == pytest.approx(-19.0, abs=0.1)
    assert audio.true_peak_db(out, 44100) <= -1.0 + 1e-3 and rec.limiter_gain_reduction_db > 0


def test_crossfade_is_equal_power_and_length_preserving():
    a = np.ones((1, 100), np.float32)
    b = np.ones((1, 100), np.float32)
    out = musicgen_sampling.crossfade_concat(a, b, 20)
    assert out.shape == (1, 180)
    assert out.max() <= np.sqrt(2) + 1e-6 and out.min() >= 1.0 - 1e-6


@pytest.mark.parametrize("dtype, cudnn_attention", [("float32", True), ("bfloat16", False)])
def test_half_precision_sampling_keeps_attention_off_cudnn(dtype, cudnn_attention):
    """cuDNN's attention kernel is slow on every new key length, and sampling has a new one at every step (on an
    H200, 8 × 30 s in bf16 took 122 s with it, 24–32 s without): half-precision sampling runs with that kernel
    switched off, float32 sampling leaves torch's choice alone, and the switch is restored afterwards."""
    import torch

    from echoscript_utils.models import build_tiny_musicgen

    model, processor = build_tiny_musicgen(seed=0)
    model = model.to(getattr(torch, dtype))
    seen = []
    hook = model.decoder.register_forward_pre_hook(lambda m, a: seen.append(torch.backends.cuda.cudnn_sdp_enabled()))
    try:
        wav = musicgen_sampling.generate_batch(model, processor, ["a calm lake at dawn"], seed=0, duration_s=0.1,
                                               top_k=20)
    finally:
        hook.remove()
    assert seen and set(seen) == {cudnn_attention}
    assert torch.backends.cuda.cudnn_sdp_enabled()
    assert wav.shape[0] == 1 and np.isfinite(wav).all()
