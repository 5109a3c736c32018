"""Kernia's ``kernia.db.schema``: the core tables as :class:`~kernia.types.adapter.ModelDef`
records. The engine creates and migrates these tables itself (Better Auth's schema)."""

from __future__ import annotations

from kernia.types.adapter import FieldDef, ModelDef


def _model(name: str, spec: str) -> ModelDef:
    """``"id name emailVerified:boolean image?"``: each column, its type (``string`` unless
    given), ``?`` when it may be null."""
    fields = []
    for item in spec.split():
        column, _, kind = item.rstrip("?").partition(":")
        fields.append(FieldDef(name=column, type=kind or "string", required=not item.endswith("?")))
    return ModelDef(name, tuple(fields))


CORE_MODELS: tuple[ModelDef, ...] = (
    _model("user", "id name email emailVerified:boolean image? createdAt:date updatedAt:date"),
    _model("session", "id expiresAt:date token createdAt:date updatedAt:date ipAddress? userAgent? userId"),
    _model(
        "account",
        "id accountId providerId userId accessToken? refreshToken? idToken? accessTokenExpiresAt:date? "
        "refreshTokenExpiresAt:date? scope? password? createdAt:date updatedAt:date",
    ),
    _model("verification", "id identifier value expiresAt:date createdAt:date updatedAt:date"),
)

USER_MODEL, SESSION_MODEL, ACCOUNT_MODEL, VERIFICATION_MODEL = CORE_MODELS

__all__ = ["ACCOUNT_MODEL", "CORE_MODELS", "SESSION_MODEL", "USER_MODEL", "VERIFICATION_MODEL"]
