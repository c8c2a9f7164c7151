"""kvfix: offline inspector and migration tool for Apache Kvrocks data directories."""

__version__ = "0.1.0"
