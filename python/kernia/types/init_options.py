"""Kernia's ``kernia.types.init_options``: the option classes, from :mod:`kernia.options`."""

from kernia.options import *  # noqa: F403
from kernia.options import __all__ as __all__
