"""TOML files written the usual way (Cargo.toml, nixcrate.toml), read without tomllib.

tomllib is pure Python and spent ~0.16 ms on each manifest: on a workspace of 500 members
that was a third of `nixcrate init`. These files use a small part of TOML: tables, arrays
of tables, dotted keys, one-line strings, integers, booleans, arrays and
inline tables. `read` parses that part and returns None for anything else (\\u escapes,
multi-line strings, floats, dates, CRLF, a key or table defined twice, a table reopened),
leaving the text to tomllib, which also words the error for invalid TOML.

The contract, pinned by tests/test_fast_toml.py on generated documents and on every
manifest of Debian's crate registry: `read(text)` is None or equals `tomllib.loads(text)`,
types and key order included.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

_UNSUPPORTED = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # control characters, CR: tomllib's business
# The pieces, as pattern text: each is used alone and inside _LINE.
_PART = r"""[A-Za-z0-9_-]+|"[^"\\\n]*"|'[^'\n]*'"""  # a bare or quoted key part (no escapes)
_KEY_TEXT = rf"(?:{_PART})(?:[ \t]*\.[ \t]*(?:{_PART}))*"
# A one-line basic string; of the escapes, the one-character ones (\uXXXX: tomllib's).
_BASIC_TEXT = r'"([^"\\\n]*(?:\\[btnfr"\\][^"\\\n]*)*)"'
_LITERAL_TEXT = r"'([^'\n]*)'"
# What follows a value is checked by its caller: "1.5" stops at "1" and is declined there.
_SCALAR_TEXT = r"true|false|[+-]?(?:0|[1-9](?:_?[0-9])*)"
_END = r"[ \t]*(?:#[^\n]*)?(?:\n|\Z)"

_WS = re.compile(r"[ \t]*")
_KEY = re.compile(_KEY_TEXT)
_KEY_PART = re.compile(r"""[A-Za-z0-9_-]+|"([^"\\\n]*)"|'([^'\n]*)'""")  # _PART, capturing the quoted text
_EQUALS = re.compile(r"[ \t]*=[ \t]*")
_LINE_END = re.compile(_END)
_ARRAY_GAP = re.compile(r"(?:[ \t\n]|#[^\n]*)*")  # arrays may span lines and hold comments
_BASIC = re.compile(_BASIC_TEXT)
_LITERAL = re.compile(_LITERAL_TEXT)
_SCALAR = re.compile(_SCALAR_TEXT)
_ESCAPE = re.compile(r'\\([btnfr"\\])')
_ESCAPED = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
# One match per line for the usual lines: blank or comment, [table], [[array.of.tables]],
# and key = string / integer / boolean. An array or inline table value stops the match
# at its first character, for the recursive reader.
_LINE = re.compile(
    r"[ \t]*(?:"
    rf"\[\[[ \t]*({_KEY_TEXT})[ \t]*\]\]{_END}"
    rf"|\[[ \t]*({_KEY_TEXT})[ \t]*\]{_END}"
    rf"|({_KEY_TEXT})[ \t]*=[ \t]*(?:"
    rf"{_BASIC_TEXT}{_END}"
    rf"|{_LITERAL_TEXT}{_END}"
    rf"|({_SCALAR_TEXT}){_END}"
    r"|(?=[\[{]))"
    rf"|{_END})"
)


class _OutsideSubsetError(Exception):
    """The text leaves the subset: tomllib reads it."""


def loads(text: str) -> dict[str, Any]:
    """tomllib.loads(text), faster for the usual files; raises tomllib.TOMLDecodeError as it does."""
    data = read(text)
    return tomllib.loads(text) if data is None else data


def read(text: str) -> dict[str, Any] | None:
    """The TOML document `text`, or None when tomllib must read it."""
    if _UNSUPPORTED.search(text):
        return None
    try:
        return _Document(text).parse()
    except _OutsideSubsetError:
        return None


def _unescape(body: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPED[m.group(1)], body)


def _scalar(word: str) -> bool | int:
    return True if word == "true" else False if word == "false" else int(word.replace("_", ""))


def _key_parts(key: str) -> list[str]:
    """`a.b`, `"a-b"`, `target.'cfg(unix)'.dependencies` → their parts, unquoted."""
    if '"' not in key and "'" not in key:  # bare parts, which hold no blanks
        return key.split(".") if " " not in key and "\t" not in key else [p.strip(" \t") for p in key.split(".")]
    if key[0] == '"' and key.find('"', 1) == len(key) - 1:  # one quoted part, the usual quoted key
        return [key[1:-1]]
    return [m.group(1) if m.group(1) is not None else m.group(2) if m.group(2) is not None else m.group(0) for m in _KEY_PART.finditer(key)]


class _Document:
    """One parse. Tables are tracked by id() to apply TOML's rules on defining them:
    a [header] table may be defined once (after being implied by a deeper header);
    a table made by dotted keys takes more dotted keys but no header; an inline table or
    an array is closed. Any other reuse of a name ends the fast path."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.root: dict[str, Any] = {}
        self.headed: set[int] = set()  # defined by a [header] or [[header]]
        self.implied: set[int] = set()  # implied by a deeper [header], not yet defined
        self.dotted: set[int] = set()  # made by dotted keys
        self.arrays_of_tables: set[int] = set()

    def parse(self) -> dict[str, Any]:
        text, end = self.text, len(self.text)
        table = self.root
        pos = 0
        while pos < end:
            m = _LINE.match(text, pos)
            if m is None:
                raise _OutsideSubsetError
            array_header, header, key, basic, literal, scalar = m.groups()
            pos = m.end()
            if key is not None:
                if basic is not None:
                    value: Any = _unescape(basic) if "\\" in basic else basic
                elif literal is not None:
                    value = literal
                elif scalar is not None:
                    value = _scalar(scalar)
                else:  # an array or an inline table
                    value, pos = self._value_to_line_end(pos)
                self._assign(table, _key_parts(key), value, self.dotted)
            elif header is not None:
                table = self._table(_key_parts(header))
            elif array_header is not None:
                table = self._array_table(_key_parts(array_header))
        return self.root

    # ----------------------------------------------------------------- tables

    def _walk(self, parts: list[str]) -> dict[str, Any]:
        """The table a header's last part goes in, implying tables on the way."""
        node = self.root
        for part in parts:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
                self.implied.add(id(child))
            elif type(child) is list and id(child) in self.arrays_of_tables:
                child = child[-1]
            elif type(child) is not dict or (id(child) not in self.headed and id(child) not in self.implied):
                raise _OutsideSubsetError
            node = child
        return node

    def _table(self, parts: list[str]) -> dict[str, Any]:
        parent = self._walk(parts[:-1])
        table = parent.get(parts[-1])
        if table is None:
            table = parent[parts[-1]] = {}
        elif type(table) is dict and id(table) in self.implied:
            self.implied.discard(id(table))
        else:
            raise _OutsideSubsetError
        self.headed.add(id(table))
        return table

    def _array_table(self, parts: list[str]) -> dict[str, Any]:
        parent = self._walk(parts[:-1])
        array = parent.get(parts[-1])
        if array is None:
            array = parent[parts[-1]] = []
            self.arrays_of_tables.add(id(array))
        elif type(array) is not list or id(array) not in self.arrays_of_tables:
            raise _OutsideSubsetError
        table: dict[str, Any] = {}
        array.append(table)
        self.headed.add(id(table))
        return table

    @staticmethod
    def _assign(table: dict[str, Any], parts: list[str], value: Any, dotted: set[int]) -> None:
        """`a.b.c = value` in `table`: a and b made here or by earlier dotted keys of it."""
        node = table
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
                dotted.add(id(child))
            elif type(child) is not dict or id(child) not in dotted:
                raise _OutsideSubsetError
            node = child
        if parts[-1] in node:
            raise _OutsideSubsetError
        node[parts[-1]] = value

    # ----------------------------------------------------------------- values

    def _value(self, pos: int) -> tuple[Any, int]:
        text = self.text
        char = text[pos : pos + 1]
        if char == '"':
            m = _BASIC.match(text, pos)
            if m is None:
                raise _OutsideSubsetError
            body = m.group(1)
            return _unescape(body) if "\\" in body else body, m.end()
        if char == "'":
            m = _LITERAL.match(text, pos)
            if m is None:
                raise _OutsideSubsetError
            return m.group(1), m.end()
        if char == "[":
            return self._array(pos + 1)
        if char == "{":
            return self._inline_table(pos + 1)
        m = _SCALAR.match(text, pos)
        if m is None:
            raise _OutsideSubsetError  # floats, dates, inf, nan, malformed values
        return _scalar(m.group(0)), m.end()

    def _value_to_line_end(self, pos: int) -> tuple[Any, int]:
        value, pos = self._value(pos)
        line_end = _LINE_END.match(self.text, pos)
        if line_end is None:
            raise _OutsideSubsetError
        return value, line_end.end()

    def _array(self, pos: int) -> tuple[list[Any], int]:
        text = self.text
        items: list[Any] = []
        pos = _ARRAY_GAP.match(text, pos).end()  # type: ignore[union-attr]
        while not text.startswith("]", pos):
            value, pos = self._value(pos)
            items.append(value)
            pos = _ARRAY_GAP.match(text, pos).end()  # type: ignore[union-attr]
            if text.startswith(",", pos):
                pos = _ARRAY_GAP.match(text, pos + 1).end()  # type: ignore[union-attr]
            elif not text.startswith("]", pos):
                raise _OutsideSubsetError
        return items, pos + 1

    def _inline_table(self, pos: int) -> tuple[dict[str, Any], int]:
        """`{ k = v, a.b = w }` on one line, no trailing comma (TOML 1.0)."""
        text = self.text
        table: dict[str, Any] = {}
        dotted: set[int] = set()  # tables made by this inline table's dotted keys
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("}", pos):
            return table, pos + 1
        while True:
            m = _KEY.match(text, pos)
            if m is None:
                raise _OutsideSubsetError
            eq = _EQUALS.match(text, m.end())
            if eq is None:
                raise _OutsideSubsetError
            value, pos = self._value(eq.end())
            self._assign(table, _key_parts(m.group(0)), value, dotted)
            pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
            if text.startswith("}", pos):
                return table, pos + 1
            if not text.startswith(",", pos):
                raise _OutsideSubsetError
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
