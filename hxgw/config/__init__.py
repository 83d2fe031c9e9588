"""Configuration: the schema (frozen dataclasses), loading and validating the YAML
files and the environment, and the warnings a config deserves.

May import: hxgw.errors, hxgw.jsonio, hxgw.memo; and to check at load a classifier
file, an upstream URL and DATABASE_URL with the code that will use them,
hxgw.routing.learned, hxgw.upstream and hxgw.store (none of which imports the config).
Modules inside import each other directly, never this face. (tests/unit/test_house.py
holds every part's list and checks it.)
"""

from hxgw.config.load import load_config
from hxgw.config.schema import (
    DEFAULT_UPSTREAM,
    MASTER_KEY_NAME,
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
    Team,
    Tls,
    key_digest,
)
from hxgw.config.store import load_store_settings

__all__ = [
    "DEFAULT_UPSTREAM",
    "MASTER_KEY_NAME",
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
    "Team",
    "Tls",
    "key_digest",
    "load_config",
    "load_store_settings",
]
