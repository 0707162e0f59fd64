"""The API backend: any OpenAI-compatible server (vLLM, llama.cpp, hosted providers), via the official client.

Model string ``openai:<served model name>``; options (a config's model entry or ``--model-option``):

    base_url        the server, e.g. http://127.0.0.1:8000/v1 (default: the client's, i.e. OpenAI's)
    api_key_env     the environment variable holding the key (default OPENAI_API_KEY); only names ending
                    in _API_KEY, so a config cannot send another secret to its base_url. The key itself
                    is never written anywhere. A local server (127.0.0.1, localhost) needs none.
    mode            "exact" (default) or "lower_bound"
    scoring_path    exact mode: "auto" (default), "shared_prefix" (vLLM servers) or "echo" (see below)
    concurrency     requests in flight at once (default 8)
    timeout         seconds per request (default 60); max_retries (default 6)
    max_requests    refuse to start a scoring call that could send more completions requests (default 20000)
    top_logprobs    lower_bound: tokens visible per step (default 10, the study's)
    min_prob        lower_bound: expand only partial answers at least this probable (default 1e-3)
    price_per_1k_prompt_tokens, price_per_1k_completion_tokens   for the cost line of the summary

**exact** scores every answer token with its exact log-probability, by one of two paths (option
``scoring_path``: ``auto``, the default, takes the first the server offers; the provenance says
which ran):

* ``shared_prefix`` -- vLLM's server (it has ``/tokenize`` and takes vLLM's sampling fields as extra
  body parameters). The server tokenizes the prompt and ``prompt + answer`` (the boundary rule of
  :mod:`superpose.backends.base`); then, per prompt, one completions request on the prompt's token
  ids alone asks, with ``logprob_token_ids``, for the log-probabilities of every answer's first token,
  and one request per longer distinct prefix ``prompt + answer[:j]`` asks for token j
  (:class:`~superpose.backends.base.PrefixPlan`); ``return_tokens_as_token_ids`` makes the answer
  name tokens by id. The prompt request goes first, so with the server's prefix cache (on by default;
  ``--enable-prefix-caching``) the others compute only the tokens past the prompt's last cached block:
  one prompt prefill per prompt. The log-probabilities are the raw model output (the server's default
  ``--logprobs-mode raw_logprobs``; a server that returns logits is refused with one line).
* ``echo`` -- any server that echoes prompt log-probabilities: ``/v1/completions`` with ``echo``,
  ``logprobs`` and one generated token, once for the prompt alone and once per ``prompt + answer``:
  K + 1 prefills per prompt. The answer's tokens are counted, not located by character offsets
  (tokens that are partial UTF-8 characters break those): they are the echoed tokens after the
  prompt's own; when the joint tokenization differs inside the prompt (BPE merged prompt and answer),
  the answer's tokens start at the first token that differs and the score is flagged ``straddles``.
  A server that returns no prompt log-probabilities stops the run with one line that suggests
  ``mode: lower_bound``.

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

from pydantic import ValidationError

from superpose.backends.base import (Backend, ContinuationScore, Encoded, PrefixPlan, ScoreRequest,
                                     continuation_tail)
from superpose.backends.options import APIOptions, option_error
from superpose.errors import SuperposeError, missing_package

CACHE_FILE = "api_cache.jsonl"
# Completions fields of the OpenAI API; anything else in a request body travels as an extra body parameter.
STANDARD_FIELDS = ("prompt", "echo", "logprobs", "max_tokens", "temperature")


OPENAI_VERSION = "3.63.0"  # the version requirements.txt pins


def _openai() -> Any:
    """The ``openai`` package, or one line saying how to install it."""
    try:
        import openai
    except ModuleNotFoundError:
        raise missing_package(f"openai=={OPENAI_VERSION}", "an 'openai:' model") from None
    return openai


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

    @classmethod
    def load(cls, name: str, dtype: str = "float32", device: str | None = None, **options: Any) -> APIBackend:
        """A client for the served model ``name`` (nothing is sent yet); ``options``:
        :class:`~superpose.backends.options.APIOptions`."""
        return cls(name, dtype, device, **options)

    def __init__(self, model: str, dtype: str = "float32", device: str | None = None, **options: Any):
        if device not in (None, "auto"):
            raise SuperposeError(f"model 'openai:{model}': --device does not apply to a model behind an API")
        try:
            self.options = APIOptions.model_validate(options).model_dump()
        except ValidationError as e:
            raise SuperposeError(option_error(f"openai:{model}", "openai", e)) from None
        self.model, self.name = model, f"openai:{model}"
        self.batch_size = int(self.options["batch_size"])
        self.api_key = self._key()
        self.cache = RequestCache()
        self.counts = {"requests": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens": 0, "retried_bodies": 0,
                       "tokenize_requests": 0}
        self.path: str | None = None  # exact mode's scoring path, once the server was asked (_scoring_path)

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
        if self.options["mode"] == "exact":
            safe["scoring_path"] = self._scoring_path()
        return {"name": self.name, "backend": "openai", "model": self.model, "api_key_env": self.options["api_key_env"],
                **safe}

    @property
    def max_context(self) -> int:
        return 1 << 30  # unknown: the server refuses a prompt that is too long, and that error stops the run

    def count_tokens(self, text: str) -> int:
        return len(text)  # an upper bound for byte-level BPE tokenizers; the tokenizer is the server's

    def prepare(self, request: ScoreRequest) -> ScoreRequest:
        """The request itself, once its continuations are checked (the server tokenizes and checks the fit)."""
        if not request.continuations or not all(request.continuations):
            raise SuperposeError("no continuations to score" if not request.continuations
                                 else "cannot score an empty continuation")
        return request

    def bind_run(self, folder: Path) -> None:
        self.cache = RequestCache(Path(folder) / CACHE_FILE)

    def check_access(self) -> None:
        """One GET /models: a refused key or an unknown model is one line now, before a run folder exists."""
        openai = _openai()

        client = openai.OpenAI(api_key=self.api_key, base_url=self.options["base_url"],
                               timeout=float(self.options["timeout"]), max_retries=int(self.options["max_retries"]))
        try:
            served = [m.id for m in client.models.list()]
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise self._refused(client, e) from None
        except openai.APIError as e:
            raise self._failed(client, e) from None
        finally:
            client.close()
        if served and self.model not in served:
            raise APIError(f"model '{self.name}': the server at {client.base_url} serves {', '.join(served[:10])}, "
                           f"not '{self.model}'")

    def _failed(self, client: Any, e: Any) -> APIError:
        """What went wrong once the client gave up (after its retries): the server's own error, or no answer."""
        retries = f"after {self.options['max_retries']} retries"
        status = getattr(e, "status_code", None)
        if status is not None and status >= 500:
            return APIError(f"model '{self.name}': the server at {client.base_url} answered HTTP {status} (a server "
                            f"error) {retries}; see the server's log")
        if status is not None:
            return APIError(f"model '{self.name}': the server at {client.base_url} answered HTTP {status} {retries}: "
                            f"{_message(e)}")
        return APIError(f"model '{self.name}': cannot reach {client.base_url} {retries} ({type(e).__name__})")

    def _refused(self, client: Any, e: Any) -> APIError:
        # Names the variable, never its value.
        return APIError(f"model '{self.name}': the server at {client.base_url} refused the key in "
                        f"${self.options['api_key_env']} (HTTP {e.status_code})")

    def plan(self, requests: Sequence[ScoreRequest]) -> int:
        """Most completions requests scoring ``requests`` can send (cached ones included); more than
        ``max_requests`` is an error before any is sent. Exact mode on the shared-prefix path asks the
        server to tokenize first (free requests, kept in the run's cache) to count its prefixes."""
        if self.options["mode"] == "lower_bound":
            n = sum(len(_prefixes(r.continuations)) for r in requests)
        elif self._scoring_path() == "echo":
            n = sum(len(r.continuations) + 1 for r in requests)
        else:
            encoded = self._run(lambda client, gate: asyncio.gather(*(self._encode(client, gate, r) for r in requests)))
            n = sum(len(PrefixPlan([e]).questions) for e in encoded)
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
            self.prepare(r)
        self.plan(requests)
        return self._run(lambda client, gate: self._score_all(client, gate, requests))

    # --- requests -----------------------------------------------------------------------------------

    def _run(self, job: Any) -> Any:
        """``await job(client, gate)`` with a fresh client and a gate of ``concurrency`` requests."""
        openai = _openai()

        async def main() -> Any:
            client = openai.AsyncOpenAI(api_key=self.api_key, base_url=self.options["base_url"],
                                        timeout=float(self.options["timeout"]),
                                        max_retries=int(self.options["max_retries"]))
            try:
                return await job(client, asyncio.Semaphore(int(self.options["concurrency"])))
            finally:
                await client.close()

        return asyncio.run(main())

    def _scoring_path(self) -> str:
        """Exact mode's path: the option, or for ``auto`` ``shared_prefix`` when the server tokenizes
        (vLLM's ``/tokenize``), else ``echo``. Asked once per backend."""
        if self.path is None:
            self.path = self.options["scoring_path"]
            if self.path == "auto":
                self.path = "shared_prefix" if self._run(self._tokenizes) else "echo"
        return self.path

    async def _tokenizes(self, client: Any, gate: asyncio.Semaphore) -> bool:
        try:
            await self._tokenize(client, gate, "0", True)
        except APIError:  # no /tokenize (404, 405, ...): not a vLLM server
            return False
        return True

    async def _score_all(self, client: Any, gate: asyncio.Semaphore,
                         requests: list[ScoreRequest]) -> list[list[ContinuationScore]]:
        if self.options["mode"] == "lower_bound":
            return await _first_alone([lambda r=r: self._lower_bound(client, gate, r) for r in requests])
        score = self._shared_prefix if self.path == "shared_prefix" else self._echo  # self.path: set by plan()
        return await _first_alone([lambda r=r: score(client, gate, r) for r in requests])

    async def _complete(self, client: Any, gate: asyncio.Semaphore, body: dict, parse: Any) -> Any:
        """``parse(response)`` of one completions request, from the cache when it was answered before."""
        openai = _openai()

        key = RequestCache.key("completions", body)
        if key in self.cache.entries:
            self.counts["cached"] += 1
            return self.cache.entries[key]
        standard = {k: v for k, v in body.items() if k in STANDARD_FIELDS}
        extra = {k: v for k, v in body.items() if k not in STANDARD_FIELDS}
        for attempt in range(3):
            async with gate:
                try:
                    response = await client.completions.create(model=self.model, **standard,
                                                               **({"extra_body": extra} if extra else {}))
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
                    raise self._failed(client, e) from None
            self.counts["requests"] += 1
            if response.usage is not None:
                self.counts["prompt_tokens"] += response.usage.prompt_tokens or 0
                self.counts["completion_tokens"] += response.usage.completion_tokens or 0
            value = parse(response)
            self.cache.put(key, value)
            return value
        raise APIError(f"model '{self.name}': unreadable answers from {client.base_url} three times in a row")

    async def _tokenize(self, client: Any, gate: asyncio.Semaphore, text: str, special: bool) -> list[int]:
        """Token ids of ``text`` by the server's own tokenizer (vLLM's ``/tokenize``), cached in the run."""
        openai = _openai()

        body = {"model": self.model, "prompt": text, "add_special_tokens": special}
        key = RequestCache.key("tokenize", body)
        if key not in self.cache.entries:
            url = str(client.base_url).rstrip("/")
            root = url[: -len("/v1")] if url.endswith("/v1") else url
            async with gate:
                try:
                    got = await client.post(f"{root}/tokenize", cast_to=object, body=body)
                except openai.APIError as e:
                    raise APIError(f"model '{self.name}': {root}/tokenize failed ({type(e).__name__})") from None
            if not isinstance(got, dict) or not isinstance(got.get("tokens"), list):
                raise APIError(f"model '{self.name}': the server's /tokenize returned no token ids")
            self.counts["tokenize_requests"] += 1
            self.cache.put(key, [int(t) for t in got["tokens"]])
        return list(self.cache.entries[key])

    async def _encode(self, client: Any, gate: asyncio.Semaphore, request: ScoreRequest) -> Encoded:
        """A request as the server's token ids, with the boundary rule of the tokenized backends."""
        prompt_ids = await self._tokenize(client, gate, request.prompt, True)
        joint = await asyncio.gather(*(self._tokenize(client, gate, request.prompt + c, True)
                                       for c in request.continuations))
        tokens = []
        for c, ids in zip(request.continuations, joint):
            tail = continuation_tail(prompt_ids, ids)
            tokens.append((tail, False) if tail is not None else (await self._tokenize(client, gate, c, False), True))
        return Encoded(request.prompt, request.continuations, prompt_ids, tokens,
                       len(prompt_ids) + max(len(ids) for ids, _ in tokens) - 1, encoder=self.name)

    async def _shared_prefix(self, client: Any, gate: asyncio.Semaphore, request: ScoreRequest) -> list[ContinuationScore]:
        """One request on the prompt alone, then one per longer prefix (they read its cached blocks)."""
        plan = PrefixPlan([await self._encode(client, gate, request)])
        first, rest = plan.phases()
        answers: list[dict[int, float]] = [{} for _ in plan.questions]
        for phase in (first, rest):
            got = await asyncio.gather(*(self._next_token(client, gate, *plan.questions[i]) for i in phase))
            for i, a in zip(phase, got):
                answers[i] = a
        return plan.scores([request.continuations], answers)[0]

    async def _next_token(self, client: Any, gate: asyncio.Semaphore, prefix: list[int],
                          tokens: list[int]) -> dict[int, float]:
        """{token: log P(token | prefix)} for ``tokens``, from the raw model output."""
        body = {"prompt": prefix, "max_tokens": 1, "temperature": 0.0, "logprobs": len(tokens),
                "logprob_token_ids": tokens, "return_tokens_as_token_ids": True}

        def parse(response: Any) -> list[list[float]]:
            lp = response.choices[0].logprobs
            top = (lp.top_logprobs or [None])[0] if lp is not None else None
            got = {int(k.rpartition(":")[2]): float(v) for k, v in (top or {}).items() if k.startswith("token_id:")}
            if not set(tokens) <= set(got):
                raise APIError(f"model '{self.name}': the server ignored logprob_token_ids; use the model "
                               "option scoring_path: echo")
            if any(got[t] > 0 for t in tokens):
                raise APIError(f"model '{self.name}': the server returns logits, not log-probabilities; start it "
                               "with --logprobs-mode raw_logprobs")
            return [[t, got[t]] for t in tokens]

        return {int(t): float(v) for t, v in await self._complete(client, gate, body, parse)}

    async def _echo(self, client: Any, gate: asyncio.Semaphore, request: ScoreRequest) -> list[ContinuationScore]:
        """The prompt alone and each ``prompt + answer`` echoed; an answer's tokens are those after the prompt's."""
        texts = [request.prompt] + [request.prompt + c for c in request.continuations]
        prompt, *joint = await asyncio.gather(*(self._echoed(client, gate, t) for t in texts))
        out = []
        for answer, got in zip(request.continuations, joint):
            n = len(prompt["tokens"])
            start = next((i for i, (a, b) in enumerate(zip(got["tokens"], prompt["tokens"])) if a != b), n)
            straddles = start < n
            picked = got["logprobs"][start:]
            if not picked or any(v is None for v in picked):
                raise APIError(f"model '{self.name}': no log-probs for the answer {answer!r} in the echoed prompt")
            out.append(ContinuationScore(answer, [], [float(v) for v in picked], straddles))
        return out

    async def _echoed(self, client: Any, gate: asyncio.Semaphore, text: str) -> dict:
        """The tokens of ``text`` as the server echoes them, with their log-probs (the first is None)."""
        body = {"prompt": text, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0.0}

        def parse(response: Any) -> dict:
            lp = response.choices[0].logprobs
            if lp is None or not lp.token_logprobs or not lp.tokens:
                raise APIError(f"model '{self.name}': the server returns no prompt log-probs with echo; "
                               "use the model option mode: lower_bound")
            usage = response.usage
            n = usage.prompt_tokens if usage is not None and usage.prompt_tokens else len(lp.tokens) - 1
            return {"tokens": list(lp.tokens[:n]), "logprobs": list(lp.token_logprobs[:n])}  # the generated one dropped

        return await self._complete(client, gate, body, parse)

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


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(e)[:300]
