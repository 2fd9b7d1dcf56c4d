#!/usr/bin/env python3
"""Webhook figures: events per second to one receiver, and the delay from an end's commit to
its `exam.ended` arriving. Starts `exambell serve` (embedded) and a receiver on loopback.

    python3 scripts/bench-webhooks.py [--binary .build/release/exambell] [--events 1000] [--ends 20]
"""
import argparse
import http.server
import json
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

TOKEN = "bench-webhooks-admin-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build/debug/exambell")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--ends", type=int, default=20)
    args = parser.parse_args()

    arrivals = []
    down = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            if down.is_set():
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            arrivals.append((time.monotonic(), json.loads(raw)))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = free_port()
    data = tempfile.mkdtemp(prefix="exambell-bench-webhooks-")
    server = subprocess.Popen([args.binary, "serve", "--port", str(port), "--data-dir", data, "--admin-token", TOKEN],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def api(method, path, body=None, token=TOKEN):
        request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None)
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        api("POST", "/api/webhooks", {"url": f"http://127.0.0.1:{receiver.server_address[1]}/", "events": ["candidate.ended", "exam.ended"]})

        # 1. Throughput: N candidates hand in one by one; events per second at the receiver.
        api("POST", "/api/exams", {"examId": "bw", "title": "Bench"})
        ids = [f"bw-c{i}" for i in range(args.events)]
        for start in range(0, len(ids), 500):
            api("POST", "/api/exams/bw/candidates", {"candidates": [{"candidateId": i, "name": i} for i in ids[start:start + 500]]})
        api("POST", "/api/exams/bw/start")
        tokens = []
        for start in range(0, len(ids), 500):
            tokens += [s["token"] for s in api("POST", "/api/exams/bw/sessions", {"role": "candidate", "ids": ids[start:start + 500]})["sessions"]]
        began = time.monotonic()
        for token in tokens:
            api("POST", "/api/hand-in", token=token)
        handed = time.monotonic()
        deadline = time.monotonic() + 300
        while len(arrivals) < args.events and time.monotonic() < deadline:
            time.sleep(0.01)
        done = arrivals[-1][0] if arrivals else time.monotonic()
        got = len({a[1]["eventId"] for a in arrivals})
        print(f"candidate.ended: {got}/{args.events} events; hand-ins took {handed - began:.2f} s "
              f"({args.events / (handed - began):.0f}/s); last event arrived {done - handed:.3f} s after the last hand-in; "
              f"{got / (done - began):.0f} events/s end to end")

        # 2. A backlog: the receiver answers 503 while another N hand in, then is back; its
        # events per second from the first delivered to the last (one exam: in order, one at a time).
        api("POST", "/api/exams", {"examId": "bd", "title": "Backlog"})
        ids = [f"bd-c{i}" for i in range(args.events)]
        for start in range(0, len(ids), 500):
            api("POST", "/api/exams/bd/candidates", {"candidates": [{"candidateId": i, "name": i} for i in ids[start:start + 500]]})
        api("POST", "/api/exams/bd/start")
        tokens = []
        for start in range(0, len(ids), 500):
            tokens += [s["token"] for s in api("POST", "/api/exams/bd/sessions", {"role": "candidate", "ids": ids[start:start + 500]})["sessions"]]
        down.set()
        for token in tokens:
            api("POST", "/api/hand-in", token=token)
        before = len(arrivals)
        down.clear()
        deadline = time.monotonic() + 300
        while len(arrivals) - before < args.events and time.monotonic() < deadline:
            time.sleep(0.01)
        drained = arrivals[before:]
        span = drained[-1][0] - drained[0][0]
        print(f"backlog of {len(drained)} events (one exam, in order) drained at {len(drained) / span:.0f} events/s")

        # 3. Delay: an end's answer (its commit) to its exam.ended arriving.
        delays = []
        for n in range(args.ends):
            exam = f"be{n}"
            api("POST", "/api/exams", {"examId": exam, "title": "Bench"})
            api("POST", f"/api/exams/{exam}/candidates", {"candidates": [{"candidateId": f"{exam}-c1", "name": "c"}]})
            api("POST", f"/api/exams/{exam}/start")
            before = len(arrivals)
            api("POST", f"/api/exams/{exam}/end", {"reason": "bench"})
            answered = time.monotonic()
            deadline = answered + 30
            while time.monotonic() < deadline and not any(a[1]["type"] == "exam.ended" and a[1]["data"]["examId"] == exam for a in arrivals[before:]):
                time.sleep(0.001)
            arrived = next(a[0] for a in arrivals[before:] if a[1]["type"] == "exam.ended" and a[1]["data"]["examId"] == exam)
            delays.append((arrived - answered) * 1000)
            time.sleep(0.3)  # the dispatcher idles between ends, as on an exam day
        delays.sort()
        print(f"exam.ended after the end's answer: median {statistics.median(delays):.0f} ms, "
              f"p90 {delays[int(len(delays) * 0.9) - 1]:.0f} ms, max {delays[-1]:.0f} ms over {len(delays)} ends")
    finally:
        server.kill()
        server.wait()
        receiver.shutdown()


if __name__ == "__main__":
    main()
