"""HTTP serving: the flask app (app.py) and the gunicorn server that runs it (server.py)."""
