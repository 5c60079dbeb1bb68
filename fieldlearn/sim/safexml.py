"""Streaming XML reading that refuses DTDs and entities (no entity expansion), with the line of each element.

Traces and street networks come from users and can be large, so they are parsed with the standard library's
expat parser element by element (nothing is kept but what the handler keeps). A document type declaration is an
error: without one no entity can be declared, so neither entity expansion ("billion laughs") nor external
entities can happen. Files ending in `.gz` (or starting with gzip's magic bytes) are decompressed on the fly.
"""
from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO, Callable
from xml.parsers import expat

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class FileFormatError(ValueError):
    """A malformed input file; the message names the file and, when known, the line."""

    def __init__(self, message: str, file: str | Path, line: int | None = None):
        self.file = str(file)
        self.line = line
        self.reason = message
        where = f"{self.file} line {line}" if line is not None else self.file
        super().__init__(f"{where}: {message}")


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a file for reading bytes, decompressing it when it is gzip (by content, not only by name)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            compressed = fh.read(2) == _GZIP_MAGIC
        return gzip.open(path, "rb") if compressed else open(path, "rb")
    except OSError as exc:
        raise FileFormatError(f"cannot open: {exc.strerror or exc}", path) from None


def open_text(path: str | Path) -> IO[str]:
    """Open a UTF-8 text file (gzip-compressed or not) for reading, universal newlines."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", newline="")


StartHandler = Callable[[str, dict[str, str], int], None]
EndHandler = Callable[[str, int], None]
TextHandler = Callable[[str], None]


def parse_stream(path: str | Path, start: StartHandler, end: EndHandler | None = None,
                 text: TextHandler | None = None, comment: TextHandler | None = None) -> None:
    """Parse an XML file, calling `start(tag, attributes, line)` and `end(tag, line)` for each element.

    `text` receives character data, `comment` the text of comments. Namespaces are dropped from tag names
    (`{uri}trkpt` and `gpx:trkpt` arrive as `trkpt`). A handler may raise FileFormatError to stop with an error; a
    malformed document, a DTD or an entity declaration raises FileFormatError naming the parser's line.
    """
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse(what: str) -> Callable[..., None]:
        def handler(*_args: object) -> None:
            raise FileFormatError(f"{what} are not accepted (a trace or network needs none)", path,
                                  parser.CurrentLineNumber)
        return handler

    parser.StartDoctypeDeclHandler = refuse("document type declarations (DTDs)")
    parser.EntityDeclHandler = refuse("entity declarations")
    parser.UnparsedEntityDeclHandler = refuse("entity declarations")
    parser.ExternalEntityRefHandler = refuse("external entities")
    parser.StartElementHandler = lambda tag, attrs: start(_local(tag), attrs, parser.CurrentLineNumber)
    if end is not None:
        parser.EndElementHandler = lambda tag: end(_local(tag), parser.CurrentLineNumber)
    if text is not None:
        parser.CharacterDataHandler = text
    if comment is not None:
        parser.CommentHandler = comment
    with open_binary(path) as fh:
        try:
            while True:
                chunk = fh.read(_CHUNK)
                parser.Parse(chunk, not chunk)
                if not chunk:
                    break
        except expat.ExpatError as exc:
            raise FileFormatError(f"not well-formed XML: {expat.ErrorString(exc.code)}", path, exc.lineno) from None
        except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
            raise FileFormatError(f"cannot read: {exc}", path, parser.CurrentLineNumber) from None


def _local(tag: str) -> str:
    """The tag without its namespace (expat gives `uri}name`) or prefix."""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]
