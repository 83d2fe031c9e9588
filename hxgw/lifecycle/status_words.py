"""What the gateway says of itself in STATUS=, which `systemctl status` shows: the
address, the config it serves and how the last reload went. A supervisor says it of
its workers in the same words, after how many of them serve."""

from __future__ import annotations

from dataclasses import dataclass

from hxgw.config import Config
from hxgw.runtime import ReloadRecord
from hxgw.units import counted


def serving(generation: int, config: Config) -> str:
    models = counted(len(config.models), "model")
    groups = counted(len(config.routing.groups), "group")
    return f"config generation {generation}; {models} in {groups}"


def daemon_status(listening: str, generation: int, config: Config, reload: ReloadRecord) -> str:
    last = "none yet" if reload.result == "none" else f"{reload.result}: {reload.message}"
    return f"serving on {listening}; {serving(generation, config)}; last reload: {last}"


@dataclass(slots=True)
class SupervisorStatus:
    count: int
    address: str
    config: Config
    """The config the workers serve: at the start, then each reload they took."""
    last_reload: str = ""
    """The last reload's words, said again after a worker's restart: the bad files that
    a refused reload left are still there."""

    def text(self, state: str, *, serving_now: int, generation: int) -> str:
        if state.startswith("last reload:"):
            self.last_reload = state
        elif self.last_reload:
            state = f"{state}; {self.last_reload}"
        some = "" if serving_now == self.count else f"{serving_now} of "
        workers = f"{some}{self.count} workers on {self.address}"
        return f"{workers}; {serving(generation, self.config)}; {state}"


WAITING = "waiting for a restart: "


def also_waiting(state: str, places: list[str]) -> str:
    """A reload's STATUS= words (worker 0's) with the settings only the supervisor sees
    wait for a restart (the address and the number of workers, which it gave them)."""
    if not places:
        return state
    if WAITING in state:
        return state.replace(WAITING, WAITING + ", ".join(places) + ", ", 1)
    return f"{state}; {WAITING}{', '.join(places)}"
