"""Model and dataset cards from a run folder, and publishing them to a fake hub on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
from loopback import LoopbackServer

from echoscript_utils import audio, cards
from echoscript_utils.artifacts import read_json, write_json
from echoscript_utils.cards.facts import _model_facts
from echoscript_utils.cli import main
from echoscript_utils.config import load_config
from echoscript_utils.dataset import export_hf, load_metadata, write_metadata
from echoscript_utils.errors import InputError

hub = pytest.importorskip("huggingface_hub")
from huggingface_hub import DatasetCard, ModelCard  # noqa: E402

TOKEN = "hf_plantedSecretTokenForTheFakeHub0123"
SR = 16_000
# track → (genre, moods, split); two clips for t00 and t03
TRACKS = {"t00": ("ambient", ["calming"], "train"), "t01": ("electronic", ["uplifting"], "train"),
          "t02": ("classical", ["melancholic"], "train"), "t03": ("ambient", ["suspenseful"], "train"),
          "t04": ("electronic", ["calming"], "valid"), "t05": ("classical", ["uplifting"], "eval")}


# ============================================================================================== the run
def _clip_rows(stage: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    t = np.arange(int(0.5 * SR)) / SR
    rows = []
    for track, (genre, moods, split) in TRACKS.items():
        for k in range(2 if track in ("t00", "t03") else 1):
            clip = f"{track}-{k:03d}"
            wav = (0.2 * np.sin(2 * np.pi * (220 + 40 * len(rows)) * t) + 0.01 * rng.standard_normal(len(t)))
            audio.write(stage / "clips" / f"{clip}.wav", wav.astype(np.float32)[None], SR)
            rows.append(dict(clip_id=clip, track_id=track, source=f"music/{track}.wav", path=f"clips/{clip}.wav",
                             start_s=0.0, duration_s=0.5, sample_rate=SR, channels=1, split=split,
                             truth={"genre": genre, "moods": moods, "instruments": ["piano"], "bpm": 90.0,
                                    "key": "A", "mode": "minor"}))
    return rows


METRICS_01 = {
    "n_inputs": 7, "n_files_kept": 6, "n_skipped": 1, "skipped_by_kind": {"near-duplicate": 1}, "n_tracks": 6,
    "n_clips": 8, "clip_hours": 0.0011, "input_hours_kept": 0.0011, "clips_per_split": {"train": 6, "valid": 1, "eval": 1},
    "tracks_per_split": {"train": 4, "valid": 1, "eval": 1}, "short_cues_padded": 0, "silent_clips_dropped": 0,
    "n_clips_with_truth": 8, "tempo": {"accuracy": 0.75, "n": 8, "octave_errors": 1, "tolerance": 0.04},
    "key": {"accuracy": 0.625, "weighted_score": 0.7125, "n": 8},
    "loudness": {"policy": "limit", "target_requested": "auto", "target_lufs": -17.25, "ceiling_dbtp": -1.0,
                 "clips_limited": 2, "clips_reaching_target": 8, "clips_below_target": 0, "max_true_peak_dbtp": -1.02},
    "settings": {"clip_s": 30.0, "hop_s": None, "sample_rate": 44100, "channels": "mono", "loudness_policy": "limit",
                 "max_limiting_db": 6.0, "short_cue_share": 0.5, "dedupe": True, "dedupe_similarity": 0.97,
                 "splits": {"train": 0.7, "valid": 0.15, "eval": 0.15}, "seed": 1234, "target_lufs": "auto"},
}
METRICS_02 = {
    "accuracy": {"n_clips_with_truth": 8, "taggers": {
        "musicnn": {"genre_accuracy": 0.625, "genre_majority_baseline": 0.375, "genre_macro_f1": 0.5512,
                    "moods_macro_f1": 0.3333, "instruments_macro_f1": 0.8124, "n_clips": 8},
        "combined": {"genre_accuracy": 0.625, "genre_majority_baseline": 0.375, "genre_macro_f1": 0.5512,
                     "moods_macro_f1": 0.3333, "instruments_macro_f1": 0.8124, "n_clips": 8,
                     "per_label_f1": {"genre": {"ambient": 0.8, "classical": 0.0},
                                      "moods": {"calming": 0.4444, "uplifting": 0.9}}}}},
    "overrides": {"applied": 3, "rows": 4, "unmatched": []},
    "prompts": {"provider": "offline", "n_prompts": 40.0, "unique_share": 1.0, "distinct_2": 0.4123},
    "taggers": {"musicnn": "musicnn-port1+MTT_musicnn"},
    "taggers_unavailable": {"panns": "annotation.panns_checkpoint is not set"},
}
METRICS_03 = {"clap_model": "tiny-clap", "gate": {"max_mean_cosine": 0.95, "mean_pairwise_cosine": 0.6067,
                                                  "passed": True, "model": "tiny-clap"},
              "keep_rule": "percentile", "keep_value": 10.0, "n_clips": 8, "n_kept": 7, "n_dropped": 1,
              "clap_score_mean": 0.4572, "recall_at_1": 0.125, "recall_chance_at_1": 0.125}
METRICS_04 = {"epochs": 3, "steps": 12, "batch_size": 4, "micro_batch": 2, "processes": 1, "precision": "no",
              "train_clips": 5, "valid_clips": 1, "train_loss_first_epoch": 4.1345, "train_loss_last_epoch": 3.8158,
              "val_loss_last": 3.7391, "nonfinite_steps": 0, "seconds": 14.85, "model": "tiny-musicgen"}
METRICS_06 = {
    "reference": {"source": "01_curation clips, split eval (1 clips)"},
    "fad": [{"embedding": "musicnn", "model": "musicgen", "fad": 157.0506989, "ci_low": 128.973938, "ci_high": 187.874182,
             "n_ref": 1, "n_gen": 4, "flags": "clips<min", "confidence": 0.95},
            {"embedding": "musicnn", "model": "echoscript", "fad": 157.8408486, "ci_low": 130.1216648,
             "ci_high": 188.2277337, "n_ref": 1, "n_gen": 4, "flags": "clips<min", "confidence": 0.95},
            {"embedding": "clap", "model": "echoscript", "fad": 0.019052425, "ci_low": 0.007649772,
             "ci_high": 0.028981083, "n_ref": 1, "n_gen": 4, "flags": "", "confidence": 0.95}],
    "kad": [{"embedding": "musicnn", "model": "echoscript", "kad": 2.345678, "ci_low": 1.5, "ci_high": 3.25,
             "n_ref": 1, "n_gen": 4}],
    "clap_score": [{"model": "echoscript", "score": 0.3836048, "ci_low": 0.3274149, "ci_high": 0.4371417, "n": 4,
                    "confidence": 0.95}],
    "paired_difference": [{"embedding": "musicnn", "a": "echoscript", "b": "musicgen", "difference": 0.79014966,
                           "ci_low": -1.99814443, "ci_high": 3.58645125, "significant": False, "confidence": 0.95}],
}
METRICS_07_REAL = {"simulated": False, "confidence": 0.95, "baseline": "musicgen",
                   "study": {"participants": 24, "ratings": 1920, "scenarios": 5},
                   "dimension_means": {"echoscript": {"MOS": 3.9275, "REL": 3.8775},
                                       "musicgen": {"MOS": 3.585, "REL": 3.67}},
                   "preference_shares": {"REL": {"echoscript": {"share": 0.62, "ci_low": 0.52, "ci_high": 0.71,
                                                                "p_value": 0.021}}},
                   "tests": {"echoscript": {"MOS": {"mean_diff": 0.3425, "p_holm": 0.00028}}}}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """A tiny MusicGen saved as a transformers folder, with a card that names its licence."""
    from echoscript_utils.models import load_musicgen

    root = tmp_path_factory.mktemp("tiny")
    model, processor = load_musicgen("tiny-musicgen", cache_dir=root / "cache")
    folder = root / "base"
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n\n# a base\n", encoding="utf-8")
    return folder


def build_run(root: Path, name: str, tiny_folder: Path, *, demo: bool, listening=None, **overrides):
    """A run folder with every product the cards read (stages 01–07), without running the stages."""
    music = root / "music"
    music.mkdir(parents=True, exist_ok=True)
    opts = {"run.name": name, "run.cache_dir": str(root / "cache"),
            "training.model": "tiny-musicgen" if demo else str(tiny_folder),
            "data.input_dir": None if demo else str(music), **overrides}
    cfg = load_config(None, opts, output_root=root / "outputs")
    p = cfg.paths
    rows = _clip_rows(p.curation)
    write_metadata(rows, p.curation / "metadata.jsonl")
    export_hf(load_metadata(p.curation), p.curation / "exports" / "hf")
    write_json(p.metrics("01_curation"), METRICS_01)
    tagged = [{**r, "tags": {"genre": "ambient", "moods": ["calming"], "instruments": ["piano"]}} for r in rows]
    write_metadata(tagged, p.annotation / "metadata.jsonl")
    write_json(p.metrics("02_annotation"), METRICS_02)
    kept = [{**r, "kept": r["clip_id"] != "t02-000"} for r in tagged]
    write_metadata(kept, p.alignment / "metadata.jsonl")
    write_json(p.metrics("03_alignment"), METRICS_03)
    final = p.finetuning / "final"
    shutil.copytree(tiny_folder, final)
    (final / "README.md").unlink()
    write_json(p.metrics("04_finetuning"), METRICS_04)
    (p.finetuning / "genre_mix.csv").write_text(
        "epoch,genre,drawn,drawn_share,expected_share,corpus_share\n1,ambient,3,0.6,0.5,0.8\n"
        "1,electronic,2,0.4,0.5,0.2\n", encoding="utf-8")
    time.sleep(0.01)
    write_json(p.metrics("05_generation"), {"settings": {"top_k": 50}})
    write_json(p.metrics("06_evaluation"), METRICS_06)
    write_json(p.metrics("07_listening"), listening if listening is not None else {"simulated": True})
    return cfg


@pytest.fixture(scope="module")
def real_cfg(tmp_path_factory, tiny_folder):
    cfg = build_run(tmp_path_factory.mktemp("real"), "real", tiny_folder, demo=False, listening=METRICS_07_REAL)
    cards.write_cards(cfg)
    return cfg


@pytest.fixture(scope="module")
def demo_cfg(tmp_path_factory, tiny_folder):
    cfg = build_run(tmp_path_factory.mktemp("demo"), "demo", tiny_folder, demo=True)
    cards.write_cards(cfg)
    return cfg


def model_card_path(cfg) -> Path:
    return cfg.paths.finetuning / "final" / "README.md"


def dataset_card_path(cfg) -> Path:
    return cfg.paths.curation / "exports" / "hf" / "README.md"


def g4(v: float) -> str:
    return f"{v:.4g}"


# ============================================================================================== cards
def test_cards_parse_back_with_the_hub_loaders(real_cfg, demo_cfg):
    for cfg in (real_cfg, demo_cfg):
        text = model_card_path(cfg).read_text(encoding="utf-8")
        assert text.startswith("---\n")
        model = ModelCard.load(model_card_path(cfg))
        meta = model.data.to_dict()
        for key in ("license", "library_name", "pipeline_tag", "tags"):
            assert meta.get(key), key
        assert meta["pipeline_tag"] == "text-to-audio" and meta["library_name"] == "transformers"
        data = DatasetCard.load(dataset_card_path(cfg)).data.to_dict()
        for key in ("license", "task_categories", "tags", "configs", "size_categories"):
            assert data.get(key), key
        splits = {f["split"]: f["path"] for f in data["configs"][0]["data_files"]}
        assert splits == {"train": "train/*.arrow", "validation": "validation/*.arrow", "test": "test/*.arrow"}
        for path in splits.values():  # every data_files pattern matches the export's files
            assert list((cfg.paths.curation / "exports" / "hf").glob(path)), path


def test_real_run_card_names_base_licence_and_model_index(real_cfg):
    card = ModelCard.load(model_card_path(real_cfg))
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0"  # the local base model's card names it; the fine-tune inherits it
    assert cards.DEMO_TAG not in meta["tags"]
    assert "Demo model" not in card.text
    results = {(r.metric_type, r.metric_config): r.metric_value for r in card.data.eval_results}
    fad = {r["embedding"]: r["fad"] for r in METRICS_06["fad"] if r["model"] == "echoscript"}
    assert results == {**{("fad", e): v for e, v in fad.items()}, ("kad", "musicnn"): 2.345678}


def test_musicgen_base_is_cc_by_nc_and_inherited(real_cfg):
    facts = read_json(real_cfg.paths.root / cards.FACTS_NAME)
    cfg = load_config(None, {"run.name": "real", "training.model": "facebook/musicgen-small",
                             "data.input_dir": str(real_cfg.paths.root)}, output_root=real_cfg.paths.root.parent)
    facts["model"] = _model_facts(cfg, real_cfg.paths.finetuning / "final")
    card = cards.render_model_card(facts)
    assert card.data.license == "cc-by-nc-4.0" and card.data.base_model == "facebook/musicgen-small"
    assert "inherits that licence" in card.text and "Non-commercial use only" in card.text


def test_numbers_in_the_model_card_equal_the_metrics(real_cfg):
    text = ModelCard.load(model_card_path(real_cfg)).text
    for r in METRICS_06["fad"]:
        row = f"| {r['embedding']} | {r['model']} | {g4(r['fad'])} | [{g4(r['ci_low'])}, {g4(r['ci_high'])}] |"
        assert row in text, row
    k = METRICS_06["kad"][0]
    assert f"| musicnn | echoscript | {g4(k['kad'])} | [{g4(k['ci_low'])}, {g4(k['ci_high'])}] |" in text
    c = METRICS_06["clap_score"][0]
    assert f"| echoscript | {g4(c['score'])} | [{g4(c['ci_low'])}, {g4(c['ci_high'])}] | 4 |" in text
    d = METRICS_06["paired_difference"][0]
    assert f"| musicnn | {g4(d['difference'])} | [{g4(d['ci_low'])}, {g4(d['ci_high'])}] |" in text
    m = METRICS_04
    assert f"| epochs / optimiser steps | {m['epochs']} / {m['steps']} |" in text
    assert f"| batch (effective) | {m['batch_size']} (micro-batch {m['micro_batch']} " in text
    assert f"{g4(real_cfg.training.learning_rate)}, {real_cfg.training.scheduler} with" in text
    assert f"| validation loss (last epoch) | {g4(m['val_loss_last'])} |" in text
    assert f"{m['train_clips']} training clips" in text and f"{m['valid_clips']} validation clips" in text
    # the training captions: tags win over ground truth (every tag here says ambient / calming)
    assert "- genres: ambient 100 %" in text and "- moods: calming 100 %" in text
    assert "- genres the weighted sampler actually drew (epoch 1): ambient 60 %, electronic 40 %" in text
    # a real listening study is reported with its numbers
    assert "24 participants" in text and f"| echoscript | {g4(3.9275)} | {g4(3.8775)} |" in text


def test_numbers_in_the_dataset_card_equal_the_metrics(real_cfg):
    text = DatasetCard.load(dataset_card_path(real_cfg)).text
    m = METRICS_01
    assert f"{m['n_clips']} clips of 30 s ({g4(m['clip_hours'])} h) cut from {m['n_tracks']} tracks" in text
    for ours, theirs in (("train", "train"), ("valid", "validation"), ("eval", "test")):
        assert f"| {ours} | {theirs} | {m['tracks_per_split'][ours]} | {m['clips_per_split'][ours]} |" in text
    assert "Tracks found in more than one split: 0." in text
    assert f"chosen {g4(m['loudness']['target_lufs'])} LUFS" in text
    acc = METRICS_02["accuracy"]["taggers"]["musicnn"]
    assert (f"| musicnn | {g4(acc['genre_accuracy'])} (majority {g4(acc['genre_majority_baseline'])}) | "
            f"{g4(acc['genre_macro_f1'])} | {g4(acc['moods_macro_f1'])} | {g4(acc['instruments_macro_f1'])} |") in text
    assert "3 corrections applied from 4 override" in text
    gate = METRICS_03["gate"]
    assert f"mean pairwise cosine {g4(gate['mean_pairwise_cosine'])} against a limit of" in text
    assert "**passed**" in text and f"{METRICS_03['n_kept']} clips kept" in text
    assert "classical (genre, F1 0)" in text and "calming (moods, F1 0.4444)" in text
    assert "uplifting (moods" not in text  # F1 0.9: not something the taggers miss
    assert "offline templates (no language model)" in text


def test_demo_cards_say_plainly_what_they_are(demo_cfg):
    model = ModelCard.load(model_card_path(demo_cfg))
    assert {cards.DEMO_TAG, "random-weights"} <= set(model.data.tags)
    head = model.text.strip().splitlines()[:6]
    assert head[0].startswith("# ") and "Demo model" in head[2]
    assert "tiny random model" in model.text and "--allow-demo" in model.text
    assert not model.data.eval_results  # meaningless numbers stay out of the hub's structured results
    assert "simulated" in model.text and "participants" not in model.text
    data = DatasetCard.load(dataset_card_path(demo_cfg))
    assert cards.DEMO_TAG in data.data.tags and "generated demo corpus" in data.text
    assert data.data.license == "unknown" and "licence is **unknown**" in data.text


def test_evaluation_of_an_earlier_model_is_left_out(tmp_path, tiny_folder):
    cfg = build_run(tmp_path, "stale", tiny_folder, demo=False)
    weights = cfg.paths.finetuning / "final" / "model.safetensors"
    later = time.time() + 5
    os.utime(weights, (later, later))  # the model was retrained after stage 06 measured the previous one
    cards.write_cards(cfg)
    text = model_card_path(cfg).read_text(encoding="utf-8")
    assert "has not run for this model yet" in text and "FAD ↓" not in text
    assert not ModelCard.load(model_card_path(cfg)).data.eval_results


def test_licences_file_and_unknown_licences(tmp_path, tiny_folder):
    lic = tmp_path / "licences.csv"
    lic.write_text("track_id,licence,url,attribution\nt00,CC BY 4.0,https://example.org/t00,Ana\n"
                   "t01,cc-by-4.0,,\nt02,Studio Custom Licence,,\n", encoding="utf-8")
    cfg = build_run(tmp_path, "lic", tiny_folder, demo=False, **{"data.licences": str(lic)})
    cards.write_cards(cfg)
    card = DatasetCard.load(dataset_card_path(cfg))
    assert card.data.license == ["cc-by-4.0", "other", "unknown"]
    assert card.data.license_name == "Studio Custom Licence"
    assert "| t00 | `music/t00.wav` | train | 2 | CC BY 4.0 | Ana https://example.org/t00 |" in card.text
    assert "3 of 6 tracks have no licence on record" in card.text
    sources = (cfg.paths.curation / "exports" / "hf" / "sources.csv").read_text(encoding="utf-8").splitlines()
    assert sources[0].startswith("track_id,source,split,clips") and len(sources) == 7
    bad = tmp_path / "bad.csv"
    bad.write_text("track,licence\nt00,mit\n", encoding="utf-8")
    cfg_bad = load_config(None, {"run.name": "lic", "data.licences": str(bad), "training.model": str(tiny_folder),
                                 "data.input_dir": str(tmp_path)}, output_root=tmp_path / "outputs")
    with pytest.raises(InputError, match=r"bad\.csv: data\.licences needs a 'licence' column and a 'track_id'"):
        cards.write_cards(cfg_bad)


def test_licences_do_not_change_stage_hashes(tmp_path):
    from echoscript_utils.pipeline import stage_params_hash

    a = load_config(None, {}, output_root=tmp_path)
    b = load_config(None, {"data.licences": str(tmp_path / "l.csv")}, output_root=tmp_path)
    assert stage_params_hash(a, "01_curation") == stage_params_hash(b, "01_curation")
    c = load_config(None, {"data.labels": str(tmp_path / "l.csv")}, output_root=tmp_path)
    assert stage_params_hash(a, "01_curation") != stage_params_hash(c, "01_curation")


def test_usage_snippet_runs_on_the_folder(real_cfg, tmp_path, monkeypatch):
    text = ModelCard.load(model_card_path(real_cfg)).text
    code = re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)
    assert cards.MODEL_PLACEHOLDER in code
    code = code.replace(cards.MODEL_PLACEHOLDER, str(real_cfg.paths.finetuning / "final"))
    code = code.replace("seconds = 8", "seconds = 1")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "model-card-snippet", "exec"), {})
    import soundfile as sf

    info = sf.info(str(tmp_path / "cue.wav"))
    assert info.samplerate == 32_000 and 0.8 < info.duration <= 1.0


def test_report_shows_both_cards(real_cfg):
    from echoscript_utils.report import write_report

    html = write_report(real_cfg).read_text(encoding="utf-8")
    assert "<section class='card' id='model-card'>" in html and "<section class='card' id='dataset-card'>" in html
    assert "<th>FAD ↓</th>" in html and "<td>157.8</td>" in html  # Markdown tables rendered, not shown as text
    assert "<h2>Splits</h2>" in html and "| split |" not in html


# ============================================================================================== publishing
class FakeHub(LoopbackServer):
    """The hub endpoints ``create_repo`` and ``create_commit`` call, on 127.0.0.1, keeping what was committed.

    ``POST /api/repos/create``, ``POST /api/validate-yaml``, ``POST /api/{type}s/{repo}/preupload/{rev}`` (every
    file answered as a regular git blob, so its bytes travel base64 inside the commit) and
    ``POST /api/{type}s/{repo}/commit/{rev}`` (ndjson). Anything else is recorded and answered 404.
    """

    def __init__(self):
        self.requests: list[dict] = []
        self.repos: dict[str, dict[str, bytes]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.requests.append({"method": "GET", "path": self.path,
                                      "headers": {k.lower(): v for k, v in self.headers.items()}})
                self._send(404, {"error": "not faked"})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.requests.append({"method": "POST", "path": self.path, "body": raw,
                                      "headers": {k.lower(): v for k, v in self.headers.items()}})
                path = self.path.split("?")[0]
                base = f"http://127.0.0.1:{fake.server.server_address[1]}"
                if path == "/api/repos/create":
                    body = json.loads(raw)
                    prefix = "datasets/" if body.get("type") == "dataset" else ""
                    self._send(200, {"url": f"{base}/{prefix}{body['organization']}/{body['name']}"})
                elif path == "/api/validate-yaml":
                    self._send(200, {"errors": [], "warnings": []})
                elif m := re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/preupload/[^/]+", path):
                    files = json.loads(raw)["files"]
                    self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                                "oid": None} for f in files]})
                elif m := re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/commit/[^/]+", path):
                    key = f"{m.group(1)}/{m.group(2)}"
                    store = fake.repos.setdefault(key, {})
                    for line in raw.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            store[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    self._send(200, {"commitUrl": f"{base}/{m.group(2)}/commit/{'0' * 40}", "commitOid": "0" * 40})
                else:
                    self._send(404, {"error": "not faked"})

        super().__init__(Handler)
        self.endpoint = self.url


@pytest.fixture
def online(monkeypatch, tmp_path):
    """The hub client online (the suite runs with HF_HUB_OFFLINE=1), no stored login, the planted token in HF_TOKEN."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)


def _folder_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def test_publish_pushes_each_folder_with_its_card(real_cfg, online, capsys, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(real_cfg.paths.root, run)
    lines = []
    with FakeHub() as fake:
        pushed = cards.publish(run, model_repo="studio/score-model", dataset_repo="studio/score-clips",
                               endpoint=fake.endpoint, log=lines.append)
    assert set(pushed) == {"model", "dataset"}
    final, export = run / "04_finetuning" / "final", run / "01_curation" / "exports" / "hf"
    model_files, data_files = fake.repos["models/studio/score-model"], fake.repos["datasets/studio/score-clips"]
    assert set(model_files) == _folder_files(final) and "model.safetensors" in model_files
    assert set(data_files) == _folder_files(export) and ".rows_hash" not in data_files
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert model_files[name] == (final / name).read_bytes()
    assert data_files["train/data-00000-of-00001.arrow"] == (export / "train" / "data-00000-of-00001.arrow").read_bytes()
    # the pushed cards name their repos and link each other; the cards on disk are now those
    model_card = ModelCard(model_files["README.md"].decode())
    assert 'repo = "studio/score-model"' in model_card.text and cards.MODEL_PLACEHOLDER not in model_card.text
    assert model_card.data.datasets == ["studio/score-clips"]
    assert model_card.data.eval_results[0].dataset_type == "studio/score-clips"
    data_card = DatasetCard(data_files["README.md"].decode())
    assert 'load_dataset("studio/score-clips")' in data_card.text and "studio/score-model" in data_card.text
    assert (final / "README.md").read_bytes() == model_files["README.md"]
    assert read_json(run / cards.FACTS_NAME)["published"] == {"model": "studio/score-model",
                                                              "dataset": "studio/score-clips"}
    # every request carried the token; nothing printed or logged it
    paths = [r["path"].split("?")[0] for r in fake.requests]
    assert paths.count("/api/repos/create") == 2 and sum("/commit/" in p for p in paths) == 2
    assert all(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in fake.requests)
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err + "\n".join(lines)
    assert len(lines) == 2 and "studio/score-model" in lines[0]


def test_rewritten_cards_keep_their_published_links(real_cfg, online, tmp_path):
    run = tmp_path / "outputs"
    shutil.copytree(real_cfg.paths.root, run / "real")
    with FakeHub() as fake:
        cards.publish(run / "real", model_repo="studio/m", endpoint=fake.endpoint, log=lambda _: None)
    cfg = load_config(None, {"run.name": "real", "training.model": real_cfg.training.model,
                             "data.input_dir": str(real_cfg.data.input_dir)}, output_root=run)
    cards.write_cards(cfg)
    assert 'repo = "studio/m"' in model_card_path(cfg).read_text(encoding="utf-8")


@pytest.mark.parametrize("case", ["no token", "invalid name", "slashes", "demo model", "demo data", "empty card",
                                  "offline"])
def test_refusals_are_one_line_and_upload_nothing(case, real_cfg, demo_cfg, online, monkeypatch, tmp_path, capsys):
    from huggingface_hub import constants

    cfg = demo_cfg if case.startswith("demo") else real_cfg
    run = tmp_path / "run"
    shutil.copytree(cfg.paths.root, run)
    kw = {"model_repo": "studio/score-model"}
    expected = {"no token": "no Hugging Face token", "invalid name": "is not a valid hub repo name",
                "slashes": "is not a valid hub repo name", "demo model": "refusing to publish a demo model",
                "demo data": "refusing to publish a demo dataset", "empty card": "card for studio/score-model would be empty",
                "offline": "offline mode"}[case]
    if case == "no token":
        monkeypatch.delenv("HF_TOKEN")
    elif case == "invalid name":
        kw = {"model_repo": "studio/score model!"}
    elif case == "slashes":
        kw = {"dataset_repo": "a/b/c"}
    elif case == "demo data":
        kw = {"dataset_repo": "studio/clips"}
    elif case == "empty card":
        facts = read_json(run / cards.FACTS_NAME)
        facts["training"] = None  # 04_finetuning/metrics.json was missing when the cards were written
        write_json(run / cards.FACTS_NAME, facts)
    elif case == "offline":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = {p: p.read_bytes() for p in run.rglob("README.md")}
    with FakeHub() as fake, pytest.raises(cards.PublishRefused) as err:
        cards.publish(run, endpoint=fake.endpoint, log=print, **kw)
    message = str(err.value)
    assert expected in message and "\n" not in message and TOKEN not in message
    assert fake.requests == []
    assert {p: p.read_bytes() for p in run.rglob("README.md")} == before
    assert TOKEN not in "".join(capsys.readouterr())


def test_allow_demo_pushes_a_demo_model(demo_cfg, online, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_cfg.paths.root, run)
    with FakeHub() as fake:
        cards.publish(run, model_repo="me/tiny", allow_demo=True, endpoint=fake.endpoint, log=lambda _: None)
    pushed = ModelCard(fake.repos["models/me/tiny"]["README.md"].decode())
    assert cards.DEMO_TAG in pushed.data.tags and "Demo model" in pushed.text


def test_cli_publish_refusal_is_one_line(demo_cfg, online, capsys, monkeypatch):
    from huggingface_hub import constants

    with FakeHub() as fake:
        monkeypatch.setattr(constants, "ENDPOINT", fake.endpoint)  # were it to push, it would push here
        code = main(["publish", str(demo_cfg.paths.root), "--model", "me/tiny"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: refusing to publish a demo model to me/tiny") and "\n" not in err
        assert main(["publish", str(demo_cfg.paths.root)]) == 2
        assert "nothing to publish" in capsys.readouterr().err
    assert fake.requests == []


def test_training_push_is_refused_before_training_for_a_demo_model(tmp_path, online):
    from echoscript_utils import finetuning

    cfg = load_config(None, {"run.name": "t", "training.push_to_hub": "me/tiny", "run.cache_dir": str(tmp_path / "c")},
                      output_root=tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(cards.PublishRefused, match="refusing to publish a demo model to me/tiny"):
        finetuning.train_from_config(cfg, progress=False)
    assert time.perf_counter() - t0 < 5 and not (cfg.paths.finetuning / "final").exists()


def test_training_option_pushes_final_with_its_card(tmp_path, tiny_folder, online, monkeypatch):
    from huggingface_hub import constants

    from echoscript_utils import finetuning

    music = tmp_path / "music"
    music.mkdir()
    cfg = load_config(None, {"run.name": "t", "run.cache_dir": str(tmp_path / "c"), "run.device": "cpu",
                             "training.model": str(tiny_folder), "data.input_dir": str(music),
                             "training.epochs": 1, "training.max_steps": 1, "training.batch_size": 2,
                             "training.segment_s": 0.5, "training.sample_prompt": None,
                             "training.tensorboard": False, "training.push_to_hub": "studio/ft"},
                      output_root=tmp_path)
    write_metadata(_clip_rows(cfg.paths.curation), cfg.paths.curation / "metadata.jsonl")
    with FakeHub() as fake:
        monkeypatch.setattr(constants, "ENDPOINT", fake.endpoint)  # the hub client's default endpoint
        finetuning.train_from_config(cfg, progress=False, log=lambda _: None)
    files = fake.repos["models/studio/ft"]
    assert set(files) == _folder_files(cfg.paths.finetuning / "final")
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    card = ModelCard(files["README.md"].decode())
    assert card.data.license == "apache-2.0" and "has not run for this model yet" in card.text
    assert "| epochs / optimiser steps | 1 / 1 |" in card.text
    assert (cfg.paths.finetuning / "final" / "README.md").read_bytes() == files["README.md"]
