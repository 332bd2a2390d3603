"""Scene prompts: the offline generator, diversity measures, and the OpenAI path against a fake local server."""

import json
import time
from http.server import BaseHTTPRequestHandler

import pytest
from loopback import LoopbackServer

from echoscript_utils import prompts as P
from echoscript_utils.errors import ConfigError, DependencyError
from echoscript_utils.taxonomy import MOODS

PLANTED_KEY = "sk-test-PLANTED-4f1c9e27d0b8a6"


# ------------------------------------------------------------------------------------------- fake server
def _reply(body: dict) -> tuple[int, dict]:
    """A chat-completions reply whose message content is ``body`` as JSON (``body=str`` sent verbatim)."""
    content = body if isinstance(body, str) else json.dumps(body)
    return 200, {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "fake-model",
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": content}}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def good_reply(request: dict) -> tuple[int, dict]:
    """A valid structured reply built from the request: as many prompts as asked for, in the asked mood."""
    user = request["messages"][-1]["content"]
    count = int(user.split()[1])
    mood = user.split("'")[1]
    items = [{"scene": f"scene {mood} {i} seed {request.get('seed')}", "mood": mood,
              "keywords": [mood, "piano", f"k{i}"], "tempo": ["slow"],
              "prompt": f"A {mood} cue number {i} for scene {request.get('seed')}, with piano."}
             for i in range(count)]
    return _reply({"prompts": items})


class FakeOpenAI(LoopbackServer):
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 that answers from a script.

    ``script`` is a list of ``"ok"``, an HTTP status code, ``"malformed"`` or a callable returning ``(status,
    payload)`` or ``(status, payload, headers)``; once it runs out, every request gets ``default``. Every request
    is recorded with its arrival time (``time.monotonic``), headers and JSON body.
    """

    def __init__(self, script=(), default="ok"):
        self.script = list(script)
        self.default = default
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body, "t": time.monotonic()})
                step = fake.script.pop(0) if fake.script else fake.default
                extra_headers = {}
                if step == "ok":
                    status, payload = good_reply(body)
                elif step == "malformed":
                    status, payload = _reply("{'prompts': [this is not json")
                elif callable(step):
                    status, payload, *more = step(body)
                    extra_headers = more[0] if more else {}
                else:
                    status = int(step)
                    payload = {"error": {"message": "Incorrect API key provided: sk-te***a6" if status == 401
                                         else "try later", "type": "error", "code": None}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in extra_headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        super().__init__(Handler)
        self.base_url = self.url + "/v1"


@pytest.fixture
def planted_key(monkeypatch):
    monkeypatch.setenv(P.API_KEY_ENV, PLANTED_KEY)
    return PLANTED_KEY


def _ask(server, cache, *, n=8, batch_size=2, sleeps=None, **kw):
    return P.openai_prompts(n, model="fake-model", temperature=0.7, seed=7, cache_dir=cache, base_url=server.base_url,
                            timeout_s=5, batch_size=batch_size, backoff_s=0.5, progress=False,
                            sleep=(sleeps.append if sleeps is not None else (lambda s: None)), **kw)


# ------------------------------------------------------------------------------------------- offline
def test_offline_prompts_are_deterministic_balanced_and_diverse():
    df = P.offline_prompts(170, seed=1234)
    assert list(df.columns) == P.PROMPT_COLUMNS and len(df) == 170
    assert df["prompt"].is_unique and df["prompt_id"].is_unique
    counts = P.mood_counts(df)
    assert counts["mood"].tolist() == list(MOODS) and counts["n"].sum() == 170
    assert counts["n"].max() - counts["n"].min() <= 1
    assert all(len(k) >= 3 for k in df["keywords"]) and all(len(t) >= 1 for t in df["tempo"])
    assert df["scene"].nunique() >= 50
    div = P.diversity(df)
    assert div["distinct_1"] > 0.1 and div["distinct_2"] > 0.3 and div["unique_share"] == 1.0
    assert P.offline_prompts(170, seed=1234).equals(df)
    assert not P.offline_prompts(170, seed=99)["prompt"].equals(df["prompt"])


def test_diversity_counts_ngrams():
    d = P.diversity(["a b", "a b"])
    assert d["distinct_1"] == 0.5 and d["distinct_2"] == 0.5 and d["unique_share"] == 0.5
    d = P.diversity(["A calm sea.", "a stormy sea"])
    assert d["distinct_1"] == pytest.approx(4 / 6) and d["distinct_2"] == pytest.approx(4 / 4)


def test_prompts_round_trip_csv_and_jsonl(tmp_path):
    df = P.offline_prompts(9, seed=3)
    for name in ("p.csv", "p.jsonl"):
        P.write_prompts(df, tmp_path / name)
        back = P.read_prompts(tmp_path / name)
        assert back.to_dict("records") == df.to_dict("records")


def test_resolve_provider(monkeypatch):
    monkeypatch.delenv(P.API_KEY_ENV, raising=False)
    assert P.resolve_provider("auto") == "offline"
    monkeypatch.setenv(P.API_KEY_ENV, "sk-x")
    assert P.resolve_provider("auto") == "openai" and P.resolve_provider("offline") == "offline"
    with pytest.raises(ConfigError):
        P.resolve_provider("gpt")


# ------------------------------------------------------------------------------------------- OpenAI path
def test_openai_retries_a_rate_limit_then_caches(tmp_path, planted_key):
    sleeps: list[float] = []
    with FakeOpenAI(script=[429, "ok", 503]) as server:
        df = _ask(server, tmp_path, sleeps=sleeps)
        sent = list(server.requests)
    assert len(df) == 8 and df["mood"].value_counts().to_dict() == {m: 2 for m in MOODS}
    assert df["source"].eq("openai:fake-model").all()
    assert len(sent) == 6  # 4 batches + one 429 retry + one 503 retry
    # transport retries are the openai client's own (it counts them in a header); backoff_s is not used for them
    assert [r["headers"]["x-stainless-retry-count"] for r in sent] == ["0", "1", "0", "1", "0", "0"]
    assert sleeps == []
    first = sent[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["authorization"] == f"Bearer {planted_key}"  # the key is sent, only as a header
    assert first["body"]["response_format"]["type"] == "json_schema"
    assert first["body"]["model"] == "fake-model" and first["body"]["temperature"] == 0.7
    # a rerun is answered from the cache: no request at all
    with FakeOpenAI(default=500) as server:
        again = _ask(server, tmp_path)
        assert server.requests == []
    assert again.equals(df)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert planted_key not in f.read_text(errors="ignore")


def test_openai_backoff_doubles(tmp_path, planted_key):
    sleeps: list[float] = []
    with FakeOpenAI(script=[429, 500, 502, "ok"]) as server:
        _ask(server, tmp_path, n=1, sleeps=sleeps)
        t = [r["t"] for r in server.requests]
    assert len(t) == 4 and sleeps == []
    # the client's schedule: 0.5 s doubling, each wait shortened by at most 25 % of jitter
    waits = [b - a for a, b in zip(t, t[1:])]
    assert [w >= 0.75 * 0.5 * 2 ** k - 0.01 for k, w in enumerate(waits)] == [True] * 3, waits
    assert waits[0] < waits[1] < waits[2], waits


def test_openai_rate_limit_honours_retry_after(tmp_path, planted_key):
    def limited(body):
        return 429, {"error": {"message": "slow down", "type": "rate_limit", "code": None}}, {"Retry-After": "1.5"}

    with FakeOpenAI(script=[limited], default="ok") as server:
        df = _ask(server, tmp_path, n=1)
        t = [r["t"] for r in server.requests]
    assert len(df) == 1 and len(t) == 2
    assert t[1] - t[0] >= 1.45  # the server's 1.5 s, not the client's own first wait (at most 0.5 s)


def test_openai_malformed_reply_is_retried_then_reported(tmp_path, planted_key):
    with FakeOpenAI(script=["malformed", "ok"]) as server:
        df = _ask(server, tmp_path, n=4, batch_size=1)
    assert len(df) == 4
    sleeps: list[float] = []
    with FakeOpenAI(default="malformed") as server:
        with pytest.raises(DependencyError) as err:
            _ask(server, tmp_path / "other", n=4, batch_size=1, max_retries=2, sleeps=sleeps)
        assert len(server.requests) == 3
    assert sleeps == [0.5, 1.0]  # asking again after a malformed reply: backoff_s, doubling
    msg = str(err.value)
    assert "malformed reply" in msg and "\n" not in msg and "offline" in msg
    assert not list((tmp_path / "other").rglob("*.json")), "a malformed reply must not be cached"


def test_openai_schema_violations_count_as_malformed(tmp_path, planted_key):
    def wrong_shape(body):
        return _reply({"items": [{"scene": "x"}]})

    with FakeOpenAI(script=[wrong_shape], default="ok") as server:
        df = _ask(server, tmp_path, n=1)
        assert len(server.requests) == 2
    assert len(df) == 1


def test_openai_auth_failure_is_one_line_without_the_key(tmp_path, planted_key):
    with FakeOpenAI(default=401) as server:
        with pytest.raises(ConfigError) as err:
            _ask(server, tmp_path)
        assert len(server.requests) == 1, "an auth failure is not retried"
    msg = str(err.value)
    assert "\n" not in msg and "401" in msg and P.API_KEY_ENV in msg
    assert planted_key not in msg and "sk-te" not in msg


def test_openai_server_errors_exhaust_retries(tmp_path, planted_key):
    with FakeOpenAI(default=500) as server:
        with pytest.raises(DependencyError, match="after 3 tries"):
            _ask(server, tmp_path, n=1, max_retries=2)
        assert len(server.requests) == 3


def test_openai_without_a_key_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv(P.API_KEY_ENV, raising=False)
    with FakeOpenAI() as server:
        with pytest.raises(ConfigError, match=P.API_KEY_ENV):
            _ask(server, tmp_path)
        assert server.requests == []


def test_generate_prompts_dispatches_on_the_section(tmp_path, planted_key):
    from echoscript_utils.config import load_config

    with FakeOpenAI() as server:
        cfg = load_config(None, {"annotation.prompts.provider": "auto", "annotation.prompts.n_prompts": 4,
                                 "annotation.prompts.base_url": server.base_url,
                                 "annotation.prompts.model": "fake-model"})
        df = P.generate_prompts(cfg.annotation.prompts, seed=1, cache_dir=tmp_path, progress=False)
        assert len(server.requests) == 4
    assert len(df) == 4 and df["source"].str.startswith("openai").all()
    cfg = load_config(None, {"annotation.prompts.provider": "offline", "annotation.prompts.n_prompts": 5})
    assert P.generate_prompts(cfg.annotation.prompts, seed=1, cache_dir=tmp_path)["source"].eq("offline").all()


def test_openai_timeout_is_retried(tmp_path, planted_key):
    import time

    def slow(body):
        time.sleep(1.0)
        return good_reply(body)

    sleeps: list[float] = []
    with FakeOpenAI(script=[slow], default="ok") as server:
        df = P.openai_prompts(1, model="fake-model", cache_dir=tmp_path, base_url=server.base_url, timeout_s=0.3,
                              backoff_s=0.25, sleep=sleeps.append, progress=False)
        assert len(server.requests) == 2
        assert server.requests[1]["headers"]["x-stainless-retry-count"] == "1"  # retried by the client
    assert len(df) == 1 and sleeps == []
