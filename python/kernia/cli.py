"""The ``kernia`` command."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

from kernia.errors import ConfigurationError
from kernia.options import EmailPasswordOptions, KerniaOptions, RateLimitOptions, SessionOptions


def _write_mail(path: str, label: str, mail: dict[str, object]) -> None:
    """One mail as a JSON line: on stderr after ``kernia: <label>`` for ``-``, else appended to ``path``."""
    line = json.dumps(mail)
    if path == "-":
        print(f"kernia: {label} {line}", file=sys.stderr, flush=True)
    else:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _outbox(path: str):
    """A send_magic_link for development: each link as a JSON line on stderr or in a file."""

    def send(email: str, url: str, token: str, ctx: object) -> None:
        _write_mail(path, "magic link", {"email": email, "url": url, "token": token})

    return send


def _code_sender(path: str):
    """An email-OTP sender for development: ``{"kind": "email-otp", "email", "otp", "type"}`` lines."""

    def send(data: dict[str, object], ctx: object) -> None:
        _write_mail(path, "code", {"kind": "email-otp", **data})

    return send


#: The mails of the account routes, by sender: the ``kind`` each is written with.
_MAIL_KINDS = {
    "send_verification_email": "verify-email",
    "send_reset_password": "reset-password",
    "send_change_email_confirmation": "change-email",
    "send_delete_account_verification": "delete-account",
}


def _mail_sender(path: str, kind: str):
    """An account-route sender for development: ``{"kind", "email", "url", "token"}`` lines."""

    def send(data: dict[str, object], ctx: object) -> None:
        user = data["user"]
        assert isinstance(user, dict)
        mail = {"kind": kind, "email": user["email"], "url": data["url"], "token": data["token"]}
        if "new_email" in data:
            mail["new_email"] = data["new_email"]
        _write_mail(path, "mail", mail)

    return send


def _account_options(args: argparse.Namespace) -> dict[str, object]:
    """The account routes' options from the flags: every mail to ``--mail-outbox``."""
    from kernia.options import (
        ChangeEmailOptions,
        DeleteUserOptions,
        EmailVerificationOptions,
        UserOptions,
    )

    senders = {name: _mail_sender(args.mail_outbox, kind) for name, kind in _MAIL_KINDS.items()}
    if not args.mail_outbox:
        senders = dict.fromkeys(_MAIL_KINDS)
    return {
        "email_and_password": EmailPasswordOptions(
            enabled=not args.no_email_password,
            require_email_verification=args.require_email_verification,
            send_reset_password=senders["send_reset_password"],
        ),
        "email_verification": EmailVerificationOptions(
            send_verification_email=senders["send_verification_email"],
            auto_sign_in_after_verification=args.require_email_verification,
        ),
        "user": UserOptions(
            change_email=ChangeEmailOptions(
                enabled=args.change_email,
                send_change_email_confirmation=senders["send_change_email_confirmation"],
            ),
            delete_user=DeleteUserOptions(
                enabled=args.delete_user,
                send_delete_account_verification=senders["send_delete_account_verification"],
            ),
        ),
    }


def _guest_options(args: argparse.Namespace) -> dict[str, object]:
    options = {
        "expires_in": args.guest_expires_in,
        "max_age": args.guest_max_age,
        "cleanup_interval": args.cleanup_interval,
    }
    return {name: value for name, value in options.items() if value is not None}


def _serve(args: argparse.Namespace) -> int:
    from kernia.auth import init
    from kernia.plugins.anonymous import anonymous
    from kernia.plugins.email_otp import email_otp
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
    magic_outbox = args.magic_link_outbox or args.mail_outbox
    options = KerniaOptions(
        database=args.database,
        secret=secret,
        base_url=base_url,
        base_path=args.base_path,
        trusted_origins=args.trusted_origin,
        cors_origins=args.cors_origin,
        secondary_storage=args.secondary_storage or os.environ.get("KERNIA_SECONDARY_STORAGE") or None,
        rate_limit=RateLimitOptions(enabled=not args.no_rate_limit),
        session=SessionOptions(
            cookie_cache_enabled=args.cookie_cache is not None,
            cookie_cache_max_age=args.cookie_cache or 300,
        ),
        metrics=args.metrics is not None,
        metrics_path=args.metrics or "/metrics",
        plugins=[
            *([anonymous(**_guest_options(args))] if args.anonymous else []),
            *([username()] if args.username else []),
            *([passkey()] if args.passkey else []),
            *([magic_link(_outbox(magic_outbox))] if magic_outbox else []),
            *([email_otp(_code_sender(args.mail_outbox))] if args.email_otp else []),
        ],
        **_account_options(args),  # type: ignore[arg-type]
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


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> int:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h`` or ``30d``."""
    unit = text[-1:].lower()
    number, scale = (text[:-1], _UNITS[unit]) if unit in _UNITS else (text, 1)
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 3600, 12h or 30d)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a duration must be positive: {text!r}")
    return int(value + 0.999)


def _cleanup(args: argparse.Namespace) -> int:
    import asyncio

    from kernia.auth import init
    from kernia.plugins.anonymous import anonymous

    options = KerniaOptions(
        database=args.database,
        # Nothing is signed: cleanup only reads and deletes rows.
        secret=args.secret or os.environ.get("KERNIA_SECRET") or secrets.token_hex(32),
        rate_limit=RateLimitOptions(enabled=False),
        plugins=[anonymous(max_age=args.max_age)],
    )
    try:
        auth = init(options)
    except ConfigurationError as e:
        print(f"kernia: {e}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(
            auth.api.cleanup_anonymous_users(dry_run=args.dry_run, batch_size=args.batch_size)
        )
    finally:
        auth.close()
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"kernia: {report['stale']} stale guests (inactive for {args.max_age} s); {verb} "
        f"{report['deleted']}, kept {report['kept']}",
        file=sys.stderr,
    )
    print(json.dumps(report))
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
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        help="an origin whose pages call the routes cross-origin with cookies (CORS; repeat)",
    )
    serve.add_argument("--no-email-password", action="store_true", help="turn the email/password routes off")
    serve.add_argument(
        "--anonymous", action="store_true", help="turn guest sessions on (POST /sign-in/anonymous)"
    )
    serve.add_argument(
        "--guest-expires-in",
        type=_duration,
        metavar="DURATION",
        help="lifetime of guest sessions (default: that of every session, 7 days); with --anonymous",
    )
    serve.add_argument(
        "--guest-max-age",
        type=_duration,
        metavar="DURATION",
        help="inactivity after which a guest is stale, for --cleanup-interval; with --anonymous",
    )
    serve.add_argument(
        "--cleanup-interval",
        type=_duration,
        metavar="DURATION",
        help="delete stale guests in the server process this often (e.g. 1h); needs --guest-max-age",
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
    serve.add_argument(
        "--mail-outbox",
        metavar="PATH",
        help="send every mail (verification, password reset, change of email, account deletion, "
        "and magic links, which it turns on) as a JSON line appended to PATH ('-' prints them); "
        "for development",
    )
    serve.add_argument(
        "--require-email-verification",
        action="store_true",
        help="password users must verify their email before signing in (the link signs them in)",
    )
    serve.add_argument("--change-email", action="store_true", help="turn POST /change-email on")
    serve.add_argument(
        "--email-otp",
        action="store_true",
        help="sign-in, email verification and password reset by mailed codes (to --mail-outbox)",
    )
    serve.add_argument(
        "--delete-user",
        action="store_true",
        help="turn POST /delete-user on (with --mail-outbox, deletion waits for the mailed link)",
    )
    serve.add_argument(
        "--metrics",
        nargs="?",
        const="/metrics",
        metavar="PATH",
        help="serve Prometheus metrics at PATH (default /metrics)",
    )
    serve.add_argument(
        "--secondary-storage",
        metavar="URL",
        help="Redis (redis://host:6379/0) for session checks and rate-limit counters shared by "
        "every process (default: $KERNIA_SECONDARY_STORAGE)",
    )
    serve.add_argument(
        "--cookie-cache",
        nargs="?",
        const=300,
        type=_duration,
        metavar="DURATION",
        help="Better Auth's cookie cache: a signed session_data cookie answers get-session for "
        "DURATION (default 5m) without the database; a session revoked elsewhere lasts that long there",
    )
    serve.add_argument("--no-rate-limit", action="store_true", help="turn rate limiting off")
    serve.add_argument("--asgi", action="store_true", help="serve the ASGI app under uvicorn instead")
    serve.add_argument("--log-level", default="warning", help="uvicorn's log level, with --asgi")
    cleanup = commands.add_parser(
        "cleanup-anonymous",
        help="delete guests inactive for longer than --max-age, with their sessions and accounts",
    )
    cleanup.add_argument(
        "--database",
        default=os.environ.get("KERNIA_DATABASE_URL", "sqlite:///kernia.db"),
        help="database URL (default: $KERNIA_DATABASE_URL or sqlite:///kernia.db)",
    )
    cleanup.add_argument(
        "--max-age",
        type=_duration,
        required=True,
        help="inactivity after which a guest goes: seconds, or with a unit (15m, 12h, 30d)",
    )
    cleanup.add_argument("--batch-size", type=int, default=1000, help="guests per transaction")
    cleanup.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    cleanup.add_argument("--secret", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "serve":
        guest_flags = ("guest_expires_in", "guest_max_age", "cleanup_interval")
        given = [f"--{name.replace('_', '-')}" for name in guest_flags if getattr(args, name) is not None]
        if given and not args.anonymous:
            parser.error(f"{', '.join(given)} needs --anonymous")
        if args.cleanup_interval is not None and args.guest_max_age is None:
            parser.error("--cleanup-interval needs --guest-max-age, the inactivity after which a guest goes")
        if args.require_email_verification and not args.mail_outbox:
            parser.error("--require-email-verification needs --mail-outbox: the links must go somewhere")
        if args.email_otp and not args.mail_outbox:
            parser.error("--email-otp needs --mail-outbox: the codes must go somewhere")
        return _serve(args)
    if args.command == "cleanup-anonymous":
        if args.batch_size <= 0:
            parser.error("--batch-size must be positive")
        return _cleanup(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
