"""Parameter files → one validated :class:`Config` that also resolves every path of a run.

A parameter file is YAML with the sections below; every key has a default, so a file only states what it
changes. Relative paths inside a file are resolved against the folder that holds the file (``output_root:
../outputs`` in ``params/demo.yaml`` means ``<repo>/outputs``).

>>> cfg = load_config("params/demo.yaml")            # doctest: +SKIP
>>> cfg.paths.stage("01_curation")                    # doctest: +SKIP
PosixPath('.../outputs/demo/01_curation')

Unknown keys and ill-typed values raise :class:`~echoscript_utils.errors.ConfigError` with a one-line
message that names the key and the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .artifacts import ensure_dir
from .errors import ConfigError

#: The stages, in order. Folder names in a run and notebook names share these stems.
STAGES: tuple[str, ...] = (
    "01_curation",
    "02_annotation",
    "03_alignment",
    "04_finetuning",
    "05_generation",
    "06_evaluation",
    "07_listening",
    "08_scoring",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------- sections
class RunSection(_Section):
    name: str = "demo"  # run folder name: outputs/<name>/
    output_root: Path = Path("../outputs")  # where run folders live (relative to the params file)
    cache_dir: Path | None = None  # content-hashed caches shared by runs; default <output_root>/.cache
    seed: int = 1234  # one seed for python, numpy, torch and every sampler
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    num_workers: int = Field(2, ge=0)  # worker processes (one thread each) for audio work, and on a CPU for the taggers, embedders and codec tokens (0 or 1 = in-process)
    torch_threads: int | None = Field(None, ge=1)  # torch CPU threads; None keeps torch's default (tiny models: 1 is fastest)
    hub_cache: Path | None = None  # Hugging Face hub cache to load hub ids from (HF_HUB_CACHE for every stage); None keeps the environment's
    hub_offline: bool = False  # never contact the hub (HF_HUB_OFFLINE=1): hub ids must already be in the cache
    fullsize_mirror: bool = False  # dry run: first fill hub_cache and the models cache with random-weight models at their published sizes (echoscript_utils.fullsize)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not v or any(c in v for c in "/\\") or v.startswith("."):
            raise ValueError("must be a plain folder name (no slashes, not starting with '.')")
        return v


class DemoCorpusSection(_Section):
    n_tracks: int = Field(12, ge=1)  # how many pieces the generator composes (the CLI default too)
    min_duration_s: float = Field(35.0, gt=0)
    max_duration_s: float = Field(100.0, gt=0)
    sample_rate: int = 44100


class DataSection(_Section):
    input_dir: Path | None = None  # the user's music folder; None → the generated demo corpus
    labels: Path | None = None  # optional ground-truth labels (CSV/JSONL, one row per track)
    licences: Path | None = None  # optional CSV: track_id (or file), licence, url, attribution; the dataset card lists them
    demo: DemoCorpusSection = DemoCorpusSection()


class CurationSection(_Section):
    sample_rate: int = 44100  # the paper standardised to 44.1 kHz
    channels: Literal["mono", "stereo"] = "mono"
    clip_s: float = Field(30.0, gt=0)  # the paper's clip length
    hop_s: float | None = None  # None → back-to-back clips (hop = clip_s)
    target_lufs: float | Literal["auto"] | None = "auto"  # loudness target (LUFS); auto: the highest that auto_target_share of the clips reach by gain alone; None disables normalisation
    loudness_policy: Literal["limit", "gain"] = "limit"  # limit: a true-peak limiter holds the ceiling so clips reach the target; gain: gain only, clips stopped by their peaks stay quieter
    auto_target_share: float = Field(0.9, gt=0, le=1)  # target_lufs auto: this share of clips reach it without limiting
    auto_target_max_lufs: float = -14.0  # target_lufs auto: never louder than this (audiocraft's level for MusicGen)
    max_limiting_db: float = Field(6.0, ge=0)  # most gain reduction the limiter may apply to a clip (dB)
    peak_limit_db: float = -1.0  # true-peak ceiling (dBTP) of clips, generated audio and the listening pack
    min_rms_db: float = -60.0  # clips quieter than this are treated as silence
    short_cue_share: float = Field(0.5, ge=0, le=1)  # an input shorter than clip_s but at least this share of it becomes one clip padded with silence (1 = drop every input shorter than a clip)
    dedupe: bool = True  # reject exact / near-exact duplicate inputs
    dedupe_similarity: float = Field(0.97, gt=0, le=1)  # fingerprint correlation above which inputs are near-duplicates
    splits: dict[str, float] = {"train": 0.8, "valid": 0.1, "eval": 0.1}
    split_from_folders: bool = True  # inputs under a top folder named like a split (train/, eval/) stay in it
    extensions: list[str] = [".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif"]
    sampler_temperature: float | None = None  # genre weights in the audiocraft export; None → training.sampler_temperature


class PromptSection(_Section):
    provider: Literal["auto", "offline", "openai"] = "auto"  # auto: openai when OPENAI_API_KEY is set, else offline
    n_prompts: int = Field(170, ge=1)  # the paper generated about 170 scene prompts
    model: str = "gpt-4o-mini"
    temperature: float = Field(0.9, ge=0)
    base_url: str | None = None  # an OpenAI-compatible endpoint; None → the client's default
    timeout_s: float = 60.0
    max_retries: int = Field(5, ge=0)  # retries after 429 / timeout / 5xx (the openai client's) / malformed reply
    backoff_s: float = Field(1.0, ge=0)  # wait before asking again after a malformed reply, doubling (max 60 s);
    #                                      429 / 5xx waits are the client's: Retry-After, else 0.5 s doubling
    batch_size: int = Field(20, ge=1)  # prompts asked for per request (one mood per request)


class AnnotationSection(_Section):
    taggers: list[Literal["panns", "musicnn", "clap"]] = ["musicnn"]
    panns_checkpoint: str | None = None  # path or URL of Cnn14 weights (e.g. Cnn14_mAP=0.431.pth)
    musicnn_model: Literal["MTT_musicnn", "MSD_musicnn"] = "MTT_musicnn"
    threshold: float = Field(0.2, ge=0, le=1)  # minimum probability for a mood / instrument tag
    top_k: int = Field(3, ge=1)  # at most this many moods / instruments per clip
    overrides_file: Path | None = None  # human corrections; default <run>/02_annotation/overrides.csv
    min_labels: int = Field(1, ge=0)  # at least this many moods / instruments per clip (best first)
    calibrate: list[Literal["moods", "instruments"]] = ["moods"]  # these fields fill up to min_labels with the labels that stand out for the clip against the corpus (z-score), not the globally most probable
    combine: list[Literal["panns", "musicnn", "clap"]] | None = None  # taggers averaged into the tags; None = all
    prompts_per_clip: int = Field(3, ge=0)  # prompt candidates (matching mood) stored per clip
    prompts: PromptSection = PromptSection()


class AlignmentSection(_Section):
    clap_model: str = "tiny-clap"  # hub id, local folder, or a tiny-* name
    batch_size: int = Field(8, ge=1)
    candidates: Literal["all", "annotation"] = "annotation"  # annotation: each clip's mood-matched prompt candidates (all prompts when absent)
    keep: Literal["all", "threshold", "percentile"] = "percentile"
    keep_value: float = 10.0  # threshold: min cosine; percentile: drop clips below this percentile
    gate: bool = True  # refuse checkpoints whose text embeddings have collapsed
    gate_max_mean_cosine: float = 0.95
    caption_dropout: dict[str, float] = {
        "scene": 0.0,
        "genre": 0.1,
        "moods": 0.1,
        "instruments": 0.1,
        "bpm": 0.3,
        "key": 0.3,
    }


class LoraSection(_Section):
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "out_proj"]


class TrainingSection(_Section):
    model: str = "tiny-musicgen"  # facebook/musicgen-small, a local folder, or tiny-musicgen / tiny-musicgen-melody
    epochs: int = Field(10, ge=1)  # paper: 10
    batch_size: int = Field(12, ge=1)  # paper: 12 (effective, after accumulation)
    grad_accum: int = Field(1, ge=1)
    learning_rate: float = Field(5e-5, gt=0)  # paper: 5e-5
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = Field(0, ge=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"  # paper: cosine annealing
    max_grad_norm: float | None = 1.0
    precision: Literal["no", "fp16", "bf16"] = "no"  # paper: fp16
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = "sdpa"
    gradient_checkpointing: bool = False
    train_text_encoder: bool = False
    cfg_dropout: float = Field(0.1, ge=0, le=1)  # drop the whole caption with this probability
    melody_dropout: float = Field(0.1, ge=0, le=1)  # melody model: drop the chroma with this probability
    sampler_temperature: float = Field(1.0, ge=0)  # 0 = uniform over clips, 1 = inverse genre frequency
    save_every_steps: int | None = None
    keep_checkpoints: int = Field(2, ge=1)
    max_nonfinite_steps: int = Field(10, ge=0)
    max_steps: int | None = None  # cut an epoch short (tests, smoke runs)
    segment_s: float | None = None  # train on random crops of this length; None = whole clips
    lora: LoraSection = LoraSection()
    push_to_hub: str | None = None  # hub repo id: final/ is pushed with its model card after training; off by default
    sample_prompt: str | None = "a calm cinematic scene, slow piano and strings"  # sample after each epoch; None: off
    sample_duration_s: float = Field(4.0, gt=0)  # length of that per-epoch sample
    tensorboard: bool = True  # also log to TensorBoard (<run>/04_finetuning/tensorboard)
    encode_batch_size: int | None = Field(None, ge=1)  # clips per codec call filling the token cache; None: 1 on a CPU, 8 on a GPU


class GenerationSection(_Section):
    baseline_model: str = "tiny-musicgen"  # the pretrained model the study compares against
    models: dict[str, str] = {}  # extra label → id/path/adapter; the run's own final/ is added as "echoscript"
    scenarios: Path | None = None  # YAML of scenarios; None → the paper's five
    use_eval_prompts: bool = True  # also generate for the eval split's own prompts
    max_eval_prompts: int = Field(5, ge=0)
    seeds: list[int] = [0, 1]
    duration_s: float = Field(30.0, gt=0)  # 30 s in the paper
    guidance_scale: float = 3.0
    do_sample: bool = True
    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0
    batch_size: int = Field(4, ge=1)
    melody_model: str | None = None  # MusicGen-Melody for MIDI-sketch control (facebook/musicgen-melody, tiny-musicgen-melody)
    melody_midi: Path | None = None  # a MIDI sketch for the melody model; None → a generated demo sketch
    sketch_scenarios: int = Field(2, ge=1)  # how many scenarios the sketch is scored for
    melody_audio: Path | None = None  # a reference clip whose chroma steers the melody model
    long_form_s: float | None = None  # extend past the model window by continuation
    continuation_context_s: float = 10.0
    crossfade_s: float = 1.0


class EvaluationSection(_Section):
    embeddings: list[str] = ["musicnn"]  # vggish, panns, clap, encodec, musicnn
    reference_dir: Path | None = None  # background set; None → the curated eval split
    vggish_weights: str | None = None  # path or URL of the public torch port's weights
    panns_checkpoint: str | None = None  # None → annotation.panns_checkpoint
    clap_model: str | None = None  # None → alignment.clap_model
    resampler: str = "reference"  # vggish/panns/clap: "reference" (resampy kaiser_best, as published FADs) or soxr
    panns_window_s: float | None = None  # None: one PANNs row per file (as frechet_audio_distance); else windows
    parity_clips: int = Field(4, ge=0)  # clips per set run through each embedding's reference code (0: skip)
    min_clips: int = Field(50, ge=2)  # FAD rows with fewer clips per set (or rows < dims) are flagged
    target_ci_width: float = Field(0.1, gt=0)  # interval width, as a share of the FAD, for the clips-needed estimate
    bootstrap: int = Field(1000, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)
    kad_max_rows: int = Field(16384, ge=0)  # KAD is O(rows²): a seeded subset of each set's rows beyond this (0: all)
    fad_inf_points: int = Field(8, ge=2)
    reference_splits: list[str] = ["eval"]  # curated splits used as reference when reference_dir is None
    models: list[str] = []  # generated model folders to score; [] → every folder in 05_generation but sketch/
    relevance: bool = True  # also compute CLAP score and musicnn tag KL


class ListeningSection(_Section):
    pairs_per_scenario: int = Field(1, ge=1)
    baseline_label: str = "musicgen"
    system_label: str = "echoscript"
    clip_s: float | None = None  # trim pack clips to this length (None = as generated)
    target_lufs: float = -23.0  # loudness matching inside the pack
    simulate: bool = True  # demo: make a clearly labelled simulated study
    simulated_participants: int = Field(20, ge=2)
    study_dir: Path | None = None  # a real returned study folder to analyse instead
    simulated_effect: float | None = None  # simulated study: None = the paper's per-question means, else +points
    confidence: float = Field(0.95, gt=0, lt=1)  # level of every interval in the analysis


class ScoringSection(_Section):
    script: Path | None = None  # a Fountain (.fountain) or Final Draft (.fdx) screenplay; None → the bundled demo
    seconds_per_page: float = Field(60.0, gt=0)  # screen time of one page (the one-page-one-minute rule)
    words_per_minute: float | None = Field(None, gt=0)  # set to time scenes by words instead of pages
    min_scene_s: float = Field(0.0, ge=0)  # no scene is timed shorter than this
    planner: Literal["auto", "offline", "openai", "local"] = "auto"  # auto: openai with OPENAI_API_KEY, else offline
    local_model: str = "Qwen/Qwen2.5-1.5B-Instruct"  # planner local: an instruction model (hub id, folder, tiny-instruct)
    labelled_screenplays: Path | None = None  # folder of the labelled real screenplays; None → $ECHOSCRIPT_SCREENPLAYS
    llm_model: str | None = None  # chat model for the openai planner; None → annotation.prompts.model
    llm_temperature: float = Field(0.2, ge=0)
    llm_batch_size: int = Field(8, ge=1)  # scenes per request
    spotting: Literal["all", "intensity"] = "all"  # which scenes get a cue
    spot_min_intensity: float = Field(0.3, ge=0, le=1)  # spotting=intensity: cue scenes at least this intense
    models: list[str] = []  # model references (as generation's); [] → the run's fine-tuned final/ if any, else the baseline
    compare_baseline: bool = True  # with the default fine-tuned model, also score the baseline on the same seeds
    seeds: list[int] = [0]  # one score per seed and model
    window_s: float = Field(30.0, gt=0)  # seconds per model call; longer cues continue from their own last seconds
    crossfade_s: float = Field(2.0, ge=0)  # equal-power crossfade at each scene boundary
    max_cue_s: float | None = Field(None, gt=0)  # cap every cue (quick previews, the CPU demo); None = full scene length; not with a cut
    leitmotif: bool = False  # carry one MIDI theme across the cues through the melody model
    leitmotif_midi: Path | None = None  # the theme; None → a generated demo theme
    leitmotif_model: str | None = None  # MusicGen-Melody reference; None → generation.melody_model
    relevance: bool = True  # CLAP relevance of each cue to its own scene vs the other scenes
    clap_model: str | None = None  # None → evaluation.clap_model, else alignment.clap_model
    bootstrap: int = Field(1000, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)
    edit: Literal["demo"] | Path | None = None  # the picture cut (.otio, .edl, FCP .xml, .fcpxml, spotting .csv); demo: the bundled cut of the demo screenplay; None → page-count estimate
    fps: float | None = Field(None, gt=0)  # the cut's frame rate (23.976, 24, 25, 29.97); EDL and CSV carry none: 24
    reel_minutes: float = Field(20.0, gt=0)  # reel length for cue numbers (1M1 … 2M1)
    script_hits: bool = True  # hit points from the script's action beats as well as the cut's markers
    solve_tempo: bool = True  # tempo solved within the mood's range so the hits fall on beats
    loudness_profile: str | None = None  # delivery: ebu_r128, atsc_a85, streaming_14, streaming_16 (score and stems); None → as generated
    duck_dialogue: bool = True  # delivery: lower the music under the script's dialogue (or the cut's dialogue track)
    duck_db: float = Field(10.0, ge=0)  # gain reduction under dialogue (dB)
    duck_ramp_s: float = Field(0.3, ge=0)  # ramps down before and up after each line (s)
    preview: bool = True  # delivery: render preview.mp4 with ffmpeg (score under the picture, burnt-in timecode and cue)
    video: Path | None = None  # the picture under preview.mp4; None → a plain frame


class Params(_Section):
    """The whole parameter file (what a user writes)."""

    run: RunSection = RunSection()
    data: DataSection = DataSection()
    curation: CurationSection = CurationSection()
    annotation: AnnotationSection = AnnotationSection()
    alignment: AlignmentSection = AlignmentSection()
    training: TrainingSection = TrainingSection()
    generation: GenerationSection = GenerationSection()
    evaluation: EvaluationSection = EvaluationSection()
    listening: ListeningSection = ListeningSection()
    scoring: ScoringSection = ScoringSection()


# --------------------------------------------------------------------------------------------- paths
class RunPaths:
    """Every path of one run. Nothing else in the workbook builds a run path by hand."""

    def __init__(self, root: Path, cache: Path):
        self.root = root
        self.cache = cache
        self.notebooks = root / "notebooks"
        self.figures = root / "figures"
        self.tables = root / "tables"
        self.report = root / "report.html"
        self.demo_corpus = root / "00_demo_corpus"
        self.models = cache / "models"

    def stage(self, name: str) -> Path:
        """Folder of a stage, by full name (``"01_curation"``) or number (``"01"`` / ``1``)."""
        return self.root / stage_name(name)

    curation = property(lambda self: self.stage("01_curation"))
    annotation = property(lambda self: self.stage("02_annotation"))
    alignment = property(lambda self: self.stage("03_alignment"))
    finetuning = property(lambda self: self.stage("04_finetuning"))
    generation = property(lambda self: self.stage("05_generation"))
    evaluation = property(lambda self: self.stage("06_evaluation"))
    listening = property(lambda self: self.stage("07_listening"))
    scoring = property(lambda self: self.stage("08_scoring"))

    def metrics(self, stage: str) -> Path:
        return self.stage(stage) / "metrics.json"

    def ensure(self) -> RunPaths:

        for p in (self.root, self.notebooks, self.figures, self.tables, self.cache):
            ensure_dir(p)
        return self

    def __repr__(self) -> str:
        return f"RunPaths(root={str(self.root)!r})"


def stage_name(name: str | int) -> str:
    """Normalise ``1``, ``"1"``, ``"01"``, ``"curation"`` or ``"01_curation"`` to ``"01_curation"``."""
    key = str(name).strip()
    for s in STAGES:
        num, short = s.split("_", 1)
        if key in (s, short) or (key.isdigit() and int(key) == int(num)):
            return s
    raise ConfigError(f"unknown stage {name!r}: choose one of {', '.join(STAGES)}")


# --------------------------------------------------------------------------------------------- config
class Config:
    """Validated parameters plus the resolved paths of the run.

    Attributes mirror the sections of the parameter file (``cfg.training.learning_rate``);
    ``cfg.paths`` holds every folder; ``cfg.source`` is the file it came from (or None).
    """

    def __init__(self, params: Params, *, source: Path | None, base_dir: Path):
        self.params = params
        self.source = source
        self.base_dir = base_dir
        self._resolve_paths()
        root = params.run.output_root / params.run.name
        cache = params.run.cache_dir or (params.run.output_root / ".cache")
        self.paths = RunPaths(root, cache)

    def _resolve_paths(self) -> None:
        def fix(section: BaseModel) -> None:
            for name in type(section).model_fields:
                value = getattr(section, name)
                if isinstance(value, BaseModel):
                    fix(value)
                elif isinstance(value, Path) and not value.is_absolute():
                    object.__setattr__(section, name, (self.base_dir / value).resolve())

        fix(self.params)

    def __getattr__(self, item: str) -> Any:
        params = self.__dict__.get("params")
        if params is not None and item in type(params).model_fields:
            return getattr(params, item)
        raise AttributeError(item)

    @property
    def seed(self) -> int:
        return self.params.run.seed

    def to_dict(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")

    def section_hash(self, *sections: str) -> str:
        """A short stable hash of the named sections (all of them when none are named)."""
        data = self.to_dict()
        if sections:
            data = {k: data[k] for k in sections}
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Config(run={self.params.run.name!r}, source={str(self.source) if self.source else None!r})"


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur = data
    for k in keys[:-1]:
        nxt = cur.get(k)
        if nxt is None:
            nxt = cur[k] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a section")
        cur = nxt
    cur[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"training.epochs=3"`` → ``("training.epochs", 3)`` (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def _format_error(err: ValidationError, where: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown key {loc!r}; check its spelling against params/demo.yaml"
    return f"{where}: key {loc!r}: {first['msg']} (got {first.get('input')!r})"


def load_config(
    path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    output_root: str | os.PathLike | None = None,
) -> Config:
    """Read and validate a parameter file.

    Args:
        path: YAML parameter file; ``None`` gives the built-in defaults (the demo profile).
        overrides: ``{"training.epochs": 2, ...}`` applied on top of the file (dotted keys).
        output_root: replace ``run.output_root`` (the runner uses it for ``--output-root``).
    """
    data: dict[str, Any] = {}
    source: Path | None = None
    base_dir = Path.cwd()
    if path is not None:
        source = Path(path).expanduser().resolve()
        if not source.is_file():
            raise ConfigError(f"{path}: parameter file not found; pass a YAML file such as params/demo.yaml")
        try:
            loaded = yaml.safe_load(source.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{source}:{line} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: a parameter file must be a mapping of sections, got {type(loaded).__name__}")
        data = loaded
        base_dir = source.parent
    if source is None:  # built-in defaults: outputs/ under the working directory, not beside a params/ folder
        data.setdefault("run", {}).setdefault("output_root", "outputs")
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    if output_root is not None:
        data.setdefault("run", {})["output_root"] = str(Path(output_root).expanduser().resolve())
    try:
        params = Params.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, str(source or "parameters"))) from None
    return Config(params, source=source, base_dir=base_dir)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch from one value."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when available, else ``mps``, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_workers(cfg: Config) -> int:
    """Worker processes for model inference: ``run.num_workers`` when the run's device is the CPU, else 1 (a forked
    process cannot use its parent's GPU, and one GPU process is faster anyway)."""
    return max(1, int(cfg.run.num_workers)) if resolve_device(cfg.run.device) == "cpu" else 1
