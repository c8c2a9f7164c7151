"""Rendering reports: Documents for humans, JSON dictionaries for machines, both sized by a View."""

from kvfix.render.document import Document, Table, View, current_view, render, viewing

__all__ = ["Document", "Table", "View", "current_view", "render", "viewing"]
