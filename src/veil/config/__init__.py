"""Configuration: the schema, YAML loading with line numbers, and ONVIF mask exchange."""

from veil.config.loader import dump_config, load_config, load_config_text, parse_config_dict
from veil.config.schema import DynamicConfig, MaskConfig, StyleConfig, VeilConfig

__all__ = [
    "DynamicConfig",
    "MaskConfig",
    "StyleConfig",
    "VeilConfig",
    "dump_config",
    "load_config",
    "load_config_text",
    "parse_config_dict",
]
