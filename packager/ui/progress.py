"""Progress a person can follow during long work (``build``): permanent lines, live bars, heartbeats.

Three modes:

* ``tty`` (stderr is a terminal): result lines stay; the step under way shows as a tqdm bar (a known total: cases,
  bytes, rounds) or a counter of elapsed seconds (an unknown one: an export), redrawn twice a second;
* ``plain`` (CI logs, pipes): result lines, and for a step that runs longer than ``FIRST_BEAT_S`` a heartbeat line
  ``... <step>: 20 s`` (with ``n/total`` when known) then and every ``HEARTBEAT_S`` seconds while it runs, so that a
  log never goes quiet for longer than that;
* ``quiet`` (``--quiet``): nothing but errors (which are not ours to print).

Every line carries the time since the work started (``[  12.3 s]``). Thread-safe: one ticker thread redraws or
beats for the step under way; steps nest (the innermost is shown).
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import IO, Iterator

HEARTBEAT_S = 8.0  # plain mode: a running step beats when nothing was printed for this long (the promise is 10 s:
# the margin covers C code that holds the GIL for a moment, when the ticker thread cannot print)
FIRST_BEAT_S = 2.0  # plain mode: a step that runs longer than this gets its first "... <step>" line
REFRESH_S = 0.5  # tty mode: bar redraw interval
MODES = ("auto", "tty", "plain", "quiet")


class Step:
    """The handle of a running step: ``advance(n)`` moves its bar; ``total`` may be set late."""

    def __init__(self, owner: "Progress", label: str, total: float | None, unit: str):
        self.owner, self.label, self.total, self.unit = owner, label, total, unit
        self.done = 0.0
        self.start = time.perf_counter()
        self.last_beat = self.start
        self.bar = None

    def advance(self, n: float = 1) -> None:
        with self.owner._lock:
            self.done += n
            if self.bar is not None:
                self.bar.update(n)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def status(self) -> str:
        count = ""
        if self.total:
            if self.unit == "B":
                count = f" {self.done / 1e6:.0f}/{self.total / 1e6:.0f} MB"
            else:
                count = f" {int(self.done)}/{int(self.total)}{(' ' + self.unit) if self.unit else ''}"
        return f"{self.label}:{count} {self.elapsed:.0f} s"


class Progress:
    def __init__(self, mode: str = "auto", stream: IO[str] | None = None):
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, not {mode!r}")
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "tty" if getattr(self.stream, "isatty", lambda: False)() else "plain"
        self.mode = mode
        self.t0 = time.perf_counter()
        self._lock = threading.RLock()
        self._steps: list[Step] = []
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_print = self.t0  # any line: a step's beat is due HEARTBEAT_S after the last thing printed

    # ------------------------------------------------------------------ lines
    def stamp(self) -> str:
        return f"[{time.perf_counter() - self.t0:7.1f} s]"

    def line(self, msg: str) -> None:
        """A permanent line (a stage or graph finished, a warning)."""
        if self.mode == "quiet":
            return
        with self._lock:
            text = f"{self.stamp()} {msg}"
            if self.mode == "tty" and any(s.bar is not None for s in self._steps):
                from tqdm import tqdm

                tqdm.write(text, file=self.stream)
            else:
                print(text, file=self.stream, flush=True)
            self._last_print = time.perf_counter()

    __call__ = line  # a Progress is also the ``log(msg)`` callable older code takes

    # ------------------------------------------------------------------ steps
    @contextlib.contextmanager
    def step(self, label: str, total: float | None = None, unit: str = "") -> Iterator[Step]:
        """A step that may take long: shown live while it runs (bar, counter or heartbeats), removed when done."""
        st = Step(self, label, total, unit)
        if self.mode == "quiet":
            yield st
            return
        with self._lock:
            if self.mode == "tty":
                from tqdm import tqdm

                for other in self._steps:  # one live bar: the innermost step
                    if other.bar is not None:
                        other.bar.close()
                        other.bar = None
                st.bar = tqdm(total=total, desc=label, unit=unit or "it", unit_scale=unit == "B",
                              file=self.stream, leave=False, dynamic_ncols=True, mininterval=REFRESH_S,
                              bar_format=None if total else "{desc}: {elapsed}")
            else:  # plain: the first beat comes after FIRST_BEAT_S, so quick steps print nothing
                st.last_beat = st.start - HEARTBEAT_S + FIRST_BEAT_S
            self._steps.append(st)
            self._ensure_ticker()
        try:
            yield st
        finally:
            with self._lock:
                self._steps.remove(st)
                if st.bar is not None:
                    st.bar.close()
                    st.bar = None

    def _ensure_ticker(self) -> None:
        if self._ticker is None or not self._ticker.is_alive():
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH_S):
            with self._lock:
                if not self._steps:
                    continue
                st = self._steps[-1]
                if st.bar is not None:
                    st.bar.refresh()
                elif self.mode == "plain":
                    now = time.perf_counter()
                    # its own first beat FIRST_BEAT_S after it started, then every HEARTBEAT_S; and whenever the log
                    # was quiet for HEARTBEAT_S (every line counts: a step started late in another's interval waits
                    # no longer than that)
                    if now - st.last_beat >= HEARTBEAT_S or now - self._last_print >= HEARTBEAT_S:
                        st.last_beat = self._last_print = now
                        print(f"{self.stamp()} ... {st.status()}", file=self.stream, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        self._ticker = None


class _NoStep:
    def advance(self, n: float = 1) -> None:
        pass


def step_of(log, label: str, total: float | None = None, unit: str = ""):
    """``log.step(...)`` when ``log`` is a Progress (a live bar / heartbeat); for any other callable (a test's list,
    ``print``) a context whose step does nothing. Code that reports to either kind of log uses this."""
    if isinstance(log, Progress):
        return log.step(label, total=total, unit=unit)
    return contextlib.nullcontext(_NoStep())
