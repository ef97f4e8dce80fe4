"""mulint's version: its own module, so that reporters can name it without importing the API."""

__version__ = "0.2.0"
