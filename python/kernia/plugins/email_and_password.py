"""Email and password sign-up and sign-in as a plugin."""

from __future__ import annotations

from dataclasses import dataclass

from kernia.options import EmailPasswordOptions


@dataclass(frozen=True)
class EmailAndPasswordPlugin:
    id = "email-and-password"
    options: EmailPasswordOptions


def email_and_password(
    *,
    disable_sign_up: bool = False,
    require_email_verification: bool = False,
    min_password_length: int = 8,
    max_password_length: int = 128,
    auto_sign_in: bool = True,
) -> EmailAndPasswordPlugin:
    """Turns on ``POST /sign-up/email`` and ``POST /sign-in/email``.

    The same as ``KerniaOptions(email_and_password=EmailPasswordOptions(enabled=True, ...))``.
    """
    return EmailAndPasswordPlugin(
        EmailPasswordOptions(
            enabled=True,
            disable_sign_up=disable_sign_up,
            require_email_verification=require_email_verification,
            min_password_length=min_password_length,
            max_password_length=max_password_length,
            auto_sign_in=auto_sign_in,
        )
    )
