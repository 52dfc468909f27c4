"""The dashboard's pages: one blueprint per page group, each registered in ``create_app``."""
