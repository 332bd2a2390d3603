"""Header forensics: a file cut short is recognised from what its header promises, before any decoding."""

import numpy as np
import pytest
import soundfile as sf

from echoscript_utils import audio
from echoscript_utils.audio_forensics import mp3_truncation, truncation_reason

SR = 44100


def _tone(seconds: float = 6.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize("suffix, expected", [
    (".wav", "its header promises"),  # RIFF data chunk longer than the file
    (".ogg", "the Ogg stream ends without its end-of-stream page"),
    (".mp3", "its header promises"),  # Xing/Info byte count against the file size
])
def test_a_file_cut_short_is_named_and_a_whole_one_is_not(tmp_path, suffix, expected):
    whole = tmp_path / f"whole{suffix}"
    sf.write(str(whole), np.stack([_tone(), _tone()], axis=1), SR)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 3])
    assert truncation_reason(audio.info(whole), whole) is None
    why = truncation_reason(audio.info(cut), cut)
    assert why is not None and why.startswith(expected)
    if suffix == ".mp3":
        assert mp3_truncation(cut) == f"its header promises {len(data)} bytes of audio, the file holds {len(data) // 3}"
        assert mp3_truncation(whole) is None
