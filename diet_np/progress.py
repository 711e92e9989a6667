"""A small dependency-free progress bar.

    bar = progress(batches, total=n_batches, desc="epoch 3")
    for x, y in bar:
        ...
        bar.set_postfix(loss=loss, acc=acc)

On a terminal the line is redrawn in place (carriage return) at most
``1 / min_interval`` times a second; on anything else (a log file, a pipe, a
notebook capture) a full line is printed at most every ``log_interval`` seconds.
Either way one final line with the totals ends the bar.  Postfix values should be
host numbers (``float``): formatting a device scalar would synchronise the device.
"""
from __future__ import annotations

import math
import shutil
import sys
import time


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _fmt_value(v) -> str:
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return v
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return str(v)


class Progress:
    """Iterate over ``iterable`` (or call :meth:`update`) while showing progress."""

    def __init__(self, iterable=None, total=None, desc="", stream=None, enabled=True,
                 min_interval=0.1, log_interval=10.0, width=20, clock=time.monotonic,
                 columns=None, unit="it"):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:
                total = None
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
            raise ValueError(f"total must be a non-negative integer or None, got {total!r}")
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(enabled)
        self.n = 0
        self.postfix: dict[str, str] = {}
        self._clock = clock
        self._start = clock()
        # a terminal shows the bar at once; a log gets its first line after log_interval
        self._last_draw = None
        self._last_len = 0
        self._closed = False
        self._width = width
        self._columns = columns            # None: the terminal's width, asked at each draw
        try:
            self._tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self._tty = False
        self._interval = min_interval if self._tty else log_interval
        if not self._tty:
            self._last_draw = self._start

    # -- public -------------------------------------------------------------
    def __iter__(self):
        if self.iterable is None:
            raise TypeError("this progress bar has no iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __len__(self):
        if self.total is None:
            raise TypeError("progress bar of unknown length")
        return self.total

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items and redraw if enough time has passed."""
        self.n += n
        if self.enabled and not self._closed:
            now = self._clock()
            if self._last_draw is None or now - self._last_draw >= self._interval:
                self._draw(now, final=False)

    def set_postfix(self, **values) -> None:
        """Show ``key=value`` pairs (loss, accuracy...) after the counters."""
        self.postfix = {k: _fmt_value(v) for k, v in values.items()}

    def close(self) -> None:
        """Write the final line (once)."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(self._clock(), final=True)

    # -- drawing ------------------------------------------------------------
    def format(self, now: float | None = None, columns: int | None = None) -> str:
        """The status line at time ``now`` (default: the clock), at most ``columns``
        characters long when given: the bar narrows first, then the line is cut."""
        line = self._format(now, self._width)
        if columns is None or len(line) <= columns:
            return line
        narrower = max(self._width - (len(line) - columns), 5)
        return self._format(now, narrower)[:columns]

    def _format(self, now, width) -> str:
        elapsed = max((self._clock() if now is None else now) - self._start, 0.0)
        rate = self.n / elapsed if elapsed > 0 else float("nan")
        parts = [f"{self.desc}:" if self.desc else ""]
        if self.total:
            frac = min(self.n / self.total, 1.0)
            filled = int(frac * width)
            bar = "#" * filled + "." * (width - filled)
            parts.append(f"{100 * frac:3.0f}% [{bar}] {self.n}/{self.total}")
            eta = (self.total - self.n) / rate if rate > 0 else float("nan")
            times = f"{_fmt_time(elapsed)}<{_fmt_time(max(eta, 0.0))}"
        else:
            parts.append(f"{self.n}" + (f"/{self.total}" if self.total == 0 else ""))
            times = _fmt_time(elapsed)
        if not math.isfinite(rate):
            speed = f"? {self.unit}/s"
        elif rate >= 1 or rate == 0:
            speed = f"{rate:.2f} {self.unit}/s"
        else:
            speed = f"{1 / rate:.2f} s/{self.unit}"
        parts.append(f"| {times}, {speed}")
        if self.postfix:
            parts.append("| " + ", ".join(f"{k}={v}" for k, v in self.postfix.items()))
        return " ".join(p for p in parts if p)

    def _draw(self, now: float, final: bool) -> None:
        self._last_draw = now
        if self._tty:
            columns = self._columns or shutil.get_terminal_size().columns
            line = self.format(now, columns - 1)        # the last column would wrap
        else:
            line = self.format(now)
        if self._tty:
            pad = " " * max(self._last_len - len(line), 0)
            self.stream.write("\r" + line + pad + ("\n" if final else ""))
            self._last_len = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def progress(iterable=None, total=None, desc="", stream=None, enabled=True, **kw) -> Progress:
    """Wrap ``iterable`` in a :class:`Progress` bar (``stream`` defaults to
    ``sys.stderr``; ``enabled=False`` prints nothing).  Extra keywords:
    ``min_interval`` (terminal redraw, 0.1 s), ``log_interval`` (non-terminal
    lines, 10 s), ``width`` (of the bar), ``columns`` (of the terminal; default:
    asked of it), ``clock`` and ``unit`` (what is counted, ``"it"``)."""
    return Progress(iterable, total=total, desc=desc, stream=stream, enabled=enabled, **kw)
