"""TOML topology files -> model.Topology (pure): every problem reported as FILE:LINE: key.path: reason."""

from .loader import MAX_FILE_BYTES, NETWORK_KEYS, NIC_MODELS, file_warnings, load, load_text, locate

__all__ = ["MAX_FILE_BYTES", "NETWORK_KEYS", "NIC_MODELS", "file_warnings", "load", "load_text", "locate"]
