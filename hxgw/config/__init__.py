"""Configuration: the schema (frozen dataclasses), loading and validating the YAML
files and the environment, and the warnings a config deserves.

May import: hxgw.errors, hxgw.jsonio, and to check at load a classifier file and an
upstream URL with the code that will use them, hxgw.routing.classify and hxgw.upstream. Modules inside import each other directly, never this face.
"""

from hxgw.config.load import load_config
from hxgw.config.schema import (
    STRATEGIES,
    ClientKey,
    Config,
    KeyLimits,
    Listen,
    Mode,
    Model,
    Price,
    ScoringWeights,
    Tls,
)

__all__ = [
    "STRATEGIES",
    "ClientKey",
    "Config",
    "KeyLimits",
    "Listen",
    "Mode",
    "Model",
    "Price",
    "ScoringWeights",
    "Tls",
    "load_config",
]
