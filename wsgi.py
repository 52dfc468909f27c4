"""Production entry point: ``gunicorn wsgi:app`` (settings in ``gunicorn.conf.py``, read from
here)."""

from dashboard import create_app

app = create_app()
