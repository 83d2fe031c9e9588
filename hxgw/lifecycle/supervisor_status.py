"""What the supervisor says of its workers in STATUS=, which `systemctl status` shows:
how many serve, the config they serve and how the last reload went, in the words a
single daemon uses (`serving on ...; config generation N; M models in G groups`)."""

from __future__ import annotations

from dataclasses import dataclass

from hxgw.config import Config


@dataclass(slots=True)
class SupervisorStatus:
    count: int
    address: str
    models: int = 0
    groups: int = 0
    last_reload: str = ""
    """The last reload's words, said again after a worker's restart: the bad files that
    a refused reload left are still there."""

    def serves(self, config: Config) -> None:
        """The workers serve `config` now (at start, or once they took a reload)."""
        self.models, self.groups = len(config.models), len(config.routing.groups)

    def text(self, state: str, *, serving: int, generation: int) -> str:
        if state.startswith("last reload:"):
            self.last_reload = state
        elif self.last_reload:
            state = f"{state}; {self.last_reload}"
        some = "" if serving == self.count else f"{serving} of "
        return (
            f"{some}{self.count} workers on {self.address}; config generation {generation}; "
            f"{self.models} models in {self.groups} groups; {state}"
        )
