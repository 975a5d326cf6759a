"""A minimal server speaking the hackathon42 reveal protocol, for tests of the client."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class FakeRevealServer:
    """POST /reveal/ with form fields; per-user budget of distinct data; scripted failures."""

    def __init__(self, labels, users=None, budget=5, fail_first=0):
        self.labels = list(labels)
        self.users = users or {"team": "secret"}
        self.budget = budget
        self.fail_first = fail_first  # answer this many requests with HTTP 503 first
        self.revealed: dict[str, list[int]] = {}
        self.requests = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                status, body = server.answer({k: v[0] for k, v in form.items()}, self.path)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def answer(self, form: dict, path: str) -> tuple[int, dict]:
        with self.lock:
            self.requests += 1
            if self.requests <= self.fail_first:
                return 503, {"detail": "try again"}
            if path != "/reveal/":
                return 404, {"detail": "not found"}
            if self.users.get(form.get("username")) != form.get("password"):
                return 401, {"detail": "bad credentials"}
            datum = int(form["datum_id"])
            if not 0 <= datum < len(self.labels):
                return 404, {"detail": f"unknown datum {datum}"}
            seen = self.revealed.setdefault(form["username"], [])
            previously = list(seen)
            if datum not in seen:
                if len(seen) >= self.budget:
                    return 403, {"detail": "budget spent"}
                seen.append(datum)
            return 200, {
                "exercise_id": int(form["exercise_id"]),
                "datum_id": datum,
                "label": self.labels[datum],
                "previously revealed": previously,
            }

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
