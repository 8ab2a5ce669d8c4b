"""The HTTP client: failure classification, bounded retries, Retry-After, rate limiting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from kasparro.exceptions import FatalSourceError, RetriableSourceError
from kasparro.ingestion.http import RateLimiter, SourceClient, classify, parse_retry_after

Reply = httpx.Response | Exception


class RecordingClient(SourceClient):
    """A SourceClient whose back-off sleeps are recorded instead of slept."""

    def __init__(self, replies: list[Reply], **overrides: Any) -> None:
        self.replies = list(replies)
        self.sent: list[httpx.Request] = []
        self.slept: list[float] = []
        options: dict[str, Any] = {
            "base_url": "http://upstream.test/v1",
            "headers": {"x-test-key": "k"},
            "timeout": 1.0,
            "min_interval": 0.0,
            "attempts": 3,
            "min_wait": 1.0,
            "max_wait": 10.0,
            "retry_after_cap": 30.0,
        }
        options.update(overrides)
        super().__init__(transport=httpx.MockTransport(self._handle), **options)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
def make_client() -> Iterator[Callable[..., RecordingClient]]:
    made: list[RecordingClient] = []

    def factory(replies: list[Reply], **overrides: Any) -> RecordingClient:
        client = RecordingClient(replies, **overrides)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def ok(body: Any = None) -> httpx.Response:
    return httpx.Response(200, json=[{"id": "bitcoin"}] if body is None else body)


def status(code: int, **kwargs: Any) -> httpx.Response:
    return httpx.Response(code, **kwargs)


def test_success_sends_headers_and_params(make_client: Callable[..., RecordingClient]) -> None:
    client = make_client([ok()])
    assert client.get_json("/tickers", {"quotes": "USD"}) == [{"id": "bitcoin"}]
    (request,) = client.sent
    assert request.url == httpx.URL("http://upstream.test/v1/tickers?quotes=USD")
    assert request.headers["x-test-key"] == "k"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("kasparro/")
    assert (client.requests, client.retries, client.slept) == (1, 0, [])


# (label, replies, expected sleeps, expected requests)
RETRY_CASES: list[tuple[str, list[Reply], list[float], int]] = [
    ("429 Retry-After honoured", [status(429, headers={"Retry-After": "4"}), ok()], [4.0], 2),
    ("429 Retry-After capped", [status(429, headers={"Retry-After": "3600"}), ok()], [30.0], 2),
    ("429 Retry-After zero", [status(429, headers={"Retry-After": "0"}), ok()], [0.0], 2),
    ("429 without Retry-After backs off", [status(429), status(429), ok()], [1.0, 2.0], 3),
    ("500 then 200", [status(500), ok()], [1.0], 2),
    ("502 and 503 then 200", [status(502), status(503), ok()], [1.0, 2.0], 3),
    ("503 with Retry-After", [status(503, headers={"Retry-After": "7"}), ok()], [7.0], 2),
    ("timeout then 200", [httpx.ReadTimeout("slow"), ok()], [1.0], 2),
    ("connect timeout then 200", [httpx.ConnectTimeout("slow"), ok()], [1.0], 2),
    ("connection reset then 200", [httpx.RemoteProtocolError("reset"), ok()], [1.0], 2),
    ("HTML then 200", [status(200, text="<html>busy</html>"), ok()], [1.0], 2),
]


@pytest.mark.parametrize(
    ("label", "replies", "sleeps", "requests"), RETRY_CASES, ids=[c[0] for c in RETRY_CASES]
)
def test_transient_failures_are_retried(
    make_client: Callable[..., RecordingClient],
    label: str,
    replies: list[Reply],
    sleeps: list[float],
    requests: int,
) -> None:
    client = make_client(replies)
    assert client.get_json("/x") == [{"id": "bitcoin"}]
    assert client.slept == sleeps
    assert client.requests == requests == len(client.sent)
    assert client.retries == requests - 1


def test_backoff_is_capped_by_max_wait(make_client: Callable[..., RecordingClient]) -> None:
    client = make_client([status(500)], attempts=6, min_wait=1.0, max_wait=5.0)
    with pytest.raises(RetriableSourceError):
        client.get_json("/x")
    assert client.slept == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert client.requests == 6


# (label, reply, message fragment)
EXHAUSTED: list[tuple[str, Reply, str]] = [
    ("429 forever", status(429, json={"error": "Too many requests"}), "Too many requests"),
    ("500 forever", status(500, text="Internal Server Error"), "HTTP 500"),
    ("HTML page", status(200, text="<!DOCTYPE html><html><body>Cloudflare</body></html>"), "HTML"),
    ("HTML 503", status(503, text="<html><body>Service Unavailable</body></html>"), "Service Unavailable"),
    ("truncated JSON", status(200, text='[{"id": "bitcoin", "symbol": "bt'), "malformed JSON"),
    ("empty body", status(200, text=""), "malformed JSON"),
    ("timeout", httpx.ReadTimeout("read timed out"), "timeout"),
    ("refused", httpx.ConnectError("refused"), "connection error"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "reply", "fragment"), EXHAUSTED, ids=[c[0] for c in EXHAUSTED])
def test_retriable_error_after_the_attempt_budget(
    make_client: Callable[..., RecordingClient], label: str, reply: Reply, fragment: str
) -> None:
    client = make_client([reply], attempts=3)
    with pytest.raises(RetriableSourceError) as caught:
        client.get_json("/x")
    assert fragment in str(caught.value)
    assert client.requests == 3 == len(client.sent)
    assert client.retries == 2
    assert len(client.slept) == 2


# (status, body, message fragment)
FATAL: list[tuple[int, dict[str, Any] | str, str]] = [
    (401, {"status": {"error_code": 10002, "error_message": "API Key Missing"}}, "API Key Missing"),
    (403, {"error": "invalid api key"}, "invalid api key"),
    (402, {"error": "upgrade your plan"}, "upgrade your plan"),
    (404, {"error": "id not found"}, "id not found"),
    (400, "plain bad request", "plain bad request"),
    (
        401,
        {"status": {"error_code": 10010, "error_message": "Invalid API Key. Use pro-api"}},
        "Invalid API Key",
    ),
]


@pytest.mark.parametrize(("code", "body", "fragment"), FATAL)
def test_other_4xx_fail_fast_and_keep_the_upstream_message(
    make_client: Callable[..., RecordingClient],
    code: int,
    body: dict[str, Any] | str,
    fragment: str,
) -> None:
    reply = status(code, json=body) if isinstance(body, dict) else status(code, text=body)
    client = make_client([reply, ok()])
    with pytest.raises(FatalSourceError) as caught:
        client.get_json("/coins/markets", {"x_cg_demo_api_key": "secret"})
    error = caught.value
    assert error.status_code == code
    assert fragment in str(error)
    assert f"HTTP {code}" in str(error)
    assert "secret" not in str(error)  # the query string is not echoed
    assert error.body is not None
    assert (client.requests, client.retries, client.slept) == (1, 0, [])


def test_retriable_error_keeps_status_body_and_retry_after() -> None:
    request = httpx.Request("GET", "http://upstream.test/v1/tickers")
    response = httpx.Response(
        429,
        json={"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit"}},
        headers={"Retry-After": "12"},
        request=request,
    )
    error = classify(response)
    assert isinstance(error, RetriableSourceError)
    assert error.status_code == 429
    assert error.retry_after == 12.0
    assert "exceeded the Rate Limit" in str(error)
    assert error.body is not None
    assert "error_message" in error.body


@pytest.mark.parametrize(("code", "kind"), [(200, None), (204, None), (301, None), (418, FatalSourceError), (429, RetriableSourceError), (599, RetriableSourceError)])  # fmt: skip
def test_classify(code: int, kind: type[Exception] | None) -> None:
    response = httpx.Response(code, request=httpx.Request("GET", "http://u.test/x"))
    error = classify(response)
    assert (type(error) if error is not None else None) is kind


def test_a_set_stop_event_sends_nothing(make_client: Callable[..., RecordingClient]) -> None:
    client = make_client([ok()])
    client.stop.set()
    with pytest.raises(FatalSourceError, match="stopped"):
        client.get_json("/x")
    assert client.sent == []


def test_stop_event_cuts_a_retry_after_wait_short() -> None:
    """The real sleep waits on the stop event, so shutdown never waits out a long Retry-After."""
    replies = [status(429, headers={"Retry-After": "3600"}), ok()]
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        client.stop.set()  # a shutdown arrives while the request is in flight
        return replies.pop(0)

    client = SourceClient(
        base_url="http://upstream.test",
        headers={},
        timeout=1.0,
        min_interval=0.0,
        attempts=3,
        min_wait=0.0,
        max_wait=0.0,
        retry_after_cap=3600.0,
        transport=httpx.MockTransport(handler),
    )
    with client, pytest.raises(FatalSourceError, match="stopped"):
        client.get_json("/x")
    assert calls == [1]
    assert client.retries == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limiter_spaces_request_starts() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.5, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(4)]
    assert waits == [0.0, 1.5, 1.5, 1.5]
    assert clock.sleeps == [1.5, 1.5, 1.5]
    clock.now += 0.5  # some time passes doing work: only the remainder is waited
    assert limiter.acquire() == pytest.approx(1.0)
    clock.now += 60  # after a long idle period there is no wait and no burst credit
    assert [limiter.acquire() for _ in range(2)] == [0.0, 1.5]


def test_rate_limiter_with_zero_interval_never_sleeps() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.0, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(5)] == [0.0] * 5
    assert clock.sleeps == []


# (header value, expected seconds)
RETRY_AFTER: list[tuple[str | None, float | None]] = [
    (None, None),
    ("", None),
    ("5", 5.0),
    (" 12 ", 12.0),
    ("1.5", 1.5),
    ("0", 0.0),
    ("-3", 0.0),
    ("soon", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: retry now
]


@pytest.mark.parametrize(("value", "expected"), RETRY_AFTER)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    seconds = parse_retry_after(format_datetime(when, usegmt=True))
    assert seconds is not None
    assert 100 < seconds <= 120


def test_client_rate_limits_between_requests(
    make_client: Callable[..., RecordingClient],
) -> None:
    client = make_client([ok()], min_interval=0.0)
    clock = FakeClock()
    client.limiter = RateLimiter(2.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        client.get_json("/x")
    assert clock.sleeps == [2.0, 2.0]
    assert len(client.sent) == 3
