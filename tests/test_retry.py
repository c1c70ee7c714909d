"""The one retry policy: transient failures are tried again with doubling backoff, others never."""

from __future__ import annotations

import pytest

from bundler.retry import RetryPolicy, Transient


def test_transient_failures_are_retried_with_doubling_backoff_and_no_sleep_after_the_last():
    sleeps: list[float] = []
    calls: list[int] = []

    def always_busy() -> None:
        calls.append(1)
        raise Transient(OSError("503 Service Unavailable"))

    with pytest.raises(Transient) as e:
        RetryPolicy(tries=4, backoff=0.5, sleep=sleeps.append).run(always_busy)
    assert str(e.value.cause) == "503 Service Unavailable"
    assert len(calls) == 4 and sleeps == [0.5, 1.0, 2.0]


def test_a_refusal_is_not_retried():
    # A refused certificate or a 404 does not change in a second: the first one ends it.
    sleeps: list[float] = []
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise ValueError("certificate refused")

    with pytest.raises(ValueError):
        RetryPolicy(tries=3, sleep=sleeps.append).run(refused)
    assert calls == [1] and sleeps == []


def test_a_later_success_is_returned():
    answers = iter([Transient(OSError("reset")), "body"])

    def flaky() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert RetryPolicy(tries=3, backoff=0).run(flaky) == "body"


def test_fewer_than_one_try_is_a_programmer_error():
    with pytest.raises(ValueError):
        RetryPolicy(tries=0)
