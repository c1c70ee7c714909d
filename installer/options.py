"""Options most installer commands share, declared once so their words never drift apart."""

from __future__ import annotations

from pathlib import Path

import click

PREFIX = click.option("--prefix", type=click.Path(file_okay=False, path_type=Path),
                      default=None, help="Install root (default: the one `install` uses).")
LOCK_TIMEOUT = click.option("--lock-timeout", type=float, default=300.0, show_default=True,
                            metavar="SECONDS",
                            help="How long to wait for another rescue command on the prefix.")
TRUST = click.option("--trust", type=str, default=None, metavar="FILE",
                     help="OpenSSH allowed_signers file (default: the one built into "
                          "rescue.pyz).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
