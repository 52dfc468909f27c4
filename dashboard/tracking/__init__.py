"""The tracking endpoint's web half: ``TrackingApp``, the WSGI app that ``create_app`` mounts
at ``/track`` (``app``), and the answers it gives (``intake``). What a beacon may be and cost
is the library's (``bitcore.tracking``)."""

from dashboard.tracking.app import PREFIX, ROUTES, TrackingApp

__all__ = ["PREFIX", "ROUTES", "TrackingApp"]
