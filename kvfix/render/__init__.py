"""Rendering reports: Documents for humans, JSON dictionaries for machines."""

from kvfix.render.document import Document, Table, render

__all__ = ["Document", "Table", "render"]
