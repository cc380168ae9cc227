"""A model server that enforces rate limits the way hosted APIs do (tests start it as a process).

Run as `python tests/support/mock_llm_server.py --window 2 --rpm 600 --tpm 60000`; it binds
127.0.0.1 on a port the OS picks and prints `mock-llm ready http://127.0.0.1:<port>` once it
accepts connections.

Per API key, two token buckets (requests and input+output tokens, refilled continuously over
`--window` seconds, starting full, like OpenAI's and Anthropic's). A request the buckets
cannot pay for is refused with 429, `Retry-After` (seconds until they could) and the rate-limit
headers; an accepted one is charged its tokens at arrival: input = characters / 4 of the
system prompt and messages, output = min(max_tokens, --output-tokens). Every reply (or, with
`--headers on-429`, every refusal) carries the rate-limit headers: OpenAI's names
(POST /v1/chat/completions) or, with `--style anthropic`, Anthropic's (POST /v1/messages;
reset as an RFC 3339 time).

    GET /report?key=K   {"requests": [[t, status, tokens, tag], ...]} for key K: t in
                        seconds since the key's first request, tag a job variable `tag`
                        or the system prompt's first word
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

REPLY_CODE = "exit('ok')"
TAG = re.compile(r"tag = '(\w+)'")


@dataclass
class Bucket:
    capacity: float
    window: float
    level: float
    stamp: float

    def refill(self, now: float) -> float:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.capacity
                             / self.window)
            self.stamp = now
        return self.level

    def wait(self, units: float, now: float) -> float:
        deficit = units - self.refill(now)
        return max(0.0, deficit * self.window / self.capacity)

    def to_full(self) -> float:
        return (self.capacity - self.level) * self.window / self.capacity


@dataclass
class Account:
    requests: Bucket
    tokens: Bucket
    began: float
    seen: list[list[Any]] = field(default_factory=list)


class MockServer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.accounts: dict[str, Account] = {}

    def account(self, key: str, now: float) -> Account:
        found = self.accounts.get(key)
        if found is None:
            window = self.args.window
            found = self.accounts[key] = Account(
                Bucket(self.args.rpm, window, self.args.rpm, now),
                Bucket(self.args.tpm, window, self.args.tpm, now), now)
        return found

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        now = time.monotonic()  # after the body: a check never uses a time older than another
        anthropic = self.args.style == "anthropic"
        key = (request.headers.get("x-api-key") if anthropic
               else request.headers.get("authorization", "").removeprefix("Bearer ")) or "-"
        account = self.account(key, now)
        system, chars = _prompt(body, anthropic)
        output = min(int(body.get("max_tokens") or self.args.output_tokens),
                     self.args.output_tokens)
        input_tokens = math.ceil(chars / 4)
        cost = input_tokens + output
        wait = max(account.requests.wait(1, now), account.tokens.wait(cost, now))
        tag = _tag(body, system)
        if wait > 0:
            account.seen.append([now - account.began, 429, 0, tag])
            headers = self.headers(account, now)
            headers["retry-after"] = f"{math.ceil(wait * 1000) / 1000:.3f}"
            return web.json_response({"error": {"type": "rate_limit_error",
                                                "message": "rate limit exceeded"}},
                                     status=429, headers=headers)
        account.requests.level -= 1
        account.tokens.level -= cost
        account.seen.append([now - account.began, 200, cost, tag])
        latency = self.args.first_latency if len(account.seen) == 1 else self.args.latency
        if latency > 0:
            await asyncio.sleep(latency)
        reply = (_anthropic_reply(input_tokens, output) if anthropic
                 else _openai_reply(input_tokens, output))
        headers = self.headers(account, now) if self.args.headers == "always" else {}
        return web.json_response(reply, headers=headers)

    def headers(self, account: Account, now: float) -> dict[str, str]:
        requests, tokens = account.requests, account.tokens
        if self.args.style == "anthropic":
            def at(seconds: float) -> str:
                when = datetime.now(UTC).timestamp() + seconds
                return datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")
            return {
                "anthropic-ratelimit-requests-limit": str(int(requests.capacity)),
                "anthropic-ratelimit-requests-remaining": str(max(0, int(requests.level))),
                "anthropic-ratelimit-requests-reset": at(requests.to_full()),
                "anthropic-ratelimit-tokens-limit": str(int(tokens.capacity)),
                "anthropic-ratelimit-tokens-remaining": str(max(0, int(tokens.level))),
                "anthropic-ratelimit-tokens-reset": at(tokens.to_full()),
            }
        return {
            "x-ratelimit-limit-requests": str(int(requests.capacity)),
            "x-ratelimit-remaining-requests": str(max(0, int(requests.level))),
            "x-ratelimit-reset-requests": f"{requests.to_full():.3f}s",
            "x-ratelimit-limit-tokens": str(int(tokens.capacity)),
            "x-ratelimit-remaining-tokens": str(max(0, int(tokens.level))),
            "x-ratelimit-reset-tokens": f"{tokens.to_full():.3f}s",
        }

    async def report(self, request: web.Request) -> web.Response:
        account = self.accounts.get(request.query.get("key", "-"))
        return web.json_response({"requests": account.seen if account else []})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _prompt(body: dict[str, Any], anthropic: bool) -> tuple[str, int]:
    """(system prompt, characters of the whole prompt)."""
    messages = body.get("messages") or []
    if anthropic:
        system = _text(body.get("system", ""))
    else:
        system = next((_text(m.get("content")) for m in messages if m.get("role") == "system"),
                      "")
        messages = [m for m in messages if m.get("role") != "system"]
    return system, len(system) + sum(len(_text(m.get("content"))) for m in messages)


def _tag(body: dict[str, Any], system: str) -> str:
    """What a test tagged the request with: a job variable `tag` (shown in the first user
    message as "tag = 'x'"), else the system prompt's first word."""
    for message in body.get("messages") or []:
        found = TAG.search(_text(message.get("content")))
        if found:
            return found.group(1)
    return system.split()[0] if system.split() else ""


def _openai_reply(input_tokens: int, output: int) -> dict[str, Any]:
    return {"id": "mock", "object": "chat.completion", "model": "mock",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": REPLY_CODE}}],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": output,
                      "total_tokens": input_tokens + output}}


def _anthropic_reply(input_tokens: int, output: int) -> dict[str, Any]:
    return {"id": "mock", "type": "message", "role": "assistant", "model": "mock",
            "content": [{"type": "text", "text": REPLY_CODE}], "stop_reason": "end_turn",
            "usage": {"input_tokens": input_tokens, "output_tokens": output}}


async def main(args: argparse.Namespace) -> None:
    server = MockServer(args)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.chat)
    app.router.add_post("/v1/messages", server.chat)
    app.router.add_get("/report", server.report)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"mock-llm ready http://127.0.0.1:{port}", flush=True)
    print(json.dumps(vars(args)), flush=True)
    await asyncio.Event().wait()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--tpm", type=float, default=60_000)
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--first-latency", type=float, default=0.0,
                        help="seconds the first reply of each key takes (tests: every job "
                        "queues behind a first call that holds the only slot)")
    parser.add_argument("--style", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--headers", choices=("always", "on-429"), default="always",
                        help="send the rate-limit headers with every reply or only with 429s")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
