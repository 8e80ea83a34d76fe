"""Balances over REST on every stream (re)subscription, fed to the stream sink as a push at the venue's time of
the answer (kairos/execution/reconcile.py): what was pushed while the stream was down is not lost. Each
venue's answer time from our fixtures; the push itself; a failed or timeless answer."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from kairos import config
from kairos.config import Secret
from kairos.errors import ExecutionError
from kairos.execution import EXECUTORS
from kairos.execution.rest import RestExecution
from kairos.instruments import InstrumentTable
from tests.fixtures import fixture

ANSWERS = {"binance": ("binance/account.json", 1764851302301), "okx": ("okx/balance_response.json", 1764851302330),
           "bybit": ("bybit/wallet_balance.json", 1764851305000)}


@pytest.fixture(params=list(ANSWERS))
def executor(request: pytest.FixtureRequest) -> Iterator[RestExecution]:
    settings = config.load(env={})
    keys = {"api_key": Secret("key"), "api_secret": Secret("secret"), "passphrase": Secret("pass")}
    ex = EXECUTORS[request.param](dataclasses.replace(settings.venues[request.param], **keys), settings.execution,
                                  InstrumentTable(settings.instruments))
    yield ex
    ex.close()


def _answering(ex: RestExecution, answer: Any) -> None:
    """The balances call answers ``answer`` (an exception is raised) without the network."""
    def checked(what: str, build: Any, *args: Any) -> Any:
        assert what == "balances" and build == ex.balances_call
        if isinstance(answer, Exception):
            raise answer
        return answer
    ex._checked = checked  # type: ignore[method-assign]


def test_the_answer_carries_the_venues_time(executor: RestExecution) -> None:
    path, ms = ANSWERS[executor.name]
    assert executor.balances_ms(fixture(path)) == ms


def test_a_resubscription_pushes_the_balances_at_the_answers_time(executor: RestExecution) -> None:
    path, ms = ANSWERS[executor.name]
    data = fixture(path)
    _answering(executor, data)
    executor.stream_sink.on_stream_up()                # the read is a pool job
    executor._pool.shutdown(wait=True)
    pushed = executor.stream_sink.take_pushes()
    assert pushed == {a: (free, locked, ms) for a, (free, locked) in executor.parse_balances(data).items()}
    assert executor.stats()["balances_pushed"] == 1
    executor._sync()                                   # only after a (re)subscription
    assert executor.stream_sink.take_pushes() == {} and executor.stats()["balances_pushed"] == 1


def test_a_failed_answer_is_asked_again_and_a_timeless_one_is_not_pushed(executor: RestExecution) -> None:
    _answering(executor, ExecutionError("balances: 503"))
    executor.stream_sink.on_stream_up()
    executor._pool.shutdown(wait=True)
    assert executor.stream_sink.take_pushes() == {} and executor.stats()["balances_failed"] == 1
    path, _ = ANSWERS[executor.name]
    timeless = fixture(path)
    timeless.pop("updateTime", None)
    timeless.pop("time", None)
    for account in timeless.get("data") or []:
        account.pop("uTime", None)
    _answering(executor, timeless)
    executor._sync()                                   # due again after the failure: the next sync asks
    assert executor.stream_sink.take_pushes() == {} and "balances_pushed" not in executor.stats()
