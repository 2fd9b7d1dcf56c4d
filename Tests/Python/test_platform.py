"""Another platform's exam page on ExamBell's browser SDK (issue 26), in real headless Chromium:
`examples/platform-page/` served from its own origin (another port) by a plain HTTP server,
talking to a real `exambell serve` started with `--allowed-origin` for it. The page knows
ExamBell only through `/sdk/exambell.js`."""
import contextlib
import datetime
import http.client
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ADMIN_TOKEN, ROOT, SESSION_SECRET, Server, free_port, running_server, screenshot
from test_exam_day import wait

PLATFORM_PAGE = ROOT / "examples" / "platform-page"


@contextlib.contextmanager
def platform_origin():
    """The platform's own web server: `examples/platform-page` on a free loopback port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(PLATFORM_PAGE)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    origin = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=1)) as connection:
                connection.request("GET", "/index.html")
                if connection.getresponse().status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("the platform's page server did not come up")
            time.sleep(0.05)
    try:
        yield origin
    finally:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def platform():
    """(the platform's origin, an ExamBell server that allows it)."""
    with platform_origin() as origin:
        with running_server("--allowed-origin", origin, "--session-close-after", "8") as server:
            yield origin, server


def iso(seconds_from_now):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def body(driver, name):
    return driver.execute_script(f"return document.body.dataset[{name!r}] ?? null")


def open_platform_page(driver, origin, server, token, skew_ms=0):
    """Opens the platform's page for `token`; with `skew_ms`, the device's clock is that far off
    (Date.now shifted by a script that runs before the page's own)."""
    if skew_ms:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": f"""
            (() => {{ const skew = {skew_ms}; const real = Date.now.bind(Date); Date.now = () => real() + skew; }})();
        """})
    driver.get(f"{origin}/index.html#bell={server.url}&token={token}")
    wait(driver, lambda d: body(d, "ready") == "true" or body(d, "error"), message="the platform page never connected")
    assert body(driver, "error") is None, body(driver, "error")
    wait(driver, lambda d: body(d, "connection") == "open", message="the SDK's socket never opened")


def token_of(exam, person):
    return exam["sessions"][person]["token"]


def test_the_platform_page_is_told_locks_and_reports_its_clock(platform, new_browser):
    origin, server = platform
    exam = server.make_exam(candidates=2, proctors=0)
    first, second = exam["candidates"]
    pages = [new_browser(), new_browser()]
    for page, person in zip(pages, (first, second)):
        open_platform_page(page, origin, server, token_of(exam, person))
    screenshot(pages[0], "platform-page-running")

    end = server.ok("POST", f"exams/{exam['examId']}/end", {"reason": "platform test"})
    for page in pages:
        wait(page, lambda d: body(d, "ended") == "true", timeout=5, message="the platform page was not told the end")
        assert all(not box.is_enabled() for box in page.find_elements("css selector", "#questions input"))
    time.sleep(0.5)  # a second telling would show as a second "ended"
    assert [body(page, "endedCount") for page in pages] == ["1", "1"], "ended fires once per end"
    screenshot(pages[0], "platform-page-ended")

    def locked():
        delivery = server.ok("GET", f"exams/{exam['examId']}/delivery")
        return delivery["counts"]["locked"] == 2 and delivery
    delivery = wait(pages[0], lambda d: locked(), message="the locks never reached the delivery")
    assert delivery["counts"]["told"] == 2
    for candidate in delivery["candidates"]:
        assert candidate["clockOffsetMs"] is not None and abs(candidate["clockOffsetMs"]) < 1000, candidate
    assert end["result"] == "completed"


def test_a_time_change_and_an_announcement_reach_the_platform_page(platform, new_browser):
    origin, server = platform
    exam = server.make_exam(candidates=1, proctors=0)
    candidate = exam["candidates"][0]
    page = new_browser()
    open_platform_page(page, origin, server, token_of(exam, candidate))
    server.ok("POST", f"exams/{exam['examId']}/time", {"addMinutes": 15, "reason": "power cut"})
    wait(page, lambda d: body(d, "plannedEnd") == "2099-01-01T00:15:00Z", message="the new time never reached the page")
    notice = server.ok("POST", f"exams/{exam['examId']}/announcements", {"message": "Fifteen more minutes."})["announcementId"]
    selector = f'.notice[data-announcement="{notice}"]'
    wait(page, lambda d: d.find_elements("css selector", selector), message="the announcement never showed")
    page.find_element("css selector", selector).click()

    def seen():
        rows = server.ok("GET", f"exams/{exam['examId']}/roster")["candidates"]
        return rows[0]["announcementsSeen"] == [notice] and rows[0]["hasNewTime"] is True
    wait(page, lambda d: seen(), message="the roster never showed the new time and the announcement as seen")
    screenshot(page, "platform-page-announcement")


@pytest.mark.parametrize("skew_minutes", [5, -5])
def test_a_device_clock_minutes_off_still_locks_within_a_second_of_the_planned_end(platform, new_browser, skew_minutes):
    origin, server = platform
    exam = server.make_exam(candidates=1, proctors=1)
    candidate = exam["candidates"][0]
    page = new_browser()
    open_platform_page(page, origin, server, token_of(exam, candidate), skew_ms=skew_minutes * 60_000)
    # The SDK's estimate of the server's clock: within a few hundred ms, whatever the device says.
    device = page.execute_script("return Date.now()") / 1000
    estimate = page.execute_script("return window.bell.serverNow()") / 1000
    assert abs(device - time.time() - skew_minutes * 60) < 2, "the skew script did not take"
    assert abs(estimate - time.time()) < 0.5, f"serverNow is {estimate - time.time():+.3f} s off"

    planned = iso(6)
    server.ok("POST", f"exams/{exam['examId']}/time", {"scheduledEndDatetime": planned, "candidateIds": [candidate], "reason": "clock test"})
    wait(page, lambda d: body(d, "plannedEnd") == planned)
    wait(page, lambda d: body(d, "ended") == "true", timeout=15, message="the page never locked")
    locked_at = time.time()
    planned_at = datetime.datetime.strptime(planned, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    assert -0.3 < locked_at - planned_at < 1.0, f"locked {locked_at - planned_at:+.2f} s from the planned end"
    reported = int(body(page, "lockedAtServerMs")) / 1000
    assert abs(reported - planned_at) < 1.0
    # The server's own end confirms it: still one "ended", and the lock is recorded.
    wait(page, lambda d: server.ok("GET", f"exams/{exam['examId']}/delivery")["counts"]["locked"] == 1, timeout=10,
         message="the lock was never recorded")
    assert body(page, "endedCount") == "1"
    delivery = server.ok("GET", f"exams/{exam['examId']}/delivery")["candidates"][0]
    assert abs(delivery["clockOffsetMs"] + skew_minutes * 60_000) < 1000, delivery
    # The proctor's roster flags the device whose clock is minutes off.
    proctor = new_browser()
    proctor.get(exam["sessions"][exam["proctors"][0]]["pageUrl"])
    row = f'#roster tr[data-candidate="{candidate}"]'
    wait(proctor, lambda d: d.execute_script(f"const r = document.querySelector('{row}'); return r && r.dataset.clockOffsetMs") not in (None, ""),
         timeout=15, message="the roster never showed the device clock")
    shown = int(proctor.execute_script(f"return document.querySelector('{row}').dataset.clockOffsetMs"))
    assert abs(shown + skew_minutes * 60_000) < 1000
    assert proctor.find_elements("css selector", f"{row} td.clock.bad"), "a device minutes off is flagged"
    screenshot(proctor, f"proctor-device-clock-{'fast' if skew_minutes > 0 else 'slow'}")


def test_a_page_offline_at_its_planned_end_locks_on_time_and_reports_when_back(platform, new_browser):
    origin, server = platform
    exam = server.make_exam(candidates=1, proctors=0)
    candidate = exam["candidates"][0]
    page = new_browser()
    open_platform_page(page, origin, server, token_of(exam, candidate))
    planned = iso(8)
    server.ok("POST", f"exams/{exam['examId']}/time", {"scheduledEndDatetime": planned, "candidateIds": [candidate], "reason": "offline"})
    wait(page, lambda d: body(d, "plannedEnd") == planned)
    conditions = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    page.execute_cdp_cmd("Network.enable", {})
    page.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)
    wait(page, lambda d: body(d, "ended") == "true", timeout=20, message="the offline page never locked at its planned end")
    planned_at = datetime.datetime.strptime(planned, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    assert time.time() - planned_at < 1.0
    assert body(page, "endedLocally") == "true"
    assert server.ok("GET", f"exams/{exam['examId']}/delivery")["counts"]["locked"] == 0
    time.sleep(1)
    page.execute_cdp_cmd("Network.emulateNetworkConditions", {**conditions, "offline": False})
    wait(page, lambda d: server.ok("GET", f"exams/{exam['examId']}/delivery")["counts"]["locked"] == 1, timeout=20,
         message="the lock was never reported once the page was back")
    assert body(page, "endedCount") == "1"


def test_a_late_subscriber_learns_the_connection_state_and_the_end(platform, new_browser):
    """A page busy with its own work (loading its questions) subscribes after the socket opened
    and after the end: it is given both at once, not left showing "connecting"."""
    origin, server = platform
    exam = server.make_exam(candidates=1, proctors=0)
    page = new_browser()
    open_platform_page(page, origin, server, token_of(exam, exam["candidates"][0]))
    late = """
        const done = arguments[arguments.length - 1];
        const seen = [];
        window.bell.on("connection", (e) => seen.push(e.state));
        window.bell.on("ended", (e) => seen.push("ended " + Boolean(e.endDatetime)));
        done(seen);
    """
    assert page.execute_async_script(late) == ["open"]
    server.ok("POST", f"exams/{exam['examId']}/end", {"reason": "late subscriber"})
    wait(page, lambda d: body(d, "ended") == "true", timeout=5)
    assert page.execute_async_script(late) == ["open", "ended true"]


def test_pages_told_once_when_their_node_is_killed_mid_fan_out_and_they_reconnect(new_browser):
    """The node is SIGKILLed right after the first page was told the end (the rest may or may
    not have been); restarted, it tells every reconnecting page the end again. Each page's
    "ended" fires once."""
    import os
    import signal
    import tempfile
    binary = os.environ.get("EXAMBELL_BIN", str(ROOT / ".build" / "debug" / "exambell"))
    with platform_origin() as origin, tempfile.TemporaryDirectory() as root:
        port = free_port()
        command = [binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", f"{root}/data", "--admin-token", ADMIN_TOKEN,
                   "--session-secret", SESSION_SECRET, "--allowed-origin", origin]

        def start():
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while True:
                try:
                    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=1)) as connection:
                        connection.request("GET", "/health")
                        if connection.getresponse().status == 200:
                            return process
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        process.kill()
                        pytest.fail("exambell serve did not come up")
                    time.sleep(0.05)

        process = start()
        try:
            server = Server(f"http://127.0.0.1:{port}")
            exam = server.make_exam(candidates=3, proctors=0)
            pages = [new_browser() for _ in exam["candidates"]]
            for page, person in zip(pages, exam["candidates"]):
                open_platform_page(page, origin, server, token_of(exam, person))
            server.ok("POST", f"exams/{exam['examId']}/end", {"reason": "crash mid fan-out"})
            wait(pages[0], lambda d: body(d, "ended") == "true", timeout=5, message="the first page was not told")
            process.send_signal(signal.SIGKILL)
            process.wait()
            process = start()
            for page in pages:
                wait(page, lambda d: body(d, "ended") == "true", timeout=30, message="a page was never told")
                wait(page, lambda d: body(d, "connection") == "open", timeout=30, message="a page never reconnected")
            # Reconnected, each page was told the end again by the restarted node (a late joiner's
            # telling); the lock reports of the restarted node's connections prove it.
            wait(pages[0], lambda d: server.ok("GET", f"exams/{exam['examId']}/delivery")["counts"]["locked"] == 3, timeout=20,
                 message="the locks never reached the delivery")
            time.sleep(0.5)
            assert [body(page, "endedCount") for page in pages] == ["1", "1", "1"], "ended fires once per end"
        finally:
            process.kill()
            process.wait()


def test_session_closed_reaches_the_platform_page(platform, new_browser):
    origin, server = platform
    exam = server.make_exam(candidates=1, proctors=0)
    page = new_browser()
    open_platform_page(page, origin, server, token_of(exam, exam["candidates"][0]))
    server.ok("POST", f"exams/{exam['examId']}/end", {"reason": "closing"})
    wait(page, lambda d: body(d, "ended") == "true", timeout=5)
    # The sessions close 8 s after the end (`--session-close-after 8`); a page that reconnects
    # then learns that nothing more will come.
    time.sleep(9)
    page.execute_script("window.bell.socket.close()")
    wait(page, lambda d: body(d, "sessionClosed") == "true", timeout=20, message="the page never learned its session closed")


def test_only_the_allowed_origin_gets_the_sdk_and_the_api(platform):
    origin, server = platform
    host, port = server.url.removeprefix("http://").split(":")

    def ask(method, path, origin_header, extra=None):
        with contextlib.closing(http.client.HTTPConnection(host, int(port), timeout=10)) as connection:
            connection.request(method, path, headers={"Origin": origin_header, **(extra or {})})
            response = connection.getresponse()
            response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}

    status, headers = ask("GET", "/sdk/exambell.js", origin)
    assert status == 200 and headers["access-control-allow-origin"] == origin
    assert headers["content-type"].startswith("text/javascript")
    assert headers["etag"].startswith('"1.0.0-')
    status, again = ask("GET", "/sdk/exambell.js", origin, {"If-None-Match": headers["etag"]})
    assert status == 304
    status, types = ask("GET", "/sdk/exambell.d.ts", origin)
    assert status == 200
    preflight = {"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization, content-type"}
    status, headers = ask("OPTIONS", "/api/answers", origin, preflight)
    assert status == 204 and headers["access-control-allow-origin"] == origin
    assert "PUT" in headers["access-control-allow-methods"]
    status, headers = ask("GET", "/api/session", origin)
    assert status == 401 and headers["access-control-allow-origin"] == origin, "errors are readable by the page too"

    elsewhere = "http://127.0.0.1:9"
    status, headers = ask("GET", "/sdk/exambell.js", elsewhere)
    assert "access-control-allow-origin" not in headers, "another origin cannot load the module"
    status, _ = ask("OPTIONS", "/api/answers", elsewhere, preflight)
    assert status == 403
    status, _ = ask("GET", "/api/session", elsewhere)
    assert status == 403


def test_a_bad_allowed_origin_stops_the_start_naming_it():
    binary = Path(__import__("os").environ.get("EXAMBELL_BIN", ROOT / ".build" / "debug" / "exambell"))
    import tempfile
    for bad in ["cbt.example", "ftp://cbt.example", "https://cbt.example/exam"]:
        with tempfile.TemporaryDirectory() as data:
            result = subprocess.run([str(binary), "serve", "--port", "0", "--allowed-origin", bad, "--data-dir", f"{data}/d"],
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode != 0
            assert "--allowed-origin" in result.stderr and bad in result.stderr, result.stderr
            assert not Path(f"{data}/d").exists(), "nothing was made before the options were checked"
