"""The one error type for bad user input.

Everything a user can get wrong (a scenario file, a profile, a trace, a ``--set`` override) ends
as an :class:`InputError` that names the file, the field path, the bad value and what is allowed.
The CLI prints it as one message and exits with code 2; the Python API lets it propagate.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

_MISSING = object()


class InputError(Exception):
    """Bad user input, with enough context to fix it without reading a traceback."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        value: object = _MISSING,
        allowed: str | Iterable[object] | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.field = field
        self.value = value
        if allowed is not None and not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        self.allowed = allowed
        self.line = line
        super().__init__(self.render())

    @property
    def has_value(self) -> bool:
        return self.value is not _MISSING

    def render(self) -> str:
        where = []
        if self.file:
            where.append(self.file if self.line is None else f"{self.file}:{self.line}")
        if self.field:
            where.append(self.field)
        text = ": ".join([*where, self.message])
        if self.has_value:
            shown = repr(self.value)
            if len(shown) > 120:
                shown = shown[:117] + "..."
            text += f" (got {shown})"
        if self.allowed:
            text += f"; allowed: {self.allowed}"
        return text

    def with_context(
        self, *, file: str | Path | None = None, field_prefix: str | None = None
    ) -> InputError:
        """The same error located in a file or under an enclosing field."""
        field = self.field
        if field_prefix:
            field = f"{field_prefix}.{field}" if field else field_prefix
        return InputError(
            self.message,
            file=self.file or file,
            field=field,
            value=self.value,
            allowed=self.allowed,
            line=self.line,
        )

    @classmethod
    def all_of(cls, problems: list[InputError], file: str | Path | None) -> InputError:
        """One error for every problem found in ``file``: the problem itself when there is
        one, else a numbered list of them (so a scenario's mistakes are fixed in one pass)."""
        # one broken file shared by several fields (a profile two pools use) is one problem
        problems = list({p.render(): p for p in problems}.values())
        if len(problems) == 1:
            return problems[0].with_context(file=file)
        listed = "\n".join(f"  {k}. {p.render()}" for k, p in enumerate(problems, 1))
        return cls(f"{len(problems)} problems:\n{listed}", file=file)
