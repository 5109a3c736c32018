"""The ``kernia`` command."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

from kernia.errors import ConfigurationError
from kernia.options import EmailPasswordOptions, KerniaOptions, RateLimitOptions


def _outbox(path: str):
    """A send_magic_link for development: each link as a JSON line on stderr or in a file."""

    def send(email: str, url: str, token: str, ctx: object) -> None:
        line = json.dumps({"email": email, "url": url, "token": token})
        if path == "-":
            print(f"kernia: magic link {line}", file=sys.stderr, flush=True)
        else:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    return send


def _serve(args: argparse.Namespace) -> int:
    from kernia.auth import init
    from kernia.plugins.anonymous import anonymous
    from kernia.plugins.magic_link import magic_link
    from kernia.plugins.passkey import passkey
    from kernia.plugins.username import username

    secret = args.secret or os.environ.get("KERNIA_SECRET")
    if not secret:
        secret = secrets.token_hex(32)
        print(
            "kernia: no --secret or KERNIA_SECRET given; using a random one, so sessions end when "
            "the server stops",
            file=sys.stderr,
        )
    base_url = args.base_url or os.environ.get("KERNIA_BASE_URL") or f"http://{args.host}:{args.port}"
    options = KerniaOptions(
        database=args.database,
        secret=secret,
        base_url=base_url,
        base_path=args.base_path,
        trusted_origins=args.trusted_origin,
        email_and_password=EmailPasswordOptions(enabled=not args.no_email_password),
        rate_limit=RateLimitOptions(enabled=not args.no_rate_limit),
        plugins=[
            *([anonymous()] if args.anonymous else []),
            *([username()] if args.username else []),
            *([passkey()] if args.passkey else []),
            *([magic_link(_outbox(args.magic_link_outbox))] if args.magic_link_outbox else []),
        ],
    )
    try:
        auth = init(options)
    except ConfigurationError as e:
        print(f"kernia: {e}", file=sys.stderr)
        return 2
    transport = "ASGI under uvicorn" if args.asgi else "the native server"
    print(f"kernia: serving {base_url}{auth.base_path} on {args.database} ({transport})", file=sys.stderr)
    if args.asgi:
        import uvicorn

        try:
            uvicorn.run(auth.router.mount(), host=args.host, port=args.port, log_level=args.log_level)
        finally:
            auth.close()
    else:
        auth.serve(host=args.host, port=args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kernia", description="Guest-session authentication server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the auth routes over HTTP")
    serve.add_argument(
        "--database",
        default=os.environ.get("KERNIA_DATABASE_URL", "sqlite:///kernia.db"),
        help="database URL (default: $KERNIA_DATABASE_URL or sqlite:///kernia.db)",
    )
    serve.add_argument("--secret", help="cookie-signing secret (default: $KERNIA_SECRET)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--base-url", help="public URL of the server (default: $KERNIA_BASE_URL)")
    serve.add_argument("--base-path", default="/api/auth")
    serve.add_argument(
        "--trusted-origin", action="append", default=[], help="an origin allowed to call (repeat)"
    )
    serve.add_argument("--no-email-password", action="store_true", help="turn the email/password routes off")
    serve.add_argument(
        "--anonymous", action="store_true", help="turn guest sessions on (POST /sign-in/anonymous)"
    )
    serve.add_argument(
        "--username", action="store_true", help="turn usernames on (POST /sign-in/username, ...)"
    )
    serve.add_argument(
        "--passkey",
        action="store_true",
        help="turn passkeys on (GET /passkey/generate-register-options, ...)",
    )
    serve.add_argument(
        "--magic-link-outbox",
        metavar="PATH",
        help="turn magic links on and, instead of mailing them, append each to PATH as a JSON "
        "line ('-' prints them); for development",
    )
    serve.add_argument("--no-rate-limit", action="store_true", help="turn rate limiting off")
    serve.add_argument("--asgi", action="store_true", help="serve the ASGI app under uvicorn instead")
    serve.add_argument("--log-level", default="warning", help="uvicorn's log level, with --asgi")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
