"""TOML topology files -> model.Topology (pure): every problem reported as FILE:LINE: key.path: reason."""

from .guests import NIC_MODELS
from .loader import MAX_FILE_BYTES, file_warnings, load, load_text, locate
from .networks import NETWORK_KEYS

__all__ = ["MAX_FILE_BYTES", "NETWORK_KEYS", "NIC_MODELS", "file_warnings", "load", "load_text", "locate"]
