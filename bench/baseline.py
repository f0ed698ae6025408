"""The baseline: a bare Flask app that answers every path and method with a small JSON object.

Served by `bench/run.py` under the same gunicorn configuration as bioweb, so the ratio
target / baseline isolates what bioweb itself costs per request.
"""

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
@app.route("/<path:path>", methods=["GET", "POST"])
def answer(path: str):
    return jsonify(status="ok", path=path)
