"""Any OpenAI-compatible server (`vllm serve`, SGLang, TGI, a hosted teacher API) over HTTP.

Each sample is its own chat request (the server's prefix cache shares the prompt), so token counts are exact and
a failed sample is retried alone. At most `concurrency` requests are in flight; timeouts, connection errors, 429
and 5xx are retried with exponential backoff. `stream()` keeps `concurrency` requests in flight across all the
sampler's prompts (an event loop in a thread), rather than waiting for a batch's slowest answer. The API key is
read from the variable `api_key_env` names and is sent only in the Authorization header: it is never logged,
stored, or put in an error message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import random
import threading
import time

import httpx

from factory.engines import Completion, Request
from factory.errors import FactoryError
from factory.recipe import EngineConfig, SamplingConfig

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
BACKOFF_BASE = 0.5  # seconds before the first retry; doubled each time, capped at 60, jittered by +-50%


class OpenAIEngine:
    name = "openai"

    def __init__(self, model: str, sampling: SamplingConfig, cfg: EngineConfig, seed: int):
        self.model, self.sampling, self.cfg, self.seed = model, sampling, cfg, seed
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self._key = os.environ.get(cfg.api_key_env, "")
        self._headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self.version = f"openai-compatible {cfg.base_url}"
        self._check_server()

    def _check_server(self) -> None:
        try:
            r = httpx.get(self.cfg.base_url.rstrip("/") + "/models", headers=self._headers, timeout=30)
        except httpx.HTTPError as e:
            raise FactoryError(f"engine.base_url {self.cfg.base_url}: no server answers ({type(e).__name__})") from None
        if r.status_code in (401, 403):
            raise FactoryError(f"engine.base_url {self.cfg.base_url}: key refused; set {self.cfg.api_key_env}")

    def generate(self, requests: list[Request], sampling: SamplingConfig | None = None) -> list[list[Completion]]:
        return asyncio.run(self._all(requests, sampling or self.sampling))

    async def _all(self, requests: list[Request], s: SamplingConfig) -> list[list[Completion]]:
        limit = asyncio.Semaphore(self.cfg.concurrency)
        timeout = httpx.Timeout(self.cfg.timeout, connect=30)
        async with httpx.AsyncClient(headers=self._headers, timeout=timeout) as client:
            jobs = [[self._one(client, limit, r.messages, s) for _ in range(r.n)] for r in requests]
            flat = await asyncio.gather(*[j for group in jobs for j in group])
        out, k = [], 0
        for r in requests:
            out.append(list(flat[k : k + r.n]))
            k += r.n
        return out

    async def _one(self, client: httpx.AsyncClient, limit: asyncio.Semaphore, messages: list[dict], s) -> Completion:
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        for attempt in range(self.cfg.retries):
            async with limit:
                try:
                    t = time.perf_counter()
                    r = await client.post(self.url, json=body)
                    if r.status_code == 200:  # its time: a share of the server's, run beside `concurrency` others
                        return _completion(r.json(), (time.perf_counter() - t) / self.cfg.concurrency)
                    problem = f"HTTP {r.status_code}: {self._hide(r.text)[:300]}"
                    if r.status_code not in RETRY_STATUS:
                        raise FactoryError(f"{self.url} refused the request: {problem}")
                except (httpx.TimeoutException, httpx.TransportError) as e:
                    problem = type(e).__name__
                except (ValueError, KeyError, IndexError, TypeError, AttributeError):  # a 200 that is no completion
                    problem = f"malformed reply: {self._hide(r.text)[:300]}"
            if attempt + 1 == self.cfg.retries:
                break  # no point waiting before giving up
            delay = min(60.0, BACKOFF_BASE * 2**attempt) * (0.5 + random.random())
            log.warning("request failed (%s); retry %d/%d in %.1fs", problem, attempt + 1, self.cfg.retries, delay)
            await asyncio.sleep(delay)
        raise FactoryError(f"{self.url}: gave up after {self.cfg.retries} attempts ({problem})")

    def _hide(self, text: str) -> str:
        """A server's reply with the key masked: some proxies echo the request's headers in their errors."""
        return text.replace(self._key, "***") if self._key else text

    def close(self) -> None:
        pass

    def stream(self) -> OpenAIStream:
        return OpenAIStream(self)


class OpenAIStream:
    """Requests sent as they are added, at most `concurrency` at once; `poll` returns the finished ones."""

    def __init__(self, engine: OpenAIEngine):
        self.engine, self.done, self.unfinished = engine, queue.Queue(), 0
        self.samples, self.counting = 0, threading.Lock()  # samples not yet answered: a round frees slots one by one
        self.capacity = engine.cfg.concurrency
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="openai-stream")
        self.thread.start()
        self.limit = asyncio.Semaphore(engine.cfg.concurrency)
        timeout = httpx.Timeout(engine.cfg.timeout, connect=30)
        self.client = httpx.AsyncClient(headers=engine._headers, timeout=timeout)
        self.tasks: set = set()

    def add(self, key, request: Request, sampling: SamplingConfig | None = None) -> None:
        self.unfinished += 1
        with self.counting:
            self.samples += request.n
        s = sampling or self.engine.sampling
        self.tasks.add(asyncio.run_coroutine_threadsafe(self._one(key, request, s), self.loop))

    async def _one(self, key, request: Request, s: SamplingConfig) -> None:
        try:
            jobs = [self._sample(request, s) for _ in range(request.n)]
            self.done.put((key, list(await asyncio.gather(*jobs)), None))
        except Exception as e:  # handed to the sampler's thread by `poll`
            self.done.put((key, None, e))

    async def _sample(self, request: Request, s: SamplingConfig) -> Completion:
        try:
            return await self.engine._one(self.client, self.limit, request.messages, s)
        finally:
            with self.counting:
                self.samples -= 1

    def poll(self) -> list[tuple]:
        if not self.unfinished:
            return []
        try:
            got = [self.done.get(timeout=0.05)]
        except queue.Empty:
            return []
        while not self.done.empty():
            got.append(self.done.get_nowait())
        self.unfinished -= len(got)
        self.tasks = {t for t in self.tasks if not t.done()}
        for _, _, error in got:
            if error is not None:
                raise error
        return [(key, comps) for key, comps, _ in got]

    def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        asyncio.run_coroutine_threadsafe(self.client.aclose(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


def _completion(data: dict, seconds: float = 0.0) -> Completion:
    choice = data["choices"][0]
    usage = data.get("usage") or {}
    text = choice["message"].get("content") or ""
    reasoning = choice["message"].get("reasoning_content") or choice["message"].get("reasoning")
    if reasoning:  # servers with a reasoning parser split the think block out; put it back
        text = f"<think>\n{reasoning}\n</think>\n{text}"
    return Completion(
        text,
        usage.get("completion_tokens", 0),
        choice.get("finish_reason") or "stop",
        usage.get("prompt_tokens", 0),
        seconds,
    )
