"""Full-size dry run offline: every hub model the workbook loads, at its published size, with random weights.

The parameter files for GPUs (``params/colab_a100.yaml``, ``params/paper.yaml``) name hub checkpoints:
``facebook/musicgen-small``, ``facebook/musicgen-melody``, ``laion/larger_clap_music_and_speech``, the PANNs
Cnn14 and VGGish weight URLs. Size-dependent faults (memory, positional limits, frame rates, processor settings,
file layouts) would first show on a user's paid GPU. This module rebuilds each checkpoint from its *published*
configuration (``echoscript_utils/data/published_models.yaml``, with its sources) with random weights and writes it
where the real download would land:

* hub ids → a Hugging Face hub cache (``HF_HUB_CACHE`` layout:
  ``models--facebook--musicgen-small/refs/main`` + ``snapshots/<rev>/config.json, generation_config.json,
  preprocessor_config.json, model.safetensors, tokenizer files``), so ``from_pretrained("facebook/musicgen-small")``
  itself resolves it with ``HF_HUB_OFFLINE=1``;
* weight URLs → ``<models cache>/panns/Cnn14_mAP=0.431.pth`` and ``<models cache>/vggish/vggish-10086976.pth``,
  the files :func:`echoscript_utils.models.hub.resolve_checkpoint` looks for before downloading.

The stages then load every model through exactly the code path a hub id or URL takes. Tokenizers are stand-ins
(the real vocabularies are not shipped): the workbook's offline tokenizers padded to the real vocabulary size with
the real special-token ids. Random weights mean the *numbers* of such a run are meaningless; what it checks is
that every stage runs at the real sizes. Keep such a cache apart from real downloads (``run.cache_dir``).

>>> cfg = load_config("params/smoke_fullsize.yaml")              # doctest: +SKIP
>>> ensure_mirror(cfg)                                            # doctest: +SKIP
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import os
import shutil
import tempfile
import time
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..artifacts import atomic_path, ensure_dir, read_json, text_hash, write_json
from ..errors import ConfigError, InputError
from .panns import panns_cnn14_class
from .tiny import (
    build_tiny_tokenizer,
    init_codebooks,
    quiet_transformers,
    scale_decoder_output,
    text_position_limit,
    variance_preserving_init,
)
from .vggish import VGGish

__all__ = [
    "FULLSIZE_VERSION",
    "build_config",
    "build_model",
    "compare_config",
    "ensure_mirror",
    "hub_environment",
    "hub_snapshot",
    "mirror_targets",
    "published",
    "published_ids",
    "standin_tokenizer",
    "write_checkpoint",
    "write_hub_model",
]

#: Bump when the builders change what they write: mirrors are rebuilt.
FULLSIZE_VERSION = 1
_MANIFEST = "echoscript_fullsize.json"
_HF_KINDS = ("musicgen", "musicgen_melody", "t5", "encodec", "clap")
#: Weight-file kinds → the folder of the models cache their URL resolver downloads into.
_WEIGHT_DIRS = {"panns_cnn14": "panns", "vggish": "vggish"}


# ------------------------------------------------------------------------------------------- published
@lru_cache(maxsize=1)
def _published_raw() -> dict[str, Any]:
    text = resources.files("echoscript_utils").joinpath("data/published_models.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def published_ids() -> list[str]:
    """Every checkpoint with a published configuration (hub ids and weight URLs)."""
    return list(_published_raw())


def _resolve_refs(node: Any) -> Any:
    if isinstance(node, dict):
        if set(node) == {"from"}:
            return copy.deepcopy(published(node["from"])["files"]["config.json"])
        return {k: _resolve_refs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v) for v in node]
    return node


def published(model_id: str) -> dict[str, Any]:
    """The published facts of one checkpoint: ``kind``, ``files`` (``config.json`` etc., sub-configs resolved),
    ``tokenizer``, ``weights``. Raises :class:`InputError` for an unknown id."""
    raw = _published_raw()
    if model_id not in raw:
        raise InputError(f"{model_id}: no published configuration in echoscript_utils/data/published_models.yaml; "
                         f"known: {', '.join(raw)}")
    entry = copy.deepcopy(raw[model_id])
    entry["files"] = _resolve_refs(entry.get("files", {}))
    if isinstance(entry.get("tokenizer"), dict) and set(entry["tokenizer"]) == {"from"}:
        entry["tokenizer"] = published(entry["tokenizer"]["from"])["tokenizer"]
    return entry


def compare_config(built: dict[str, Any], expected: dict[str, Any], *, prefix: str = "") -> list[str]:
    """Fields of ``expected`` (recursively) that ``built`` lacks or holds with another value; ``[]`` when all
    agree. Floats compare to 1e-9 relative; lists element by element."""
    out: list[str] = []
    for key, want in expected.items():
        where = f"{prefix}{key}"
        if key not in built:
            out.append(f"{where}: missing (published {want!r})")
            continue
        got = built[key]
        if isinstance(want, dict) and isinstance(got, dict):
            out.extend(compare_config(got, want, prefix=f"{where}."))
        elif not _same(got, want):
            out.append(f"{where}: built {got!r}, published {want!r}")
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        a = list(a)
    if isinstance(b, tuple):
        b = list(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
    return a == b


# ------------------------------------------------------------------------------------------- configs
def build_config(model_id: str):
    """The transformers configuration object built from the published ``config.json`` with the library's own
    ``from_dict`` (what loading the real file gives). Weight URLs (PANNs, VGGish) return their published
    settings as a dict."""
    import transformers as tf

    entry = published(model_id)
    cfg = entry["files"].get("config.json")
    kind = entry["kind"]
    if kind not in _HF_KINDS:
        return dict(entry["files"]["config"])
    classes = {"musicgen": tf.MusicgenConfig, "musicgen_melody": tf.MusicgenMelodyConfig, "t5": tf.T5Config,
               "encodec": tf.EncodecConfig, "clap": tf.ClapConfig}
    with quiet_transformers():
        return classes[kind].from_dict(copy.deepcopy(cfg))


# ----------------------------------------------------------------------------------------- tokenizers
def standin_tokenizer(model_id: str):
    """A tokenizer with the published vocabulary size and special ids, trained offline on the workbook's text
    corpus (:func:`echoscript_utils.models.tiny.build_tiny_tokenizer`) and padded with unused pieces.

    T5 (MusicGen's text side): 32000 Unigram pieces + 100 ``<extra_id_*>``; RoBERTa (CLAP's): 50265 byte-level BPE
    entries with ``<mask>`` last."""

    spec = published(model_id)["tokenizer"]
    if spec["kind"] == "t5":
        from transformers import T5Tokenizer

        tiny = build_tiny_tokenizer(kind="t5")
        pieces = [(p, s) for p, s in json.loads(tiny.backend_tokenizer.to_str())["model"]["vocab"]]
        n_pieces = spec["size"] - 100
        low = min(s for _, s in pieces) - 10.0
        pieces += [(f"<unused_{i}>", low) for i in range(n_pieces - len(pieces))]
        tok = T5Tokenizer(vocab=pieces, extra_ids=100, model_max_length=spec["model_max_length"])
    elif spec["kind"] == "roberta":
        from transformers import RobertaTokenizer

        tiny = build_tiny_tokenizer(kind="roberta")
        bpe = json.loads(tiny.backend_tokenizer.to_str())["model"]
        order = [t for t, _ in sorted(bpe["vocab"].items(), key=lambda kv: kv[1]) if t != "<mask>"]
        order += [f"<unused_{i}>" for i in range(spec["size"] - 1 - len(order))] + ["<mask>"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in bpe["merges"]]
        tok = RobertaTokenizer(vocab={t: i for i, t in enumerate(order)}, merges=merges,
                               model_max_length=spec["model_max_length"])
    else:  # pragma: no cover - the data file names only these two
        raise ValueError(f"unknown tokenizer kind {spec['kind']!r}")
    if len(tok) != spec["size"]:
        raise AssertionError(f"{model_id}: stand-in tokenizer has {len(tok)} tokens, published {spec['size']}")
    return tok


# ------------------------------------------------------------------------------------------- weights
def build_model(model_id: str, *, seed: int = 1234):
    """The model at its published size with random weights (seeded; the caller's RNG is left alone).

    MusicGen's and EnCodec's codecs get the tiny models' usable initialisation (fan-in scaled convolutions,
    codebooks drawn from encoder frames), so random codes decode to audible,
    varied audio instead of silence (:mod:`echoscript_utils.models.tiny`); everything else keeps the library's
    initialisation.
    """
    import torch
    import transformers as tf

    kind = published(model_id)["kind"]
    cfg = build_config(model_id)
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(seed)
        if kind in ("musicgen", "musicgen_melody"):
            cls = tf.MusicgenForConditionalGeneration if kind == "musicgen" else tf.MusicgenMelodyForConditionalGeneration
            model = cls(cfg)
            codec = model.audio_encoder
        elif kind == "encodec":
            model = codec = tf.EncodecModel(cfg)
        elif kind == "t5":
            model, codec = tf.T5ForConditionalGeneration(cfg), None
        elif kind == "clap":
            model, codec = tf.ClapModel(cfg), None
        elif kind == "panns_cnn14":

            return panns_cnn14_class()(**cfg).eval()
        elif kind == "vggish":

            return VGGish().eval()
        else:  # pragma: no cover
            raise ValueError(kind)
        if codec is not None:
            variance_preserving_init(codec.encoder, seed=seed + 1)
            variance_preserving_init(codec.decoder, seed=seed + 2)
            init_codebooks(codec, seed=seed)
            scale_decoder_output(codec, seed=seed)
    if kind in ("musicgen", "musicgen_melody"):
        gen = model.generation_config
        for key, value in published(model_id)["files"]["generation_config.json"].items():
            setattr(gen, key, value)
    return model.eval()


# ----------------------------------------------------------------------------------------- hub layout
def _repo_folder(hub_cache: str | os.PathLike, model_id: str) -> Path:
    return Path(hub_cache) / ("models--" + model_id.replace("/", "--"))


def _revision(model_id: str, seed: int) -> str:
    blob = json.dumps({"id": model_id, "seed": seed, "version": FULLSIZE_VERSION, "published": published(model_id)},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()


def hub_snapshot(hub_cache: str | os.PathLike, model_id: str) -> Path | None:
    """The snapshot folder ``refs/main`` points at in ``hub_cache`` (``None`` when there is none)."""
    repo = _repo_folder(hub_cache, model_id)
    ref = repo / "refs" / "main"
    if not ref.is_file():
        return None
    snap = repo / "snapshots" / ref.read_text(encoding="utf-8").strip()
    return snap if snap.is_dir() else None


def write_hub_model(model_id: str, hub_cache: str | os.PathLike, *, seed: int = 1234, weights: bool = True) -> Path:
    """Write ``model_id`` into ``hub_cache`` in the hub's folder layout and point ``refs/main`` at it.

    Files: ``config.json`` (saved by the library from the built configuration), ``generation_config.json`` and
    ``preprocessor_config.json`` as published, the stand-in tokenizer's files, and (``weights=True``) the random
    weights as safetensors (sharded at 5 GB like the hub's large checkpoints). Written into a temporary folder and
    renamed into place, so an interrupted build leaves nothing half-written. Returns the snapshot folder.
    """
    entry = published(model_id)
    if entry["kind"] not in _HF_KINDS:
        raise InputError(f"{model_id}: not a hub model; use write_checkpoint for weight files")
    repo = _repo_folder(hub_cache, model_id)
    rev = _revision(model_id, seed)
    final = repo / "snapshots" / rev
    if not (final / "config.json").is_file() or (weights and not _has_weights(final)):
        ensure_dir(final.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{rev[:8]}-", dir=final.parent))
        try:
            with quiet_transformers():
                if weights:
                    model = build_model(model_id, seed=seed)
                    model.save_pretrained(tmp, max_shard_size="5GB")
                    del model
                    gc.collect()
                else:
                    build_config(model_id).save_pretrained(tmp)
                for name in ("generation_config.json", "preprocessor_config.json"):
                    if name in entry["files"]:
                        write_json(tmp / name, entry["files"][name])
                if entry.get("tokenizer"):
                    standin_tokenizer(model_id).save_pretrained(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    ensure_dir(repo / "refs")
    (repo / "refs" / "main").write_text(rev, encoding="utf-8")
    return final


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors"))


def _checkpoint_paths(url: str, models_dir: str | os.PathLike) -> tuple[Path, Path]:
    import urllib.parse

    dest = Path(models_dir) / _WEIGHT_DIRS[published(url)["kind"]] / urllib.parse.unquote(Path(urllib.parse.urlparse(url).path).name)
    return dest, dest.with_name(dest.name + ".echoscript_fullsize")


def _checkpoint_current(url: str, models_dir: str | os.PathLike, seed: int) -> bool:
    dest, marker = _checkpoint_paths(url, models_dir)
    return dest.is_file() and marker.is_file() and marker.read_text().strip() == _revision(url, seed)


def write_checkpoint(url: str, models_dir: str | os.PathLike, *, seed: int = 1234) -> Path:
    """Write a random-weight PANNs Cnn14 or VGGish checkpoint where the URL resolver looks for ``url``'s download
    (``<models_dir>/panns/<name>`` or ``<models_dir>/vggish/<name>``), in the published file's format."""
    import torch

    kind = published(url)["kind"]
    if kind not in _WEIGHT_DIRS:
        raise InputError(f"{url}: not a weight file; use write_hub_model for hub models")
    dest, marker = _checkpoint_paths(url, models_dir)
    if _checkpoint_current(url, models_dir, seed):
        return dest
    model = build_model(url, seed=seed)
    state = model.state_dict()
    payload = {"model": state} if kind == "panns_cnn14" else {k: v for k, v in state.items()
                                                        if k.startswith(("features.", "embeddings."))}

    with atomic_path(dest) as tmp:
        torch.save(payload, str(tmp))
    marker.write_text(_revision(url, seed) + "\n", encoding="utf-8")
    return dest


# --------------------------------------------------------------------------------------- run helpers
def mirror_targets(cfg) -> list[str]:
    """The published checkpoints the run's parameters name (hub ids and weight URLs), plus the T5-base text
    encoder and the EnCodec 32 kHz codec that MusicGen is composed of."""
    named = [cfg.training.model, cfg.generation.baseline_model, cfg.generation.melody_model,
             cfg.alignment.clap_model, cfg.evaluation.clap_model, cfg.annotation.panns_checkpoint,
             cfg.evaluation.panns_checkpoint, cfg.evaluation.vggish_weights, *cfg.generation.models.values()]
    known = set(published_ids())
    chosen = [m for m in dict.fromkeys(str(n) for n in named if n) if m in known]
    if any(published(m)["kind"].startswith("musicgen") for m in chosen):
        chosen += [m for m in ("google-t5/t5-base", "facebook/encodec_32khz") if m not in chosen]
    return chosen


def hub_environment(cfg) -> dict[str, str]:
    """Environment variables for the run's hub settings: ``HF_HUB_CACHE`` (``run.hub_cache``) and, with
    ``run.hub_offline``, ``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1``. Set them before transformers or
    huggingface_hub is imported (the runner does, for every stage's kernel)."""
    env: dict[str, str] = {}
    if cfg.run.hub_cache is not None:
        env["HF_HUB_CACHE"] = str(cfg.run.hub_cache)
    if cfg.run.hub_offline:
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    return env


def ensure_mirror(cfg, *, log=print) -> dict[str, Any]:
    """Build (once) every published checkpoint :func:`mirror_targets` names, in ``run.hub_cache`` and the run's
    models cache; one model in memory at a time. Each hub model is then loaded back through its hub id (config,
    generation config, processor or tokenizer) as a check. Returns the manifest, also written to
    ``<hub_cache>/echoscript_fullsize.json`` with per-model build seconds.

    Raises:
        ConfigError: ``run.hub_cache`` is not set, or it is the default hub cache (random weights must never
            land where real downloads live).
    """
    hub = cfg.run.hub_cache
    if hub is None:
        raise ConfigError("run.fullsize_mirror needs run.hub_cache: a folder of its own for the random-weight "
                          "hub models (e.g. ../outputs/.cache-fullsize/hub)")
    hub = Path(hub)
    from huggingface_hub import constants

    if hub.resolve() == Path(constants.default_cache_path).resolve():  # HF_HOME/hub, where downloads land
        raise ConfigError(f"run.hub_cache {hub} is the default Hugging Face cache; random-weight models must go to "
                          "a folder of their own")
    ensure_dir(hub)
    manifest_path = hub / _MANIFEST
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    models = manifest.setdefault("models", {})
    for model_id in mirror_targets(cfg):
        kind = published(model_id)["kind"]
        rev = _revision(model_id, cfg.seed)
        snap = hub_snapshot(hub, model_id) if kind in _HF_KINDS else None
        if (snap is not None and models.get(model_id, {}).get("revision") == rev and _has_weights(snap)) or \
                (kind not in _HF_KINDS and _checkpoint_current(model_id, cfg.paths.models, cfg.seed)):
            continue
        t0 = time.perf_counter()
        log(f"full-size mirror: building {model_id} ({kind}, random weights) …")
        if kind in _HF_KINDS:
            where = write_hub_model(model_id, hub, seed=cfg.seed)
        else:
            where = write_checkpoint(model_id, cfg.paths.models, seed=cfg.seed)
        size = sum(f.stat().st_size for f in (where.iterdir() if where.is_dir() else [where]))
        models[model_id] = {"kind": kind, "revision": rev, "path": where.name, "bytes": size,
                            "seconds": round(time.perf_counter() - t0, 1)}
        write_json(manifest_path, {**manifest, "version": FULLSIZE_VERSION,
                                   "note": "random weights at published sizes; not for real use"})
        gc.collect()
    check_hub_loading(hub, [m for m in models if published(m)["kind"] in _HF_KINDS])
    return manifest


def check_hub_loading(hub_cache: str | os.PathLike, model_ids: list[str]) -> None:
    """Load each model's configuration, generation config and processor/tokenizer through its hub id from
    ``hub_cache`` (offline), and check the configuration against the published one, and the tokenizer's size and
    ``model_max_length`` against the published ones and the text tower's position limit."""
    import transformers as tf

    for model_id in model_ids:
        entry = published(model_id)
        with quiet_transformers():
            cfg = tf.AutoConfig.from_pretrained(model_id, cache_dir=str(hub_cache), local_files_only=True)
            bad = compare_config(cfg.to_dict(), entry["files"]["config.json"])
            if bad:
                raise AssertionError(f"{model_id}: loaded config differs from the published one: {bad[:3]}")
            if "generation_config.json" in entry["files"]:
                gen = tf.GenerationConfig.from_pretrained(model_id, cache_dir=str(hub_cache), local_files_only=True)
                bad = compare_config(gen.to_dict(), entry["files"]["generation_config.json"])
                if bad:
                    raise AssertionError(f"{model_id}: generation config differs: {bad[:3]}")
            if entry.get("tokenizer"):
                tok = tf.AutoTokenizer.from_pretrained(model_id, cache_dir=str(hub_cache), local_files_only=True)
                if len(tok) != entry["tokenizer"]["size"]:
                    raise AssertionError(f"{model_id}: tokenizer has {len(tok)} tokens, published "
                                         f"{entry['tokenizer']['size']}")
                # texts are cut at the tokenizer's limit, which must fit the text tower's position table
                text_cfg = next((c for c in (getattr(cfg, "text_config", None), getattr(cfg, "text_encoder", None))
                                 if c is not None), cfg)
                limit = text_position_limit(text_cfg)
                if tok.model_max_length != entry["tokenizer"]["model_max_length"] or tok.model_max_length > limit:
                    raise AssertionError(f"{model_id}: tokenizer model_max_length {tok.model_max_length}, published "
                                         f"{entry['tokenizer']['model_max_length']}, text tower takes {limit}")


def spec_hash(cfg) -> str:
    """Hash of what the mirror for ``cfg`` holds (targets, seed, published configurations, builder version)."""
    return text_hash([(m, _revision(m, cfg.seed)) for m in mirror_targets(cfg)])
