"""The command group both command lines use: a mistyped command is answered with the nearest."""

from __future__ import annotations

import difflib
from typing import List, Optional, Tuple

import click


class Commands(click.Group):
    """click.Group, plus "Did you mean 'install'?" for a command name nobody defined (the pyz
    carries click 8.1, which suggests only for options). Subgroups are of this class too."""

    group_class = type

    def resolve_command(self, ctx: click.Context, args: List[str]
                        ) -> Tuple[Optional[str], Optional[click.Command], List[str]]:
        name = args[0]
        if (self.get_command(ctx, name) is None and not ctx.resilient_parsing
                and not name.startswith("-")):
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise click.UsageError(f"No such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)  # type: ignore[no-any-return]
