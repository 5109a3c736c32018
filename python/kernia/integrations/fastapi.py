"""FastAPI helpers; FastAPI dependencies are Starlette callables."""

from kernia.integrations.starlette import session_dependency

__all__ = ["session_dependency"]
