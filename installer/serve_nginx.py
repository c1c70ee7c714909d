"""An nginx `server {}` block that serves P/goproxy read-only, as `serve` does (but @latest)."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Dict, List, Optional

from installer.serve import Listen
from installer.serve_routes import JSON, TEXT, TILE, ZIP
from manifests.errors import NotReadyError
from manifests.limits import DEFAULT_LIMITS
from manifests.text import shown

# A database name is a host[/path]; anything else could not sit in a location bare.
_NAME = re.compile(r"\A[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*\Z")


def _location(match: str, content_type: str) -> str:
    # An empty `types` makes default_type the type of every file here, whatever its name
    # ends with (a version `v1.0.0-x.zip` has a lookup named like a zip).
    return (f"    location {match} {{\n        types {{ }}\n"
            f'        default_type "{content_type}";\n        try_files $uri =404;\n    }}\n')


def config(root: Path, listen: Listen, sumdb_name: Optional[str],
           client_env: Dict[str, str]) -> str:
    """The server block; include it in nginx.conf's http {} (Debian: /etc/nginx/conf.d/)."""
    text = str(root)
    if "$" in text or '"' in text or not text.isprintable():
        raise NotReadyError(f"writing the nginx configuration for {shown(text, 4096)}: the path "
                            "holds a $ (nginx reads a variable there), a double quote or a "
                            "control character; pass --prefix as a path without them (a link "
                            "to the prefix will do), or use `serve --listen`",
                            operation="writing the nginx configuration",
                            subject=text)
    if sumdb_name is not None and not _NAME.match(sumdb_name):
        raise NotReadyError(f"writing the nginx configuration: the checksum database name "
                            f"{shown(sumdb_name)} is not a host[/path]; use `serve --listen`",
                            operation="writing the nginx configuration", subject=sumdb_name)
    host = f"[{listen.host}]" if listen.family == socket.AF_INET6 else listen.host
    lines: List[str] = [
        "# nginx serving the Go modules of a rescue prefix, read-only: the GOPROXY protocol",
        "# and the checksum database's endpoints from the files `rescue install` put there.",
        "# Written by `python3 rescue.pyz serve --nginx-config`; include it in the http {}",
        "# block of nginx.conf (Debian: /etc/nginx/conf.d/go-modules.conf), then",
        "# `nginx -t && systemctl reload nginx`. Clients set:",
        *(f"#   {k}={v}" for k, v in client_env.items()),
        "#",
        "# <module>/@latest is not served (404): it names the newest version of @v/list, which",
        "# a static server cannot compute. go then reads @v/list itself and picks the version",
        "# (cmd/go modfetch proxy.go: Latest falls back on 404 or 410); it asks for @latest",
        "# only for `go get M`, `go get M@latest`, `go list -m M@latest` and the like of a",
        "# module whose list holds no release or pre-release, i.e. only pseudo-versions.",
        "# `python3 rescue.pyz serve --listen ADDR` serves @latest too.",
        "server {",
        f"    listen {host}:{listen.port};",
        "    server_name _;",
        f'    root "{text}";',
        "    autoindex off;  # never a directory listing",
        "    # A link in P/goproxy (planted, or left by damage): 403, never followed.",
        "    disable_symlinks on from=$document_root;",
        "    server_tokens off;",
        f"    large_client_header_buffers 4 {DEFAULT_LIMITS.serve_request_line_bytes // 1024}k;"
        "  # 414 for a longer request line",
        "    if ($request_method !~ ^(GET|HEAD)$) { return 405; }  # read-only",
        '    if ($uri ~ "/\\.") { return 404; }  # dotfiles: no module path part starts with .',
        "",
        _location('~ "/@v/list$"', TEXT),
        _location('~ "/@v/[^/.][^/]*\\.info$"', JSON),
        _location('~ "/@v/[^/.][^/]*\\.mod$"', TEXT),
        _location('~ "/@v/[^/.][^/]*\\.zip$"', ZIP),
    ]
    if sumdb_name is not None:
        base = f"/sumdb/{sumdb_name}/"
        lines += ["    # The checksum database go asks through this proxy "
                  f"(GOSUMDB {sumdb_name}).",
                  _location(f"= {base}supported", TEXT),
                  _location(f"^~ {base}lookup/", TEXT),
                  _location(f"^~ {base}tile/", TILE)]
    lines += ["    location / { return 404; }  # anything else: @latest, directories, other files",
              "}", ""]
    return "\n".join(lines)
