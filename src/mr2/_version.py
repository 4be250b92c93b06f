"""The installed version of mr2 (``0+unknown`` in a source tree that is not installed)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mr2")
except PackageNotFoundError:  # pragma: no cover - a source tree without installation
    __version__ = "0+unknown"
