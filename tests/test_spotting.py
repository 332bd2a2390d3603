"""Spotting to picture against the real thing: cuts written and read back by OpenTimelineIO's own adapters, the
shared real screenplays spotted against cuts built here, an EDL from the CMX 3600 adapter's own test data (its
registry source package), the bad inputs, and ``echoscript score --edit`` end to end on the demo."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pandas as pd
import pytest

from echoscript_utils import audio
from echoscript_utils.artifacts import read_json
from echoscript_utils.cli import main
from echoscript_utils.errors import InputError
from echoscript_utils.scoring import demo_script
from echoscript_utils.scoring.parse import read_script
from echoscript_utils.scoring.plan import MOOD_PROFILES
from echoscript_utils.spotting import (
    PRO_COLUMNS,
    build_timeline,
    frames_to_tc,
    match_scenes,
    pro_cue_sheet,
    read_cut,
    read_music_events,
    solve_tempo,
    spot_cues,
    tc_to_frames,
    timecode_rate,
    write_timelines,
)

REPO = Path(__file__).resolve().parents[1]
DEMO_CUT = REPO / "echoscript_utils" / "data" / "demo_cut.edl"
RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
RATES = [23.976, 24, 25, 29.97]
SCREENPLAYS = os.environ.get("ECHOSCRIPT_SCREENPLAYS")
needs_shared = pytest.mark.skipif(not SCREENPLAYS, reason="real screenplays not found: set ECHOSCRIPT_SCREENPLAYS")


def _cut_timeline(durations: list[int], rate: float, *, names=None, origin: int = 0, markers=()):
    """A picture cut built with OTIO: one clip per duration (frames), named ``names`` (default ``SC n``)."""
    rate = timecode_rate(rate)
    tl = otio.schema.Timeline(name="test cut", global_start_time=RT(origin, rate))
    v = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for k, d in enumerate(durations):
        name = names[k] if names else f"SC {k + 1}"
        clip = otio.schema.Clip(name=name, media_reference=otio.schema.ExternalReference(
            target_url=f"shot{k + 1:04d}.mov", available_range=TR(RT(0, rate), RT(d + 100, rate))),
            source_range=TR(RT(50, rate), RT(d, rate)))
        for k2, f, label in markers:
            if k2 == k:
                clip.markers.append(otio.schema.Marker(name=label, marked_range=TR(RT(50 + f, rate), RT(0, rate))))
        v.append(clip)
    tl.tracks.append(v)
    return tl


def _script(tmp_path: Path, n: int) -> Path:
    p = tmp_path / f"s{n}.fountain"
    p.write_text("".join(f"INT. ROOM {k} - DAY\n\nSomeone waits in room {k}.\n\n" for k in range(1, n + 1)))
    return p


def _plans(sp, bpm=100):
    return {s.index: {"bpm": bpm, "bpm_range": MOOD_PROFILES["suspenseful"]["bpm"]} for s in sp.scenes}


# ------------------------------------------------------------------------------------------------ timecode
@pytest.mark.parametrize("fps,tc,frames", [(24, "01:00:00:00", 86400), (25, "00:00:10:24", 274),
                                           (23.976, "01:00:00:00", 86400), (29.97, "00:01:00;02", 1800),
                                           (29.97, "00:10:00;00", 17982)])
def test_timecode_through_otio_at_every_rate(fps, tc, frames):
    rate = timecode_rate(fps)
    assert tc_to_frames(tc, rate) == frames
    assert frames_to_tc(frames, rate) == tc  # 29.97 writes drop-frame (';') and skips frames 0, 1 each minute
    with pytest.raises(ValueError):
        tc_to_frames("00:00:00:30", rate)


def test_tempo_solver_lands_hits_on_beats():
    beat = 60.0 / 120.0
    hits = [3 * beat, 7 * beat, 12 * beat]
    bpm, errs = solve_tempo(hits, bpm_range=(90, 150), bpm=100)
    assert abs(bpm - 120) < 0.02 and max(abs(e) for e in errs) < 0.002
    assert solve_tempo([], bpm_range=(90, 150), bpm=100) == (100.0, [])
    # out of the range the solver cannot follow: it reports the errors it leaves
    bpm, errs = solve_tempo([0.61, 1.37], bpm_range=(60, 61), bpm=60)
    assert 60 <= bpm <= 61 and max(abs(e) for e in errs) > 0.05


# ------------------------------------------------------------------------------------------------ round trip
@pytest.mark.parametrize("fps", RATES)
def test_written_edl_xml_otio_read_back_to_the_frame(tmp_path, fps):
    """A cut written by OTIO's adapters is read, spotted; the score's timeline is written as .otio/.edl/.xml and
    OTIO's adapters read back every cue at the same in/out timecodes, to the frame."""
    rate = timecode_rate(fps)
    durations = [173, 240, 61, 398, 125]
    origin = tc_to_frames("01:00:00:00" if fps != 29.97 else "00:59:58;00", rate)
    tl = _cut_timeline(durations, fps, origin=origin, markers=[(1, 100, "HIT door slam")])
    sp = read_script(_script(tmp_path, 5))
    for ext, adapter in (("edl", "cmx_3600"), ("xml", "fcp_xml"), ("otio", "otio_json")):
        path = tmp_path / f"cut.{ext}"
        kw = {"rate": rate} if adapter == "cmx_3600" else {}
        otio.adapters.write_to_file(tl, str(path), adapter_name=adapter, **kw)
        cut = read_cut(path, fps=fps if ext == "edl" else None)
        assert abs(cut.rate - rate) < 1e-6
        matches, unmatched = match_scenes(sp.scenes, cut)
        assert [m.frames for m in matches] == durations and not unmatched
        assert {m.matched_by for m in matches} == {"scene number"}
        if ext != "edl":  # the CMX writer drops the start timecode; the others keep it
            assert cut.tc(0) == frames_to_tc(origin, rate)
        assert [h.frame for h in matches[1].hits if h.source == "marker"] == [173 + 100]
        cues = spot_cues(matches, cut, plans=_plans(sp))
        files = {c.cue: f"cues/{c.cue}.wav" for c in cues}
        written = write_timelines(build_timeline(cues, cut, files=files, name="score"), tmp_path / ext)
        expect = [(c.cue, c.tc_in, c.tc_out, c.frames) for c in cues]
        for kind in ("otio", "edl", "xml"):
            back = read_music_events(written[kind], rate=rate)
            assert [(e["cue"], e["tc_in"], e["tc_out"], e["frames"]) for e in back] == expect, (ext, kind)
    assert [c.cue for c in cues] == ["1M1", "1M2", "1M3", "1M4", "1M5"]


def test_cue_numbers_follow_reels(tmp_path):
    sp = read_script(_script(tmp_path, 3))
    cut_tl = _cut_timeline([24 * 60 * 12, 24 * 60 * 10, 24 * 30], 24)
    path = tmp_path / "reels.otio"
    otio.adapters.write_to_file(cut_tl, str(path))
    cut = read_cut(path)
    cues = spot_cues(match_scenes(sp.scenes, cut)[0], cut, plans=_plans(sp), reel_minutes=20)
    assert [c.cue for c in cues] == ["1M1", "1M2", "2M1"]  # the third cue starts 22 minutes in: reel 2


def test_cue_boundaries_fall_at_music_in_and_out_markers(tmp_path):
    """A MUSIC IN / MUSIC OUT marker inside a scene moves its cue's start / end onto that frame (not a hit)."""
    sp = read_script(_script(tmp_path, 3))
    tl = _cut_timeline([120, 240, 96], 25, markers=[(1, 30, "MUSIC IN"), (1, 150, "HIT slam"), (1, 200, "MUSIC OUT")])
    path = tmp_path / "cut.edl"
    otio.adapters.write_to_file(tl, str(path), adapter_name="cmx_3600", rate=25)
    cut = read_cut(path, fps=25)
    matches, _ = match_scenes(sp.scenes, cut)
    assert (matches[1].cue_in, matches[1].cue_out) == (150, 320)
    cues = spot_cues(matches, cut, plans=_plans(sp))
    assert [(c.start, c.end) for c in cues] == [(0, 120), (150, 320), (360, 456)]
    assert [h["label"] for h in cues[1].hits] == ["HIT SLAM"] and cues[1].hits_s == [4.8]  # the EDL writes capitals
    assert abs(cues[1].hits[0]["error_ms"]) < 1.0  # the tempo puts the slam on a beat counted from MUSIC IN
    back = read_music_events(write_timelines(build_timeline(cues, cut, files={}), tmp_path)["edl"], rate=25.0)
    assert [(e["tc_in"], e["tc_out"]) for e in back] == [(c.tc_in, c.tc_out) for c in cues]


def test_ducking_follows_the_cuts_dialogue_track_else_the_scripts_lines(tmp_path):
    from echoscript_utils.scoring.picture import dialogue_regions

    sp = read_script(demo_script())
    tl = _cut_timeline([96, 144, 168, 120, 96, 144], 24)
    dia = otio.schema.Track(name="DIA 1", kind=otio.schema.TrackKind.Audio)
    dia.append(otio.schema.Gap(source_range=TR(RT(0, 24), RT(120, 24))))
    dia.append(otio.schema.Clip(name="line", source_range=TR(RT(0, 24), RT(48, 24))))
    tl.tracks.append(dia)
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    cut = read_cut(path)
    assert cut.dialogue == [(120, 168)]
    cues = spot_cues(match_scenes(sp.scenes, cut)[0], cut, plans=_plans(sp))
    regions, source = dialogue_regions(cues[1], sp.scenes[1], cut)
    assert source == "cut" and regions == [(1.0, 3.0)]  # frames 120-168 of the cut: 1-3 s into cue 1M2
    cut.dialogue = []
    regions, source = dialogue_regions(cues[1], sp.scenes[1], cut)  # the script: two blocks of scene 2's lines
    spans = sp.scenes[1].dialogue_spans
    assert source == "script" and len(regions) == len(spans) == 2
    assert regions[0][0] == pytest.approx(6.0 * spans[0][0] / sp.scenes[1].printed_lines)


def test_spotting_csv_with_hits_and_names(tmp_path):
    sp = read_script(demo_script())
    csv = tmp_path / "spot.csv"
    csv.write_text("scene,start_tc,end_tc,hits\n"
                   "HARBOUR TOWN,00:00:00:00,00:00:05:00,\n"
                   "3,00:00:05:00,00:00:12:12,00:00:06:00;00:00:09:12\n"
                   "EXT. HARBOUR - DAY,00:00:12:12,00:00:20:00,\n")
    cut = read_cut(csv, fps=25)
    matches, _ = match_scenes(sp.scenes, cut)
    got = {m.scene: (m.matched_by, m.start, m.end) for m in matches if m.matched_by}
    assert got == {1: ("name", 0, 125), 3: ("scene number", 125, 312), 6: ("name", 312, 500)}
    assert [m.matched_by for m in matches if m.scene in (2, 4, 5)] == [None, None, None]  # named as not in the cut
    assert [h.frame for h in matches[2].hits if h.source == "csv"] == [150, 237]


@needs_shared
@pytest.mark.parametrize("name,fps", [("the-last-birthday-card.fountain", 23.976), ("big-fish.fountain", 25),
                                      ("brick-and-steel-crlf.fountain", 29.97)])
def test_shared_screenplays_spotted_against_cuts_built_here(tmp_path, name, fps):
    sp = read_script(Path(SCREENPLAYS) / name)
    rate = timecode_rate(fps)
    durations = [max(int(round(s.duration_s * rate)), 12) for s in sp.scenes]
    # every third clip carries only a shot name: it belongs to the scene before it, as an editor's pickups do
    names, durs = [], []
    for k, d in enumerate(durations):
        if d >= 48 and k % 3 == 0:
            names += [f"SC {k + 1}", f"pickup {k + 1}b"]
            durs += [d - d // 3, d // 3]
        else:
            names.append(f"SC {k + 1}")
            durs.append(d)
    path = tmp_path / "cut.edl"
    otio.adapters.write_to_file(_cut_timeline(durs, fps, names=names, origin=tc_to_frames("01:00:00:00", rate)),
                                str(path), adapter_name="cmx_3600", rate=rate)
    cut = read_cut(path, fps=fps)
    matches, unmatched = match_scenes(sp.scenes, cut)
    assert [m.frames for m in matches] == durations and not unmatched
    cues = spot_cues(matches, cut, plans=_plans(sp))
    assert len(cues) == len(sp.scenes) and sum(c.frames for c in cues) == cut.n_frames
    assert all(a.end == b.start for a, b in zip(cues, cues[1:]))
    back = read_music_events(write_timelines(build_timeline(cues, cut, files={}), tmp_path)["edl"], rate=rate)
    assert [(e["tc_in"], e["tc_out"]) for e in back] == [(c.tc_in, c.tc_out) for c in cues]
    sheet = pro_cue_sheet(cues, title=sp.title)
    assert list(sheet.columns) == PRO_COLUMNS and (sheet["composer"] == "").all() and len(sheet) == len(cues)


# ------------------------------------------------------------------------------------------------ OTIO's own EDL
def _adapter_sdist() -> Path:
    """The CMX 3600 adapter's source package from the registry (its wheel ships no test data), cached."""
    version = importlib.metadata.version("otio-cmx3600-adapter")
    cache = Path(os.environ.get("ECHOSCRIPT_TEST_CACHE", Path.home() / ".cache" / "echoscript" / "test-tools"))
    folder = cache / f"otio-cmx3600-adapter-{version}"
    found = sorted(folder.glob("otio_cmx3600_adapter-*.tar.gz"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            f"otio-cmx3600-adapter=={version}", "-d", str(folder)], capture_output=True, text=True,
                           timeout=300)
        found = sorted(folder.glob("otio_cmx3600_adapter-*.tar.gz"))
        if r.returncode or not found:
            pytest.skip(f"the otio-cmx3600-adapter {version} source package could not be fetched from the registry")
    return found[0]


def test_an_edl_from_otios_own_test_data_is_read_and_matched(tmp_path):
    with tarfile.open(_adapter_sdist()) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("tests/sample_data/screening_example.edl"))
        tar.extract(member, tmp_path, filter="data")
    edl = tmp_path / member.name
    cut = read_cut(edl, fps=24)
    assert cut.tc(0) == "00:59:53:11" and len(cut.events) == 9
    sp = read_script(_script(tmp_path, 9))
    matches, unmatched = match_scenes(sp.scenes, cut)  # the clip names (ZZ100_501 …) name no scene: in order
    assert {m.matched_by for m in matches} == {"order"} and not unmatched
    assert [m.events[0] for m in matches][:2] == ["ZZ100_501 (LAY3)", "ZZ100_502A (LAY3)"]
    # its LOC markers: in the clip's source time where they fit it (OTIO's convention; ZZ100_508's 01:00:15:13
    # is 2 s 1 f into its source, so 01:00:19:18 on the record side), else at their record timecode (ZZ100_504C's
    # two lie outside its source range)
    marked = {m.scene: [(cut.tc(h.frame), h.label) for h in m.hits] for m in matches if m.hits}
    assert marked == {4: [("01:00:01:14", "ANIM FIX NEEDED"), ("01:00:02:14", "ANIM FIX NEEDED")],
                      7: [("01:00:19:18", "GREEN")]}
    cues = spot_cues(matches, cut, plans=_plans(sp))
    assert cues[0].tc_in == "00:59:53:11" and cues[-1].tc_out == cut.tc(cut.n_frames)


# ------------------------------------------------------------------------------------------------ bad input
def _edl(events: list[tuple[str, str, str]], extra: str = "") -> str:
    lines = ["TITLE: BAD", "FCM: NON-DROP FRAME", ""]
    for k, (name, a, b) in enumerate(events, 1):
        n = max(tc_to_frames(b, 25) - tc_to_frames(a, 25), 0)  # source as long as record (read at 25 if need be)
        lines += [f"{k:03d}  AX       V     C        00:00:00:00 {frames_to_tc(n, 25)} {a} {b}",
                  f"* FROM CLIP NAME:  {name}"]
    return "\n".join(lines) + "\n" + extra


BAD_CUTS = {
    "unreadable.otio": ("{\"OTIO_SCHEMA\": \"Timeline.1\", \"tracks\": 12", "OpenTimelineIO cannot read", None),
    "broken.xml": ("<xmeml version='4'><sequence><name>x</name>\n<rate></sequence>", "not well-formed", 2),
    "rate.edl": (_edl([("SC 1", "01:00:00:00", "01:00:02:00"), ("SC 2", "01:00:02:00", "01:00:03:24")]),
                 "does not fit 24.000 fps", 6),
    "short.edl": (_edl([("A", "01:00:00:00", "01:00:02:00"), ("B", "01:00:02:00", "01:00:03:00")]),
                  "shorter than the script", 6),
    "overlap.edl": (_edl([("SC 1", "01:00:00:00", "01:00:02:00"), ("SC 2", "01:00:01:12", "01:00:03:00")]),
                    "overlapping events", 6),
    "overlap.csv": ("scene,start_tc,end_tc\n1,00:00:00:00,00:00:05:00\n2,00:00:04:00,00:00:08:00\n",
                    "overlapping events", 3),
}


@pytest.mark.parametrize("name", sorted(BAD_CUTS))
def test_bad_cuts_give_one_line_naming_file_and_line_and_write_nothing(tmp_path, name, capsys):
    text, what, line = BAD_CUTS[name]
    cut = tmp_path / name
    cut.write_text(text)
    with pytest.raises(InputError) as err:
        sp = read_script(demo_script())
        match_scenes(sp.scenes, read_cut(cut, fps=24 if cut.suffix in (".edl", ".csv") else None))
    msg = str(err.value)
    assert what in msg and str(cut) in msg and "\n" not in msg
    if line is not None:
        assert f"{cut}:{line}:" in msg
    dest = tmp_path / "never"
    rc = main(["score", str(demo_script()), "--edit", str(cut), "--params", str(REPO / "params" / "demo.yaml"),
               "--output", str(dest), "--set", f"run.output_root={tmp_path / 'runs'}"])
    out = capsys.readouterr().err.strip()
    assert rc == 2 and out.startswith("error: ") and str(cut) in out and len(out.splitlines()) == 1
    assert not dest.exists()


def test_a_rate_the_xml_does_not_have_is_refused(tmp_path):
    path = tmp_path / "cut.xml"
    otio.adapters.write_to_file(_cut_timeline([48, 48], 25), str(path), adapter_name="fcp_xml")
    with pytest.raises(InputError, match="runs at 25.000 fps but 24 fps"):
        read_cut(path, fps=24)


# ------------------------------------------------------------------------------------------------ end to end
def test_cli_scores_the_demo_against_its_edl(delivered):
    out = delivered
    printed = (out.parent / "printed.txt").read_text()
    assert "from the cut demo_cut.edl (24 fps, 01:00:00:00 – 01:00:32:00)" in printed and "1M6" in printed
    for name in ("cue_sheet.csv", "score.wav", "spotting_notes.html", "music_cue_sheet.csv", "score.otio",
                 "score.edl", "score.xml", "spotting.csv", "scene_match.csv", "hits.csv", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = read_json(out / "metrics.json")
    assert metrics["timing"] == "cut" and metrics["cut"]["frames"] == 768 and not metrics["cut"]["scenes_not_in_cut"]
    sheet = pd.read_csv(out / "cue_sheet.csv")
    models = list(dict.fromkeys(sheet["model"]))
    assert models == ["musicgen", "leitmotif"]
    sr = 44100
    for label in models:  # each model's cues in time order, each exactly its frames long, one score per model
        d = sheet[sheet["model"] == label]
        assert list(d["start_s"]) == sorted(d["start_s"]) and list(d["cue"]) == [f"1M{k}" for k in range(1, 7)]
        for r in d.itertuples():
            wav, file_sr = audio.load(out / r.file)
            a, b = round(tc_to_frames(r.tc_in, 24) * sr / 24), round(tc_to_frames(r.tc_out, 24) * sr / 24)
            assert wav.shape[-1] == b - a - 0 and r.frames == tc_to_frames(r.tc_out, 24) - tc_to_frames(r.tc_in, 24)
            side = read_json((out / r.file).with_suffix(".json"))
            for key in ("scene", "cue", "model", "mood", "intensity", "bpm", "key", "duration_s", "frames", "fps",
                        "hits_s", "prompt"):
                assert key in side, key
            assert side["cue"] == r.cue and side["frames"] == r.frames and side["fps"] == 24
        info = audio.info(out / label / "score_s0.wav")
        assert info.frames == 32 * sr
    # the editor's markers land on beats: the door handle exactly, every marker within one frame
    hits = pd.read_csv(out / "hits.csv")
    marker = hits[hits["source"] == "marker"]
    assert len(marker) == 3 and (marker["error_frames"].abs() <= 1.0).all()
    assert marker.set_index("label").loc["HIT door handle", "error_ms"] == pytest.approx(0.0, abs=1.0)
    side3 = read_json(out / "musicgen" / "cue003_s0.json")
    assert len(side3["hits_s"]) == 4 and side3["bpm"] != 0
    # OTIO's adapters read the exports back at the cue sheet's timecodes
    first = sheet[sheet["model"] == "musicgen"]
    expect = list(zip(first["cue"], first["tc_in"], first["tc_out"]))
    for ext in ("otio", "edl", "xml"):
        back = read_music_events(out / f"score.{ext}", rate=24)
        assert [(e["cue"], e["tc_in"], e["tc_out"]) for e in back] == expect, ext
    tl = otio.adapters.read_from_file(str(out / "score.otio"))
    assert [t.kind for t in tl.tracks] == ["Video", "Audio"] and len(tl.tracks[0].find_clips()) == 11
    pro = pd.read_csv(out / "music_cue_sheet.csv", keep_default_na=False)
    assert list(pro.columns) == PRO_COLUMNS and list(pro["usage"]) == ["BI"] * 6
    assert list(pro["duration"]) == ["00:04", "00:06", "00:07", "00:05", "00:04", "00:06"]
    notes = (out / "spotting_notes.html").read_text()
    assert all(f"1M{k}" in notes for k in range(1, 7)) and "HIT door handle" in notes
    # the score starts each cue where its timecode says: the first sample of cue 1M4 sits at 17 s
    score, _ = audio.load(out / "musicgen" / "score_s0.wav")
    cue4, _ = audio.load(out / first.iloc[3]["file"])
    at = 17 * sr
    seg = score[0, at: at + sr]
    assert np.corrcoef(seg[2000:], cue4[0, 2000:sr])[0, 1] > 0.9


def _xcorr_lag(signal: np.ndarray, ref: np.ndarray, *, around: int, search: int) -> int:
    """Where ``ref`` starts in ``signal`` (samples), looked for within ``around ± search``."""
    lo = max(around - search, 0)
    seg = signal[lo: around + search + len(ref)]
    n = len(seg) + len(ref)
    c = np.fft.irfft(np.fft.rfft(seg, n) * np.conj(np.fft.rfft(ref, n)), n)[: len(seg) - len(ref) + 1]
    return lo + int(np.argmax(c))


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    """The demo screenplay scored against its EDL with the demo parameters (EBU R128 delivery)."""
    tmp = tmp_path_factory.mktemp("delivered")
    out = tmp / "demo"
    sets = ["--set", f"run.cache_dir={tmp / 'cache'}", "--set", f"run.output_root={tmp / 'runs'}",
            "--set", "scoring.relevance=false", "--set", "scoring.window_s=4", "--set", "generation.top_k=20"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["score", str(demo_script()), "--edit", str(DEMO_CUT), "--params",
                   str(REPO / "params" / "demo.yaml"), "--output", str(out), *sets])
    assert rc == 0
    (tmp / "printed.txt").write_text(printed.getvalue())
    return out


@pytest.mark.skipif(shutil.which("ffmpeg") is None and not os.environ.get("CI"), reason="needs Debian's ffmpeg")
def test_ffmpeg_plays_our_timeline_with_every_cue_within_a_frame(delivered, tmp_path):
    """A real renderer plays the timeline we wrote: every music clip of score.otio, read back by OTIO, is laid by
    ffmpeg at its record time; each cue's start is found in the rendered sound by cross-correlation."""
    from echoscript_utils.delivery import render_preview

    tl = otio.adapters.read_from_file(str(delivered / "score.otio"))
    rate = float(tl.global_start_time.rate)
    music = next(t for t in tl.tracks if t.kind == otio.schema.TrackKind.Audio)
    cues = [{"cue": c.name, "start_s": c.range_in_parent().start_time.to_seconds(),
             "end_s": c.range_in_parent().end_time_exclusive().to_seconds(),
             "path": str(delivered / c.media_reference.target_url)} for c in music.find_clips()]
    mp4 = render_preview(tmp_path / "played.mp4", duration_s=music.duration().to_seconds(), fps=rate, cues=cues,
                         start_timecode=frames_to_tc(int(tl.global_start_time.value), rate), sr=44100)
    wav_path = tmp_path / "played.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-ac", "1", "-ar", "44100", str(wav_path)],
                   check=True)
    played, sr = audio.load(wav_path)
    frame = sr / rate
    for c in cues:
        ref, _ = audio.load(c["path"], sr=sr, mono=True)
        ref = ref[0, int(0.1 * sr): int(1.1 * sr)]  # a second of the cue, past its fade-in
        expect = int(round(c["start_s"] * sr)) + int(0.1 * sr)
        found = _xcorr_lag(played[0], ref, around=expect, search=int(0.5 * sr))
        assert abs(found - expect) <= frame, (c["cue"], (found - expect) / frame)


def test_delivery_stems_loudness_ducking_and_preview(delivered):
    import pyloudnorm as pyln

    out = delivered
    rows = pd.read_csv(out / "delivery.csv")
    assert set(rows["model"]) == {"musicgen", "leitmotif"} and len(rows) == 12
    sr = 44100
    meter = pyln.Meter(sr)
    cut_start = read_json(out / "metrics.json")["cut"]["tc_in"]
    delivered_scores = {label: audio.load(out / "delivery" / label / "score.wav")[0] for label in set(rows["model"])}
    for r in rows.itertuples():  # one Broadcast WAV stem per cue at its start timecode, under the true-peak ceiling
        wav, file_sr = audio.load(out / r.stem)
        assert file_sr == sr and r.time_reference_samples == round(tc_to_frames(r.tc_in, 24) / 24 * sr)
        assert audio.true_peak_db(wav, sr) <= -1.0 + 0.1
        # the stem is its cue's stretch of the delivered (EBU R128) score: laid at its timecode it rebuilds it
        a = round((tc_to_frames(r.tc_in, 24) - tc_to_frames(cut_start, 24)) / 24 * sr)
        np.testing.assert_allclose(wav, delivered_scores[r.model][:, a: a + wav.shape[-1]], atol=1e-6)
        assert r.loudness_lufs == pytest.approx(meter.integrated_loudness(wav.T), abs=0.01)
    for label, d in rows.groupby("model"):  # the cues keep their own levels: not every stem pushed to -23
        assert d["loudness_lufs"].max() - d["loudness_lufs"].min() > 1.0, label
        if shutil.which("mediainfo"):  # a third-party reader finds the stem at its cue's timecode
            info = subprocess.run(["mediainfo", "--Output=JSON", str(out / r.stem)], capture_output=True, text=True,
                                  check=True).stdout
            delay = next(float(t["Delay"]) for t in __import__("json").loads(info)["media"]["track"]
                         if t.get("@type") == "Audio")
            assert delay == pytest.approx(tc_to_frames(r.tc_in, 24) / 24, abs=0.001)
    # ducked under the script's dialogue: every scene but the silent lighthouse (scene 5) has lines
    assert (rows.loc[rows["scene"] != 5, "ducked_db"] == 10.0).all() and (rows.loc[rows["scene"] == 5,
                                                                                    "ducked_db"] == 0.0).all()
    side = read_json(out / "musicgen" / "cue001_s0.json")
    assert side["loudness_target_lufs"] == -23.0 and side["true_peak_target_dbtp"] == -1.0
    assert side["ducking"]["source"] == "script" and len(side["ducking"]["regions"]) == 2
    metrics = read_json(out / "metrics.json")["products"]["delivery"]
    for label in ("musicgen", "leitmotif"):
        score, _ = audio.load(out / "delivery" / label / "score.wav")
        assert score.shape[-1] == 32 * sr
        assert meter.integrated_loudness(score.T) == pytest.approx(-23.0, abs=0.5)
        assert metrics["scores"][label]["loudness_lufs"] == pytest.approx(-23.0, abs=0.5)
    if shutil.which("ffprobe"):
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                str(out / "preview.mp4")], capture_output=True, text=True, check=True).stdout
        assert float(probe) == pytest.approx(32.0, abs=0.05) and metrics["preview"] == "preview.mp4"


def test_without_a_cut_timing_is_labelled_an_estimate(tmp_path, capsys):
    out = tmp_path / "est"
    sets = ["--set", f"run.cache_dir={tmp_path / 'cache'}", "--set", f"run.output_root={tmp_path / 'runs'}",
            "--set", "scoring.relevance=false", "--set", "scoring.leitmotif=false", "--set", "scoring.max_cue_s=0.5",
            "--set", "scoring.window_s=1"]
    assert main(["score", str(_script(tmp_path, 2)), "--params", str(REPO / "params" / "demo.yaml"), "--output",
                 str(out), *sets]) == 0
    assert "(estimated from page count)" in capsys.readouterr().out
    sheet = pd.read_csv(out / "cue_sheet.csv")
    assert set(sheet["timing"]) == {"estimate"} and list(sheet["cue"]) == ["1M1", "1M2"]
    assert read_json(out / "metrics.json")["timing"] == "estimate"
    assert not (out / "score.edl").exists()


def test_every_seed_is_delivered(tmp_path):
    """A second seed is a second take of the score: it gets its own delivered score and stems beside the first."""
    out = tmp_path / "two"
    sets = ["--set", f"run.cache_dir={tmp_path / 'cache'}", "--set", f"run.output_root={tmp_path / 'runs'}",
            "--set", "scoring.relevance=false", "--set", "scoring.leitmotif=false", "--set", "scoring.window_s=4",
            "--set", "scoring.seeds=[0, 1]", "--set", "scoring.preview=false"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["score", str(demo_script()), "--edit", str(DEMO_CUT), "--params",
                     str(REPO / "params" / "demo.yaml"), "--output", str(out), *sets]) == 0
    rows = pd.read_csv(out / "delivery.csv")
    models = set(rows["model"])
    assert set(rows["seed"]) == {0, 1} and len(rows) == 6 * 2 * len(models)
    for m in models:
        first, second = out / "delivery" / m, out / "delivery" / f"{m}_s1"
        assert (first / "score.wav").is_file() and (second / "score.wav").is_file()
        a, _ = audio.load(first / "stems" / "1M3.wav")
        b, _ = audio.load(second / "stems" / "1M3.wav")
        assert a.shape == b.shape and not np.allclose(a, b)
    side = read_json(out / next(iter(models)) / "cue003_s1.json")
    assert side["stem"].endswith("_s1/stems/1M3.wav")


@pytest.mark.parametrize("fps", [24, 29.97])
def test_spotting_figure_ticks_read_as_whole_second_timecodes(fps):
    """The timeline figure's axis is labelled on whole seconds of record timecode (…:05:00, not …:04:14)."""
    import matplotlib

    matplotlib.use("Agg")
    from echoscript_utils.plots.scoring import spotting_timeline
    from echoscript_utils.spotting import frames_to_tc, timecode_rate

    rate = timecode_rate(fps)
    cues = pd.DataFrame({"cue": ["1M1", "1M2"], "start_s": [0.0, 13.0], "duration_s": [13.0, 19.5],
                         "bpm": [60.0, 90.0], "fps": [fps, fps], "tc_in": [frames_to_tc(rate * 3600, rate)] * 2})
    ax = spotting_timeline(cues)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) >= 4 and labels[0] == frames_to_tc(rate * 3600, rate)
    assert all(label.endswith(":00") or label.endswith(";00") for label in labels), labels
    matplotlib.pyplot.close(ax.figure)


def test_the_timeline_figure_says_when_screen_time_is_the_page_count_estimate():
    import matplotlib

    matplotlib.use("Agg")
    from echoscript_utils.plots.scoring import timeline

    scenes = pd.DataFrame({"scene": [1, 2], "start_s": [0.0, 60.0], "duration_s": [60.0, 30.0],
                           "mood": ["calming", "suspenseful"], "intensity": [0.3, 0.8]})
    assert "estimated from page count" in timeline(scenes, estimated=True).get_xlabel()
    assert timeline(scenes).get_xlabel() == "screen time (s)"
    matplotlib.pyplot.close("all")
