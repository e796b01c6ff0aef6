"""The error types minibuild raises on purpose.

Anything else that escapes to the CLI is a bug in minibuild (exit 3, with a traceback).
Messages read right without colour: literals go in backticks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """Where a piece of input came from: a file and line, a target label, an attribute."""

    file: str | None = None
    line: int | None = None
    label: str | None = None
    attribute: str | None = None
    macro: str | None = None  # the macro table the input comes from: "`[[program_images]]` table `tools`"

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.label:
            parts.append(f"target `{self.label}`" + (f" (made by {self.macro})" if self.macro else ""))
        elif self.macro:
            parts.append(self.macro)
        if self.attribute:
            parts.append(f"attribute `{self.attribute}`")
        return ", ".join(parts)


class MinibuildError(Exception):
    """A failure minibuild understands. `exit_code` tells the CLI what to return."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        origin: Origin | None = None,
        hint: str | None = None,
        causes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.origin = origin
        self.hint = hint
        self.causes = causes

    def __str__(self) -> str:
        lines = [self.message]
        if self.origin:
            lines.append(f"  --> {self.origin}")
        lines += [f"  caused by: {c}" for c in self.causes]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class InputError(MinibuildError):
    """Bad input or usage: workspace files, labels, attributes, command-line arguments (exit 2)."""

    exit_code = 2


class ElfError(InputError):
    """An ELF file or closure that cannot be used: missing, corrupt, wrong machine, unresolvable (exit 2)."""


class BuildError(MinibuildError):
    """A build step failed for a reason outside minibuild: a genrule command, a full disk (exit 1)."""

    exit_code = 1


class EngineError(MinibuildError):
    """The Docker engine or a registry refused or failed (exit 1)."""

    exit_code = 1
