"""The API backend: any OpenAI-compatible server (vLLM, llama.cpp, hosted providers), via the official client.

Model string ``openai:<served model name>``; options (a config's model entry or ``--model-option``):

    base_url        the server, e.g. http://127.0.0.1:8000/v1 (default: the client's, i.e. OpenAI's)
    api_key_env     the environment variable holding the key (default OPENAI_API_KEY); the key itself
                    is never written anywhere. A local server (127.0.0.1, localhost) needs none.
    mode            "exact" (default) or "lower_bound"
    concurrency     requests in flight at once (default 8)
    timeout         seconds per request (default 60); max_retries (default 6)
    max_requests    refuse to start a scoring call that could send more (default 20000)
    top_logprobs    lower_bound: tokens visible per step (default 10, the study's)
    min_prob        lower_bound: expand only partial answers at least this probable (default 1e-3)
    price_per_1k_prompt_tokens, price_per_1k_completion_tokens   for the cost line of the summary

**exact** asks ``/v1/completions`` for ``prompt + answer`` with ``echo``, ``logprobs`` and one
generated token; the server returns the log-probability of every prompt token and their character
offsets. The answer's tokens are those starting at or after the prompt's length; a token that starts
inside the prompt and ends inside the answer straddles the boundary (BPE merged them): its
log-probability is counted and the score flagged ``straddles``. A server that returns no prompt
log-probabilities stops the run with one line that suggests ``mode: lower_bound``.

**lower_bound** is the study's method for APIs that show only the top-N log-probs of *generated*
tokens: starting from the prompt, ask for the top-N next tokens, extend every partial text that is
still a prefix of some answer and at least ``min_prob`` probable, and add a path's probability to an
answer when its text spells that answer. Paths are merged by text (two token paths to "14" are one
node, whose probability is their sum), so the requests per prompt are at most the number of distinct
prefixes of the answers -- the estimate printed before a run. Each answer's value is a lower bound;
the score's ``unexplored`` is the probability mass the search could not see: top-N
tails and pruned prefixes. An answer's true probability lies in [bound, bound + unexplored]. One caveat
of any text-level search: the server re-tokenizes ``prompt + partial text``, which need not be the token
path that produced it.

Faults: the client retries 429, 5xx, timeouts and dropped connections with exponential backoff; a
body that arrives but cannot be parsed is retried here; 401/403 stop at once with one line. Every
answered request is appended to a cache in the run folder (``api_cache.jsonl``, keyed by the sha256
of the request), so a resumed run repeats no request. Token counts and, given prices, the cost are
reported by :meth:`APIBackend.usage`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, ClassVar, Sequence
from urllib.parse import urlparse

from superpose.backends.base import Backend, ContinuationScore, ScoreRequest
from superpose.errors import SuperposeError

CACHE_FILE = "api_cache.jsonl"
OPTIONS = {"base_url": None, "api_key_env": "OPENAI_API_KEY", "mode": "exact", "concurrency": 8, "timeout": 60.0,
           "max_retries": 6, "max_requests": 20000, "top_logprobs": 10, "min_prob": 1e-3, "batch_size": 64,
           "price_per_1k_prompt_tokens": None, "price_per_1k_completion_tokens": None}
MODES = ("exact", "lower_bound")


class APIError(SuperposeError):
    """The server refused or could not answer (after retries): one line, never the key."""


class RequestCache:
    """Answered requests of a run, one JSON line each (``key``, ``value``), appended and fsync'd."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.entries: dict[str, Any] = {}
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: that request is simply asked again
                    continue
                self.entries[item["key"]] = item["value"]

    @staticmethod
    def key(endpoint: str, body: dict) -> str:
        """sha256 of the endpoint and the request body (sorted keys)."""
        return hashlib.sha256(json.dumps([endpoint, body], sort_keys=True).encode()).hexdigest()

    def put(self, key: str, value: Any) -> None:
        """Remember an answer (in memory, and on disk when the cache has a file)."""
        self.entries[key] = value
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "value": value}) + "\n")
                f.flush()
                os.fsync(f.fileno())


class APIBackend(Backend):
    """A model behind an OpenAI-compatible completions endpoint."""

    kind: ClassVar[str] = "openai"
    capabilities: ClassVar[frozenset[str]] = frozenset({"score"})
    remote: ClassVar[bool] = True

    def __init__(self, model: str, dtype: str = "float32", device: str | None = None, **options: Any):
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise SuperposeError(f"openai model options: unknown {unknown}; allowed: {', '.join(OPTIONS)}")
        if device not in (None, "auto"):
            raise SuperposeError(f"model 'openai:{model}': --device does not apply to a model behind an API")
        self.options = {**OPTIONS, **options}
        if self.options["mode"] not in MODES:
            raise SuperposeError(f"openai model option mode: expected one of {', '.join(MODES)}, "
                                 f"got {self.options['mode']!r}")
        self.model, self.name = model, f"openai:{model}"
        self.batch_size = int(self.options["batch_size"])
        self.api_key = self._key()
        self.cache = RequestCache()
        self.counts = {"requests": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens": 0, "retried_bodies": 0}

    def _key(self) -> str:
        env = self.options["api_key_env"]
        key = os.environ.get(env)
        if key:
            return key
        host = urlparse(self.options["base_url"] or "").hostname
        if host in ("127.0.0.1", "localhost", "::1"):
            return "EMPTY"  # local servers (vLLM's) accept any key unless started with --api-key
        raise SuperposeError(f"model '{self.name}': set the API key in the environment variable {env} "
                             "(or name another with the model option api_key_env)")

    # --- the interface ------------------------------------------------------------------------------

    @property
    def provenance(self) -> dict:
        safe = {k: v for k, v in self.options.items() if k != "api_key_env"}
        return {"name": self.name, "backend": "openai", "model": self.model, "api_key_env": self.options["api_key_env"],
                **safe}

    @property
    def max_context(self) -> int:
        return 1 << 30  # unknown: the server refuses a prompt that is too long, and that error stops the run

    def count_tokens(self, text: str) -> int:
        return len(text)  # an upper bound for byte-level BPE tokenizers; the tokenizer is the server's

    def check_request(self, request: ScoreRequest) -> None:
        if not request.continuations or not all(request.continuations):
            raise SuperposeError("no continuations to score" if not request.continuations
                                 else "cannot score an empty continuation")

    def bind_run(self, folder: Path) -> None:
        self.cache = RequestCache(Path(folder) / CACHE_FILE)

    def check_access(self) -> None:
        """One GET /models: a refused key or an unknown model is one line now, before a run folder exists."""
        import openai

        client = openai.OpenAI(api_key=self.api_key, base_url=self.options["base_url"],
                               timeout=float(self.options["timeout"]), max_retries=int(self.options["max_retries"]))
        try:
            served = [m.id for m in client.models.list()]
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise self._refused(client, e) from None
        except openai.APIError as e:
            raise APIError(f"model '{self.name}': cannot reach {client.base_url} ({type(e).__name__})") from None
        finally:
            client.close()
        if served and self.model not in served:
            raise APIError(f"model '{self.name}': the server at {client.base_url} serves {', '.join(served[:10])}, "
                           f"not '{self.model}'")

    def _refused(self, client: Any, e: Any) -> APIError:
        # Names the variable, never its value.
        return APIError(f"model '{self.name}': the server at {client.base_url} refused the key in "
                        f"${self.options['api_key_env']} (HTTP {e.status_code})")

    def plan(self, requests: Sequence[ScoreRequest]) -> int:
        """Most requests scoring ``requests`` can send (cached ones included); more than
        ``max_requests`` is an error before any is sent."""
        if self.options["mode"] == "exact":
            n = sum(len(r.continuations) for r in requests)
        else:
            n = sum(len(_prefixes(r.continuations)) for r in requests)
        if n > self.options["max_requests"]:
            raise SuperposeError(f"model '{self.name}': this could send {n} requests, more than "
                                 f"max_requests={self.options['max_requests']}; raise it in the model's options")
        return n

    def usage(self) -> dict:
        """Requests sent and answered from the cache, tokens, and the cost when prices are configured."""
        out: dict[str, Any] = dict(self.counts)
        p, c = self.options["price_per_1k_prompt_tokens"], self.options["price_per_1k_completion_tokens"]
        if p is not None or c is not None:
            out["cost"] = (self.counts["prompt_tokens"] * (p or 0) + self.counts["completion_tokens"] * (c or 0)) / 1000
        return out

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        requests = list(requests)
        for r in requests:
            self.check_request(r)
        self.plan(requests)
        return asyncio.run(self._score_all(requests))

    # --- requests -----------------------------------------------------------------------------------

    async def _score_all(self, requests: list[ScoreRequest]) -> list[list[ContinuationScore]]:
        import openai

        client = openai.AsyncOpenAI(api_key=self.api_key, base_url=self.options["base_url"],
                                    timeout=float(self.options["timeout"]), max_retries=int(self.options["max_retries"]))
        gate = asyncio.Semaphore(int(self.options["concurrency"]))
        try:
            if self.options["mode"] == "exact":
                pairs = [(r.prompt, c) for r in requests for c in r.continuations]
                flat = iter(await _first_alone([lambda p=p, c=c: self._exact(client, gate, p, c) for p, c in pairs]))
                return [[next(flat) for _ in r.continuations] for r in requests]
            return await _first_alone([lambda r=r: self._lower_bound(client, gate, r) for r in requests])
        finally:
            await client.close()

    async def _complete(self, client: Any, gate: asyncio.Semaphore, body: dict, parse: Any) -> Any:
        """``parse(response)`` of one completions request, from the cache when it was answered before."""
        import openai

        key = RequestCache.key("completions", body)
        if key in self.cache.entries:
            self.counts["cached"] += 1
            return self.cache.entries[key]
        for attempt in range(3):
            async with gate:
                try:
                    response = await client.completions.create(model=self.model, **body)
                except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                    raise self._refused(client, e) from None
                except openai.NotFoundError:
                    raise APIError(f"model '{self.name}': the server at {client.base_url} has no model "
                                   f"'{self.model}' (HTTP 404)") from None
                except openai.BadRequestError as e:
                    raise APIError(f"model '{self.name}': the server refused the request (HTTP 400): "
                                   f"{_message(e)}") from None
                except openai.APIResponseValidationError:
                    self.counts["retried_bodies"] += 1
                    continue
                except openai.APIError as e:
                    raise APIError(f"model '{self.name}': no answer from {client.base_url} after "
                                   f"{self.options['max_retries']} retries ({type(e).__name__})") from None
            self.counts["requests"] += 1
            if response.usage is not None:
                self.counts["prompt_tokens"] += response.usage.prompt_tokens or 0
                self.counts["completion_tokens"] += response.usage.completion_tokens or 0
            value = parse(response)
            self.cache.put(key, value)
            return value
        raise APIError(f"model '{self.name}': unreadable answers from {client.base_url} three times in a row")

    async def _exact(self, client: Any, gate: asyncio.Semaphore, prompt: str, answer: str) -> ContinuationScore:
        body = {"prompt": prompt + answer, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0.0}

        def parse(response: Any) -> dict:
            lp = response.choices[0].logprobs
            if lp is None or not lp.token_logprobs or lp.text_offset is None:
                raise APIError(f"model '{self.name}': the server returns no prompt log-probs with echo; "
                               "use the model option mode: lower_bound")
            return {"offsets": list(lp.text_offset), "logprobs": list(lp.token_logprobs)}

        got = await self._complete(client, gate, body, parse)
        return _answer_score(got, len(prompt), len(prompt) + len(answer), answer, self.name)

    async def _lower_bound(self, client: Any, gate: asyncio.Semaphore, request: ScoreRequest) -> list[ContinuationScore]:
        answers = list(request.continuations)
        prefixes = _prefixes(answers)
        floor, n_top = float(self.options["min_prob"]), int(self.options["top_logprobs"])
        found = {a: 0.0 for a in answers}
        unexplored = 0.0
        level: dict[str, float] = {"": 1.0}  # partial text -> probability (paths merged by text)
        while level:
            texts = sorted(level)
            bodies = [{"prompt": request.prompt + t, "max_tokens": 1, "logprobs": n_top, "temperature": 0.0}
                      for t in texts]
            tops = await asyncio.gather(*[self._complete(client, gate, b, _top_logprobs) for b in bodies])
            nxt: dict[str, float] = {}
            for text, top in zip(texts, tops):
                p = level[text]
                visible = math.fsum(math.exp(v) for v in top.values())
                unexplored += p * max(0.0, 1.0 - visible)
                for token, lp in top.items():
                    child, q = text + token, p * math.exp(lp)
                    if child in found:
                        found[child] += q
                    if child in prefixes:  # also when it is an answer: "10" is a prefix of "109"
                        if q >= floor:
                            nxt[child] = nxt.get(child, 0.0) + q
                        else:
                            unexplored += q
            level = nxt
        return [ContinuationScore(a, [], [math.log(found[a])] if found[a] > 0 else [-math.inf],
                                  lower_bound=True, unexplored=unexplored) for a in answers]


async def _first_alone(jobs: list[Any]) -> list[Any]:
    """Await ``jobs[0]()`` alone, then the rest together: a refused key or a bad request costs one request."""
    first = await jobs[0]()
    return [first, *await asyncio.gather(*(job() for job in jobs[1:]))]


def _top_logprobs(response: Any) -> dict[str, float]:
    lp = response.choices[0].logprobs
    if lp is None or not lp.top_logprobs:
        raise APIError("the server returned no top log-probs for the generated token")
    return dict(lp.top_logprobs[0])


def _prefixes(answers: Sequence[str]) -> set[str]:
    """Every proper, non-empty prefix of the answers, plus "" (the nodes a lower-bound search may expand)."""
    return {""} | {a[:i] for a in answers for i in range(1, len(a))}


def _answer_score(got: dict, start: int, end: int, answer: str, name: str) -> ContinuationScore:
    """The answer's tokens within an echoed prompt + answer: those starting in [start, end)."""
    offsets, logprobs = got["offsets"], got["logprobs"]
    ends = offsets[1:] + [10**12]
    picked = [i for i, (a, b) in enumerate(zip(offsets, ends)) if a < end and b > start]
    if not picked or any(logprobs[i] is None for i in picked):
        raise APIError(f"model '{name}': no log-probs for the answer {answer!r} in the echoed prompt")
    straddles = offsets[picked[0]] < start
    return ContinuationScore(answer, [], [float(logprobs[i]) for i in picked], straddles)


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(e)[:300]
