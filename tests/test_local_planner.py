"""The local LLM cue planner: schema-guided decoding with a causal LM, tested on a tiny random Qwen2 model built
from a config and loaded back through the same path as a hub model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from echoscript_utils.errors import ModelNotFoundError
from echoscript_utils.models.instruct import load_instruct, max_input_tokens
from echoscript_utils.scoring import local_plan as lp
from echoscript_utils.scoring.plan import CUE_SCHEMA, _parse_cues
from echoscript_utils.taxonomy import GENRES, INSTRUMENTS, MOODS


@dataclass
class _Scene:
    index: int
    heading: str
    action_text: str
    dialogue: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.action_text


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("local-planner")


@pytest.fixture(scope="module")
def planner(cache):
    model, tok = load_instruct("tiny-instruct", cache_dir=cache / "models")
    return lp.LocalPlanner(model, tok, max_input_tokens=max_input_tokens(model, tok))


SCENES = [
    _Scene(1, "INT. HOSPITAL ROOM - NIGHT", "A monitor flatlines. Anna holds her father's hand and does not let go."),
    _Scene(2, "EXT. STADIUM - DAY", "The crowd roars as Maya crosses the line first, arms to the sky!"),
    _Scene(3, "INT. KITCHEN - MORNING", "Kettle. Toast. The radio murmurs. Ben reads the paper, unhurried."),
]


def _brute_force(model, tok, prefix: str, option: str) -> float:
    base = tok(prefix, add_special_tokens=False)["input_ids"]
    ids = tok(prefix + option, add_special_tokens=False)["input_ids"]
    c = 0
    while c < min(len(ids), len(base)) and ids[c] == base[c]:
        c += 1
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    return float(sum(logp[i - 1, ids[i]] for i in range(max(c, 1), len(ids))))


def test_option_scores_equal_full_forward_passes(planner):
    """The cached, batched option scoring gives the log-likelihood a plain forward pass of each full text gives."""
    prefix = planner.prompt(SCENES[0]) + '{"cues": [{"scene": 1, "mood": "'
    options = [f'{m}"' for m in MOODS] + ["0.7,", '"piano", "violin"']
    fast = planner._logprobs(prefix, options)
    slow = np.array([_brute_force(planner.model, planner.tokenizer, prefix, o) for o in options])
    np.testing.assert_allclose(fast, slow, atol=1e-4)
    assert len(set(np.round(fast, 3))) > 1  # the options are told apart


def test_answers_follow_the_strict_schema(planner):
    props = CUE_SCHEMA["properties"]["cues"]["items"]["properties"]
    for scene in SCENES:
        content, conf = planner.answer(scene)
        cue = json.loads(content)["cues"][0]
        assert set(cue) == set(CUE_SCHEMA["properties"]["cues"]["items"]["required"])
        assert cue["mood"] in MOODS and cue["genre"] in GENRES
        assert set(cue["instruments"]) <= set(INSTRUMENTS) and len(cue["instruments"]) <= 3
        assert 0.0 <= cue["intensity"] <= 1.0 and 40 <= cue["bpm"] <= 200
        assert isinstance(cue["direction"], str) and "\n" not in cue["direction"]
        assert set(cue) == set(props)
        assert 0.25 <= conf <= 1.0  # the chosen mood is the most likely of four
        (plan,) = _parse_cues(content, scenes=[scene])  # the OpenAI path's validator accepts it
        assert plan.mood == cue["mood"]


def test_long_scene_is_shortened_to_the_model_limit(planner):
    long = _Scene(9, "INT. COURTROOM - DAY", " ".join(["The witness hesitates, then speaks at length."] * 800))
    prompt = planner.prompt(long)
    assert len(planner.tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= planner.max_input_tokens - 160
    content, _ = planner.answer(long)
    assert json.loads(content)["cues"][0]["scene"] == 9


def test_plans_are_cached_and_rerun_loads_no_model(cache, monkeypatch):
    cues = lp.local_plan(SCENES, model="tiny-instruct", cache_dir=cache, progress=False)
    assert [c.scene for c in cues] == [1, 2, 3]
    assert all(c.planner == "local:tiny-instruct" and c.bpm and c.instruments and c.direction for c in cues)
    assert all(c.confidence is not None and 0 < c.confidence <= 1 for c in cues)
    assert len(list((cache / "scoring_plans").glob("local-*.json"))) == 3

    def _no_load(*a, **k):
        raise AssertionError("a cached plan loaded the model")

    monkeypatch.setattr("echoscript_utils.models.instruct.load_instruct", _no_load)
    again = lp.local_plan(SCENES, model="tiny-instruct", cache_dir=cache, progress=False)
    assert [(c.mood, c.intensity, c.bpm) for c in again] == [(c.mood, c.intensity, c.bpm) for c in cues]


def test_missing_model_is_one_line(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        load_instruct(str(tmp_path / "no-such-model"), cache_dir=tmp_path)
    assert "\n" not in str(err.value) and "no-such-model" in str(err.value)


def test_a_non_causal_model_is_refused(tmp_path):
    from echoscript_utils.models.hub import resolve_model

    folder = resolve_model("tiny-clap", cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="not a causal language model"):
        load_instruct(folder, cache_dir=tmp_path)


def test_score_command_with_the_local_planner(tmp_path, cache, capsys):
    """``echoscript score`` end to end with ``scoring.planner: local`` and the tiny random instruction model."""
    import pandas as pd

    from echoscript_utils.cli import main

    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    script = tmp_path / "s.fountain"
    script.write_text("INT. KITCHEN - DAY\n\nAnna pours tea.\n\nEXT. STREET - NIGHT\n\nSirens. Ben runs!\n")
    out = tmp_path / "scored"
    sets = ["--set", f"run.cache_dir={cache}", "--set", "scoring.planner=local", "--set",
            "scoring.local_model=tiny-instruct", "--set", "scoring.leitmotif=false", "--set",
            "scoring.max_cue_s=0.4", "--set", "scoring.window_s=1", "--set", "scoring.relevance=false",
            "--set", f"run.output_root={tmp_path / 'runs'}"]
    assert main(["score", str(script), "--params", str(repo / "params" / "demo.yaml"), "--output", str(out),
                 *sets]) == 0
    sheet = pd.read_csv(out / "cue_sheet.csv")
    assert list(sheet["scene"]) == [1, 2] and set(sheet["planner"]) == {"local:tiny-instruct"}
    assert sheet["planner_confidence"].between(0.25, 1).all() and set(sheet["mood"]) <= set(MOODS)


def test_half_precision_direction_is_decoded_with_cudnn_attention_off(cache):
    """A planner loaded in bf16 (as on a GPU) writes its free-text direction with cuDNN's attention kernel switched
    off (slow on every new key length), and the switch is restored afterwards."""
    model, tok = load_instruct("tiny-instruct", cache_dir=cache / "models")
    model = model.to(torch.bfloat16)
    half = lp.LocalPlanner(model, tok, max_input_tokens=max_input_tokens(model, tok))
    seen = []
    hook = model.register_forward_pre_hook(lambda m, a: seen.append(torch.backends.cuda.cudnn_sdp_enabled()))
    try:
        direction = half._direction('{"cues": [{"scene": 1, "mood": "calming", "direction": "')
    finally:
        hook.remove()
    assert seen and set(seen) == {False} and isinstance(direction, str)
    assert torch.backends.cuda.cudnn_sdp_enabled()
