"""Saved reports on the dashboard: a saved query's page and dates (``queries``), its card
(``cards``). Below the views (the reports list and the overview use it), over forms and
presenters."""
