"""The curation stage: any folder of music → validated clips of exactly ``clip_s`` seconds, features, metadata.

:func:`curate` walks the input folder (recursively, any file name), and for every candidate file, in worker
processes and one file at a time (memory stays bounded by one block of audio plus one clip, however large the
folder):

1. rejects what cannot be used, with one row in ``skipped.csv`` (``source,reason``; the reason starts with its
   kind): ``directory``, ``unreadable``, ``empty``, ``not audio``, ``truncated``, ``non-finite``, ``too short``,
   ``silent``, ``duplicate`` (identical bytes) and ``near-duplicate`` (same audio re-encoded, resampled or at
   another gain; the reason names the file it duplicates; the first in path order is kept);
2. decodes block by block (libsndfile: WAV 8/16/24/32-bit and float, FLAC, OGG/Vorbis/Opus, MP3, AIFF),
   folds channels to the configured layout (5.1/7.1 with ITU-R BS.775 coefficients) and resamples to
   ``sample_rate`` with soxr HQ in streaming mode;
3. cuts whole, back-to-back clips of ``clip_s`` (or every ``hop_s``); the remainder shorter than a clip at the
   end of a track is dropped (counted in ``metrics.json``), and clips below ``min_rms_db`` are dropped as silent;
   a whole input shorter than one clip but at least ``short_cue_share`` of it (film cues and stingers) becomes
   one clip padded with silence to ``clip_s``; its ``real_duration_s`` says how much of it is music, and
   loudness, features, tags and the training loss use that part only;
4. brings each clip to one loudness under one true-peak ceiling (:func:`echoscript_utils.audio.standardise_loudness`,
   recorded per clip): ``target_lufs: auto`` (the default) first measures every clip (a quick pass, cached like
   the rest, which keeps each input's decoded samples under ``.cache/curation/spill/`` so the second pass reads
   them instead of decoding and resampling again; float32, about twice the size of the clips, removed when the
   stage ends, and not kept when the disk lacks room) and takes the highest target that ``auto_target_share`` of them reach by gain alone under
   ``peak_limit_db`` (−1 dBTP), at most ``auto_target_max_lufs`` (−14 LUFS, audiocraft's level); with
   ``loudness_policy: limit`` a true-peak limiter lets the remaining clips reach it too (at most
   ``max_limiting_db`` of gain reduction), so dynamic orchestral material ends up at one level instead of spread
   over 8 LU; per clip rather than per track because clips are the training examples and a track is never held
   in memory;
5. computes features (:mod:`echoscript_utils.features`) and writes the clip as 16-bit WAV.

Then, in the main process: duplicates are resolved, tracks are split train/valid/eval (whole tracks, stratified
by genre when labels exist, from the seed), ``metadata.jsonl`` (schema v1, :mod:`echoscript_utils.dataset`),
``skipped.csv``, the audiocraft and Hugging Face exports and ``metrics.json`` (with tempo and key accuracy
against ground truth where labels exist) are written atomically, and only when their bytes change.

Reruns are content-hashed: every input's result is cached under ``<output>/.cache/`` by the SHA-256 of its bytes,
its path, its track id and the settings that shape clips and features, so a second run decodes nothing and
rewrites nothing.
"""

from __future__ import annotations

from .inputs import find_inputs, load_labels
from .stage import CurationResult, curate, run
from .tables import accuracy_table, clip_frames, source_table

__all__ = ["CurationResult", "accuracy_table", "clip_frames", "curate", "find_inputs", "load_labels", "run",
           "source_table"]
