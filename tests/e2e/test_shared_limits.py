"""One key's limit held across processes: two gateway instances on one Redis, and
the workers of one instance on their shared file, enforce one limit, not N."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import StartGateway
from tests.fixtures import DEFAULT_MODELS, Gateway, free_port, ledger_rows, new_key, wait_for
from tests.postgres import Postgres, own_postgres  # noqa: F401 -- a fixture
from tests.redis_server import RedisServer, redis_server  # noqa: F401 -- a fixture

RPM = 4


def _keys_file(tmp_path: Path, secret: str, **limits: object) -> str:
    """A keys file with the key `app`: an RPM of RPM unless `limits` are given."""
    keys = tmp_path / "keys.yaml"
    app = {"name": "app", "key": secret, **(limits or {"rpm": RPM})}
    keys.write_text(yaml.safe_dump({"keys": [app]}))
    keys.chmod(0o600)
    return str(keys)


async def _status(
    client: aiohttp.ClientSession, gateway: Gateway, secret: str, user: str | None = None
) -> int:
    body: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    if user is not None:
        body["user"] = user
    async with client.post(gateway.url + "/v1/chat/completions", json=body,
                           headers={"Authorization": f"Bearer {secret}"}) as resp:
        await resp.read()
        return resp.status


async def test_two_instances_on_one_redis_enforce_one_rpm(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    redis_server: RedisServer,  # noqa: F811
):
    secret = new_key("sk-app")
    config = {"auth": {"keys_file": _keys_file(tmp_path, secret)}}
    env = {"REDIS_URL": redis_server.url}
    first = await start_gateway(gateway=config, env=env)
    second = await start_gateway(gateway=config, env=env)
    statuses = [await _status(client, (first, second)[i % 2], secret) for i in range(RPM)]
    assert statuses == [200] * RPM
    # The next one is refused whichever instance it reaches.
    assert await _status(client, first, secret) == 429
    assert await _status(client, second, secret) == 429


async def test_two_instances_on_one_redis_enforce_one_rpm_for_each_end_user(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    redis_server: RedisServer,  # noqa: F811
):
    secret = new_key("sk-app")
    config = {"auth": {"keys_file": _keys_file(tmp_path, secret, per_user={"rpm": RPM})}}
    env = {"REDIS_URL": redis_server.url}
    pair = (await start_gateway(gateway=config, env=env), await start_gateway(gateway=config, env=env))
    statuses = [await _status(client, pair[i % 2], secret, "ann") for i in range(RPM)]
    assert statuses == [200] * RPM
    assert [await _status(client, gateway, secret, "ann") for gateway in pair] == [429, 429]
    assert [await _status(client, gateway, secret, "bo") for gateway in pair] == [200, 200]


async def test_the_workers_of_one_instance_enforce_one_rpm(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
):
    secret = new_key("sk-app")
    gateway = await start_gateway(gateway={"workers": 2,
                                           "auth": {"keys_file": _keys_file(tmp_path, secret)}})
    # A new connection for each request: the kernel spreads them over the workers.
    statuses = []
    for _ in range(RPM + 12):
        async with aiohttp.ClientSession() as fresh:
            statuses.append(await _status(fresh, gateway, secret))
    assert statuses == [200] * RPM + [429] * 12
    workers = set(re.findall(r"key=app .* worker=(\d+)", gateway.logs()))
    assert len(workers) == 2  # both answered: the limit held across them


@pytest.mark.workers
async def test_the_workers_of_one_instance_enforce_one_rpm_for_each_end_user(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
):
    secret = new_key("sk-app")
    keys = _keys_file(tmp_path, secret, per_user={"rpm": RPM})
    gateway = await start_gateway(gateway={"workers": 2, "auth": {"keys_file": keys}})
    statuses: dict[str, list[int]] = {"ann": [], "bo": []}
    for user in ("ann", "bo"):
        for _ in range(RPM + 4):
            async with aiohttp.ClientSession() as fresh:  # spread over the workers
                statuses[user].append(await _status(fresh, gateway, secret, user))
    assert statuses == {user: [200] * RPM + [429] * 4 for user in statuses}
    workers = set(re.findall(r"key=app .* worker=(\d+)", gateway.logs()))
    assert len(workers) == 2


def _team_file(tmp_path: Path, secrets: dict[str, str], **limits: object) -> str:
    """A keys file whose keys (`secrets`, by name) are all in the team `crew`, which has
    `limits`; the keys have none of their own."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({
        "teams": [{"name": "crew", **limits}],
        "keys": [{"name": name, "key": secret, "team": "crew"} for name, secret in secrets.items()],
    }))
    keys.chmod(0o600)
    return str(keys)


async def test_two_instances_on_one_redis_enforce_one_rpm_for_a_team_of_keys(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    redis_server: RedisServer,  # noqa: F811
):
    secrets = {"one": new_key("sk-one"), "two": new_key("sk-two")}
    config = {"auth": {"keys_file": _team_file(tmp_path, secrets, rpm=RPM)}}
    env = {"REDIS_URL": redis_server.url}
    pair = (await start_gateway(gateway=config, env=env), await start_gateway(gateway=config, env=env))
    statuses = [await _status(client, pair[i % 2], secrets[("one", "two")[i // 2 % 2]])
                for i in range(RPM)]
    assert statuses == [200] * RPM
    assert [await _status(client, gateway, secrets["two"]) for gateway in pair] == [429, 429]


@pytest.mark.workers
async def test_the_workers_of_one_instance_enforce_one_rpm_for_a_team_of_keys(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
):
    secrets = {"one": new_key("sk-one"), "two": new_key("sk-two")}
    keys = _team_file(tmp_path, secrets, rpm=RPM)
    gateway = await start_gateway(gateway={"workers": 2, "auth": {"keys_file": keys}})
    statuses = []
    for i in range(RPM + 6):
        async with aiohttp.ClientSession() as fresh:  # spread over the workers
            statuses.append(await _status(fresh, gateway, secrets[("one", "two")[i % 2]]))
    assert statuses == [200] * RPM + [429] * 6
    assert len(set(re.findall(r"key=(?:one|two) .* worker=(\d+)", gateway.logs()))) == 2


async def test_a_team_s_budget_spent_before_redis_restarted_without_its_data_holds(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    redis_server: RedisServer,  # noqa: F811
):
    secrets = {"one": new_key("sk-one"), "two": new_key("sk-two")}
    keys = _team_file(tmp_path, secrets, budget=0.5)
    priced = [dict(m, price={"input_per_mtok": 1000, "output_per_mtok": 1000})
              for m in DEFAULT_MODELS]
    gateway = await start_gateway(models=priced, gateway={"auth": {"keys_file": keys}},
                                  env={"REDIS_URL": redis_server.url})
    served = 0
    while await _status(client, gateway, secrets["one"]) == 200:
        served += 1
    assert served >= 2
    await wait_for(lambda: len(ledger_rows(gateway)) == served + 1, timeout=10)
    redis_server.stop()
    redis_server.start()
    statuses = [await _status(client, gateway, secrets["two"])]
    for _ in range(50):  # Redis is tried again at most once a second
        if statuses[-1] != 503:
            break
        await asyncio.sleep(0.1)
        statuses.append(await _status(client, gateway, secrets["two"]))
    statuses += [await _status(client, gateway, secrets["two"]) for _ in range(served)]
    assert statuses.count(200) == 0 and 429 in statuses, statuses


def _sample(metrics: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    assert found is not None, name
    return float(found[1])


async def test_metrics_say_when_redis_stops_answering_and_when_it_is_back(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    redis_server: RedisServer,  # noqa: F811
):
    secret = new_key("sk-app")
    gateway = await start_gateway(gateway={"auth": {"keys_file": _keys_file(tmp_path, secret)}},
                                  env={"REDIS_URL": redis_server.url})

    async def metrics() -> str:
        async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
            return await resp.text()

    assert await _status(client, gateway, secret) == 200
    before = await metrics()
    assert _sample(before, "hxgw_limits_store_up") == 1
    assert _sample(before, "hxgw_limits_store_failures_total") == 0
    redis_server.stop()
    assert await _status(client, gateway, secret) == 503  # fail closed, the default
    down = await metrics()
    assert _sample(down, "hxgw_limits_store_up") == 0
    assert _sample(down, "hxgw_limits_store_failures_total") >= 1
    redis_server.start()
    for _ in range(50):  # Redis is tried again at most once a second
        if await _status(client, gateway, secret) == 200:
            break
        await asyncio.sleep(0.1)
    assert _sample(await metrics(), "hxgw_limits_store_up") == 1


async def test_the_start_says_where_the_limits_live_and_never_the_password(
    start_gateway: StartGateway,
):
    gateway = await start_gateway(env={"REDIS_URL": "redis://:Secret99@127.0.0.1:9/0"})
    # "if": the line is the configuration, said whether or not Redis answers; it read
    # "(unreachable: 503; ...)", as if Redis were down, beside a Redis that answered.
    assert "key limits store=\"redis://:***@127.0.0.1:9/0 (if unreachable: 503" in gateway.logs()
    assert "Secret99" not in gateway.logs()


async def test_metrics_say_when_redis_is_down_and_back_with_no_limited_request_to_meet_it(
    start_gateway: StartGateway, client: aiohttp.ClientSession,
    redis_server: RedisServer,  # noqa: F811
):
    # Pinged every 5 s: an alert on the gauge follows Redis, not the traffic.
    gateway = await start_gateway(env={"REDIS_URL": redis_server.url})

    async def up() -> float:
        async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
            return _sample(await resp.text(), "hxgw_limits_store_up")

    assert await up() == 1
    redis_server.stop()
    await wait_for_async(lambda: up(), 0, timeout=15)
    redis_server.start()
    await wait_for_async(lambda: up(), 1, timeout=15)


async def wait_for_async(read: Any, wanted: float, timeout: float) -> None:
    """Until `read()` says `wanted`, asked every 0.2 s for at most `timeout` seconds."""
    for _ in range(int(timeout / 0.2)):
        if await read() == wanted:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not {wanted} within {timeout}s")


async def test_a_redis_that_cannot_be_reached_at_the_start_is_said_before_any_request(
    start_gateway: StartGateway, redis_server: RedisServer,  # noqa: F811
):
    # A wrong password (or host) in REDIS_URL was first said by the first limited request
    # to fail: an instance looked healthy, its log said nothing, until clients got 503s.
    url = redis_server.url.replace("redis://", "redis://:not-the-password@")
    gateway = await start_gateway(env={"REDIS_URL": url})
    assert "limits_store_unreachable" in gateway.logs()
    assert "AUTH" in gateway.logs()  # what Redis said of the password


async def test_metrics_say_redis_is_down_from_the_start_not_from_the_first_request(
    start_gateway: StartGateway, client: aiohttp.ClientSession,
):
    gateway = await start_gateway(env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    async with client.get(gateway.url + "/metrics", headers=gateway.auth) as resp:
        assert _sample(await resp.text(), "hxgw_limits_store_up") == 0


async def test_requests_refused_while_redis_stalled_do_not_hold_its_slots_after(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    redis_server: RedisServer,  # noqa: F811
):
    # A Redis that stalls past limits_store.timeout (a fork, a paused host) still runs the
    # batch it had read when it resumes: the requests that got 503 held their slots for
    # their lease (timeouts.total), and a key with max_parallel was refused that long.
    secret = new_key("sk-app")
    keys = _keys_file(tmp_path, secret, max_parallel=2)
    gateway = await start_gateway(gateway={"auth": {"keys_file": keys}},
                                  env={"REDIS_URL": redis_server.url})
    assert await _status(client, gateway, secret) == 200  # connected, the script loaded
    assert redis_server.process is not None
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        stalled = await asyncio.gather(*(_status(client, gateway, secret) for _ in range(2)))
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    assert stalled == [503, 503]
    statuses = []
    for _ in range(50):  # Redis is tried again at most once a second
        statuses.append(await _status(client, gateway, secret))
        if statuses[-1] == 200:
            break
        await asyncio.sleep(0.1)
    assert statuses[-1] == 200, statuses


async def test_a_budget_spent_before_redis_restarted_without_its_data_still_holds(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    redis_server: RedisServer,  # noqa: F811
):
    # Redis without persistence (the fixture's, a cache's, a failover's) forgets every
    # key's spend when it restarts: every budget began afresh, though the ledger knew.
    secret = new_key("sk-app")
    keys = _keys_file(tmp_path, secret, budget=0.5)
    priced = [dict(m, price={"input_per_mtok": 1000, "output_per_mtok": 1000})
              for m in DEFAULT_MODELS]
    gateway = await start_gateway(models=priced, gateway={"auth": {"keys_file": keys}},
                                  env={"REDIS_URL": redis_server.url})
    served = 0
    while await _status(client, gateway, secret) == 200:
        served += 1
    assert served >= 2  # the budget is a few requests' worth
    await wait_for(lambda: len(ledger_rows(gateway)) == served + 1, timeout=10)
    redis_server.stop()
    redis_server.start()
    statuses = [await _status(client, gateway, secret)]
    for _ in range(50):  # Redis is tried again at most once a second
        if statuses[-1] != 503:
            break
        await asyncio.sleep(0.1)
        statuses.append(await _status(client, gateway, secret))
    for _ in range(served):
        statuses.append(await _status(client, gateway, secret))
    # Not even the request that found Redis empty goes: it is decided again on the spend
    # read back (it went, on a spend of nothing). Refused for the budget, not for a Redis
    # that never came back.
    assert statuses.count(200) == 0 and 429 in statuses, statuses


async def test_an_end_user_s_budget_spent_before_redis_restarted_without_its_data_holds(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    redis_server: RedisServer,  # noqa: F811
):
    secret = new_key("sk-app")
    keys = _keys_file(tmp_path, secret, per_user={"budget": 0.5})
    priced = [dict(m, price={"input_per_mtok": 1000, "output_per_mtok": 1000})
              for m in DEFAULT_MODELS]
    gateway = await start_gateway(models=priced, gateway={"auth": {"keys_file": keys}},
                                  env={"REDIS_URL": redis_server.url})
    served = 0
    while await _status(client, gateway, secret, "ann") == 200:
        served += 1
    assert served >= 2
    await wait_for(lambda: len(ledger_rows(gateway)) == served + 1, timeout=10)
    redis_server.stop()
    redis_server.start()
    statuses = [await _status(client, gateway, secret, "ann")]
    for _ in range(50):  # Redis is tried again at most once a second
        if statuses[-1] != 503:
            break
        await asyncio.sleep(0.1)
        statuses.append(await _status(client, gateway, secret, "ann"))
    statuses += [await _status(client, gateway, secret, "ann") for _ in range(served)]
    assert statuses.count(200) == 0 and 429 in statuses, statuses
    assert await _status(client, gateway, secret, "bo") == 200


async def test_a_key_redis_lost_is_not_served_while_its_spend_cannot_be_read_back(
    start_gateway: StartGateway, tmp_path: Path, client: aiohttp.ClientSession,
    redis_server: RedisServer, own_postgres: Postgres,  # noqa: F811
):
    # With Redis emptied and PostgreSQL frozen, the request that found the key new went
    # through on a spend of nothing, and the key's next ones waited 5 s, then went too.
    secret, probe = new_key("sk-app"), new_key("sk-probe")
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "app", "key": secret, "budget": 0.5},
                                             {"name": "probe", "key": probe, "rpm": 1000}]}))
    keys.chmod(0o600)
    priced = [dict(m, price={"input_per_mtok": 1000, "output_per_mtok": 1000})
              for m in DEFAULT_MODELS]
    env = {"REDIS_URL": redis_server.url, "DATABASE_URL": own_postgres.url()}
    gateway = await start_gateway(models=priced, gateway={"auth": {"keys_file": str(keys)}},
                                  env=env)
    assert await _status(client, gateway, secret) == 200
    redis_server.stop()
    redis_server.start()
    for _ in range(50):  # Redis is tried again at most once a second; a key without a budget
        if await _status(client, gateway, probe) == 200:
            break
        await asyncio.sleep(0.1)
    with own_postgres.frozen():
        frozen = [await _status(client, gateway, secret) for _ in range(3)]
    assert frozen == [503] * 3
    statuses = []
    for _ in range(100):  # the ledger answers; a failed read is tried again after 5 s
        statuses.append(await _status(client, gateway, secret))
        if statuses[-1] == 200:
            break
        await asyncio.sleep(0.1)
    assert statuses[-1] == 200, statuses
