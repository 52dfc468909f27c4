"""Production entry point: ``gunicorn wsgi:app`` (settings in ``gunicorn.conf.py``, read from
here)."""

from bitcore.cohort.engine import warm_counting
from dashboard import create_app

app = create_app()
warm_counting()  # the compiled count, before gunicorn's workers fork (bitcore/cohort/kernel.py)
