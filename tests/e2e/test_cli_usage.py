"""`hxgw usage`, as installed, against a SQLite ledger with known rows."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from hxgw.store import open_database
from hxgw.store.migrate import migrate
from hxgw.usage import MIGRATIONS, Ledger, UsageRow
from tests.fixtures import HXGW

NOW = time.time()


def _row(n: int, key: str, *, age: float = 60.0, **fields: object) -> UsageRow:
    values: dict[str, object] = {
        "request_id": f"req-{n}", "key_name": key, "route": "/v1/chat/completions",
        "model_group": "chat", "model": "alpha", "status": 200, "prompt_tokens": 10,
        "completion_tokens": 5, "total_tokens": 15, "cost": 0.25,
        "started": NOW - age, "ended": NOW - age + 0.5,
    }
    values.update(fields)
    return UsageRow(**values)  # type: ignore[arg-type]


ROWS = [
    _row(1, "alice"),
    _row(2, "alice", model="beta", status=502, failovers=1, ended=NOW - 60 + 1.5),
    _row(3, "bob", prompt_tokens=100, total_tokens=105, cost=1.0),
    _row(4, "bob", age=7200),  # two hours ago
]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    for row in ROWS:
        ledger.record(row)
    ledger.close()
    return tmp_path / "state"


def usage(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HX_CONFIG_DIR")}
    env["HX_STATE_DIR"] = str(state_dir)
    config_dir = state_dir.parent / "no-config"  # no gateway.yaml: the defaults
    return subprocess.run([HXGW, "usage", "--config-dir", str(config_dir), *args],
                          capture_output=True, text=True, env=env, timeout=30)


def as_another_user(locked: Path) -> list[str]:
    """The command prefix under which `locked` (mode 000) cannot be read, as the service's
    0750 state directory cannot by an operator: none for a user, setpriv for root, whose
    capabilities to read anything it drops."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed: root cannot give up reading any directory")
    drop = "-dac_override,-dac_read_search"
    prefix = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"]
    looked = subprocess.run([*prefix, "ls", str(locked)], capture_output=True, timeout=30)
    if looked.returncode == 0:
        pytest.skip("setpriv could not take root's capability to read any directory")
    return prefix


def test_a_state_directory_this_user_may_not_read_is_said_so_in_one_line(tmp_path: Path):
    locked = tmp_path / "state"
    locked.mkdir(mode=0)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HX_CONFIG_DIR")}
    env["HX_STATE_DIR"] = str(locked)
    result = subprocess.run([*as_another_user(locked), HXGW, "usage", "--config-dir",
                             str(tmp_path / "no-config")],
                            capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 1
    assert result.stderr == (f"hxgw usage: cannot read the usage ledger at {locked}/hxgw.db:"
                             " permission denied (run as root or as the service's user)\n")


def test_the_table_shows_each_keys_totals_and_their_sum(state_dir: Path):
    result = usage(state_dir, "--since", "1h")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "KEY    REQUESTS  PROMPT  COMPLETION  TOTAL  COST  ERRORS  FAILOVERS  P50 LATENCY\n"
        "alice         2      20          10     30  0.50       1          1       1.000s\n"
        "bob           1     100           5    105  1.00       0          0       0.500s\n"
        "--------------------------------------------------------------------------------\n"
        "total         3     120          15    135  1.50       1          1            -\n"
    )


def test_json_has_one_object_per_key(state_dir: Path):
    result = usage(state_dir, "--since", "1h", "--format", "json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["by"] == "key"
    assert body["rows"] == [
        {"key": "alice", "requests": 2, "prompt_tokens": 20, "completion_tokens": 10,
         "total_tokens": 30, "cost": 0.5, "errors": 1, "failovers": 1, "p50_latency": 1.0,
         "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0},
        {"key": "bob", "requests": 1, "prompt_tokens": 100, "completion_tokens": 5,
         "total_tokens": 105, "cost": 1.0, "errors": 0, "failovers": 0, "p50_latency": 0.5,
         "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0},
    ]


def test_a_key_name_that_begins_as_a_formula_is_text_in_the_csv(tmp_path: Path):
    # A spreadsheet opening the report would have run it.
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    ledger.record(_row(1, "@SUM(A1)"))
    ledger.record(_row(2, "-2+3"))
    ledger.close()
    result = usage(tmp_path / "state", "--since", "1h", "--format", "csv")
    assert result.returncode == 0, result.stderr
    keys = [line[0] for line in csv.reader(io.StringIO(result.stdout))][1:]
    assert sorted(keys) == ["'-2+3", "'@SUM(A1)"]


def test_a_model_name_that_begins_with_a_tab_and_a_formula_is_text_in_the_csv(
    tmp_path: Path,
):
    # A batch's rows name the model as its upstream reported it; spreadsheets skip a
    # leading tab or CR and run what follows.
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    ledger.record(_row(1, "alice", model="\t=1+1"))
    ledger.record(_row(2, "alice", model="\t@SUM(A1)"))
    ledger.close()
    result = usage(tmp_path / "state", "--since", "1h", "--by", "model", "--format", "csv")
    assert result.returncode == 0, result.stderr
    models = [line[0] for line in csv.reader(io.StringIO(result.stdout))][1:]
    assert sorted(models) == ["'\t=1+1", "'\t@SUM(A1)"]


def test_an_end_user_with_control_characters_is_shown_escaped_in_the_table(tmp_path: Path):
    # The client names its end users: an escape sequence would have run in the terminal.
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    ledger.record(_row(1, "alice", end_user="\x1b[2Jgone\nrow"))
    ledger.close()
    result = usage(tmp_path / "state", "--since", "1h", "--by", "user")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert result.stdout.splitlines()[1].startswith("\\x1b[2Jgone\\nrow ")


def test_an_end_user_that_begins_as_a_formula_is_text_in_the_csv(tmp_path: Path):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    ledger.record(_row(1, "alice", end_user="=HYPERLINK(1)"))
    ledger.close()
    result = usage(tmp_path / "state", "--since", "1h", "--by", "user", "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert list(csv.reader(io.StringIO(result.stdout)))[1][0] == "'=HYPERLINK(1)"


def test_requests_that_named_no_end_user_read_no_user_in_the_table_and_none_in_csv_and_json(
    tmp_path: Path,
):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    ledger.record(_row(1, "alice"))
    ledger.record(_row(2, "alice", end_user="ann"))
    ledger.close()
    state = tmp_path / "state"
    table = usage(state, "--since", "1h", "--by", "user").stdout.splitlines()
    assert [line.split()[0] for line in table[1:3]] == ["(no", "ann"]
    assert table[1].startswith("(no user) ")
    rows = list(csv.reader(io.StringIO(usage(state, "--since", "1h", "--by", "user",
                                             "--format", "csv").stdout)))
    assert [r[0] for r in rows[1:]] == ["", "ann"]
    doc = json.loads(usage(state, "--since", "1h", "--by", "user", "--format", "json").stdout)
    assert [r["user"] for r in doc["rows"]] == [None, "ann"]


def test_top_keeps_the_lines_that_cost_most_and_the_table_s_sum_says_it_is_theirs(
    tmp_path: Path,
):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    for n, (user, cost) in enumerate([("ann", 1.0), ("bo", 0.25), ("cy", 2.0)]):
        ledger.record(_row(n, "alice", end_user=user, cost=cost))
    ledger.close()
    state = tmp_path / "state"
    table = usage(state, "--by", "user", "--top", "2").stdout.splitlines()
    assert [line.split()[0] for line in table[1:3]] == ["cy", "ann"]
    assert table[-1].startswith("total (top 2) ") and " 3.00 " in table[-1]
    doc = json.loads(usage(state, "--by", "user", "--top", "1", "--format", "json").stdout)
    assert (doc["top"], [r["user"] for r in doc["rows"]]) == (1, ["cy"])
    refused = usage(state, "--top", "0")
    assert refused.returncode == 2 and "not a number of lines from 1" in refused.stderr


def test_csv_has_a_header_and_one_line_per_key(state_dir: Path):
    result = usage(state_dir, "--since", "1h", "--format", "csv")
    assert result.returncode == 0, result.stderr
    lines = list(csv.reader(io.StringIO(result.stdout)))
    assert lines[0] == ["key", "requests", "prompt_tokens", "completion_tokens",
                        "total_tokens", "cost", "errors", "failovers", "p50_latency",
                        "cached_tokens", "cache_write_tokens", "reasoning_tokens"]
    assert lines[1:] == [["alice", "2", "20", "10", "30", "0.5", "1", "1", "1.0", "0", "0", "0"],
                         ["bob", "1", "100", "5", "105", "1.0", "0", "0", "0.5", "0", "0", "0"]]


def test_the_table_shows_a_cost_below_a_cent_to_two_significant_digits(tmp_path: Path):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    ledger.record(_row(1, "carol", cost=0.000042))
    ledger.close()
    result = usage(tmp_path / "state")
    assert result.returncode == 0, result.stderr
    assert "0.000042" in result.stdout.splitlines()[1].split()


def test_a_month_is_its_calendar_month_in_utc_and_no_more(tmp_path: Path):
    # A bill's month: from its first moment to the next month's, whatever is newer.
    def at(stamp: str) -> float:
        return dt.datetime.fromisoformat(stamp).timestamp()

    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    for n, started in enumerate(("2026-10-31T23:59:59+00:00", "2026-11-01T00:00:00+00:00",
                                 "2026-11-30T23:59:59+00:00", "2026-12-01T00:00:00+00:00")):
        ledger.record(_row(n, "alice", started=at(started), ended=at(started) + 1))
    ledger.close()
    result = usage(tmp_path / "state", "--month", "2026-11", "--format", "json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert (body["since"], body["until"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert [(r["key"], r["requests"]) for r in body["rows"]] == [("alice", 2)]


@pytest.mark.parametrize("bad", ["2026-13", "November", "2026-1", "9999-12", "0000-01",
                                 "\uff12\uff10\uff12\uff16-11"])  # full-width digits
def test_a_month_that_is_no_month_is_a_usage_error(state_dir: Path, bad: str):
    result = usage(state_dir, "--month", bad)
    assert result.returncode == 2
    assert "not a month like 2026-11" in result.stderr


def test_a_month_and_a_window_together_are_a_usage_error(state_dir: Path):
    result = usage(state_dir, "--month", "2026-11", "--since", "7d")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


def test_the_tables_cost_lines_add_up_to_its_total(tmp_path: Path):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    for n, (key, cost) in enumerate((("a", 0.125), ("b", 0.125), ("c", 0.125), ("d", 0.015))):
        ledger.record(_row(n, key, cost=cost))
    ledger.close()
    result = usage(tmp_path / "state")
    assert result.returncode == 0, result.stderr
    costs = [line.split()[5] for line in result.stdout.splitlines() if line[:1] in "abcdt"]
    assert costs == ["0.125", "0.125", "0.125", "0.015", "0.390"]


def test_latency_is_to_the_millisecond_and_cost_without_the_float_sum_s_noise(tmp_path: Path):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    for n, cost in enumerate((0.1, 0.2)):
        ledger.record(_row(n, "carol", cost=cost, ended=NOW - 60 + 0.123456789))
    ledger.close()
    result = usage(tmp_path / "state", "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert list(csv.reader(io.StringIO(result.stdout)))[1] == [
        "carol", "2", "20", "10", "30", "0.3", "0", "0", "0.123", "0", "0", "0"
    ]


def test_the_default_window_is_24_hours_and_key_filters(state_dir: Path):
    result = usage(state_dir, "--key", "bob", "--by", "model", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert [(r["model"], r["requests"]) for r in json.loads(result.stdout)["rows"]] == [
        ("alpha", 2)
    ]


def test_without_a_store_it_says_so_in_one_line_and_exits_1(tmp_path: Path):
    result = usage(tmp_path / "empty")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "no database at" in result.stderr
    assert not (tmp_path / "empty").exists()


def test_a_store_that_holds_keys_but_no_ledger_yet_says_so_and_exits_1(tmp_path: Path):
    # `hxgw keys` made the store before any gateway served: no usage is no success.
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HX_CONFIG_DIR")}
    made = subprocess.run([HXGW, "keys", "create", "app", "--config-dir", str(tmp_path / "c")],
                          capture_output=True, text=True, env=env | {"HX_STATE_DIR": str(state)},
                          timeout=30)
    assert made.returncode == 0, made.stderr
    result = usage(state)
    assert result.returncode == 1
    assert "no usage ledger in" in result.stderr


@pytest.mark.parametrize("since", ["yesterday", "0m"])
def test_a_bad_window_is_a_usage_error(state_dir: Path, since: str):
    result = usage(state_dir, "--since", since)
    assert result.returncode == 2
    assert "not a duration like 30m, 24h or 7d" in result.stderr


@pytest.mark.parametrize("since", ["1" * 40 + "d", "99999999999d"])
def test_a_window_past_what_a_timestamp_holds_is_refused_as_bad_usage(
    state_dir: Path, since: str
):
    result = usage(state_dir, "--since", since, "--format", "json")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_a_key_with_no_requests_in_the_window_is_said_to_have_none(state_dir: Path):
    result = usage(state_dir, "--key", "nobody")
    assert result.returncode == 0
    assert "no requests by a key named 'nobody' since " in result.stderr


def test_user_keeps_to_one_end_user_s_requests_within_the_key(tmp_path: Path):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    for n, key, user in [(1, "app", "u-1"), (2, "app", "u-2"), (3, "app", "u-1"),
                         (4, "other", "u-1")]:
        ledger.record(_row(n, key, end_user=user))
    ledger.close()
    result = usage(tmp_path / "state", "--key", "app", "--user", "u-1", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert [(r["key"], r["requests"]) for r in json.loads(result.stdout)["rows"]] == [("app", 2)]


def test_an_end_user_with_no_requests_in_the_window_is_said_to_have_none(state_dir: Path):
    result = usage(state_dir, "--user", "u-nobody")
    assert result.returncode == 0
    assert "no requests for an end user 'u-nobody' since " in result.stderr


def test_an_end_user_with_none_is_named_once_escaped_not_run(state_dir: Path):
    result = usage(state_dir, "--user", "u-\x1b[2J")
    assert result.returncode == 0
    assert "no requests for an end user 'u-\\x1b[2J' since " in result.stderr


def test_a_ledger_an_older_gateway_made_is_said_to_need_its_restart(tmp_path: Path):
    database = open_database(None, tmp_path / "state")
    with database.connect() as connection:
        migrate(connection, MIGRATIONS, upto=3)  # the schema before `outcome`
    result = usage(tmp_path / "state")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "at schema version 3, this hxgw reads" in result.stderr
    assert "restart the gateway" in result.stderr


def test_json_and_csv_add_up_the_cached_and_reasoning_tokens_after_the_other_columns(
    tmp_path: Path
):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    ledger.record(_row(1, "carol", cached_tokens=6, cache_write_tokens=2, reasoning_tokens=3))
    ledger.record(_row(2, "carol", cached_tokens=1))
    ledger.close()
    (carol,) = json.loads(usage(tmp_path / "state", "--format", "json").stdout)["rows"]
    assert (carol["cached_tokens"], carol["cache_write_tokens"], carol["reasoning_tokens"]) == (
        7, 2, 3)
    # Appended: a script that reads the CSV by position still finds what it read before.
    header, line = csv.reader(io.StringIO(usage(tmp_path / "state", "--format", "csv").stdout))
    assert header[-4:] == ["p50_latency", "cached_tokens", "cache_write_tokens",
                           "reasoning_tokens"]
    assert line[-3:] == ["7", "2", "3"]


def test_a_team_with_no_requests_in_the_window_is_said_to_have_none(state_dir: Path):
    result = usage(state_dir, "--team", "serch")
    assert result.returncode == 0
    assert "no requests in a team named 'serch' since " in result.stderr


def test_requests_of_keys_in_no_team_read_no_team_in_the_table(tmp_path: Path):
    ledger = Ledger(open_database(None, tmp_path / "state"), tmp_path / "state" / "spool")
    ledger.record(_row(1, "alice"))
    ledger.record(_row(2, "bob", team="search"))
    ledger.close()
    table = usage(tmp_path / "state", "--since", "1h", "--by", "team").stdout.splitlines()
    assert table[1].startswith("(no team) ") and table[2].startswith("search ")
