"""Conformance cases; importing this package registers all of them."""

from . import lifecycle  # noqa: F401
from . import hooks  # noqa: F401
from . import process  # noqa: F401
from . import filesystem  # noqa: F401
from . import linux  # noqa: F401
