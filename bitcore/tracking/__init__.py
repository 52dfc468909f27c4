"""Beacons: the tracking endpoint's rules, without the web.

What a public ``/track`` request may be and cost, as plain functions of plain values; the
dashboard (``dashboard.tracking``) reads the HTTP request and the settings and answers.

* ``schema``: untrusted payloads to checked ``Beacon`` s (``parse_payload``, ``parse_pixel``);
* ``ratelimit``: fixed-window counters in Redis, per client (the login form uses them too);
* ``budget``: what a write key may cost Redis per request and window (``Limits``);
* ``write``: ``accept`` a request: check, count and write its beacons in one round trip.
"""
