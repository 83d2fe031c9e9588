"""Configuration: the schema (frozen dataclasses), loading and validating the YAML
files and the environment, and the warnings a config deserves.

May import: hxgw.errors, hxgw.jsonio, and to check at load a classifier file and an
upstream URL with the code that will use them, hxgw.routing.classify and hxgw.upstream; to check DATABASE_URL, hxgw.store. Modules inside import each other directly, never this face.
"""

from hxgw.config.load import load_config
from hxgw.config.schema import (
    DEFAULT_UPSTREAM,
    MODES,
    STRATEGIES,
    ClientKey,
    Config,
    KeyLimits,
    Listen,
    Mode,
    Model,
    Price,
    ScoringWeights,
    StoreSettings,
    Tls,
)
from hxgw.config.store import load_store_settings

__all__ = [
    "DEFAULT_UPSTREAM",
    "MODES",
    "STRATEGIES",
    "ClientKey",
    "Config",
    "KeyLimits",
    "Listen",
    "Mode",
    "Model",
    "Price",
    "ScoringWeights",
    "StoreSettings",
    "Tls",
    "load_config",
    "load_store_settings",
]
