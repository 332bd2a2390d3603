"""The blinded listening pack: generated clips → anonymous, loudness-matched files + playlists + forms.

Layout written by :func:`build_pack` under ``out_dir``::

    out_dir/
      key.csv               clip,model,scenario        (the answer key: keep it away from listeners)
      pack_sources.csv      which generated file, seed and gain each clip came from
      pack_manifest.json    settings + content hash (reruns with the same inputs skip the work)
      pack/                 everything a listener or the test server may see
        audio/<clip>.wav    8 random hex characters per clip; same rate, channels, length, loudness, format
        playlist.csv        participant,position,scenario,slot,clip (a fresh random order per participant)
        response_sheet.csv  participant,scenario,clip,question,score (score left empty)
        preference_sheet.csv participant,scenario,criterion,chosen_clip (chosen_clip left empty)
        demographics_template.csv
        questions.csv       question,dimension,text
        scenarios.csv       scenario,description
        webmushra.yaml      a webMUSHRA experiment (consent, volume, Likert pages, preference pages, survey)
        README.txt

Nothing inside ``pack/`` depends on the model labels: clip ids come from a seeded random generator, every file is
cut to the same length, resampled to the same rate, matched to the same integrated loudness (ITU-R BS.1770,
with the curated clips' loudness policy: a true-peak limiter holds the ceiling rather than lowering every clip
to the level of the most peaky one) and written by the same encoder with the same modification time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import audio
from ..artifacts import atomic_write_text, file_hash, read_json, staged_dir, text_hash, write_json
from ..errors import InputError
from .study import QUESTION_TEXT, QUESTIONS
from .webmushra import webmushra_config, write_webmushra

__all__ = ["Pack", "build_pack", "collect_generated", "load_pack"]

#: Every file in the pack gets this modification time (2000-01-01 UTC), so file dates reveal no order.
FIXED_MTIME = 946684800
DEMOGRAPHIC_FIELDS = ("age", "gender", "education", "musical_training", "ai_music_familiarity",
                      "listening_habits")


@dataclass
class Pack:
    """A built pack (paths, key and the audio facts that make it blind)."""

    root: Path
    key: pd.DataFrame
    sources: pd.DataFrame
    sr: int
    channels: int
    duration_s: float
    target_lufs: float
    lufs: dict[str, float]
    cached: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def pack_dir(self) -> Path:
        return self.root / "pack"

    @property
    def key_path(self) -> Path:
        return self.root / "key.csv"

    @property
    def webmushra_path(self) -> Path:
        return self.pack_dir / "webmushra.yaml"

    def audio_path(self, clip: str) -> Path:
        return self.pack_dir / "audio" / f"{clip}.wav"

    @property
    def loudness_spread_lu(self) -> float:
        v = list(self.lufs.values())
        return float(max(v) - min(v)) if v else 0.0

    def pairs(self) -> pd.DataFrame:
        """One row per scenario with its clips (blinded ids only), for players in a notebook."""
        return self.key.groupby("scenario", sort=False)["clip"].apply(list).reset_index()

    def metrics(self) -> dict:
        return {"clips": int(len(self.key)), "scenarios": int(self.key["scenario"].nunique()),
                "models": sorted(self.key["model"].unique()), "sample_rate": self.sr, "channels": self.channels,
                "duration_s": round(self.duration_s, 3), "target_lufs": self.target_lufs,
                "loudness_spread_lu": round(self.loudness_spread_lu, 4), "cached": self.cached}


# ------------------------------------------------------------------------------------------- inputs
def collect_generated(generation_dir: str | os.PathLike, labels) -> pd.DataFrame:
    """Read ``<generation_dir>/<label>/*.json`` sidecars (+ the WAV of the same stem) for each label.

    Returns ``model,scenario,seed,prompt,wav,sidecar`` (one row per generated clip; clips without a scenario
    and the eval split's prompts (``source`` other than ``"scenario"``) are left out).
    """
    gen = Path(generation_dir)
    if not gen.is_dir():
        raise InputError(f"{gen}: generation folder not found; run the 05_generation stage first")
    rows = []
    for label in labels:
        folder = gen / label
        if not folder.is_dir():
            found = sorted(p.name for p in gen.iterdir() if p.is_dir())
            raise InputError(f"{folder}: no generated audio for model {label!r} (found: {', '.join(found) or 'none'});"
                             f" pass the right --baseline/--system labels")
        for side in sorted(folder.glob("*.json")):
            try:
                meta = json.loads(side.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(f"{side}: unreadable sidecar ({exc}); regenerate it") from None
            if not isinstance(meta, dict):
                raise InputError(f"{side}: sidecar must be a JSON object")
            wav = side.with_suffix(".wav")
            if not wav.is_file():
                raise InputError(f"{side}: no audio file {wav.name} beside it; regenerate the clip")
            scenario = meta.get("scenario")
            source = meta.get("source")
            if scenario is None or not str(scenario).strip():
                continue
            if (source is not None and source != "scenario") or (source is None and scenario == "eval"):
                continue  # the eval split's own prompts differ per clip: they make no pairs
            rows.append({"model": label, "scenario": str(scenario), "seed": meta.get("seed"),
                         "prompt": str(meta.get("prompt") or ""), "wav": wav, "sidecar": side})
    df = pd.DataFrame(rows, columns=["model", "scenario", "seed", "prompt", "wav", "sidecar"])
    if df.empty:
        raise InputError(f"{gen}: no generated clips with a scenario for {', '.join(labels)}")
    return df


def _select_pairs(df: pd.DataFrame, labels, *, pairs_per_scenario: int, scenarios) -> tuple[pd.DataFrame, list]:
    notes = []
    present = [set(df.loc[df["model"] == m, "scenario"]) for m in labels]
    common = [s for s in dict.fromkeys(df["scenario"]) if all(s in p for p in present)]
    if scenarios:
        unknown = [s for s in scenarios if s not in common]
        if unknown:
            raise InputError(f"scenario(s) {', '.join(unknown)} not generated for every model "
                             f"(available: {', '.join(common) or 'none'})")
        common = [s for s in scenarios]
    dropped = sorted(set(df["scenario"]) - set(common))
    if dropped:
        notes.append(f"scenarios without a clip from every model were left out: {', '.join(dropped)}")
    if not common:
        raise InputError(f"no scenario was generated by every model ({', '.join(labels)}); "
                         f"generate the same scenarios for each")
    chosen = []
    for s in common:
        per_model = {m: df[(df["model"] == m) & (df["scenario"] == s)].sort_values(
            ["seed", "wav"], key=lambda c: c.astype(str)) for m in labels}
        k = min(pairs_per_scenario, *(len(v) for v in per_model.values()))
        if k < pairs_per_scenario:
            notes.append(f"scenario {s!r}: only {k} clip(s) per model available (asked for {pairs_per_scenario})")
        for m in labels:
            chosen.append(per_model[m].head(k).assign(pair=range(k)))
    return pd.concat(chosen, ignore_index=True), notes


def _random_ids(n: int, rng: np.random.Generator) -> list[str]:
    ids: list[str] = []
    while len(ids) < n:
        # a letter first: no YAML parser can read the id as a number (08123456, 1e000000, 12345e67)
        cid = "abcdef"[int(rng.integers(0, 6))] + f"{int(rng.integers(0, 2**28)):07x}"
        if cid not in ids:
            ids.append(cid)
    return ids


def _fade(wav: np.ndarray, sr: int, *, fade_in_s: float = 0.01, fade_out_s: float = 0.05) -> np.ndarray:
    out = wav.copy()
    n_in, n_out = min(int(fade_in_s * sr), out.shape[1]), min(int(fade_out_s * sr), out.shape[1])
    if n_in:
        out[:, :n_in] *= np.linspace(0, 1, n_in, dtype=np.float32)
    if n_out:
        out[:, -n_out:] *= np.linspace(1, 0, n_out, dtype=np.float32)
    return out


# -------------------------------------------------------------------------------------------- build
def build_pack(generation_dir: str | os.PathLike, out_dir: str | os.PathLike, *, baseline: str = "musicgen",
               system: str | list[str] = "echoscript", pairs_per_scenario: int = 1, scenarios=None,
               clip_s: float | None = None, target_lufs: float = -23.0, peak_db: float = -1.0,
               policy: str = "limit", max_limiting_db: float = 6.0, sr: int | None = None,
               n_participants: int = 20, seed: int = 1234,
               audio_prefix: str = "configs/resources/audio/listening_test", redo: bool = False,
               progress: bool = True) -> Pack:
    """Build a blinded, loudness-matched listening pack from ``<generation_dir>/<label>/*.wav`` + sidecars.

    Args:
        generation_dir: the generation stage folder (``<run>/05_generation``).
        out_dir: where ``pack/`` and, outside it, ``key.csv`` go (``<run>/07_listening``).
        baseline, system: model labels (folder names); ``system`` may be a list to compare several models.
        pairs_per_scenario: clips per model and scenario (the paper: 1).
        scenarios: only these scenarios, in this order (default: every scenario all models generated).
        clip_s: cut every clip to this many seconds (default: the shortest selected clip); never longer than
            the shortest clip, so all files have the same length.
        target_lufs: integrated loudness of every clip (LUFS), reached under a ``peak_db`` dBTP ceiling with
            :func:`echoscript_utils.audio.standardise_loudness` (``policy``, ``max_limiting_db``: the curated
            clips' policy); a clip that still falls short lowers all clips together so they stay matched.
        sr: sample rate of the pack (default: the lowest rate among the clips, so no clip keeps a bandwidth the
            others lack).
        n_participants: rows of ``playlist.csv`` / the response sheets (participants ``P01`` ...).
        seed: seeds the clip ids and the orders (same inputs + seed → identical pack).
        audio_prefix: where the WAVs live on the webMUSHRA server, relative to its root.
        redo: rebuild even when ``pack_manifest.json`` says the pack is up to date.
        progress: show a progress bar.
    """
    systems = [system] if isinstance(system, str) else list(system)
    labels = list(dict.fromkeys([*systems, baseline]))
    if len(labels) < 2:
        raise InputError("a listening pack needs at least two different model labels (baseline and system)")
    out = Path(out_dir)
    gen = collect_generated(generation_dir, labels)
    chosen, notes = _select_pairs(gen, labels, pairs_per_scenario=pairs_per_scenario, scenarios=scenarios)

    settings = {"labels": labels, "pairs_per_scenario": pairs_per_scenario, "scenarios": scenarios,
                "clip_s": clip_s, "target_lufs": target_lufs, "peak_db": peak_db, "sr": sr,
                "policy": policy, "max_limiting_db": max_limiting_db,
                "n_participants": n_participants, "seed": seed, "audio_prefix": audio_prefix, "version": 3}
    inputs = [(str(r.model), str(r.scenario), file_hash(r.wav), file_hash(r.sidecar)) for r in chosen.itertuples()]
    digest = text_hash(settings, inputs)
    manifest_path = out / "pack_manifest.json"
    if not redo and _is_up_to_date(out, manifest_path, digest):
        return load_pack(out, cached=True)

    wavs, pack_sr, pack_ch, n = _load_clips(chosen, sr=sr, clip_s=clip_s, notes=notes, progress=progress)
    wavs, lufs_in, limiting, floor = _match_loudness(chosen, wavs, pack_sr, target_lufs=target_lufs,
                                                     peak_db=peak_db, policy=policy,
                                                     max_limiting_db=max_limiting_db, notes=notes)
    chosen, order, key, sources, wav_by_clip = _blind(chosen, wavs, lufs_in, limiting, pack_sr, seed=seed)
    lufs_out = _write_pack_folder(out, wav_by_clip=wav_by_clip, chosen=chosen, key=key, order=order,
                                  pack_sr=pack_sr, n=n, floor=floor, n_participants=n_participants, seed=seed,
                                  audio_prefix=audio_prefix, digest=digest)
    atomic_write_text(out / "key.csv", key.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(out / "pack_sources.csv", sources.to_csv(index=False, lineterminator="\n"))
    pack = Pack(root=out, key=key.reset_index(drop=True), sources=sources, sr=pack_sr, channels=pack_ch,
                duration_s=n / pack_sr, target_lufs=target_lufs, lufs=lufs_out, notes=notes)
    write_json(manifest_path, {"hash": digest, "settings": settings, "sample_rate": pack_sr, "channels": pack_ch,
                               "duration_s": n / pack_sr, "lufs": lufs_out, "notes": notes})
    return pack


def _is_up_to_date(out: Path, manifest_path: Path, digest: str) -> bool:
    """True when ``pack_manifest.json`` records ``digest`` and ``key.csv`` and ``pack/`` are there."""
    if manifest_path.is_file():
        try:
            manifest = read_json(manifest_path)
        except (OSError, json.JSONDecodeError):
            manifest = {}
        if manifest.get("hash") == digest and (out / "key.csv").is_file() and (out / "pack").is_dir():
            return True
    return False


def _load_clips(chosen: pd.DataFrame, *, sr: int | None, clip_s: float | None, notes: list[str],
                progress: bool) -> tuple[list[np.ndarray], int, int, int]:
    """Load the chosen clips at one rate and channel count, cut to one length with fades.

    Returns the clips (each ``[C, n]`` float32), the pack's rate (Hz), channels and length ``n`` (samples);
    appends to ``notes`` when ``clip_s`` is longer than the shortest clip.
    """
    from tqdm.auto import tqdm

    wavs, rates, chans = [], [], []
    for r in tqdm(list(chosen.itertuples()), desc="pack: loading clips", disable=not progress):
        w, s = audio.load(r.wav)
        wavs.append(w)
        rates.append(s)
        chans.append(w.shape[0])
    pack_sr = int(sr or min(rates))
    pack_ch = int(min(chans))
    wavs = [audio.resample(audio.to_mono(w) if pack_ch == 1 else w[:pack_ch], s, pack_sr)
            for w, s in zip(wavs, rates, strict=True)]
    n_min = min(w.shape[1] for w in wavs)
    n = n_min if clip_s is None else min(int(round(clip_s * pack_sr)), n_min)
    if clip_s is not None and int(round(clip_s * pack_sr)) > n_min:
        notes.append(f"clip_s={clip_s} is longer than the shortest clip; cut to {n_min / pack_sr:.2f} s")
    if n < int(0.5 * pack_sr):
        raise InputError(f"the shortest selected clip is only {n / pack_sr:.2f} s; generate longer clips "
                         f"(at least 0.5 s) for a listening test")
    wavs = [_fade(w[:, :n], pack_sr) for w in wavs]
    return wavs, pack_sr, pack_ch, n


def _match_loudness(chosen: pd.DataFrame, wavs: list[np.ndarray], pack_sr: int, *, target_lufs: float,
                    peak_db: float, policy: str, max_limiting_db: float,
                    notes: list[str]) -> tuple[list[np.ndarray], list[float], list[float], float]:
    """Match every clip to ``target_lufs`` under the ``peak_db`` dBTP ceiling with the loudness policy (all
    lowered together if one still falls short).

    Returns the matched clips, each clip's loudness before (LUFS), the limiter's largest gain reduction per clip
    (dB) and the loudness they were matched at; appends to ``notes`` when a clip fell short.
    """
    lufs_in = [audio.loudness(w, pack_sr) for w in wavs]
    for r, v in zip(chosen.itertuples(), lufs_in, strict=True):
        if not np.isfinite(v):
            raise InputError(f"{r.wav}: silent (no measurable loudness); regenerate this clip")
    std = [audio.standardise_loudness(w, pack_sr, target_lufs=target_lufs, ceiling_dbtp=peak_db, policy=policy,
                                      max_limiting_db=max_limiting_db, measured_lufs=v)
           for w, v in zip(wavs, lufs_in, strict=True)]
    wavs = [w for w, _ in std]
    limiting = [rec.limiter_gain_reduction_db for _, rec in std]
    measured = [rec.loudness_lufs for _, rec in std]
    floor = min(measured)
    if floor < target_lufs - 0.05:
        notes.append(f"a clip could not reach {target_lufs} LUFS under the {peak_db} dBTP ceiling (policy {policy}); "
                     f"every clip was matched at {floor:.2f} LUFS "
                     f"instead of {target_lufs}")
    wavs = [w * np.float32(10 ** ((floor - m) / 20)) if m - floor > 0.01 else w
            for w, m in zip(wavs, measured, strict=True)]
    return wavs, lufs_in, limiting, floor


def _blind(chosen: pd.DataFrame, wavs: list[np.ndarray], lufs_in: list[float], limiting: list[float], pack_sr: int,
           *, seed: int):
    """Give every clip a random id; returns the chosen rows in scenario / id order, the scenario order, the
    key, the sources table and the clips by id."""
    rng = np.random.default_rng(seed)
    ids = _random_ids(len(chosen), rng)
    chosen = chosen.assign(clip=ids, lufs_in=lufs_in, gain_db=[
        audio.loudness(w, pack_sr) - v for w, v in zip(wavs, lufs_in, strict=True)],
        limiter_gain_reduction_db=np.round(limiting, 3))
    order = list(dict.fromkeys(chosen["scenario"]))
    chosen["_s"] = chosen["scenario"].map({s: i for i, s in enumerate(order)})
    chosen = chosen.sort_values(["_s", "clip"]).drop(columns="_s").reset_index(drop=True)
    key = chosen[["clip", "model", "scenario"]]
    sources = chosen[["clip", "model", "scenario", "pair", "seed", "prompt", "wav", "lufs_in", "gain_db",
                      "limiter_gain_reduction_db"]].copy()
    sources["wav"] = sources["wav"].map(str)
    wav_by_clip = dict(zip(ids, wavs, strict=True))
    return chosen, order, key, sources, wav_by_clip


def _write_pack_folder(out: Path, *, wav_by_clip: dict[str, np.ndarray], chosen: pd.DataFrame, key: pd.DataFrame,
                       order: list[str], pack_sr: int, n: int, floor: float, n_participants: int, seed: int,
                       audio_prefix: str, digest: str) -> dict[str, float]:
    """Write ``pack/`` into a staging folder, then swap it in (:func:`~echoscript_utils.artifacts.staged_dir`);
    returns each written clip's loudness (LUFS)."""
    with staged_dir(out / "pack") as tmp:
        lufs_out = _write_audio(tmp, wav_by_clip, pack_sr)
        scen = _scenario_table(chosen, order)
        playlist = _playlist(key, order, n_participants=n_participants, seed=seed)
        _write_sheets(tmp, playlist, scen)
        cfg = webmushra_config(key, scen, audio_prefix=audio_prefix, test_id=f"listening_{digest[:8]}")
        write_webmushra(cfg, tmp / "webmushra.yaml")
        atomic_write_text(tmp / "README.txt", _readme(len(key), len(order), pack_sr, n / pack_sr, floor,
                                                       audio_prefix))
        for p in [*tmp.rglob("*"), tmp]:  # readable by a web server; one date for every file
            p.chmod(0o755 if p.is_dir() else 0o644)
            os.utime(p, (FIXED_MTIME, FIXED_MTIME))
    return lufs_out


def _write_audio(folder: Path, wav_by_clip: dict[str, np.ndarray], pack_sr: int) -> dict[str, float]:
    """Write ``audio/<clip>.wav``; returns each file's loudness as read back (LUFS)."""
    (folder / "audio").mkdir()
    lufs_out = {}
    for clip in sorted(wav_by_clip):
        path = audio.write(folder / "audio" / f"{clip}.wav", wav_by_clip[clip], pack_sr)
        w, _ = audio.load(path)
        lufs_out[clip] = audio.loudness(w, pack_sr)
    return lufs_out


def load_pack(out_dir: str | os.PathLike, *, cached: bool = False) -> Pack:
    """Open a pack built earlier by :func:`build_pack` (reads ``key.csv`` and ``pack_manifest.json``)."""
    out = Path(out_dir)
    for need in ("key.csv", "pack_manifest.json", "pack"):
        if not (out / need).exists():
            raise InputError(f"{out / need}: missing; build the pack first (echoscript listening pack)")
    m = read_json(out / "pack_manifest.json")
    src = out / "pack_sources.csv"
    return Pack(root=out, key=pd.read_csv(out / "key.csv", dtype=str),
                sources=pd.read_csv(src) if src.is_file() else pd.DataFrame(),
                sr=int(m["sample_rate"]), channels=int(m["channels"]), duration_s=float(m["duration_s"]),
                target_lufs=float(m["settings"]["target_lufs"]), lufs={k: float(v) for k, v in m["lufs"].items()},
                cached=cached, notes=list(m.get("notes", [])))


# ------------------------------------------------------------------------------------------- sheets
def _scenario_table(chosen: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One description per scenario: the prompt when all models shared it, else the shortest prompt."""
    rows = []
    for s in order:
        prompts = [p for p in chosen.loc[chosen["scenario"] == s, "prompt"] if p]
        desc = min(prompts, key=len) if prompts else s
        rows.append({"scenario": s, "description": desc})
    return pd.DataFrame(rows)


def _playlist(key: pd.DataFrame, order: list[str], *, n_participants: int, seed: int) -> pd.DataFrame:
    rows = []
    for j in range(n_participants):
        rng = np.random.default_rng([seed, j + 1])
        pos = 0
        for s in rng.permutation(order):
            clips = list(key.loc[key["scenario"] == s, "clip"])
            for slot, c in enumerate(rng.permutation(clips)):
                pos += 1
                rows.append({"participant": f"P{j + 1:02d}", "position": pos, "scenario": s,
                             "slot": chr(ord("A") + slot), "clip": c})
    return pd.DataFrame(rows)


def _write_sheets(folder: Path, playlist: pd.DataFrame, scen: pd.DataFrame) -> None:
    def put(name: str, df: pd.DataFrame) -> None:
        atomic_write_text(folder / name, df.to_csv(index=False, lineterminator="\n"))

    put("playlist.csv", playlist)
    resp = [{"participant": r.participant, "scenario": r.scenario, "clip": r.clip, "question": q, "score": ""}
            for r in playlist.itertuples() for q in QUESTIONS]
    put("response_sheet.csv", pd.DataFrame(resp))
    pref = [{"participant": p, "scenario": s, "criterion": c, "chosen_clip": ""}
            for (p, s), _ in playlist.groupby(["participant", "scenario"], sort=False) for c in ("MOS", "REL")]
    put("preference_sheet.csv", pd.DataFrame(pref))
    demo = pd.DataFrame({"participant": sorted(playlist["participant"].unique()),
                         **{f: "" for f in DEMOGRAPHIC_FIELDS}})
    put("demographics_template.csv", demo)
    put("questions.csv", pd.DataFrame({"question": list(QUESTIONS), "dimension": list(QUESTIONS.values()),
                                       "text": [QUESTION_TEXT[q] for q in QUESTIONS]}))
    put("scenarios.csv", scen)


def _readme(n_clips: int, n_scen: int, sr: int, dur: float, lufs: float, prefix: str) -> str:
    return f"""Listening test pack
===================

{n_clips} clips for {n_scen} scenarios in audio/, all {dur:.2f} s, {sr} Hz, 16-bit WAV, matched to
{lufs:.1f} LUFS integrated loudness. Clip names are random; the answer key is kept by the experimenter.

Paper forms: give each participant the scenarios in the order of playlist.csv (A before B), collect
response_sheet.csv (scores 1 = very poor ... 5 = excellent), preference_sheet.csv (the clip id preferred for
musical quality, MOS, and for fit to the scene, REL) and demographics_template.csv.

webMUSHRA (https://github.com/audiolabs/webMUSHRA: clone it, or download its ZIP and unzip it) runs the test
in a browser: a welcome page, consent, a volume check, then the scenes in a random order (each scene's clips
rated on every question, then the preferred clip chosen), and a closing survey.

- A pilot on this machine, no web server needed: the workbook's
  "listening serve --pack PACK_FOLDER --study STUDY_FOLDER --webmushra WEBMUSHRA_FOLDER" serves webMUSHRA with
  this pack on 127.0.0.1, prints the address to open, and writes every submission into the study folder.
- On a web server: copy audio/*.wav to {prefix}/ under the webMUSHRA root and webmushra.yaml to configs/, then
  open index.html?config=webmushra.yaml. Serve webMUSHRA's service/write.php with PHP 7 (webMUSHRA's own
  Dockerfile uses PHP 7.0): under PHP 8 it writes the results and then fails with HTTP 500 (webMUSHRA issue
  #103), so participants are shown a sending error although their answers were saved. Results arrive in
  results/<testId>/lms.csv; the workbook's
  "listening import --results results/<testId>/ --key key.csv --output STUDY_FOLDER" turns it into the study
  folder below, sets aside any participant whose answers do not fit (listed with file, line and reason in
  import_report.csv) and never changes lms.csv.

Participants type the code they were given (P01, ...) into the closing survey; give each their own code.
webMUSHRA sends the survey answers without encoding them, so codes of letters and digits are safest.

Put the returned CSVs (responses.csv, preferences.csv, demographics.csv) together with the experimenter's
key.csv in one folder and check it with the workbook's "listening validate --study FOLDER" command.
"""
