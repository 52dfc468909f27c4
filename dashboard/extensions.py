"""Flask extensions, created once and bound to an app in ``create_app`` with ``init_app``."""

from flask_wtf import CSRFProtect

csrf = CSRFProtect()
