"""A receiver that answers every POST with 200 after a delay, for the fairness phase of
bench/run. It logs each arrival as nginx does ('<msec> <idempotency key> <scheduled for>
<uri>'), one thread per connection so that many requests can wait at once.

Usage: slow_receiver.py PORT SECONDS LOG"""
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, delay, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
log = open(path, "a", buffering=1)
lock = threading.Lock()


class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with lock:
            log.write(f"{time.time():.3f} {self.headers.get('Idempotency-Key', '-')} "
                      f"{self.headers.get('X-Scheduler-Scheduled-For', '-')} {self.path}\n")
        time.sleep(delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096


Server(("127.0.0.1", port), Slow).serve_forever()
