"""A webhook receiver that verifies every request with `standardwebhooks` (PyPI), an
implementation of the Standard Webhooks spec independent of Bulwark's.

usage: webhook_verifier.py PORT SECRET_FILE LOG_FILE
Answers 204 when the signature verifies with the secret in SECRET_FILE (read per request, so a
test can write it after the endpoint is created), 400 otherwise; appends one JSON line per
request to LOG_FILE. Prints `ready` once listening.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PORT, SECRET_FILE, LOG_FILE = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with open(SECRET_FILE) as f:
            secret = f.read().strip()
        record = {"path": self.path, "id": self.headers.get("webhook-id")}
        try:
            data = Webhook(secret).verify(body, dict(self.headers.items()))
            record.update(ok=True, type=data.get("type"))
            status = 204
        except WebhookVerificationError as e:
            record.update(ok=False, error=str(e))
            status = 400
        with open(LOG_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
