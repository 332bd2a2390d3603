"""Is an audio file cut short? Read from its header, before decoding: what the header promises against what the
file holds.

libsndfile reports a WAV or AIFF whose data chunk is shorter than its header says in its log
(:attr:`echoscript_utils.audio.AudioInfo.extra`), and an Ogg stream that lacks its end-of-stream page. An MP3 has
no such count unless it carries a Xing/Info header, whose byte count is compared with the file's size here.

>>> truncation_reason(audio.info(path), path)   # doctest: +SKIP
'its header promises 1323000 bytes of audio, the file holds 441000'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .audio import AudioInfo

__all__ = ["mp3_truncation", "truncation_reason"]


def mp3_truncation(path: str | os.PathLike) -> str | None:
    """Compare the byte count in an MP3's Xing/Info header with the file's size (CBR files have none).

    Returns:
        Why the file is cut short (one phrase), or ``None`` when it is whole or the header gives no count.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(10)
        off = 0
        if head[:3] == b"ID3" and len(head) == 10:
            off = 10 + ((head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]) + (10 if head[5] & 0x10 else 0)
        f.seek(off)
        frame = f.read(4096)
    for tag in (b"Xing", b"Info"):
        i = frame.find(tag)
        if 0 <= i < 200:
            flags = int.from_bytes(frame[i + 4:i + 8], "big")
            j = i + 8 + (4 if flags & 1 else 0)
            if flags & 2 and len(frame) >= j + 4:
                nbytes = int.from_bytes(frame[j:j + 4], "big")
                if nbytes > 0 and size - off < 0.97 * nbytes:
                    return f"its header promises {nbytes} bytes of audio, the file holds {size - off}"
            return None
    return None


def truncation_reason(info: AudioInfo, path: str | os.PathLike) -> str | None:
    """Why the file at ``path`` (whose header :func:`echoscript_utils.audio.info` read as ``info``) is cut short,
    or ``None`` when nothing says so: a WAV/AIFF data chunk shorter than promised, an Ogg stream without its
    end-of-stream page, an MP3 shorter than its Xing/Info byte count."""
    m = re.search(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", info.extra, re.MULTILINE)
    if m and int(m.group(3)) < int(m.group(2)):
        return f"its header promises {int(m.group(2))} bytes of audio, the file holds {int(m.group(3))}"
    if info.format == "OGG" and ("ended unexpectedly" in info.extra or "lacks an end-of-stream" in info.extra):
        return "the Ogg stream ends without its end-of-stream page"
    if info.format == "MP3":
        return mp3_truncation(path)
    return None
