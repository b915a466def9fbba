"""A progress bar on stderr: rich's if installed, else a plain one."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO


class Bar(Protocol):
    """What :func:`bar` returns."""

    def __call__(self, label: str) -> None: ...

    def close(self) -> None: ...


class Plain:
    """``[#####.....] 12/40 label`` redrawn in place on a terminal; on a
    pipe, one line per 10% so logs stay short."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last_decile = -1

    def __call__(self, label: str) -> None:
        self.done += 1
        if self.tty:
            fill = 30 * self.done // self.total
            self.stream.write(f"\r[{'#' * fill}{'.' * (30 - fill)}] "
                              f"{self.done}/{self.total} {label:<40.40}")
        elif 10 * self.done // self.total != self.last_decile:
            self.last_decile = 10 * self.done // self.total
            self.stream.write(f"{self.done}/{self.total} {label}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 80 + "\r")
            self.stream.flush()


class Rich:
    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
        self.bar = Progress(TextColumn("{task.description:<36}"),
                            BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True)
        self.task = self.bar.add_task("", total=total)
        self.bar.start()

    def __call__(self, label: str) -> None:
        self.bar.update(self.task, advance=1, description=label)

    def close(self) -> None:
        self.bar.stop()


def bar(total: int, enabled: bool = True) -> Bar:
    """A callable ``bar(label)`` advancing by one, with ``.close()``."""
    if not enabled:
        return _Silent()
    if sys.stderr.isatty():
        try:
            return Rich(total)
        except ImportError:
            pass
    return Plain(total)


class _Silent:
    def __call__(self, label: str) -> None:
        pass

    def close(self) -> None:
        pass
