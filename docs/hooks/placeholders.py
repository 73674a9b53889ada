"""MkDocs hook: show the ``<name>``-style placeholders of the generated CLI reference as text.

mkdocs-click copies the commands' help text into the page as Markdown, unescaped, so a placeholder such as
``run-<name>`` or ``model-runs/<notebook>`` would reach the HTML as an unknown tag, which browsers hide. Any
tag without attributes that is not an HTML element is turned back into the text it was.
"""

from __future__ import annotations

import re

_HTML_ELEMENTS = frozenset(
    "a abbr article aside b blockquote body br button caption code col colgroup dd del details div dl dt em "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 head header hr html i img input ins kbd label li link main "
    "mark meta nav noscript ol p pre q s samp script section small span strong style sub summary sup svg table "
    "tbody td tfoot th thead title tr u ul var".split()
)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9_-]*)>")


def on_page_content(html: str, page, config, files) -> str:
    if page.file.src_uri != "cli.md":
        return html
    return _TAG.sub(lambda m: m.group(0) if m.group(2).lower() in _HTML_ELEMENTS else f"&lt;{m.group(1)}{m.group(2)}&gt;",
                    html)
