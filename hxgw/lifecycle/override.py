"""--host and --port given on the command line: they win over config and environment."""

from __future__ import annotations

import dataclasses

from hxgw.config import Config, Listen


@dataclasses.dataclass(frozen=True, slots=True)
class ListenOverride:
    """--host/--port given on the command line: they win over config and environment."""

    host: str | None = None
    port: int | None = None

    def apply(self, config: Config) -> Config:
        listen = Listen(
            host=self.host or config.listen.host,
            port=config.listen.port if self.port is None else self.port,
        )
        return dataclasses.replace(config, listen=listen)
