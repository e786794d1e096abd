"""Progress bars that render in a terminal and degrade to a few plain lines in a log.

tqdm redraws its line with carriage returns, which a log file or CI keeps as debris. On a
terminal the bar is tqdm's; elsewhere :func:`progress_bar` prints one line per quarter of the
work (and the last), so a log of a long stage shows that it moves without pages of redraws.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True) -> Any:
    """A tqdm-like object with ``update(n)``, ``set_postfix(**kw)`` and ``close()``."""
    if not enabled:
        return _Lines(total, desc, unit, quiet=True)
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
    return _Lines(total, desc, unit)


class _Lines:
    def __init__(self, total: int, desc: str, unit: str, quiet: bool = False) -> None:
        self.total, self.desc, self.unit, self.quiet = max(int(total), 0), desc, unit, quiet
        self.n, self.postfix, self.started, self._next = 0, "", time.perf_counter(), 0.25

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.quiet or not self.total:
            return
        if self.n / self.total >= self._next or self.n >= self.total:
            while self._next <= self.n / self.total:
                self._next += 0.25
            elapsed = time.perf_counter() - self.started
            print(f"{self.desc}: {self.n}/{self.total} {self.unit} in {elapsed:.1f}s{self.postfix}",
                  file=sys.stderr, flush=True)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = "".join(f", {k}={v}" for k, v in values.items())

    def close(self) -> None:
        pass
