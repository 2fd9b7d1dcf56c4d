"""docs/integration.md, run: every snippet of the platform developer's walkthrough runs here
against a real `exambell serve`, a page on another origin in headless Chromium, and a
backend's webhook receiver on loopback."""
import contextlib
import http.server
import json
import os
import re
import select
import subprocess
import threading
import time
from pathlib import Path

from conftest import ADMIN_TOKEN, ROOT, free_port, running_server, screenshot
from test_exam_day import wait
from test_platform import body, platform_origin

DOC = ROOT / "docs" / "integration.md"


def snippets():
    """The page's fenced code blocks, in order: [(language, code)]."""
    return re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), flags=re.S)


class Backend:
    """The platform's backend: records each webhook's raw body and signature header."""

    def __init__(self):
        self.heard = []
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                backend.heard.append((self.headers.get("ExamBell-Signature"), raw))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/exambell"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def concatenated_json(text):
    """curl prints each answer with no newline between: the JSON values, in order."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values


def sh(code, env):
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_snippet_of_the_walkthrough_runs(new_browser):
    blocks = snippets()
    languages = [language for language, _ in blocks]
    assert languages == ["sh", "sh", "js", "sh", "python", "sh"], languages
    binary = os.environ.get("EXAMBELL_BIN", str(ROOT / ".build" / "debug" / "exambell"))

    with platform_origin() as origin, contextlib.ExitStack() as stack:
        # 1. The server, as the snippet starts it (its origin replaced by the test page's).
        serve = blocks[0][1].strip()
        assert serve.startswith("swift run exambell serve ")
        arguments = serve.removeprefix("swift run exambell serve ").replace("https://cbt.example", origin).split()
        server = stack.enter_context(running_server(*arguments))
        env = {"BELL": server.url, "TOKEN": ADMIN_TOKEN, "PATH": f"{Path(binary).parent}:{os.environ['PATH']}"}

        # 2. The exam and its session, made with curl.
        out = sh(blocks[1][1], env)
        answers = concatenated_json(out)
        assert len(answers) == 4 and all("error" not in answer for answer in answers), out
        token = answers[-1]["sessions"][0]["token"]
        assert server.ok("GET", "exams/chem-101")["status"] == "in_progress"

        # 4. The backend registers its endpoints (before the end, to hear it): its own
        # receiver, and `exambell webhook listen`.
        backend = Backend()
        stack.callback(backend.close)
        registered = json.loads(sh(blocks[3][1], {**env, "HOOK_URL": backend.url}))
        secret = registered["secret"]
        assert secret.startswith("whsec_")
        listen_port = free_port()
        listened = json.loads(sh(blocks[3][1], {**env, "HOOK_URL": f"http://127.0.0.1:{listen_port}/"}))
        assert listened["webhookId"] != registered["webhookId"] and listened["secret"] != secret
        listener = subprocess.Popen(["bash", "-c", "exec " + blocks[5][1].strip()],
                                    env={**os.environ, **env, "SECRET": listened["secret"], "LISTEN_PORT": str(listen_port)},
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        stack.callback(lambda: (listener.kill(), listener.wait()))

        # 3. The page's snippet, as a module on the platform's origin, with the page's own
        # functions stubbed.
        page = new_browser()
        page.get(f"{origin}/index.html")
        module = blocks[2][1].replace("https://exam.example/sdk/exambell.js", f"{server.url}/sdk/exambell.js")
        page.execute_script("""
            window.calls = [];
            for (const name of ["lockEveryControl", "showPlannedEnd", "show", "showState", "showClock"]) {
                window[name] = (...args) => window.calls.push([name, ...args]);
            }
            window.token = arguments[0];
            const script = document.createElement("script");
            script.type = "module";
            script.textContent = arguments[1];
            document.head.append(script);
        """, token, module)
        wait(page, lambda d: ["showState", "open"] in d.execute_script("return window.calls"), message="the snippet's socket never opened")
        server.ok("POST", "exams/chem-101/end", {"reason": "walkthrough"})
        wait(page, lambda d: ["lockEveryControl"] in d.execute_script("return window.calls"), timeout=5, message="the snippet never locked")
        wait(page, lambda d: server.ok("GET", "exams/chem-101/delivery")["counts"]["locked"] == 1, message="reportLocked never arrived")

        # 4. The backend's verification snippet, on what it received.
        scope = {}
        exec(blocks[4][1], scope)
        verify = scope["verify"]
        deadline = time.monotonic() + 20
        while not any(b'"exam.ended"' in raw for _, raw in backend.heard) and time.monotonic() < deadline:
            time.sleep(0.05)
        header, raw = next((h, r) for h, r in backend.heard if b'"exam.ended"' in r)
        assert verify(secret, header, raw)
        assert not verify(secret + "x", header, raw), "a wrong secret fails"
        assert not verify(secret, header, raw.replace(b"walkthrough", b"walkthroughX")), "a changed body fails"
        event = json.loads(raw)
        assert event["data"] == {"examId": "chem-101", "endDatetime": event["data"]["endDatetime"], "reason": "walkthrough", "actor": "admin"}

        # `exambell webhook listen` printed the same event, one JSON line.
        ready, _, _ = select.select([listener.stdout], [], [], 20)
        assert ready, ("exambell webhook listen printed nothing within 20 s", server.ok("GET", f"webhooks/{listened['webhookId']}/deliveries"))
        printed = json.loads(listener.stdout.readline())
        assert printed["type"] == "exam.ended" and printed["eventId"] == event["eventId"]


def test_the_console_registers_a_webhook_shows_its_deliveries_and_sends_one_again(new_browser):
    with running_server() as server:
        backend = Backend()
        try:
            admin = new_browser(lang="en")
            admin.get(f"{server.url}/admin")
            wait(admin, lambda d: d.find_element("css selector", "#token").is_displayed())
            admin.find_element("css selector", "#token").send_keys(ADMIN_TOKEN)
            admin.find_element("css selector", "#login-form button").click()
            wait(admin, lambda d: d.find_element("css selector", "#webhooks").is_displayed())
            admin.find_element("css selector", "#new-hook-url").send_keys(backend.url)
            admin.find_element("css selector", "#hook-form button").click()
            wait(admin, lambda d: "whsec_" in d.find_element("css selector", "#new-hook").text, message="the secret was not shown")
            secret = re.search(r"whsec_[A-Za-z0-9_-]+", admin.find_element("css selector", "#new-hook").text).group(0)
            hooks = server.ok("GET", "webhooks")["webhooks"]
            assert len(hooks) == 1 and hooks[0]["url"] == backend.url and "secret" not in hooks[0]

            exam = server.make_exam(candidates=1, proctors=0)
            server.ok("POST", f"exams/{exam['examId']}/end", {"reason": "console"})
            wait(admin, lambda d: len(backend.heard) >= 1, timeout=20, message="the endpoint never heard the end")
            scope = {}
            exec(snippets()[4][1], scope)
            assert scope["verify"](secret, *backend.heard[0])
            row = f'#hook-rows tr[data-webhook="{hooks[0]["webhookId"]}"] button'
            admin.find_element("css selector", row).click()  # "Deliveries"
            wait(admin, lambda d: d.find_elements("css selector", '#delivery-rows tr[data-delivered="true"]'), timeout=15,
                 message="the delivery never showed as delivered")
            screenshot(admin, "admin-webhooks")
            admin.find_element("css selector", '#delivery-rows tr[data-delivered="true"] button').click()  # "Send again"
            wait(admin, lambda d: len([1 for _, raw in backend.heard if b'"exam.ended"' in raw]) >= 2, timeout=20,
                 message="the delivery was not sent again")
            ids = {json.loads(raw)["eventId"] for _, raw in backend.heard if b'"exam.ended"' in raw}
            assert len(ids) == 1, "sent again with the same eventId"
        finally:
            backend.close()
