"""Kernia's ``kernia.plugins.email_password`` module path."""

from kernia.plugins.email_and_password import EmailAndPasswordPlugin, email_and_password

__all__ = ["EmailAndPasswordPlugin", "email_and_password"]
