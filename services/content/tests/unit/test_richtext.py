"""A browser-free rendering check: what members' apps render from a sanitised body."""

from html.parser import HTMLParser

import pytest

from sotay_content.richtext import sanitise, to_text

HOSTILE = [
    "<script>alert('x')</script><p>Nội dung</p>",
    "<p onclick=\"alert(1)\" onmouseover='x()'>Bấm</p>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">liên kết</a>',
    '<a href="JaVaScRiPt:alert(1)">liên kết</a>',
    '<a href="java&#x09;script:alert(1)">liên kết</a>',
    '<a href="&#106;avascript:alert(1)">liên kết</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<iframe src="https://evil.example"></iframe>',
    "<svg><script>alert(1)</script></svg>",
    '<style>body{background:url("javascript:alert(1)")}</style>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<form action="https://evil.example"><input name="q"></form>',
    "<object data='x.swf'></object><embed src='x.swf'>",
    "<!-- <script>alert(1)</script> -->",
]


class Rendered(HTMLParser):
    """What a browser would build: every element with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def render(html: str) -> Rendered:
    parsed = Rendered()
    parsed.feed(html)
    parsed.close()
    return parsed


@pytest.mark.parametrize("html", HOSTILE)
def test_no_script_handler_or_script_url_survives(html: str) -> None:
    clean = sanitise(html)
    for tag, attrs in render(clean).elements:
        assert tag not in {"script", "style", "iframe", "object", "embed", "svg", "math", "form"}
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name != "style"
            if name in {"href", "src"} and value:
                scheme = "".join(value.split()).lower().split(":", 1)[0]
                assert scheme in {"http", "https", "mailto"} or ":" not in value, value
    assert "alert" not in to_text(clean)


def test_ordinary_formatting_is_kept() -> None:
    html = (
        "<h2>Mục tiêu</h2><p>Đến năm <strong>2030</strong>, <em>khoa học</em>…</p>"
        '<ul><li>Một</li><li>Hai</li></ul><a href="https://dangcongsan.vn/nq57">Toàn văn</a>'
    )
    clean = sanitise(html)
    tags = [tag for tag, _ in render(clean).elements]
    assert tags == ["h2", "p", "strong", "em", "ul", "li", "li", "a"]
    link = render(clean).elements[-1][1]
    assert link["href"] == "https://dangcongsan.vn/nq57"
    assert link["rel"] == "noopener noreferrer"


def test_text_reads_one_block_per_line() -> None:
    assert to_text("<h1>TỐI MẬT</h1><p>Kế <b>hoạch</b></p><br>Hết") == "TỐI MẬT\nKế hoạch\nHết"
