"""Fixtures of the browser tests: a real `exambell serve` process and headless Chromium.

The server runs on a free loopback port with its own data directory; exams are made through
the same JSON API operators use. Screenshots of each page state go to `$EXAMBELL_SCREENSHOTS`
(scripts/test: a folder under the system's temporary directory, never the checkout) for
people to look at.
"""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("EXAMBELL_SCREENSHOTS") or Path(tempfile.gettempdir()) / "exambell-screenshots")
ADMIN_TOKEN = "browser-test-admin-token"
SESSION_SECRET = "browser-test-session-secret-0123456789abcdef"
GRACE_SECONDS = 3


def required(what):
    """A missing service fails the run in CI and skips the test elsewhere."""
    message = f"{what} is not installed (scripts/test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url, data_dir=None, process=None, admin_url=None):
        self.url = url
        self.data_dir = data_dir
        self.process = process
        # The admin lane (`--admin-port`), when the server has one.
        self.admin_url = admin_url

    def api(self, method, path, body=None, token=ADMIN_TOKEN):
        """Calls the JSON API; returns (status, body)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/api/{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def ok(self, method, path, body=None, token=ADMIN_TOKEN):
        status, answer = self.api(method, path, body, token)
        assert 200 <= status < 300, f"{method} {path} answered {status}: {answer}"
        return answer

    def make_exam(self, candidates=2, proctors=1, choice=4, short=1, start=True):
        """A fresh exam with its people and page URLs (by person id)."""
        suffix = uuid.uuid4().hex[:8]
        exam_id = f"e-{suffix}"
        self.ok("POST", "exams", {"examId": exam_id, "title": "브라우저 시험 (Browser exam)", "choiceItems": choice,
                                  "shortItems": short, "scheduledEndDatetime": "2099-01-01T00:00:00Z"})
        names = ["김민준", "이서연", "박도윤", "최지우"]
        candidate_ids = [f"c{i}-{suffix}" for i in range(1, candidates + 1)]
        proctor_ids = [f"p{i}-{suffix}" for i in range(1, proctors + 1)]
        self.ok("POST", f"exams/{exam_id}/candidates",
                {"candidates": [{"candidateId": c, "name": names[i % len(names)]} for i, c in enumerate(candidate_ids)]})
        if proctor_ids:
            self.ok("POST", f"exams/{exam_id}/proctors",
                    {"proctors": [{"proctorId": p, "name": "감독관"} for p in proctor_ids]})
        if start:
            self.ok("POST", f"exams/{exam_id}/start")
        pages = {}
        for role, ids in (("candidate", candidate_ids), ("proctor", proctor_ids)):
            if ids:
                for session in self.ok("POST", f"exams/{exam_id}/sessions", {"role": role, "ids": ids})["sessions"]:
                    pages[session["id"]] = session
        return {"examId": exam_id, "candidates": candidate_ids, "proctors": proctor_ids, "sessions": pages}


@contextlib.contextmanager
def running_server(*extra, admin_lane=False, open_files=None):
    """A real `exambell serve` on a free loopback port with its own data directory (the log
    beside it); with `admin_lane`, a second port for operators (`--admin-port`); with
    `open_files`, that open-file limit (soft and hard)."""
    binary = Path(os.environ.get("EXAMBELL_BIN", ROOT / ".build" / "debug" / "exambell"))
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `swift build` first (scripts/test does)")
    port = free_port()
    admin_port = free_port() if admin_lane else None
    root = tempfile.mkdtemp(prefix="exambell-browser-")
    data_dir = str(Path(root) / "data")
    log = open(Path(root) / "server.log", "w")
    limit = None
    if open_files:
        import resource

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    process = subprocess.Popen(
        [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir,
         "--admin-token", ADMIN_TOKEN, "--session-secret", SESSION_SECRET, "--answer-grace", str(GRACE_SECONDS),
         *(["--admin-port", str(admin_port)] if admin_port else []), *extra],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=limit,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("exambell serve did not come up: " + (Path(root) / "server.log").read_text()[-2000:])
                time.sleep(0.1)
        yield Server(url, data_dir=data_dir, process=process,
                     admin_url=f"http://127.0.0.1:{admin_port}" if admin_port else None)
    finally:
        process.kill()
        process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    with running_server() as running:
        yield running


def chrome_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    return browser, driver


@pytest.fixture
def new_browser():
    """Makes headless Chromium windows (a laptop by default); all are closed after the test."""
    browser_path, driver_path = chrome_paths()
    if not browser_path or not driver_path:
        required("chromium / chromium-driver")
    drivers = []

    def make(width=1280, height=900, lang="ko"):
        options = webdriver.ChromeOptions()
        options.binary_location = browser_path
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         f"--window-size={width},{height}", f"--lang={lang}"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        driver.set_page_load_timeout(20)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        try:
            driver.quit()
        except Exception:  # a test closed it already (a browser that went away)
            pass


def screenshot(driver, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
