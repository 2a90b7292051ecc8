"""A webhook receiver on 127.0.0.1 that misbehaves on purpose (scripts/chaos.py): in
mode `ok` it answers 204, `500` and `429` answer that status, `slow` waits before its
204 (sometimes past the relay's timeout, so the relay retries something that did
arrive), `down` closes its listening socket so connections are refused. Every request
is checked with the Standard Webhooks reference library (`standardwebhooks`), whatever
the mode; the receipts say which webhook-ids were answered 2xx and how often."""
import collections
import http.server
import random
import socket
import threading
import time

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MODES = ("ok", "500", "429", "slow", "down")


class FlakyReceiver:
    def __init__(self, seed, slow_seconds=(0.2, 3.0)):
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.slow_seconds = slow_seconds
        self.mode = "ok"
        self.webhook = None
        self.accepted = collections.Counter()  # webhook-id -> 2xx answers
        self.types = {}  # webhook-id -> event type (from the verified payload)
        self.answers = collections.Counter()  # status answered -> requests
        self.unverified = []
        self.modes_seen = collections.Counter()
        self._server = None
        self._thread = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listen()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def set_secret(self, secret):
        self.webhook = Webhook(secret)

    def _listen(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                receiver._handle(self)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

            def handle_error(self, request, client_address):
                pass  # the relay gave up on a slow answer: writing it fails

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def set_mode(self, mode):
        """Switches behaviour; `down` stops listening, leaving it starts again."""
        with self.lock:
            previous, self.mode = self.mode, mode
            self.modes_seen[mode] += 1
        if mode == "down" and previous != "down":
            self._server.shutdown()
            self._server.server_close()
        elif previous == "down" and mode != "down":
            self._listen()

    def _handle(self, request):
        body = request.rfile.read(int(request.headers.get("content-length", "0")))
        headers = dict(request.headers.items())
        webhook_id = headers.get("webhook-id", "")
        try:
            payload = self.webhook.verify(body, headers)
        except WebhookVerificationError as e:
            with self.lock:
                self.unverified.append(f"{webhook_id}: {e}")
                self.answers[400] += 1
            request.send_response(400)
            request.end_headers()
            return
        with self.lock:
            mode = self.mode
            delay = self.rng.uniform(*self.slow_seconds)
        status = {"500": 500, "429": 429}.get(mode, 204)
        if mode == "slow":
            time.sleep(delay)
        with self.lock:
            self.answers[status] += 1
            if status < 300:
                self.accepted[webhook_id] += 1
                self.types[webhook_id] = payload.get("type")
        request.send_response(status)
        if status == 429:
            request.send_header("Retry-After", "1")
        request.end_headers()

    def snapshot(self):
        with self.lock:
            return dict(self.accepted), dict(self.types), list(self.unverified), dict(self.answers)

    def close(self):
        if self.mode != "down":
            self._server.shutdown()
            self._server.server_close()
