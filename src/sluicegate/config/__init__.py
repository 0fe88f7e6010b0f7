"""Configuration: the YAML file's schema, secret resolution, defaults and loading."""

from .loader import load_config
from .schema import Config, ModelEntry

__all__ = ["Config", "ModelEntry", "load_config"]
