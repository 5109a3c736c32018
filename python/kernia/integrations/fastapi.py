"""FastAPI helpers; FastAPI dependencies are Starlette callables."""

from kernia.integrations.starlette import GuestNotAllowed, metrics_endpoint, session_dependency

__all__ = ["GuestNotAllowed", "metrics_endpoint", "session_dependency"]
