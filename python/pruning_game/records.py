"""Dicts whose keys read as attributes: the core's reports, with the JSON files' field names."""
from typing import Any


class Record(dict):
    """A ``dict`` with attribute access (``r.uniqueness.verdict``); nested dicts are Records."""

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return Record(value) if isinstance(value, dict) and not isinstance(value, Record) else value

    def __dir__(self):
        return list(super().__dir__()) + list(self.keys())
