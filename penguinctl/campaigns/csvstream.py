"""Reading a big CSV file fast, with the diagnostics of a line-by-line reader.

:class:`CsvStream` decodes the file (UTF-8, a BOM allowed) a megabyte at a time and hands the
``csv`` module whole lists of lines (``itertools.chain``: no Python call per line), yet:

- a record's raw lines stay available (:meth:`CsvStream.raw`) to locate a bad character at its
  column, while the record lies within the last two blocks read (records up to ~1 MiB);
- bad UTF-8 stops the stream at the record holding it, after every record before it, with
  the byte (as a ``UnicodeDecodeError``); a NUL byte likewise (``csv.Error("line contains
  NUL")``: the ``csv`` module of Python 3.11 accepts NUL, the reader must refuse it);
- ``bytes_read`` follows the file for a progress bar.

Lines are split as a file opened with ``newline=""`` splits them (``\\n``, ``\\r\\n``,
``\\r``), so the ``csv`` module sees exactly what it would see reading the file itself.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from collections.abc import Iterator
from typing import IO

BLOCK = 1 << 20


class CsvStream:
    def __init__(self, raw: IO[bytes], block: int = BLOCK) -> None:
        self._raw = raw
        self._block = block
        self.bytes_read = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._tail = ""
        self._first = True
        # the last two blocks of lines: (number of the first line, its lines)
        self._window: list[tuple[int, list[str]]] = []
        self._lines_out = 0
        self.reader = csv.reader(itertools.chain.from_iterable(self._blocks()), strict=True)

    # -- lines -----------------------------------------------------------------------------
    def _decode(self) -> tuple[str, BaseException | None, bool]:
        """The next decoded text, the error met (the text is what precedes it), end of file."""
        size = max(self._block, len(codecs.BOM_UTF8)) if self._first else self._block
        data = self._raw.read(size)
        self.bytes_read += len(data)
        end = not data
        if self._first:
            self._first = False
            if data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8) :]
        try:
            return self._decoder.decode(data, final=end), None, end
        except UnicodeDecodeError as exc:
            good = exc.object[: exc.start]
            return bytes(good).decode("utf-8", errors="replace"), exc, True

    def _blocks(self) -> Iterator[list[str]]:
        while True:
            text, error, end = self._decode()
            text = self._tail + text
            if end and error is None:
                cut = len(text)
            else:  # whole lines only; on bad UTF-8, not the line holding it
                cut = max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1)) + 1
            self._tail = text[cut:]
            lines = io.StringIO(text[:cut], newline="").readlines()
            if "\x00" in text[:cut]:
                bad = next(i for i, line in enumerate(lines) if "\x00" in line)
                yield self._keep(lines[:bad])
                raise csv.Error("line contains NUL")
            yield self._keep(lines)
            if error is not None:
                raise error
            if end:
                return

    def _keep(self, lines: list[str]) -> list[str]:
        self._window = [*self._window[-1:], (self._lines_out + 1, lines)]
        self._lines_out += len(lines)
        return lines

    def raw(self, first: int, last: int) -> list[str]:
        """Lines ``first``..``last`` (1-based, as read), or [] when no longer held."""
        found: list[str] = []
        for start, lines in self._window:
            lo, hi = max(first, start), min(last, start + len(lines) - 1)
            if lo <= hi:
                found.extend(lines[lo - start : hi - start + 1])
        return found if len(found) == last - first + 1 else []
