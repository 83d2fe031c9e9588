"""What the client gets when no candidate served: the gateway's own error, by how each
candidate failed."""

from __future__ import annotations

from hxgw.errors import AtCapacity, RateLimited, UpstreamError, UpstreamTimeout
from hxgw.pipeline.failover.failures import Failure, all_failed


def test_candidates_shed_at_their_caps_ask_the_client_to_wait_for_the_first_turn():
    error = all_failed([Failure("alpha", "full", retry_after="5", shed=True),
                        Failure("beta", "full", retry_after="2", shed=True)])
    assert isinstance(error, AtCapacity) and error.extra["retry_after"] == 2


def test_one_candidate_rate_limited_and_one_unavailable_is_a_429_with_the_shortest_wait():
    # An SDK backs off a 429 by its Retry-After; a 503 would read as the gateway down.
    error = all_failed([Failure("alpha", "slow down", 429, "3"),
                        Failure("beta", "unavailable", 503, "5")])
    assert isinstance(error, RateLimited) and error.extra["retry_after"] == 3


def test_a_timeout_beside_another_failure_is_a_502_not_a_504():
    # A 504 says only that nothing answered in time; beta answered, with an error.
    error = all_failed([Failure("alpha", "timeout", kind="timeout"),
                        Failure("beta", "model crashed", 500, kind="http_500")])
    assert type(error) is UpstreamError and not isinstance(error, UpstreamTimeout)
