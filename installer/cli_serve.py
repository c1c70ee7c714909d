"""`rescue.pyz serve`: serve a prefix's modules to a LAN, or write an nginx config that does."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import click

from installer.options import JSON, PREFIX
from installer.output import emit_json


def client_env(url: str, layout) -> Dict[str, str]:  # type: ignore[no-untyped-def]
    """What a client sets to build through this server, verified as on the prefix's host."""
    from installer import sumdb_prefix

    db = sumdb_prefix.read(layout)
    env = {"GOPROXY": url, "GOSUMDB": db.gosumdb if db is not None else "off"}
    if db is not None and db.nosumdb:
        env["GONOSUMDB"] = db.nosumdb
    return env


@click.command("serve")
@PREFIX
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="ADDR[:PORT]",
              help="IP address and port to serve on: 0.0.0.0:8080 for every IPv4 interface, "
                   "[::]:8080 for every one; port 0 picks a free one.")
@click.option("--quiet", is_flag=True, help="No log line per request.")
@click.option("--nginx-config", "nginx", is_flag=True,
              help="Print an nginx server block serving the same files instead of serving.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="With --nginx-config: write it to FILE.")
@JSON
def serve(prefix: Optional[Path], listen: str, quiet: bool, nginx: bool,
          output: Optional[Path], as_json: bool) -> None:
    """Serve the prefix's modules (P/goproxy) to other hosts, read-only.

    The GOPROXY protocol (<module>/@v/list, .info, .mod, .zip, @latest) and the checksum
    database the bundles carried (/sumdb/<name>/...), over plain HTTP for a trusted LAN:
    clients check every module against go.sum and the signed database as they would online.
    It prints the GOPROXY, GOSUMDB (and GONOSUMDB) clients set. Ctrl-C stops it (exit 130).

    \b
    Examples:
      python3 rescue.pyz serve --prefix /srv/go-emergency --listen 0.0.0.0:8080
      python3 rescue.pyz serve --listen '[::]:8080' --quiet
      python3 rescue.pyz serve --nginx-config --listen 0.0.0.0:80 -o go-modules.conf
    """
    from installer import serve as server_mod
    from installer.prefix import Layout, default_prefix, refuse_links
    from installer.statefile import no_link
    from manifests.errors import Interrupted, NotReadyError

    if output is not None and not nginx:
        raise NotReadyError("reading the command line: -o/--output only goes with "
                            "--nginx-config", operation="reading the command line",
                            subject="--output")
    layout = Layout((prefix or default_prefix()).absolute())
    where = server_mod.parse_listen(listen)
    refuse_links(layout)
    no_link(layout.goproxy, "the module proxy directory")
    if not layout.goproxy.is_dir():
        raise NotReadyError(
            f"serving {layout.goproxy}: no module proxy there (no bundle that carries modules "
            f"was installed into {layout.root}); install one first: python3 rescue.pyz install "
            f"BUNDLE --prefix {layout.root}", operation="serving", subject=str(layout.goproxy))
    from installer import sumdb_prefix

    db = sumdb_prefix.read(layout)
    name = db.name if db is not None else None
    if nginx:
        _nginx(layout, where, name, output, as_json)
        return
    log = None if quiet else server_mod.log_to_stderr()
    httpd = server_mod.start(where, layout.goproxy, name, log)
    host, port = server_mod.address(httpd)
    url = f"http://{where.url_host}:{port}"
    env = client_env(url, layout)
    if as_json:
        bound = f"[{host}]" if ":" in host else host
        emit_json({"url": url, "listen": f"{bound}:{port}",
                   "goproxy": str(layout.goproxy), "env": env}, one_line=True)
    else:
        click.echo(f"serving {layout.goproxy} read-only on {url} (bound to {host} port {port}; "
                   "Ctrl-C stops it)")
        click.echo("clients set:")
        for key, value in env.items():
            click.echo(f"  {key}={value}")
    try:
        _stop_on_sigterm()
        httpd.serve_forever()
    except KeyboardInterrupt:
        raise Interrupted(f"serving {layout.goproxy}: stopped (Ctrl-C or SIGTERM); nothing "
                          "was changed",
                          operation="serving", subject=str(layout.goproxy)) from None
    finally:
        httpd.server_close()


def _stop_on_sigterm() -> None:
    """A service manager stops it with SIGTERM; a shell's `&` job ignores SIGINT: both end
    the way Ctrl-C does (exit 130, the socket closed), not with a traceback or a bare kill."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _nginx(layout, where, name: Optional[str], output: Optional[Path],  # type: ignore[no-untyped-def]
           as_json: bool) -> None:
    from installer import serve_nginx
    from manifests.files import write_atomic

    env = client_env(f"http://{where.url_host}:{where.port}", layout)
    text = serve_nginx.config(layout.goproxy, where, name, env)
    if output is not None:
        write_atomic(output.absolute(), text.encode())
    if as_json:
        emit_json({"nginx_config": text, "output": str(output) if output else None,
                   "env": env})
    elif output is not None:
        click.echo(f"wrote {output}; check it with `nginx -t`, then reload nginx. Clients set:")
        for key, value in env.items():
            click.echo(f"  {key}={value}")
    else:
        click.echo(text, nl=False)
