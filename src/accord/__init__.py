"""Accord: data partnerships that release only what people, the law and an agreement allow."""

__version__ = "0.1.0"
