"""fieldlearn.sim.safexml: streaming with line numbers, gzip by content, and no DTDs or entities."""
from __future__ import annotations

import gzip

import pytest

from fieldlearn.sim.safexml import FileFormatError, open_text, parse_stream


def collect(path):
    seen = []
    parse_stream(path, lambda tag, attrs, line: seen.append(("start", tag, dict(attrs), line)),
                 lambda tag, line: seen.append(("end", tag, line)))
    return seen


def test_elements_arrive_in_order_with_their_lines_and_without_namespaces(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text('<?xml version="1.0"?>\n<r xmlns="urn:x" xmlns:g="urn:g">\n  <a k="1"/>\n  <g:b>\n  </g:b>\n</r>\n')
    assert collect(p) == [("start", "r", {}, 2), ("start", "a", {"k": "1"}, 3), ("end", "a", 3),
                          ("start", "b", {}, 4), ("end", "b", 5), ("end", "r", 6)]


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    p = tmp_path / "plain-name.xml"
    p.write_bytes(gzip.compress(b"<r>\n<a/>\n</r>\n"))
    assert [e[1] for e in collect(p) if e[0] == "start"] == ["r", "a"]
    with open_text(p) as fh:
        assert fh.read() == "<r>\n<a/>\n</r>\n"


def test_text_and_comments_reach_their_handlers(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text("<!-- head -->\n<r>hello <b>world</b></r>")
    texts, comments = [], []
    parse_stream(p, lambda *a: None, text=texts.append, comment=comments.append)
    assert "".join(texts) == "hello world" and comments == [" head "]


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>
"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<r>&x;</r>
"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, EXTERNAL, '<!DOCTYPE r SYSTEM "r.dtd">\n<r/>'])
def test_documents_with_a_dtd_are_refused_before_any_entity(tmp_path, doc):
    p = tmp_path / "evil.xml"
    p.write_text(doc)
    with pytest.raises(FileFormatError, match="document type declarations") as err:
        collect(p)
    assert err.value.line == doc[: doc.index("<!DOCTYPE")].count("\n") + 1
    assert str(err.value).startswith(f"{p} line {err.value.line}: ")


def test_an_undeclared_entity_is_a_parse_error_with_its_line(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text("<r>\n<a>&nope;</a>\n</r>")
    with pytest.raises(FileFormatError, match=r"line 2: not well-formed XML: undefined entity"):
        collect(p)


def test_malformed_xml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.xml"
    p.write_text("<r>\n<a>\n</b>\n</r>")
    with pytest.raises(FileFormatError) as err:
        collect(p)
    assert err.value.line == 3 and err.value.file == str(p) and "mismatched tag" in str(err.value)


def test_a_truncated_document_and_a_missing_file_are_errors(tmp_path):
    p = tmp_path / "cut.xml"
    p.write_text("<r><a/>")
    with pytest.raises(FileFormatError, match="not well-formed XML: no element found"):
        collect(p)
    p.write_bytes(gzip.compress(b"<r><a/></r>")[:-12])
    with pytest.raises(FileFormatError, match="cannot read"):
        collect(p)
    with pytest.raises(FileFormatError, match="cannot open: No such file"):
        collect(tmp_path / "absent.xml")


def test_a_handler_error_stops_the_parse(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text("<r>\n<a/>\n<b/>\n</r>")
    seen = []

    def start(tag, attrs, line):
        seen.append(tag)
        if tag == "a":
            raise FileFormatError("no a here", p, line)

    with pytest.raises(FileFormatError, match="line 2: no a here"):
        parse_stream(p, start)
    assert seen == ["r", "a"]
