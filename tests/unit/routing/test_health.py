"""Per-model health: EWMAs, the error window, and the circuit breaker's states."""

from __future__ import annotations

import pytest

from hxgw.routing.health import HealthBook, HealthSettings, ModelHealth
from hxgw.routing.strategies import Memory

# Its window of 4 is for the error rate's figures: opening on a share of them is tested
# with settings of its own.
SETTINGS = HealthSettings(ewma_alpha=0.5, error_window=4, breaker_failures=3, breaker_cooldown=10,
                          breaker_error_rate=1.0)
OFTEN = HealthSettings(error_window=10, breaker_failures=5, breaker_error_rate=0.5,
                       breaker_cooldown=10)
"""A model failing every other request: never 5 failures in a row."""


def _model() -> ModelHealth:
    return ModelHealth(name="m", settings=SETTINGS)


def _fail(health: ModelHealth, now: float = 0.0, times: int = 1) -> None:
    for _ in range(times):
        health.started()
        health.failed(now)


def test_the_first_sample_sets_the_ewma_and_later_ones_blend_in():
    health = _model()
    health.first_byte(0.2)
    health.first_byte(0.4)
    assert health.ewma_ttfb == pytest.approx(0.3)


def test_a_new_sample_moves_the_ewma_alpha_of_the_way_to_it():
    health = ModelHealth(name="m", settings=HealthSettings(ewma_alpha=0.25))
    health.first_byte(1.0)
    health.first_byte(2.0)
    assert health.ewma_ttfb == pytest.approx(1.25)


def test_the_error_rate_covers_only_the_last_window_of_outcomes():
    health = _model()
    _fail(health, times=2)
    for _ in range(4):
        health.started()
        health.succeeded(0.1)
    assert health.error_rate == 0.0
    _fail(health)
    assert health.error_rate == 0.25


def test_in_flight_counts_started_requests_until_they_end():
    health = _model()
    health.started()
    health.started()
    assert health.inflight == 2
    health.succeeded(0.1)
    health.finished_other()
    assert health.inflight == 0


def test_the_circuit_opens_after_n_consecutive_failures():
    health = _model()
    _fail(health, times=2)
    assert health.circuit == "closed" and health.allows(1.0)
    _fail(health, now=1.0)
    assert health.circuit == "open" and not health.allows(5.0)


def test_a_success_resets_the_consecutive_count():
    health = _model()
    _fail(health, times=2)
    health.started()
    health.succeeded(0.1)
    _fail(health, times=2)
    assert health.circuit == "closed"


def _alternate(health: ModelHealth, times: int, now: float = 0.0) -> None:
    for _ in range(times):
        health.started()
        health.succeeded(0.1)
        health.started()
        health.failed(now)


def test_a_model_failing_half_its_requests_opens_once_its_window_is_full():
    health = ModelHealth(name="m", settings=OFTEN)
    _alternate(health, 4)
    assert health.circuit == "closed"  # 8 outcomes: the window is not full yet
    _alternate(health, 1)
    assert health.circuit == "open"


def test_a_model_failing_less_than_the_rate_stays_closed():
    health = ModelHealth(name="m", settings=OFTEN)
    for _ in range(5):
        for _ in range(2):
            health.started()
            health.succeeded(0.1)
        _fail(health)
    assert health.circuit == "closed" and health.error_rate < 0.5


def test_a_model_back_from_an_open_circuit_starts_a_new_window():
    health = ModelHealth(name="m", settings=OFTEN)
    _alternate(health, 5, now=0.0)
    assert health.allows(10.0)  # its probe, which answers
    probe = health.started()
    health.first_byte(0.05, probe)
    health.succeeded(0.1, probe)
    _fail(health, now=10.0)  # one failure: before, 6 of 10 in the window reopened it
    assert (health.circuit, health.error_rate) == ("closed", 0.5)


def test_after_the_cooldown_one_probe_is_let_through():
    health = _model()
    _fail(health, now=0.0, times=3)
    assert health.allows(10.0)
    assert health.circuit == "half_open"
    health.started()
    assert not health.allows(10.5)


def test_an_open_circuit_reads_half_open_once_its_cooldown_passed_with_no_request():
    health = _model()
    _fail(health, now=0.0, times=3)
    assert (health.circuit_now(9.0), health.circuit_now(10.0)) == ("open", "half_open")
    assert health.circuit == "open"  # reading it changes nothing: a request will


def test_a_probe_s_first_byte_closes_the_circuit_though_its_stream_goes_on():
    health = _model()
    _fail(health, now=0.0, times=3)
    health.allows(10.0)
    probe = health.started(now=10.0)
    health.first_byte(0.1, probe)
    assert health.circuit == "closed" and health.allows(10.2)


def test_a_successful_probe_closes_the_circuit():
    health = _model()
    _fail(health, now=0.0, times=3)
    health.allows(10.0)
    health.started()
    health.succeeded(0.1)
    assert health.circuit == "closed" and health.allows(10.1)


def test_a_probe_whose_client_left_lets_the_next_request_probe():
    # It says nothing of the model: the circuit stays half-open, and had let no other
    # request through again, ever.
    health = _model()
    _fail(health, now=0.0, times=3)
    health.allows(10.0)
    probe = health.started(now=10.0)
    health.finished_other(probe)
    assert health.circuit == "half_open" and health.allows(10.5)


def test_a_failed_probe_opens_the_circuit_again_for_twice_the_cooldown():
    health = _model()
    _fail(health, now=0.0, times=3)
    health.allows(10.0)
    _fail(health, now=10.0)
    assert health.circuit == "open"
    assert not health.allows(29.9) and health.allows(30.0)


def test_probe_backoff_stops_at_the_maximum_cooldown_and_resets_on_success():
    health = ModelHealth(name="m", settings=HealthSettings(
        breaker_failures=1, breaker_cooldown=10, breaker_max_cooldown=25))
    _fail(health, now=0.0)
    now = 0.0
    for _ in range(4):  # probes at the end of each cool-down, all failing
        now = health.open_until
        assert health.allows(now)
        _fail(health, now=now)
    assert health.open_until - now == 25
    health.allows(health.open_until)
    health.started()
    health.succeeded(0.1)
    _fail(health, now=100.0)
    assert health.open_until == 110.0


def test_a_model_whose_oldest_request_waits_too_long_for_a_first_byte_is_stalled():
    health = ModelHealth(name="m", settings=HealthSettings(stall_floor=2, stall_factor=4))
    health.first_byte(1.0)  # ewma 1 s: a wait over 4 s is a stall
    token = health.started(now=100.0)
    assert not health.stalled(103.9) and health.stalled(104.1)
    health.first_byte(4.5, token)
    assert not health.stalled(104.2)


def test_a_stalled_model_takes_one_request_at_a_time_whose_first_byte_ends_the_stall():
    # One long plain answer (its first byte is its last) must not keep the model out.
    health = ModelHealth(name="m", settings=HealthSettings(stall_floor=2, stall_factor=4))
    health.first_byte(1.0)
    health.started(now=100.0)
    assert health.allows(104.1)
    probe = health.started(now=104.1)
    assert not health.allows(104.2) and not health.allows(108.0)
    assert health.allows(108.2)  # the probe too has waited past the limit: one more
    health.first_byte(0.1, probe)
    assert not health.stalled(108.3) and health.allows(108.3)


def test_the_oldest_request_still_waiting_decides_a_stall():
    health = ModelHealth(name="m", settings=HealthSettings(stall_floor=2, stall_factor=4))
    health.first_byte(1.0)  # a wait over 4 s is a stall
    first, second = health.started(now=100.0), health.started(now=103.0)
    assert not health.allows(104.1)
    health.first_byte(1.0, first)  # keeps the EWMA at 1 s
    assert health.allows(104.1)  # the second has waited 1.1 s
    assert health.stalled(107.1)
    health.first_byte(1.0, second)
    assert not health.stalled(107.1)


def test_a_wait_for_a_turn_at_the_upstream_s_cap_is_no_stall():
    health = ModelHealth(name="m", settings=HealthSettings(stall_floor=5))
    token = health.started(now=0.0)
    health.waiting_from(token, 100.0)  # its turn came: its wait for a first byte starts
    assert not health.stalled(104.0) and health.stalled(105.1)


def test_a_stall_ends_when_the_waiting_request_fails():
    health = ModelHealth(name="m", settings=HealthSettings(stall_floor=2))
    token = health.started(now=0.0)
    assert health.stalled(3.0)
    health.failed(3.0, token=token)
    assert not health.stalled(3.0)


def test_a_retry_after_opens_the_circuit_for_that_long():
    health = _model()
    health.started()
    health.failed(0.0, retry_after=3)
    assert not health.allows(2.9) and health.allows(3.0)


def test_the_book_keeps_health_across_a_reload_for_models_that_remain():
    book = HealthBook(SETTINGS)
    _fail(book["a"], times=3)
    book["b"].first_byte(0.1)
    book.configure(HealthSettings(breaker_failures=9), ["a"])
    assert book["a"].circuit == "open"
    assert book["a"].settings.breaker_failures == 9
    assert book["b"].ewma_ttfb is None


def test_a_request_sent_before_the_circuit_opened_does_not_close_it_by_succeeding():
    health = _model()
    long_stream = health.started(0.0)
    _fail(health, now=1.0, times=3)
    health.succeeded(30.0, long_stream)
    assert health.circuit == "open" and not health.allows(5.0)


def test_a_reload_forgets_the_health_of_a_model_sent_to_another_upstream():
    # What its old target did says nothing of the new one.
    book = HealthBook(SETTINGS)
    _fail(book["a"], times=3)
    book.configure(SETTINGS, ["a"], forget=["a"])
    assert book["a"].circuit == "closed"


def test_a_model_a_reload_adds_takes_the_reload_s_settings():
    book = HealthBook(SETTINGS)
    book.configure(HealthSettings(breaker_failures=9), ["a", "new"])
    assert book["new"].settings.breaker_failures == 9


def test_the_last_request_sent_before_the_circuit_opened_does_not_close_it_by_succeeding():
    # Sent beside the three that failed, it saw the model as they did.
    health = _model()
    sent = [health.started(0.0) for _ in range(4)]
    for token in sent[:3]:
        health.failed(1.0, token=token)
    health.succeeded(30.0, sent[3])
    assert health.circuit == "open" and not health.allows(5.0)


def test_a_request_sent_before_the_circuit_opened_counts_again_once_it_closed():
    health = ModelHealth(name="m", settings=HealthSettings(breaker_failures=1,
                                                           breaker_cooldown=10))
    old = health.started(0.0)
    _fail(health, now=1.0)
    health.allows(11.0)
    probe = health.started(11.0)
    health.succeeded(0.1, probe)
    health.failed(12.0, token=old)  # what it says now is of the model as it is
    assert health.circuit == "open"


def test_a_request_sent_before_the_circuit_opened_does_not_fail_the_probe():
    health = _model()
    old = health.started(0.0)
    _fail(health, now=1.0, times=3)
    assert health.allows(11.0)
    probe = health.started(11.0)
    health.failed(12.0, token=old)
    assert health.circuit == "half_open" and health.failed_probes == 0
    health.succeeded(0.1, probe)
    assert health.circuit == "closed"


def test_a_request_sent_before_the_circuit_opened_ending_unjudged_lets_no_second_probe_in():
    health = _model()
    old = health.started(0.0)
    _fail(health, now=1.0, times=3)
    health.allows(11.0)
    health.started(11.0)  # the probe, still running
    health.finished_other(old)  # its client left: nothing of the model, nor of the probe
    assert not health.allows(11.5)


def test_a_request_sent_after_the_circuit_opened_closes_it_by_succeeding():
    health = _model()
    _fail(health, now=0.0, times=3)
    health.allows(10.0)
    probe = health.started(10.0)
    health.succeeded(0.1, probe)
    assert health.circuit == "closed"


def test_a_model_is_in_the_book_from_the_first_time_it_is_asked_for():
    book = HealthBook(SETTINGS)
    assert "a" not in book
    first = book["a"]
    assert book["a"] is first and list(book) == ["a"] and first.settings is SETTINGS


def test_the_routing_memory_keeps_the_book_it_is_given_even_an_empty_one():
    book = HealthBook(SETTINGS)
    assert Memory(book).health is book


def test_a_long_plain_answer_is_no_stall_while_later_requests_are_answered():
    health = ModelHealth(name="m", settings=HealthSettings(stall_floor=2, stall_factor=4))
    health.first_byte(1.0)
    health.started(now=100.0)  # a long answer: its first byte is its last
    later = health.started(now=103.0)
    health.first_byte(0.1, later)
    assert health.allows(110.0)


def test_a_reload_that_shrinks_the_error_window_drops_the_older_outcomes():
    health = ModelHealth(name="m", settings=HealthSettings(error_window=4))
    _fail(health, times=2)
    for _ in range(2):
        health.started()
        health.succeeded(0.1)
    health.settings = HealthSettings(error_window=2)
    health.started()
    health.succeeded(0.1)
    assert health.error_rate == 0.0  # the last two: both answered


def test_a_shorter_retry_after_does_not_cut_an_open_circuits_wait():
    health = _model()
    health.started()
    health.failed(0.0, retry_after=30)
    token = health.started()  # sent anyway (every candidate avoided: the soonest)
    health.failed(1.0, retry_after=2, token=token)
    assert not health.allows(10.0) and health.allows(30.0)


def test_a_reload_that_shortens_the_cool_down_cuts_an_open_circuit_s_wait():
    # An operator who shortens it after a model is fixed wants the model back.
    health = _model()
    _fail(health, now=0.0, times=3)  # open for 10 s
    health.reconfigured(HealthSettings(breaker_failures=3, breaker_cooldown=2))
    assert not health.allows(1.9) and health.allows(2.0)


def test_a_reload_that_shortens_the_cool_down_counts_it_from_when_the_circuit_opened():
    health = _model()
    _fail(health, now=100.0, times=3)  # open until 110
    health.reconfigured(HealthSettings(breaker_failures=3, breaker_cooldown=5))
    assert not health.allows(104.9) and health.allows(105.0)


def test_a_reload_leaves_the_wait_an_upstream_asked_for():
    health = _model()
    health.started()
    health.failed(0.0, retry_after=60)
    health.reconfigured(HealthSettings(breaker_failures=3, breaker_cooldown=2))
    assert not health.allows(59.0) and health.allows(60.0)


def test_a_model_whose_plain_answers_are_slow_is_not_stalled_by_them():
    # A plain answer's first byte is its last: the limit had stayed at the floor (5 s),
    # and two 8 s answers at once kept a healthy model out.
    health = _model()
    for at in range(5):
        token = health.started(now=10.0 * at, timed=False)
        health.first_byte(8.0, token, timed=False)
        health.succeeded(8.0, token)
    health.started(now=100.0, timed=False)
    health.started(now=102.5, timed=False)
    assert health.allows(106.0) and not health.stalled(106.0)


def test_a_silent_stream_is_a_stall_by_the_time_to_first_byte_not_by_plain_answers():
    # The longer of the two had been taken: 4 x 60 s before a silent stream was seen.
    health = _model()
    token = health.started(now=0.0, timed=False)
    health.first_byte(60.0, token, timed=False)
    health.first_byte(0.3, health.started(now=70.0))
    health.started(now=100.0)
    assert not health.stalled(104.0) and health.stalled(106.0)


def _silent_stream_behind_a_plain_request() -> ModelHealth:
    """A model whose plain answers take a minute and streams start in 0.3 s, waiting on a
    plain request sent at 100 s and a stream sent at 101 s."""
    health = _model()
    health.first_byte(60.0, health.started(now=0.0, timed=False), timed=False)
    health.first_byte(0.3, health.started(now=70.0))
    health.started(now=100.0, timed=False)
    health.started(now=101.0)
    return health


def test_a_silent_stream_behind_an_older_plain_request_is_a_stall_by_its_own_limit():
    # Only the oldest request was judged: a plain one, by a minute-long plain wait.
    health = _silent_stream_behind_a_plain_request()
    assert not health.stalled(105.0) and health.stalled(107.0)


def test_a_long_plain_answer_keeps_no_request_from_a_model_whose_stream_stalled():
    # Every kind's newest had to be past its limit: the plain one's (4 x a minute) too.
    health = _silent_stream_behind_a_plain_request()
    assert health.stalled(107.0) and health.allows(107.0)


def test_a_stream_waits_on_the_time_to_first_byte_a_plain_answer_on_plain_waits():
    health = _model()
    health.first_byte(8.0, health.started(), timed=False)
    assert (health.ewma_ttfb, health.wait(streamed=True), health.wait(streamed=False)) == (
        None, 8.0, 8.0)  # each, unmeasured, by the other
    health.first_byte(0.2, health.started())
    assert (health.wait(streamed=True), health.wait(streamed=False)) == (0.2, 8.0)
