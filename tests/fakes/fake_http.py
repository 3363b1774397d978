"""What every fake under tests/fakes/ does to serve: announce its port once it listens (atomically,
in --port-file, so a test never reads half a number) and stop cleanly on SIGTERM or SIGINT."""

import argparse
import os
import signal
import threading
from http.server import ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    """One thread per connection, none of them keeping the process alive."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def arg_parser(doc):
    """The options every fake takes (--host, --port, --port-file), described by its docstring."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the port here once listening")
    return parser


def serve(server, port_file, banner, on_stop=None):
    """Serves `server` until SIGTERM/SIGINT; `banner` is printed with "host:port" appended."""

    def stop(*_):
        if on_stop is not None:
            on_stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    if port_file:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, port_file)
    print("%s listening on %s:%d" % (banner, host, port), flush=True)
    server.serve_forever()


class DispatchMixin:
    """For a BaseHTTPRequestHandler: sends every verb a fake serves to self.handle_any(VERB)."""

    def do_GET(self):
        self.handle_any("GET")

    def do_HEAD(self):
        self.handle_any("HEAD")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")
