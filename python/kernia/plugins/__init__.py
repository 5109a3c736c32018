"""Plugins that add sign-in methods and behaviour to :func:`kernia.auth.init`."""

from kernia.plugins.anonymous import AnonymousPlugin, anonymous
from kernia.plugins.email_and_password import EmailAndPasswordPlugin, email_and_password
from kernia.plugins.email_otp import EmailOtpPlugin, email_otp
from kernia.plugins.magic_link import MagicLinkPlugin, magic_link
from kernia.plugins.passkey import PasskeyPlugin, passkey
from kernia.plugins.username import UsernamePlugin, username

__all__ = [
    "AnonymousPlugin",
    "EmailAndPasswordPlugin",
    "EmailOtpPlugin",
    "MagicLinkPlugin",
    "PasskeyPlugin",
    "UsernamePlugin",
    "anonymous",
    "email_and_password",
    "email_otp",
    "magic_link",
    "passkey",
    "username",
]
