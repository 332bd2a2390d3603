"""The local LLM cue planner (``scoring.planner: local``): an open instruction model through transformers.

For GPU users without an API key. The model sees the same system message and scene text as the OpenAI planner
and answers in the same strict JSON schema (:data:`~echoscript_utils.scoring.plan.CUE_SCHEMA`), checked by the
same validator. The answer is built by **schema-guided decoding**: where the schema allows a fixed set of values
(mood, intensity in tenths, tempo within the mood's range, instruments, genre) the model's log-likelihood of each
allowed value, given the conversation so far, picks one; only the free-text direction is generated, greedily,
and cut at its closing quote. So every answer is valid JSON of the schema, whatever the model, and the chosen
mood's probability among the four is the planner's confidence. Answers are cached on disk by a hash of the model
identity and the request, like the OpenAI replies.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import read_json, text_hash, write_json
from ..errors import StageError
from ..models.hub import sampling_attention
from ..taxonomy import GENRES, INSTRUMENTS, MOODS
from .plan import CUE_SYSTEM_MESSAGE, MOOD_PROFILES, CuePlan, _complete, _parse_cues

__all__ = ["LocalPlanner", "local_plan"]

#: Bump when the prompt or the decoding changes: cached answers of older versions are not reused.
_LOCAL_PLAN_VERSION = 1
_INTENSITIES = [f"{i / 10:.1f}" for i in range(11)]
_MAX_DIRECTION_TOKENS = 40


def _scene_text(scene: Any, *, max_chars: int = 1500) -> str:
    return f"Scene {scene.index}: {scene.heading}\n{scene.action_text[:max_chars]}"


class LocalPlanner:
    """Schema-guided cue planning with a causal LM and its tokenizer (see the module docstring).

    Parameters
    ----------
    model, tokenizer : a transformers causal LM and its tokenizer (:func:`~echoscript_utils.models.instruct.load_instruct`).
    max_input_tokens : the longest input the model takes; long scenes are shortened to fit.
    """

    def __init__(self, model, tokenizer, *, max_input_tokens: int):
        self.model = model
        self.tokenizer = tokenizer
        self.max_input_tokens = int(max_input_tokens)
        import inspect

        # transformers ≥ 5.2x names the cache argument ``cache``; earlier releases ``past_key_values``
        self._cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    # ------------------------------------------------------------------------------------------ prompt
    def prompt(self, scene: Any) -> str:
        """The conversation up to the start of the assistant's answer, shortened to fit the model."""
        budget = self.max_input_tokens - 160  # room for the answer skeleton, the direction and the options
        text = _scene_text(scene)
        while True:
            user = (f"Spot this scene. Return {{\"cues\": [...]}} with one cue for scene {scene.index}.\n\n{text}")
            messages = [{"role": "system", "content": CUE_SYSTEM_MESSAGE}, {"role": "user", "content": user}]
            if getattr(self.tokenizer, "chat_template", None):
                rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            else:
                rendered = f"System: {CUE_SYSTEM_MESSAGE}\n\nUser: {user}\n\nAssistant: "
            n = len(self.tokenizer(rendered, add_special_tokens=False)["input_ids"])
            if n <= budget or len(text) < 40:
                return rendered
            text = text[: int(len(text) * budget / n * 0.95)]

    # -------------------------------------------------------------------------------------- decoding
    def _logprobs(self, prefix: str, options: Sequence[str]) -> np.ndarray:
        """Sum of the log-probabilities of each option's tokens after ``prefix``.

        The shared prefix runs once; its key/value cache is repeated over the options, which run as one batch.
        Where an option's first characters merge with the prefix's last token, that token is scored as part of
        the option, so every option is scored from the same point.
        """
        import torch

        tok = self.tokenizer
        base = tok(prefix, add_special_tokens=False)["input_ids"]
        rows, commons = [], []
        for opt in options:
            ids = tok(prefix + opt, add_special_tokens=False)["input_ids"]
            common = 0
            while common < min(len(ids), len(base)) and ids[common] == base[common]:
                common += 1
            rows.append(ids)
            commons.append(common)
        shared = max(min(commons), 1)
        device = next(self.model.parameters()).device
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        tails = [r[shared:] for r in rows]
        width = max(len(t) for t in tails)
        batch = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), shared + width), dtype=torch.long)
        mask[:, :shared] = 1
        for i, t in enumerate(tails):
            batch[i, : len(t)] = torch.tensor(t, dtype=torch.long)
            mask[i, shared: shared + len(t)] = 1
        with torch.no_grad():
            head = self.model(input_ids=torch.tensor([base[:shared]], device=device), use_cache=True,
                              logits_to_keep=1)
            cache = head.cache if self._cache_kw == "cache" else head.past_key_values
            cache.batch_repeat_interleave(len(rows))
            logits = self.model(input_ids=batch.to(device), attention_mask=mask.to(device), use_cache=True,
                                **{self._cache_kw: cache}).logits.float()
        # the first tail token is predicted by the prefix's last position, the others by the tail itself
        logp = torch.log_softmax(torch.cat([head.logits[:, -1:].float().expand(len(rows), 1, -1), logits[:, :-1]],
                                           dim=1), dim=-1).cpu()
        out = np.empty(len(rows))
        for i, (t, c) in enumerate(zip(tails, commons)):
            first = max(c, 1) - shared  # score from where the option departs from the prefix
            idx = torch.arange(first, len(t))
            out[i] = float(logp[i, idx, torch.tensor(t, dtype=torch.long)[idx]].sum()) if len(idx) else 0.0
        return out

    def _choose(self, prefix: str, options: Sequence[str]) -> tuple[int, np.ndarray]:
        lp = self._logprobs(prefix, options)
        p = np.exp(lp - lp.max())
        return int(np.argmax(lp)), p / p.sum()

    def _direction(self, prefix: str) -> str:
        import torch

        tok = self.tokenizer
        ids = tok(prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
        device = next(self.model.parameters()).device
        with torch.no_grad(), sampling_attention(self.model):
            out = self.model.generate(ids.to(device), attention_mask=torch.ones_like(ids).to(device),
                                      max_new_tokens=_MAX_DIRECTION_TOKENS, do_sample=False,
                                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        text = (text.split('"')[0].strip().splitlines() or [""])[0]
        return re.sub(r"[^\w\s,.;:'()\-–—!?/]", "", text).strip()[:200]

    def answer(self, scene: Any) -> tuple[str, float]:
        """The JSON answer for one scene (a string of :data:`CUE_SCHEMA`) and the mood's probability."""
        head = self.prompt(scene) + f'{{"cues": [{{"scene": {int(scene.index)}, "mood": "'
        m, pm = self._choose(head, [f'{x}"' for x in MOODS])
        mood = MOODS[m]
        head += f'{mood}", "intensity": '
        i, _ = self._choose(head, [f"{x}," for x in _INTENSITIES])
        head += f'{_INTENSITIES[i]}, "bpm": '
        lo, hi = MOOD_PROFILES[mood]["bpm"]
        tempi = list(range(int(lo) // 4 * 4, int(hi) + 4, 4))
        b, _ = self._choose(head, [f"{x}," for x in tempi])
        head += f'{tempi[b]}, "instruments": ['
        chosen: list[str] = []
        while len(chosen) < 3:
            left = [x for x in INSTRUMENTS if x not in chosen]
            opts = [f'"{x}"' for x in left] + (["]"] if chosen else [])
            k, _ = self._choose(head, opts)
            if k >= len(left):
                break
            chosen.append(left[k])
            head += f'"{left[k]}"' + (", " if len(chosen) < 3 else "")
        head = head.rstrip(", ") + '], "genre": "'
        g, _ = self._choose(head, [f'{x}"' for x in GENRES])
        head += f'{GENRES[g]}", "direction": "'
        direction = self._direction(head)
        cue = {"scene": int(scene.index), "mood": mood, "intensity": float(_INTENSITIES[i]), "bpm": tempi[b],
               "instruments": chosen, "genre": GENRES[g], "direction": direction}
        return json.dumps({"cues": [cue]}), float(pm[m])


def local_plan(scenes: Sequence[Any], *, model: str, cache_dir: str | os.PathLike, device: str = "cpu",
               dtype: Any = None, seed: int = 1234, planner: LocalPlanner | None = None,
               progress: bool = True) -> list[CuePlan]:
    """Cue plans from a local instruction model (hub id, folder or ``tiny-instruct``), one scene per request.

    Answers are cached in ``<cache_dir>/scoring_plans/local-<hash>.json`` (the hash covers the model's identity,
    the decoding version and the prompt), so a rerun loads nothing when every scene is cached. A failure names
    the scene and the model in one line (:class:`~echoscript_utils.errors.StageError`).
    """
    from tqdm.auto import tqdm

    from ..models.hub import model_identity, resolve_model

    cache = Path(cache_dir) / "scoring_plans"
    ident = model_identity(resolve_model(model, cache_dir=Path(cache_dir) / "models", seed=seed), seed=seed)
    out: list[CuePlan] = []
    bar = tqdm(scenes, desc="cue plan (local)", disable=not progress, leave=False)
    for scene in bar:
        key = {"v": _LOCAL_PLAN_VERSION, "model": ident, "scene": int(scene.index), "heading": scene.heading,
               "text": scene.action_text}
        path = cache / f"local-{text_hash(key, length=24)}.json"
        if path.is_file():
            saved = read_json(path)
            content, confidence = saved["content"], float(saved["confidence"])
        else:
            if planner is None:
                from ..models.instruct import load_instruct, max_input_tokens

                lm, tok = load_instruct(model, cache_dir=Path(cache_dir) / "models", device=device, dtype=dtype,
                                        seed=seed)
                planner = LocalPlanner(lm, tok, max_input_tokens=max_input_tokens(lm, tok))
            try:
                content, confidence = planner.answer(scene)
            except (RuntimeError, ValueError) as exc:
                raise StageError(f"scene {scene.index} ({scene.heading}): the local planner {model} failed "
                                 f"({(str(exc).splitlines() or [type(exc).__name__])[0][:160]})") from None
            write_json(path, {"model": str(model), "identity": ident, "request_hash": path.stem,
                              "content": content, "confidence": confidence})
        try:
            (cue,) = _parse_cues(content, scenes=[scene])
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise StageError(f"scene {scene.index}: the local planner's answer does not follow the cue schema "
                             f"({exc}); delete {path} and rerun") from None
        _complete(cue, text=scene.action_text)
        cue.planner = f"local:{model}"
        cue.confidence = round(confidence, 3)
        out.append(cue)
    return out
