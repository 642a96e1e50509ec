"""Where each key of a TOML document is: a key path -> line number map.

tomllib gives values without positions, so errors about a value could not
say its line. `locate(text)` scans a document that tomllib already accepted
and records the 1-based line of every table header, array-of-tables entry,
key and array element, by path:

    [server]            ("server",)              -> 1
    port = 1            ("server", "port")       -> 2
    [[schedule]]        ("schedule", 0)          -> 3
    from = "06:00"      ("schedule", 0, "from")  -> 4
    a = [1, {b = 2}]    ("a",) ("a", 0) ("a", 1) ("a", 1, "b")

Dotted keys (`a.b = 1`) and inline tables record every prefix. Quoted keys are
named as tomllib names them (`"k\\u0031"` is `k1`). A value that spans lines
(arrays, multi-line strings) is recorded at the line it starts on.
`line_of(lines, path)` falls back to the nearest recorded ancestor, then to
line 1, so every error gets some line. tests/npc/files/test_tomlpos.py holds `locate`
to tomllib on generated documents.
"""

from __future__ import annotations

_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r"}  # and \" \\ as themselves
_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def line_of(lines: dict[tuple, int], path: tuple) -> int:
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return 1


def locate(text: str) -> dict[tuple, int]:
    return _Scanner(text).run()


class _Scanner:
    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.line = 1
        self.out: dict[tuple, int] = {}
        self.aot: dict[tuple, int] = {}  # resolved array-of-tables path -> entries so far

    # -- characters -----------------------------------------------------------

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.i < len(self.s):
                if self.s[self.i] == "\n":
                    self.line += 1
                self.i += 1

    def skip_ws(self, newlines: bool) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            else:
                return

    # -- document ---------------------------------------------------------------

    def run(self) -> dict[tuple, int]:
        prefix: tuple = ()
        while True:
            self.skip_ws(newlines=True)
            if self.i >= len(self.s):
                return self.out
            line = self.line
            if self.peek() == "[" and self.peek(1) == "[":
                self.advance(2)
                names = self.keys_until("]")
                self.advance(2)
                base = self.resolve(names[:-1]) + (names[-1],)
                n = self.aot.get(base, 0)
                self.aot[base] = n + 1
                prefix = base + (n,)
                self.out.setdefault(base, line)
                self.out[prefix] = line
            elif self.peek() == "[":
                self.advance()
                names = self.keys_until("]")
                self.advance()
                prefix = self.resolve(names)
                self.out[prefix] = line
            else:
                self.key_value(prefix)

    def resolve(self, names: list[str]) -> tuple:
        """A header's names as a path, with the current index of every array of tables on the way."""
        path: tuple = ()
        for name in names:
            path += (name,)
            if path in self.aot:
                path += (self.aot[path] - 1,)
        return path

    def keys_until(self, stop: str) -> list[str]:
        """A dotted key (bare or quoted parts), up to `stop` (not consumed)."""
        names = []
        while True:
            self.skip_ws(newlines=False)
            c = self.peek()
            if c in ('"', "'"):
                names.append(self.string())
            else:
                start = self.i
                while self.peek() and self.peek() in _BARE:
                    self.advance()
                names.append(self.s[start : self.i])
            self.skip_ws(newlines=False)
            if self.peek() == ".":
                self.advance()
                continue
            if self.peek() == stop or not self.peek():
                return names
            self.advance()  # not valid TOML; tomllib would have refused it

    def key_value(self, prefix: tuple) -> None:
        line = self.line
        names = self.keys_until("=")
        self.advance()  # '='
        path = prefix
        for name in names:
            path += (name,)
            self.out.setdefault(path, line)
        self.out[path] = line
        self.value(path)

    # -- values -------------------------------------------------------------------

    def value(self, path: tuple) -> None:
        self.skip_ws(newlines=False)
        c = self.peek()
        if c in ('"', "'"):
            self.string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            while self.peek() and self.peek() not in ",]}\n#":
                self.advance()

    def array(self, path: tuple) -> None:
        self.advance()  # '['
        k = 0
        while True:
            self.skip_ws(newlines=True)
            c = self.peek()
            if c == "]" or not c:
                self.advance()
                return
            if c == ",":
                self.advance()
                continue
            self.out[path + (k,)] = self.line
            self.value(path + (k,))
            k += 1

    def inline_table(self, path: tuple) -> None:
        self.advance()  # '{'
        while True:
            self.skip_ws(newlines=True)
            c = self.peek()
            if c == "}" or not c:
                self.advance()
                return
            if c == ",":
                self.advance()
                continue
            self.key_value(path)

    def string(self) -> str:
        q = self.peek()
        if self.peek(1) == q and self.peek(2) == q:  # multi-line
            self.advance(3)
            start = self.i
            while self.i < len(self.s):
                if q == '"' and self.peek() == "\\":
                    self.advance(2)
                    continue
                if self.peek() == q and self.peek(1) == q and self.peek(2) == q:
                    # up to two more quotes may belong to the string
                    while self.peek(3) == q:
                        self.advance()
                    end = self.i
                    self.advance(3)
                    return self.s[start:end]
                self.advance()
            return self.s[start:]
        self.advance()
        out = []
        while self.i < len(self.s):
            c = self.peek()
            if c == q:
                self.advance()
                break
            if q == '"' and c == "\\":
                e = self.peek(1)
                if e and e in "uU":  # \uXXXX, \UXXXXXXXX: the key is the character, as tomllib reads it
                    n = 4 if e == "u" else 8
                    out.append(chr(int(self.s[self.i + 2 : self.i + 2 + n], 16)))
                    self.advance(2 + n)
                    continue
                out.append(_ESCAPES.get(e, e))
                self.advance(2)
                continue
            out.append(c)
            self.advance()
        return "".join(out)
