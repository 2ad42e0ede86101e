"""The Cache actor: hits send nothing, single flight, opt-out, SQLite tier, failures."""

from __future__ import annotations

import dataclasses
import gc
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka
import pytest

from dspex_actors import CacheError, LMHTTPStatusError, LMTimeoutError, LMUnavailableError
from dspex_actors._types import Answered, ReplyTo, Submit
from dspex_actors.cache import (
    CACHE_FILENAME,
    CacheActor,
    CacheOptions,
    Fetch,
    GetCacheStats,
    SQLiteTier,
    Store,
    cache_key,
)
from dspex_actors.lm import LM, LMRequest, LMResponse
from dspex_actors.system import ActorSystem
from dspex_actors.testing import Fault, LocalLMServer, fixed_responder
from tests._support import run_concurrently

SECRET = "sk-test-SECRET-0123456789"

WAIT = 30.0

MakeSystem = Callable[..., ActorSystem]
Req = Callable[..., LMRequest]


def cache_stats(system: ActorSystem) -> dict[str, Any]:
    stats = system.stats()["cache"]
    assert stats is not None
    return stats


def test_hit_sends_no_request_and_is_a_copy(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    system = make_system(lm)
    first = system.request(req("What is 1 + 1?"))
    second = system.request(req("What is 1 + 1?"))
    assert lm_server.stats().requests_total == 1
    assert not first.cached and second.cached
    assert second.texts == first.texts
    second.usage["total_tokens"] = -1
    third = system.request(req("What is 1 + 1?"))
    assert third.usage == first.usage
    stats = cache_stats(system)
    assert (stats["hits"], stats["misses"], stats["stores"]) == (2, 1, 1)


def test_key_covers_messages_params_and_rollout(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    system = make_system(lm)
    for request in (
        req("a"),
        req("b"),
        req("a", temperature=0.7),
        req("a", rollout_id=1),
        req("a", rollout_id=1),
    ):
        system.request(request)
    system.request(req("a"), lm=lm.copy(model="openai/other-model"))
    assert lm_server.stats().requests_total == 5


def test_key_has_the_endpoint_but_no_credentials() -> None:
    request = LMRequest(messages=({"role": "user", "content": "hi"},), params={"n": 1})
    a = LM("openai/m", api_base="http://127.0.0.1:1/v1", api_key=SECRET)
    b = LM("openai/m", api_base="http://127.0.0.1:1/v1", api_key="another")
    c = LM("openai/m", api_base="http://127.0.0.1:2/v1", api_key=SECRET)
    d = LM("openai/m", api_base=f"http://user:{SECRET}@127.0.0.1:1/v1")
    key = cache_key(a.model, request, a.endpoint)
    assert key == cache_key(b.model, request, b.endpoint) == cache_key(d.model, request, d.endpoint)
    assert key != cache_key(c.model, request, c.endpoint)
    assert key != cache_key("openai/n", request, a.endpoint)
    assert SECRET not in key and len(key) == 64


def test_two_servers_with_one_model_name_answer_for_themselves(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem, req: Req
) -> None:
    one = make_lm_server(fixed_responder("[[ ## answer ## ]]\none\n\n[[ ## completed ## ]]"))
    two = make_lm_server(fixed_responder("[[ ## answer ## ]]\ntwo\n\n[[ ## completed ## ]]"))
    system = make_system()
    lm_one = LM("openai/local-model", api_base=one.url)
    lm_two = LM("openai/local-model", api_base=two.url)
    assert "one" in system.request(req("same question"), lm=lm_one).texts[0]
    assert "two" in system.request(req("same question"), lm=lm_two).texts[0]
    assert (one.stats().requests_total, two.stats().requests_total) == (1, 1)


def test_single_flight(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem, req: Req
) -> None:
    server = make_lm_server(latency=0.3)
    lm = LM("openai/local-model", api_base=server.url)
    system = make_system(lm)
    results = run_concurrently(lambda i: system.request(req("same question")), 10)
    assert all(isinstance(r, LMResponse) for r in results)
    assert len({r.texts for r in results}) == 1
    assert server.stats().requests_total == 1
    stats = cache_stats(system)
    assert stats["misses"] == 1
    assert stats["coalesced"] + stats["hits"] == 9
    assert sum(not r.cached for r in results) == 1


def test_failures_are_not_cached_and_reach_followers(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem, req: Req
) -> None:
    server = make_lm_server()
    lm = LM("openai/local-model", api_base=server.url, num_retries=0, timeout=0.2)
    system = make_system(lm)
    server.push_faults(Fault.hang(1.0))
    results = run_concurrently(lambda i: system.request(req("q")), 4)
    assert all(isinstance(r, LMTimeoutError) for r in results), results
    assert server.stats().requests_total == 1
    assert system.request(req("q")).texts
    assert server.stats().requests_total == 2
    server.push_faults(Fault.http(500))
    with pytest.raises(LMHTTPStatusError):
        system.request(req("other"))
    assert system.request(req("other")).texts
    assert cache_stats(system)["stores"] == 2


def test_opt_out_per_lm_and_per_call(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    system = make_system(lm)
    system.request(req("x", cache=False))
    system.request(req("x", cache=False))
    no_cache = lm.copy(cache=False)
    system.request(req("y"), lm=no_cache)
    system.request(req("y"), lm=no_cache)
    assert lm_server.stats().requests_total == 4
    stats = cache_stats(system)
    assert stats["hits"] == stats["misses"] == stats["stores"] == 0


def test_persistent_tier_survives_a_restart(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req, tmp_path: Path
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url, api_key=SECRET)
    first = make_system(lm, cache_dir=tmp_path)
    original = first.request(req("What is 6 + 7?"))
    first.stop()
    second = make_system(lm, cache_dir=tmp_path)
    again = second.request(req("What is 6 + 7?"))
    assert lm_server.stats().requests_total == 1
    assert again.cached and again.texts == original.texts and again.usage == original.usage
    stats = cache_stats(second)
    assert stats["persistent_hits"] == 1
    assert stats["persistent"] == str(tmp_path / CACHE_FILENAME)
    second.stop()
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes()
        assert lm_server.url.encode() not in path.read_bytes()


def test_write_is_durable_before_the_caller_returns(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req, tmp_path: Path
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    system = make_system(lm, cache_dir=tmp_path)
    request = req("durable?")
    system.request(request)
    # Another connection (another process would see the same) finds the committed row.
    with sqlite3.connect(tmp_path / CACHE_FILENAME) as db:
        rows = db.execute(
            "SELECT count(*) FROM entries WHERE key = ?",
            (cache_key(lm.model, request, lm.endpoint),),
        ).fetchone()
    assert rows == (1,)


def test_corrupt_file_is_moved_aside_with_one_warning(
    lm_server: LocalLMServer,
    make_system: MakeSystem,
    req: Req,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    garbage = b"cached answer: the-launch-code-0000 " * 100
    (tmp_path / CACHE_FILENAME).write_bytes(garbage)
    caplog.set_level(logging.WARNING)
    lm = LM("openai/local-model", api_base=lm_server.url)
    system = make_system(lm, cache_dir=tmp_path, cache_strict=True)  # strict: not an error
    for _ in range(3):
        assert system.request(req("q")).texts
    stats = cache_stats(system)
    assert stats["persistent"] == str(tmp_path / CACHE_FILENAME) and stats["errors"] == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "is corrupt" in warnings[0], warnings
    assert "launch-code" not in caplog.text
    (aside,) = tmp_path.glob(f"{CACHE_FILENAME}.corrupt-*")
    assert aside.read_bytes() == garbage
    assert aside.name in warnings[0]


def test_cache_dir_that_cannot_hold_the_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / CACHE_FILENAME).write_bytes(b"garbage" * 100)
    with pytest.raises(CacheError):
        SQLiteTier.open(tmp_path / CACHE_FILENAME / "below-a-file")


def test_unreadable_row_is_a_miss_not_a_crash(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req, tmp_path: Path
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    request = req("q")
    tier = SQLiteTier.open(tmp_path)
    tier.put(cache_key(lm.model, request, lm.endpoint), LMResponse(texts=("x",)))
    tier._db.execute("UPDATE entries SET value = 'not json'")
    tier._db.commit()
    tier.close()
    system = make_system(lm, cache_dir=tmp_path)
    response = system.request(request)
    assert response.texts != ("x",) and not response.cached
    assert cache_stats(system)["errors"] == 1
    assert lm_server.stats().requests_total == 1


def test_ttl_expires_persistent_entries(tmp_path: Path) -> None:
    tier = SQLiteTier.open(tmp_path)
    response = LMResponse(texts=("a", "b"), usage={"total_tokens": 3}, model="m")
    tier.put("k", response)
    assert tier.get("k", ttl=None) == dataclasses.replace(response, finish_reasons=())
    tier._db.execute("UPDATE entries SET created = created - 100")
    tier._db.commit()
    assert tier.get("k", ttl=50) is None
    assert tier.get("k", ttl=500) is not None
    assert len(tier) == 1
    tier.close()


def test_cache_actor_crash_is_restarted_and_calls_continue(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    system = make_system(lm)
    system.request(req("before"))
    handle = system.cache_handle()
    old = handle.ref()
    old.tell(object())  # an unknown message crashes the actor (let it crash)
    assert old.actor_stopped.wait(WAIT)
    assert handle.ref(timeout=WAIT).actor_urn != old.actor_urn
    assert system.request(req("after")).texts
    assert system.stats()["restarts"]["cache"] == 1
    # The restarted cache is empty: the earlier answer is fetched again, then cached.
    system.request(req("before"))
    assert system.request(req("before")).cached
    assert lm_server.stats().requests_total == 3


def _cache_actor() -> pykka.ActorRef[Any]:
    return CacheActor.start(CacheOptions())


class _RecordingClient(pykka.ThreadingActor):
    """Stands in for a Client actor: keeps every Submit it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.submits: list[Submit] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Submit):
            self.submits.append(message)
            return None
        return list(self.submits)


def test_the_cache_owns_single_flight_and_completes_every_waiter() -> None:
    """Two identical Fetches: one Submit addressed back to the Cache; its answer reaches both."""
    cache, client = _cache_actor(), _RecordingClient.start()
    try:
        request = LMRequest(messages=({"role": "user", "content": "q"},))
        replies = [pykka.ThreadingFuture[LMResponse]() for _ in range(2)]
        for reply in replies:
            cache.tell(Fetch("k", request, client, reply))
        assert cache.ask(GetCacheStats(), timeout=WAIT)["in_flight_keys"] == 1
        submits = client.ask("submits", timeout=WAIT)
        assert len(submits) == 1
        assert submits[0].request == request
        assert submits[0].reply_to == ReplyTo(cache, "k")

        cache.tell(Answered("k", LMResponse(("a",), {"total_tokens": 3}, "m", ("stop",))))
        results = [reply.get(timeout=WAIT) for reply in replies]
        assert [r.texts for r in results] == [("a",), ("a",)]
        assert results[0] is not results[1]
        stats = cache.ask(GetCacheStats(), timeout=WAIT)
        assert (stats["in_flight_keys"], stats["misses"], stats["coalesced"]) == (0, 1, 1)
        assert stats["size"] == 1
    finally:
        cache.stop()
        client.stop()


def test_a_failed_answer_fails_every_waiter_and_caches_nothing() -> None:
    cache, client = _cache_actor(), _RecordingClient.start()
    try:
        request = LMRequest(messages=({"role": "user", "content": "q"},))
        replies = [pykka.ThreadingFuture[LMResponse]() for _ in range(2)]
        for reply in replies:
            cache.tell(Fetch("k", request, client, reply))
        cache.tell(Answered("k", LMTimeoutError("too slow")))
        for reply in replies:
            with pytest.raises(LMTimeoutError, match="too slow"):
                reply.get(timeout=WAIT)
        stats = cache.ask(GetCacheStats(), timeout=WAIT)
        assert (stats["in_flight_keys"], stats["size"]) == (0, 0)
    finally:
        cache.stop()
        client.stop()


def test_a_dead_client_fails_the_reply_and_the_cache_lives_on() -> None:
    cache, client = _cache_actor(), _RecordingClient.start()
    client.stop()
    try:
        reply = pykka.ThreadingFuture[LMResponse]()
        request = LMRequest(messages=({"role": "user", "content": "q"},))
        cache.tell(Fetch("k", request, client, reply))
        with pytest.raises(LMUnavailableError, match="stopped before taking the call"):
            reply.get(timeout=WAIT)
        assert cache.is_alive()
        assert cache.ask(GetCacheStats(), timeout=WAIT)["in_flight_keys"] == 0
    finally:
        cache.stop()


def test_cached_responses_add_nothing_for_the_garbage_collector_to_scan() -> None:
    """Entries are plain tuples, untracked by the GC: a big cache adds nothing to a collection."""
    cache = _cache_actor()
    try:
        count = 2000
        gc.collect()
        before = len(gc.get_objects())
        for i in range(count):
            response = LMResponse((f"answer {i}",), {"total_tokens": i}, "m", ("stop",))
            cache.ask(Store(f"key {i}", response), timeout=WAIT)
        assert cache.ask(GetCacheStats(), timeout=WAIT)["size"] == count
        for _ in range(3):  # a collection untracks a tuple whose items are untracked already:
            gc.collect()  # one pass per level of nesting at most
        added = len(gc.get_objects()) - before
        assert added < count // 4, f"{added} objects tracked for {count} cached responses"
        reply = pykka.ThreadingFuture[LMResponse]()
        request = LMRequest(messages=({"role": "user", "content": "q"},))
        cache.tell(Fetch("key 7", request, cache, reply))  # a hit: no Client is asked
        hit = reply.get(timeout=WAIT)
        assert (hit.texts, hit.usage, hit.cached) == (("answer 7",), {"total_tokens": 7}, True)
    finally:
        cache.stop()
