"""Production entry point: ``gunicorn wsgi:app`` (settings in ``gunicorn.conf.py``, read from
here)."""

from bitcore import funnel, lifecycle, stickiness
from bitcore.cohort.engine import warm_counting
from dashboard import create_app

app = create_app()
# The compiled counting loops (bitcore/compiled.py), before gunicorn's workers fork: the cohort
# table's, and the funnel's, lifecycle's and stickiness' (the overview shows a lifecycle).
for warm in (warm_counting, funnel.warm, lifecycle.warm, stickiness.warm):
    warm()
