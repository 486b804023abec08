"""Rich text bodies: sanitised once, when written, and read back as plain text.

Editors paste from word processors and web pages; what members' apps render
must never run code. The body is cleaned with nh3 (the Ammonia sanitiser) to a
small set of formatting tags; scripts and styles go with their content, event
handler attributes and every URL scheme but http, https and mailto go.
"""

from __future__ import annotations

from html.parser import HTMLParser

import nh3

TAGS = {
    "p", "br", "hr", "strong", "b", "em", "i", "u", "s", "sub", "sup",
    "h2", "h3", "h4", "ul", "ol", "li", "blockquote",
    "table", "thead", "tbody", "tr", "th", "td", "a", "img", "figure", "figcaption",
}  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "th": {"colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
}
URL_SCHEMES = {"http", "https", "mailto"}
DROPPED_WITH_CONTENT = {"script", "style", "iframe", "object", "embed", "noscript", "template"}

# Tags after which the text reads on a new line: markings are whole lines.
_BLOCKS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol",
    "blockquote", "table", "tr", "th", "td", "div", "figure", "figcaption",
}  # fmt: skip


def sanitise(html: str) -> str:
    """The body as members' apps may render it."""
    return nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def to_text(html: str) -> str:
    """What the body says, one block per line (for marking checks and search)."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)
