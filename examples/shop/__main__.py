"""``python -m examples.shop``: builds the page's script if needed and serves the shop.

python -m examples.shop                                  # SQLite file ./shop.db, http://localhost:8000
python -m examples.shop --database postgresql://postgres@127.0.0.1/test
python -m examples.shop --native                         # auth routes on the native server (port + 1)
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from .app import create_app
from .build import ensure_built


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.shop", description=__doc__.split("\n")[0])
    parser.add_argument("--database", default=os.environ.get("KERNIA_DATABASE_URL", "sqlite:///shop.db"))
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--native",
        action="store_true",
        help="serve the auth routes on the native server, on the next port, instead of in the app",
    )
    parser.add_argument("--auth-port", type=int, help="the native server's port (default: --port + 1)")
    parser.add_argument("--skip-build", action="store_true", help="use static/app.js as it is")
    args = parser.parse_args(argv)
    if not args.skip_build:
        ensure_built()
    # Passkeys need a host name (browsers refuse IP addresses as the relying party), and
    # http://localhost is a secure context for them; the servers listen on loopback.
    public_url = f"http://localhost:{args.port}"
    auth_port = (args.auth_port or args.port + 1) if args.native else None
    app = create_app(args.database, public_url=public_url, native_auth_port=auth_port)
    where = f"the native server on http://localhost:{auth_port}" if auth_port else "the app, at /api/auth"
    print(f"shop: open {public_url} (auth routes: {where}; database: {args.database})", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
