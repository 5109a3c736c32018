"""Plugins that add sign-in methods and behaviour to :func:`kernia.auth.init`."""

from kernia.plugins.anonymous import AnonymousPlugin, anonymous
from kernia.plugins.email_and_password import EmailAndPasswordPlugin, email_and_password

__all__ = ["AnonymousPlugin", "EmailAndPasswordPlugin", "anonymous", "email_and_password"]
