"""GVariant text values (``uint64 123``, ``'inactive-or-failed'``, ``[('/dev/null', 'rw')]``) as D-Bus values.

runc reads the ``org.systemd.property.NAME`` annotations in this format (GLib's, as godbus parses it) and hands
them to systemd as unit properties; so does pyoci. ``parse`` returns (signature, value) in jeepney's form: a
variant is a (signature, value) pair, arrays are lists, structs tuples, ``ay`` bytes. Supported: booleans,
numbers (int32 and double unless typed), strings, byte strings (b'..'), arrays, tuples, dictionaries, variants
(<..>), the type keywords (``boolean``, ``byte``, ``int16`` ... ``objectpath``, ``signature``) and ``@TYPE``.
"""
from __future__ import annotations

_KEYWORDS = {"boolean": "b", "byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u",
             "int64": "x", "uint64": "t", "handle": "h", "double": "d", "string": "s", "objectpath": "o",
             "signature": "g"}
_RANGES = {"y": (0, 0xFF), "n": (-0x8000, 0x7FFF), "q": (0, 0xFFFF), "i": (-0x80000000, 0x7FFFFFFF),
           "h": (-0x80000000, 0x7FFFFFFF), "u": (0, 0xFFFFFFFF), "x": (-(1 << 63), (1 << 63) - 1),
           "t": (0, (1 << 64) - 1)}
_BASIC = "ybnqiuxthdsog"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "a": "\a", "\\": "\\", "'": "'",
            '"': '"'}


class GVariantError(ValueError):
    pass


def parse(text: str) -> tuple[str, object]:
    """(D-Bus signature, value) of one GVariant text value; GVariantError says what is wrong and where."""
    p = _Parser(text)
    sig, value = p.value(None)
    p.ws()
    if p.i != len(text):
        raise GVariantError("unexpected %r at offset %d" % (text[p.i:p.i + 10], p.i))
    return sig, value


def _type_end(sig: str, i: int) -> int:
    """End of the one complete type starting at sig[i]."""
    if i >= len(sig):
        raise GVariantError("incomplete type %r" % sig)
    c = sig[i]
    if c in _BASIC or c == "v":
        return i + 1
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        i += 1
        while i < len(sig) and sig[i] != close:
            i = _type_end(sig, i)
        if i >= len(sig):
            raise GVariantError("unterminated type %r" % sig)
        return i + 1
    raise GVariantError("bad type %r" % sig)


class _Parser:
    def __init__(self, text: str) -> None:
        self.t = text
        self.i = 0

    def ws(self) -> None:
        while self.i < len(self.t) and self.t[self.i] in " \t\n\r":
            self.i += 1

    def peek(self) -> str:
        self.ws()
        return self.t[self.i] if self.i < len(self.t) else ""

    def expect(self, c: str) -> None:
        if self.peek() != c:
            raise GVariantError("expected %r at offset %d" % (c, self.i))
        self.i += 1

    def word(self) -> str:
        j = self.i
        while j < len(self.t) and (self.t[j].isalnum() or self.t[j] == "_"):
            j += 1
        return self.t[self.i:j]

    def value(self, want: str | None) -> tuple[str, object]:
        c = self.peek()
        if not c:
            raise GVariantError("missing value at offset %d" % self.i)
        if c == "@":
            j = self.i + 1
            end = _type_end(self.t, j)
            sig = self.t[j:end]
            self.i = end
            return self._typed(sig, want)
        w = self.word()
        if w in _KEYWORDS:
            self.i += len(w)
            return self._typed(_KEYWORDS[w], want)
        return self._literal(want)

    def _typed(self, sig: str, want: str | None) -> tuple[str, object]:
        if want is not None and want != sig:
            raise GVariantError("type %s where %s is expected" % (sig, want))
        return self._literal(sig)

    def _literal(self, want: str | None) -> tuple[str, object]:
        c = self.peek()
        if c in "'\"":
            s = self._string()
            sig = want or "s"
            if sig == "ay":
                return sig, s.encode()
            if sig not in "sog":
                raise GVariantError("a string where %s is expected" % sig)
            return sig, s
        if c == "b" and self.t[self.i + 1:self.i + 2] in ("'", '"'):
            self.i += 1
            if want not in (None, "ay"):
                raise GVariantError("a byte string where %s is expected" % want)
            return "ay", self._string().encode()
        if c == "[":
            return self._array(want)
        if c == "(":
            return self._tuple(want)
        if c == "{":
            return self._dict(want)
        if c == "<":
            self.i += 1
            inner = self.value(None)
            self.expect(">")
            if want not in (None, "v"):
                raise GVariantError("a variant where %s is expected" % want)
            return "v", inner
        w = self.word()
        if w in ("true", "false"):
            self.i += len(w)
            if want not in (None, "b"):
                raise GVariantError("a boolean where %s is expected" % want)
            return "b", w == "true"
        return self._number(want)

    def _string(self) -> str:
        quote = self.t[self.i]
        self.i += 1
        out = []
        while True:
            if self.i >= len(self.t):
                raise GVariantError("unterminated string")
            c = self.t[self.i]
            self.i += 1
            if c == quote:
                return "".join(out)
            if c == "\\":
                if self.i >= len(self.t):
                    raise GVariantError("unterminated string")
                e = self.t[self.i]
                self.i += 1
                if e in "uU":
                    n = 4 if e == "u" else 8
                    try:
                        out.append(chr(int(self.t[self.i:self.i + n], 16)))
                    except ValueError:
                        raise GVariantError("bad \\%s escape at offset %d" % (e, self.i)) from None
                    self.i += n
                else:
                    out.append(_ESCAPES.get(e, e))
            else:
                out.append(c)

    def _number(self, want: str | None) -> tuple[str, object]:
        j = self.i
        while j < len(self.t) and (self.t[j].isalnum() or self.t[j] in "+-."):
            j += 1
        lit = self.t[self.i:j]
        if not lit:
            raise GVariantError("unexpected %r at offset %d" % (self.t[self.i:self.i + 10], self.i))
        floaty = lit.lower() in ("inf", "-inf", "+inf", "nan") or (
            not lit.lower().lstrip("+-").startswith("0x") and ("." in lit or "e" in lit.lower()))
        sig = want or ("d" if floaty else "i")
        try:
            if sig == "d":
                value: object = float(lit)
            elif sig in _RANGES and not floaty:
                body = lit.lstrip("+-")
                base = 16 if body.lower().startswith("0x") else 8 if len(body) > 1 and body[0] == "0" else 10
                value = int(lit, base)
                lo, hi = _RANGES[sig]
                if not lo <= value <= hi:
                    raise GVariantError("%s is out of range for type %s" % (lit, sig))
            else:
                raise GVariantError("a number where %s is expected" % sig)
        except ValueError as e:
            if isinstance(e, GVariantError):
                raise
            raise GVariantError("bad number %r" % lit) from None
        self.i = j
        return sig, value

    def _items(self, close: str, item: object) -> None:
        """Comma-separated items up to close (the opening bracket already read)."""
        if self.peek() == close:
            self.i += 1
            return
        while True:
            item()  # type: ignore[operator]
            c = self.peek()
            self.i += 1
            if c == close:
                return
            if c != ",":
                raise GVariantError("expected ',' or %r at offset %d" % (close, self.i - 1))

    def _array(self, want: str | None) -> tuple[str, object]:
        if want is not None and not want.startswith("a"):
            raise GVariantError("an array where %s is expected" % want)
        elem = want[1:] if want else None
        out: list[object] = []

        def item() -> None:
            nonlocal elem
            sig, v = self.value(elem)
            elem = sig
            out.append(v)

        self.i += 1
        self._items("]", item)
        if elem is None:
            raise GVariantError("the type of an empty array is unknown: write it as @as [] (or the type wanted)")
        return "a" + elem, out

    def _tuple(self, want: str | None) -> tuple[str, object]:
        wanted: list[str] | None = None
        if want is not None:
            if not want.startswith("("):
                raise GVariantError("a tuple where %s is expected" % want)
            wanted, k = [], 1
            while want[k] != ")":
                end = _type_end(want, k)
                wanted.append(want[k:end])
                k = end
        sigs: list[str] = []
        out: list[object] = []

        def item() -> None:
            w = None
            if wanted is not None:
                if len(out) >= len(wanted):
                    raise GVariantError("too many items for %s" % want)
                w = wanted[len(out)]
            sig, v = self.value(w)
            sigs.append(sig)
            out.append(v)

        self.i += 1
        self._items(")", item)
        if wanted is not None and len(out) != len(wanted):
            raise GVariantError("too few items for %s" % want)
        return "(%s)" % "".join(sigs), tuple(out)

    def _dict(self, want: str | None) -> tuple[str, object]:
        key_t = val_t = None
        if want is not None:
            if not want.startswith("a{"):
                raise GVariantError("a dictionary where %s is expected" % want)
            k_end = _type_end(want, 2)
            key_t, val_t = want[2:k_end], want[k_end:-1]
        out: dict[object, object] = {}

        def item() -> None:
            nonlocal key_t, val_t
            ks, k = self.value(key_t)
            if ks not in _BASIC:
                raise GVariantError("a dictionary key must be a basic type, not %s" % ks)
            self.expect(":")
            vs, v = self.value(val_t)
            key_t, val_t = ks, vs
            out[k] = v

        self.i += 1
        self._items("}", item)
        if key_t is None or val_t is None:
            raise GVariantError("the type of an empty dictionary is unknown: write it as @a{sv} {}")
        return "a{%s%s}" % (key_t, val_t), out
