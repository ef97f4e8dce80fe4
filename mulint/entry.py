"""The `mulint` command's entry: `mulint check` goes through the warm server when the user opted in
(`--daemon`, config `daemon = true`), everything else (and a check the server cannot take) runs the
command line directly, as `mulint.cli.main`.

Deciding costs a config read and no heavy import: `mulint.server.client` loads the standard library only.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["check"] and not {"-h", "--help"} & set(args):
        from mulint.server import client

        try:
            code = client.check(args)
        except KeyboardInterrupt:  # while the server starts: as the direct path says it
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        if code is not None:
            sys.exit(code)
    from mulint.cli import main as direct

    direct(args)
