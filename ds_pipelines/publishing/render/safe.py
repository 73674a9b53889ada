"""Notebook text on its way to a page: secrets masked first, then escaped for the page's markup."""

from __future__ import annotations

from ds_pipelines.masking import Masker
from ds_pipelines.publishing.render import escape


class SafeText:
    """Renders notebook-controlled strings for one page. Masking runs before escaping, since escaping
    changes the characters a detector looks for (``glpat\\-...``)."""

    def __init__(self, masker: Masker | None = None):
        self.masker = masker if masker is not None else Masker.from_env()
        self._masked: dict[str, str] = {}

    def masked(self, value: object) -> str:
        text = str(value)
        if text not in self._masked:
            self._masked[text] = self.masker.mask(text)
        return self._masked[text]

    def md(self, value: object, *, limit: int | None = None) -> str:
        return escape.md_text(self.masked(value), limit=limit)

    def code(self, value: object, *, in_table: bool = True) -> str:
        return escape.md_code(self.masked(value), in_table=in_table)

    def block(self, value: str, *, language: str = "", max_lines: int | None = None) -> str:
        return escape.md_code_block(self.masked(value), language=language, max_lines=max_lines)

    def slack(self, value: object, *, limit: int | None = None) -> str:
        return escape.slack_text(self.masked(value), limit=limit)

    def slack_block(self, value: str, *, max_lines: int | None = None) -> str:
        return escape.slack_code_block(self.masked(value), max_lines=max_lines)
