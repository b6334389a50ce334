"""The web GUI (Jinja2 pages over the API): filled by the GUI work of issue 14."""
