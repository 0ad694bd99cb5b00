from __future__ import annotations

import socket

import pytest

from support.ingest import BlockKind, FileType, IngestError, IngestErrorCode, parse

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <title>Shipping help | Example Shop</title>
  <meta charset="utf-8">
  <link rel="stylesheet" href="https://cdn.example/site.css">
  <style>.x { color: red }</style>
  <script src="https://cdn.example/tracker.js"></script>
</head>
<body>
  <header class="site"><a href="/">Example Shop</a><h1>Site banner heading</h1></header>
  <nav><ul><li><a href="/">Home</a></li><li>Cart</li></ul></nav>
  <div role="navigation">Breadcrumbs &gt; Help</div>
  <aside>Related: gift cards</aside>
  <main>
    <article>
      <header><h1 id="shipping">Shipping</h1></header>
      <p>We ship to <b>every</b> EU country.<br>Orders leave within 24 hours.<br><br>Tracking
         links arrive by e-mail.</p>
      <p hidden>Hidden draft paragraph.</p>
      <p aria-hidden="true">Decorative text.</p>
      <div style="margin:0; DISPLAY : none">Invisible promo.</div>
      <p style="visibility:hidden">Also invisible.</p>
      <noscript>Enable JavaScript.</noscript>
      <script>var secret = "do not index";</script>
      <svg><text>svg label</text></svg>
      <iframe src="https://video.example/embed"></iframe>
      <form><label>Email</label><input name="q" value="typed"><button>Go</button></form>
      <img src="https://cdn.example/truck.png" alt="truck">
      <!-- a comment that must not show up -->
      <section id="costs">
        <h2>Costs</h2>
        <ol start="3"><li>Standard: free<ul><li>over 50 EUR</li></ul></li>
          <li>Express: 9 EUR</li></ol>
        <table id="rates">
          <caption>Rates by zone</caption>
          <tr><th>Zone</th><th>Days</th></tr>
          <tr><td>EU</td><td>2-4</td></tr>
          <tr><td>World</td><td>5-10</td></tr>
        </table>
        <h3>Customs</h3>
        <p id="duties">Duties are paid by the recipient.</p>
        <pre>  POST /api/ship
  {"zone": "EU"}</pre>
      </section>
      <h2>Returns</h2>
      <details><summary>Can I return a gift?</summary><p>Yes, within 30 days.</p></details>
      <footer>Was this helpful?</footer>
    </article>
  </main>
  <footer>© Example Shop</footer>
</body>
</html>"""


def test_main_content_extraction() -> None:
    doc = parse(PAGE.encode(), "shipping.html")
    assert doc.file_type is FileType.HTML
    assert doc.title == "Shipping help | Example Shop"
    got = [(b.kind, b.heading_path, b.anchor, b.text) for b in doc.blocks]
    assert got == [
        (
            BlockKind.PARAGRAPH,
            ("Shipping",),
            "shipping",
            "We ship to every EU country. Orders leave within 24 hours.",
        ),
        (BlockKind.PARAGRAPH, ("Shipping",), "shipping", "Tracking links arrive by e-mail."),
        (
            BlockKind.LIST,
            ("Shipping", "Costs"),
            "costs",
            "3. Standard: free\n  - over 50 EUR\n4. Express: 9 EUR",
        ),
        (BlockKind.PARAGRAPH, ("Shipping", "Costs"), "rates", "Rates by zone"),
        (BlockKind.TABLE, ("Shipping", "Costs"), "rates", "Zone | Days\nEU | 2-4\nWorld | 5-10"),
        (
            BlockKind.PARAGRAPH,
            ("Shipping", "Costs", "Customs"),
            "duties",
            "Duties are paid by the recipient.",
        ),
        (
            BlockKind.CODE,
            ("Shipping", "Costs", "Customs"),
            None,
            '  POST /api/ship\n  {"zone": "EU"}',
        ),
        (BlockKind.PARAGRAPH, ("Shipping", "Returns"), None, "Can I return a gift?"),
        (BlockKind.PARAGRAPH, ("Shipping", "Returns"), None, "Yes, within 30 days."),
    ]


def test_page_furniture_and_hidden_content_never_reach_the_index() -> None:
    text = "\n".join(b.text for b in parse(PAGE.encode(), "shipping.html").blocks)
    for dropped in (
        "Example Shop",  # site header and footer
        "Site banner heading",
        "Home",  # nav
        "Breadcrumbs",  # role=navigation
        "gift cards",  # aside
        "Hidden draft",
        "Decorative",
        "Invisible promo",
        "Also invisible",
        "JavaScript",
        "secret",
        "color: red",
        "svg label",
        "typed",  # form
        "Email",
        "truck",
        "comment",
        "Was this helpful",
    ):
        assert dropped not in text


def test_code_block_anchor_falls_back_to_heading_anchor() -> None:
    doc = parse(b"<h2 id='api'>API</h2><pre>GET /x</pre>", "a.html")
    assert doc.blocks[0].anchor == "api"


@pytest.mark.parametrize(
    "wrapper",
    [
        '<div role="main">{}</div>',
        "<article>{}</article>",
        "<main>{}</main>",
    ],
)
def test_main_region_is_preferred(wrapper: str) -> None:
    page = (
        "<html><body><div class='menu'><p>Menu text outside main.</p></div>"
        + wrapper.format("<h1>Real</h1><p>Real content.</p>")
        + "<div class='promo'><p>Promo outside main.</p></div></body></html>"
    )
    doc = parse(page.encode(), "a.html")
    assert [b.text for b in doc.blocks] == ["Real content."]
    assert doc.title == "Real"  # no <title>: the first h1


def test_whole_body_is_used_without_a_main_region_and_layout_tables_are_walked() -> None:
    page = """<html><body>
      <table><tr><td><h1>Help</h1><p>First paragraph.</p></td>
      <td><h2>Side</h2><ul><li>one</li></ul></td></tr></table>
      <div>Loose text<span> continues</span> here.</div>
    </body></html>"""
    doc = parse(page.encode(), "legacy.htm")
    assert [(b.heading_path, b.text) for b in doc.blocks] == [
        (("Help",), "First paragraph."),
        (("Help", "Side"), "- one"),
        (("Help", "Side"), "Loose text continues here."),
    ]


def test_declared_charset_is_honoured() -> None:
    page = (
        '<html><head><meta charset="windows-1252"></head><body><p>Caf\xe9 \u20ac</p></body></html>'
    )
    doc = parse(page.encode("cp1252"), "a.html")
    assert doc.blocks[0].text == "Café €"


def test_deeply_nested_markup_does_not_recurse() -> None:
    page = "<div>" * 3000 + "<p>Deep text.</p>" + "</div>" * 3000
    doc = parse(page.encode(), "deep.html")
    assert [b.text for b in doc.blocks] == ["Deep text."]


def test_parsing_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    page = (
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">'
        '<html><head><base href="http://evil.example/"><link rel="import" href="http://x/y">'
        '</head><body><iframe src="http://evil.example/"></iframe>'
        '<img src="http://evil.example/a.png"><p>Safe &amp; sound.</p></body></html>'
    )
    assert parse(page.encode(), "a.html").blocks[0].text == "Safe & sound."


def test_page_with_only_furniture_has_no_text() -> None:
    page = "<html><body><nav>Home</nav><script>x()</script><footer>c</footer></body></html>"
    with pytest.raises(IngestError) as caught:
        parse(page.encode(), "empty.html")
    assert caught.value.code is IngestErrorCode.NO_TEXT
    assert "no extractable text" in caught.value.message


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="koi8-r">',
        '<meta http-equiv="Content-Type" content="text/html; charset=KOI8-R">',
    ],
)
def test_declared_charset_beats_guessing(meta: str) -> None:
    page = f"<html><head>{meta}</head><body><p>Доставка</p></body></html>"
    assert parse(page.encode("koi8-r"), "a.html").blocks[0].text == "Доставка"
