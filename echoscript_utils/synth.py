"""Render MIDI to audio through a General MIDI soundfont with tinysoundfont (real instrument samples, no model).

The default soundfont is ``TimGM6mb.sf2``, the small General MIDI bank that ships inside the ``pretty_midi``
package, so rendering needs no download. Rendering is sample-accurate and deterministic: the same MIDI gives
the same samples on every run.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .artifacts import atomic_path
from .errors import DependencyError, InputError

__all__ = ["DRUM_CHANNEL", "default_soundfont", "render_midi", "write_midi"]

#: General MIDI reserves channel 10 (index 9) for percussion.
DRUM_CHANNEL = 9
_N_CHANNELS = 16


def default_soundfont() -> Path:
    """Path of the General MIDI soundfont bundled with ``pretty_midi`` (``TimGM6mb.sf2``)."""
    try:
        import pretty_midi
    except ImportError:  # pragma: no cover
        raise DependencyError("pretty_midi is not installed; run `pip install pretty_midi`") from None
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():  # pragma: no cover
        raise DependencyError(f"{path}: bundled soundfont missing; reinstall pretty_midi or pass soundfont=")
    return path


@lru_cache(maxsize=4)
def _soundfont_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def _events(midi, sr: int) -> list[tuple[int, int, int, int, int, int]]:
    """Flatten a PrettyMIDI into ``(sample, order, kind, channel, a, b)`` tuples sorted by time.

    kinds: 0 program, 1 control change, 2 pitch bend, 3 note off, 4 note on (note-offs before note-ons at the
    same sample, so a repeated pitch retriggers).
    """
    melodic = [c for c in range(_N_CHANNELS) if c != DRUM_CHANNEL]
    events = []
    n_melodic = 0
    for inst in midi.instruments:
        if inst.is_drum:
            chan = DRUM_CHANNEL  # program selects the drum kit (0 standard, 48 orchestra, ...)
        else:
            if n_melodic >= len(melodic):
                raise InputError(f"MIDI has more than {len(melodic)} melodic instruments; merge some parts")
            chan = melodic[n_melodic]
            n_melodic += 1
        events.append((0, 0, 0, chan, int(inst.program), 0))
        for cc in inst.control_changes:
            events.append((round(cc.time * sr), 1, 1, chan, int(cc.number), int(cc.value)))
        for pb in inst.pitch_bends:
            events.append((round(pb.time * sr), 2, 2, chan, int(pb.pitch) + 8192, 0))
        for note in inst.notes:
            if note.end <= note.start:
                continue
            events.append((round(note.start * sr), 4, 4, chan, int(note.pitch), int(note.velocity)))
            events.append((round(note.end * sr), 3, 3, chan, int(note.pitch), 0))
    events.sort()
    return events


def render_midi(midi, *, sr: int = 44100, soundfont: str | os.PathLike | None = None, tail_s: float = 1.0,
                duration_s: float | None = None, gain_db: float = -6.0, max_voices: int = 128) -> np.ndarray:
    """Render a ``pretty_midi.PrettyMIDI`` through a General MIDI soundfont.

    Args:
        midi: the piece; drum instruments (``is_drum``) play on the GM percussion channel, every other
            instrument gets its own channel with its ``program`` (at most 15 melodic instruments).
        sr: output sample rate in Hz.
        soundfont: ``.sf2``/``.sf3`` file; ``None`` uses the GM bank bundled with pretty_midi.
        tail_s: seconds rendered after the last note-off so releases can ring out (ignored with ``duration_s``).
        duration_s: exact output length in seconds; notes past it are cut.
        gain_db: synth output gain in dB (headroom for dense mixes; normalise afterwards).
        max_voices: polyphony limit of the synth.

    Returns:
        float32 ``[2, T]`` stereo audio at ``sr`` (not normalised; may exceed [-1, 1] for dense mixes).
    """
    try:
        import tinysoundfont
    except ImportError:  # pragma: no cover
        raise DependencyError("tinysoundfont is not installed; run `pip install tinysoundfont`") from None

    sf_path = Path(soundfont) if soundfont is not None else default_soundfont()
    if not sf_path.is_file():
        raise InputError(f"{sf_path}: soundfont not found; pass an existing .sf2 file")
    synth = tinysoundfont.Synth(gain=gain_db, samplerate=int(sr))
    sfid = synth.sfload(_soundfont_bytes(str(sf_path.resolve())), max_voices=int(max_voices))
    for chan in range(_N_CHANNELS):
        synth.program_select(chan, sfid, 0, 0, is_drums=chan == DRUM_CHANNEL)

    events = _events(midi, sr)
    if duration_s is not None:
        n_total = int(round(duration_s * sr))
    else:
        last = max((e[0] for e in events), default=0)
        n_total = last + int(round(tail_s * sr))
    buf = bytearray(n_total * 2 * 4)
    view = memoryview(buf)
    pos = 0

    def advance(to: int) -> None:
        nonlocal pos
        to = min(to, n_total)
        if to > pos:
            synth.generate_simple(to - pos, buffer=view[pos * 8:to * 8])
            pos = to

    for sample, _order, kind, chan, a, b in events:
        if sample >= n_total:
            break
        advance(sample)
        if kind == 0:
            synth.program_change(chan, a, chan == DRUM_CHANNEL)
        elif kind == 1:
            synth.control_change(chan, a, b)
        elif kind == 2:
            synth.pitchbend(chan, a)
        elif kind == 3:
            synth.noteoff(chan, a)
        else:
            synth.noteon(chan, a, b)
    advance(n_total)
    wav = np.frombuffer(buf, dtype=np.float32).reshape(-1, 2).T
    return np.ascontiguousarray(wav)


def write_midi(midi, path: str | os.PathLike) -> Path:
    """Atomically write a ``PrettyMIDI`` as a standard MIDI file; returns its path."""

    final = Path(path)
    with atomic_path(final, suffix=".mid") as tmp:
        midi.write(str(tmp))
    return final
