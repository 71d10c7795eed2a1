"""MkDocs hooks of the documentation site (``mkdocs.yml`` ``hooks:``).

Pages that are being written may not exist yet when the site is built: each of
:data:`OPTIONAL_PAGES` joins the navigation (after the entry it names) only once its file exists,
so the strict build neither fails on a missing page nor on a page left out of the navigation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: ``(title, page, the title of the navigation entry it follows)``.
OPTIONAL_PAGES: tuple[tuple[str, str, str], ...] = (("Bots", "bots.md", "Testing your bots"),)


def on_config(config: Any, **kwargs: Any) -> Any:
    """Add each optional page that exists to the navigation."""
    docs = Path(config["docs_dir"])
    nav: list[Any] = config["nav"]
    listed = {_page(entry) for entry in nav}
    for title, page, after in OPTIONAL_PAGES:
        if not (docs / page).exists() or page in listed:
            continue
        titles = [next(iter(entry)) if isinstance(entry, dict) else None for entry in nav]
        at = titles.index(after) + 1 if after in titles else len(nav)
        nav.insert(at, {title: page})
    return config


def _page(entry: Any) -> Any:
    if isinstance(entry, dict):
        value = next(iter(entry.values()))
        return value if isinstance(value, str) else None
    return entry
