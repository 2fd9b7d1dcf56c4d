"""Exam day in real headless Chromium against a real `exambell serve` (issue 5)."""
import re
import time
import urllib.request

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ADMIN_TOKEN, GRACE_SECONDS, running_server, screenshot


def wait(driver, condition, timeout=10, message=""):
    # Live pages redraw rows; an element found a moment ago may be gone, so look again.
    return WebDriverWait(
        driver, timeout, poll_frequency=0.02, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    ).until(lambda d: condition(d), message)


def css(driver, selector):
    return driver.find_element(By.CSS_SELECTOR, selector)


def read(driver, selector, attribute=None):
    """An element's attribute (or its text) read in one step inside the page, so a live redraw
    between finding the element and reading it cannot leave a stale reference; None when nothing
    matches."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]);"
        "if (!e) return null;"
        "return arguments[1] === null ? e.innerText : e.getAttribute(arguments[1]);", selector, attribute)


def roster_row(candidate):
    return f'#roster tr[data-candidate="{candidate}"]'


def open_page(driver, session):
    driver.get(session["pageUrl"])
    wait(driver, lambda d: css(d, "#connection").get_attribute("data-state") == "open", message="socket never opened")


def click(driver, selector):
    """Clicks an element of a live page, looking it up again if it was redrawn meanwhile."""
    def attempt(d):
        css(d, selector).click()
        return True
    wait(driver, attempt, message=f"could not click {selector}")


def choose(driver, item, choice):
    css(driver, f'input[name="q{item}"][value="{choice}"]').click()


def saved_answers(server, exam, candidate_id):
    token = exam["sessions"][candidate_id]["token"]
    return server.ok("GET", "answers", token=token)["answers"]


def test_candidate_page_locks_within_two_seconds_and_keeps_answers(server, new_browser):
    exam = server.make_exam(candidates=1, choice=4, short=1)
    candidate = exam["candidates"][0]
    driver = new_browser()
    open_page(driver, exam["sessions"][candidate])
    assert "브라우저 시험" in css(driver, "#title").text
    assert candidate in css(driver, "#who").text
    assert len(driver.find_elements(By.CSS_SELECTOR, "fieldset.item")) == 5
    assert css(driver, "#clock").text != "--:--:--"
    # The page opened its socket with a 30-second ticket, not its session token in the URL.
    wait(driver, lambda d: re.search(r'exambell_socket_admissions_total\{credential="ticket"\} [1-9]',
                                     urllib.request.urlopen(f"{server.url}/metrics").read().decode()),
         message="no socket was admitted with a ticket")

    choose(driver, 1, 3)
    wait(driver, lambda d: css(d, "#save-state").get_attribute("data-state") == "saved", message="answer 1 never saved")
    assert saved_answers(server, exam, candidate) == {"1": "3"}
    screenshot(driver, "candidate-answering")

    # Typed just before the end and not yet saved (the save is debounced): the final save keeps it.
    choose(driver, 2, 4)
    css(driver, 'input[name="q5"]').send_keys("서울")
    started = time.monotonic()
    result = server.ok("POST", f"exams/{exam['examId']}/end", {"reason": "시험 시간 종료"})
    assert result["result"] == "completed"
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ended") == "true", timeout=2,
         message="the candidate page did not lock within 2 s of the end")
    locked_after = time.monotonic() - started
    notice = css(driver, "#end-notice")
    assert notice.is_displayed()
    assert "시험이 종료되었습니다." in notice.text
    assert css(driver, "#end-message").get_attribute("aria-live") == "assertive"
    inputs = driver.find_elements(By.CSS_SELECTOR, "#answers input")
    assert inputs and all(not i.is_enabled() for i in inputs)
    screenshot(driver, "candidate-ended")
    print(f"candidate page locked {locked_after * 1000:.0f} ms after the end request was sent")

    wait(driver, lambda d: saved_answers(server, exam, candidate) == {"1": "3", "2": "4", "5": "서울"},
         message="the answers typed before the end were not saved")
    # Once the grace window passed, the page shows its signed receipt's fingerprint and offers the file.
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-receipt"), timeout=GRACE_SECONDS + 15,
         message="the candidate page never showed its receipt")
    issued = server.ok("GET", "receipt", token=exam["sessions"][candidate]["token"])
    assert css(driver, "#receipt-fingerprint").text == issued["fingerprint"]
    assert issued["receipt"]["answeredCount"] == 3
    assert css(driver, "#receipt-download").get_attribute("download") == f"receipt-{exam['examId']}-{candidate}.json"
    screenshot(driver, "candidate-receipt")

    # Reopened after the end: the notice at once, the saved answers read-only.
    driver.refresh()
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ended") == "true")
    assert css(driver, 'input[name="q1"][value="3"]').is_selected()
    assert css(driver, 'input[name="q2"][value="4"]').is_selected()
    assert css(driver, 'input[name="q5"]').get_attribute("value") == "서울"
    assert all(not i.is_enabled() for i in driver.find_elements(By.CSS_SELECTOR, "#answers input"))
    css(driver, "#review").click()
    screenshot(driver, "candidate-reopened-after-end")


def test_save_after_the_grace_window_is_refused_and_audited(server, new_browser):
    exam = server.make_exam(candidates=1)
    candidate = exam["candidates"][0]
    token = exam["sessions"][candidate]["token"]
    driver = new_browser()
    open_page(driver, exam["sessions"][candidate])
    server.ok("POST", f"exams/{exam['examId']}/end", {"reason": "grace test"})
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ended") == "true")

    put = """
        const done = arguments[arguments.length - 1];
        fetch('/api/answers', {method: 'PUT', headers: {'Authorization': 'Bearer ' + arguments[0],
            'Content-Type': 'application/json'}, body: JSON.stringify({answers: {'1': '2'}})})
          .then(async (r) => done({status: r.status, body: await r.json()}));
    """
    within = driver.execute_async_script(put, token)
    assert within["status"] == 200 and within["body"]["late"] is True
    time.sleep(GRACE_SECONDS + 1.5)
    after = driver.execute_async_script(put, token)
    assert after["status"] == 409
    assert after["body"]["error"]["code"] == "exam_ended"

    actions = [entry["action"] for entry in server.ok("GET", f"exams/{exam['examId']}/audit")["entries"]]
    assert "answers_saved_late" in actions
    assert "answers_refused" in actions


def test_proctor_roster_shows_connections_answers_and_acks(server, new_browser):
    exam = server.make_exam(candidates=3, proctors=1)
    first, second, absent = exam["candidates"]
    proctor = new_browser()
    open_page(proctor, exam["sessions"][exam["proctors"][0]])
    candidates = [new_browser(), new_browser()]
    for driver, candidate in zip(candidates, (first, second)):
        open_page(driver, exam["sessions"][candidate])
    choose(candidates[0], 1, 2)

    def row(d, candidate, attribute=None):  # no attribute: the row's text
        return read(d, roster_row(candidate), attribute) or ""

    wait(proctor, lambda d: row(d, first, "data-connected") == "true"
         and row(d, second, "data-connected") == "true", message="roster never showed both connected")
    wait(proctor, lambda d: row(d, absent, "data-connected") == "false")
    wait(proctor, lambda d: "1 / 5" in row(d, first), message="answered count never showed")
    wait(proctor, lambda d: css(d, "#count-connected").text == "2" and css(d, "#count-total").text == "3")
    screenshot(proctor, "proctor-roster-live")

    server.ok("POST", f"exams/{exam['examId']}/end", {"reason": "proctor test"})
    wait(proctor, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ended") == "true", timeout=2)
    assert "시험이 종료되었습니다." in css(proctor, "#end-banner").text
    wait(proctor, lambda d: row(d, first, "data-acknowledged") == "true"
         and row(d, second, "data-acknowledged") == "true", message="acks never showed")
    wait(proctor, lambda d: css(d, "#count-acknowledged").text == "2 / 3")
    wait(proctor, lambda d: [li.get_attribute("data-candidate") for li in d.find_elements(By.CSS_SELECTOR, "#pending li")] == [absent],
         message="the not-yet-acknowledged list is not just the absent candidate")
    screenshot(proctor, "proctor-after-end")


def test_admin_console_ends_an_exam_with_confirmation_and_reason(server, new_browser):
    exam = server.make_exam(candidates=2, proctors=0)
    candidate = new_browser()
    open_page(candidate, exam["sessions"][exam["candidates"][0]])

    admin = new_browser()
    admin.get(f"{server.url}/admin")
    css(admin, "#token").send_keys("wrong-token")
    css(admin, "#login-form button").click()
    wait(admin, lambda d: "토큰이 올바르지 않습니다" in css(d, "#error").text)
    # A named operator logs in with name and password; a reload keeps the session (cookie).
    operator = f"op-{exam['examId']}"
    server.ok("POST", "operators", {"name": operator, "password": "operator password 1", "role": "operator"})
    css(admin, "#operator-name").send_keys(operator)
    css(admin, "#operator-password").send_keys("not the password")
    css(admin, "#password-form button").click()
    wait(admin, lambda d: "비밀번호가 올바르지 않습니다" in css(d, "#error").text)
    css(admin, "#operator-password").send_keys("operator password 1")
    css(admin, "#password-form button").click()
    wait(admin, lambda d: d.find_elements(By.CSS_SELECTOR, f'#exams tr[data-exam="{exam["examId"]}"]'))
    admin.refresh()
    wait(admin, lambda d: css(d, "#console").is_displayed() and operator in css(d, "#whoami").text,
         message="a reload asked for the login again")
    cookies = {c["name"]: c for c in admin.get_cookies()}
    assert cookies["exambell_session"]["httpOnly"] and cookies["exambell_session"]["sameSite"] == "Strict"
    assert admin.execute_script("return document.cookie").find("exambell_session") == -1, "page scripts cannot read it"
    assert not css(admin, "#operators").is_displayed(), "an operator does not manage operators"
    wait(admin, lambda d: d.find_elements(By.CSS_SELECTOR, f'#exams tr[data-exam="{exam["examId"]}"]'))
    screenshot(admin, "admin-exam-list")

    click(admin, f'#exams tr[data-exam="{exam["examId"]}"] button[data-action="open"]')
    wait(admin, lambda d: css(d, "#detail").get_attribute("data-exam") == exam["examId"])
    click(admin, '#detail-actions button[data-action="end"]')
    dialog = css(admin, "#end-dialog")
    wait(admin, lambda d: dialog.get_attribute("open") is not None)
    css(admin, "#end-confirm").click()  # no reason: the dialog stays, nothing ends
    time.sleep(0.3)
    assert dialog.get_attribute("open") is not None
    assert server.ok("GET", f"exams/{exam['examId']}")["status"] == "in_progress"
    css(admin, "#end-reason").send_keys("감독관 요청으로 조기 종료")
    screenshot(admin, "admin-end-dialog")
    css(admin, "#end-confirm").click()

    wait(admin, lambda d: css(d, "#detail").get_attribute("data-status") == "completed")
    wait(candidate, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ended") == "true", timeout=2)
    wait(admin, lambda d: "1 / 2" in css(d, "#delivery-progress").text, message="delivery progress never showed the ack")
    wait(admin, lambda d: [li.get_attribute("data-candidate") for li in d.find_elements(By.CSS_SELECTOR, "#delivery-pending li")]
         == [exam["candidates"][1]])
    wait(admin, lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, '#audit tr[data-action="end"]')] != [])
    end_rows = wait(admin, lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, '#audit tr[data-action="end"]')])
    assert len(end_rows) == 1 and "감독관 요청으로 조기 종료" in end_rows[0] and operator in end_rows[0]
    plan = server.ok("GET", f"exams/{exam['examId']}")
    assert plan["endReason"] == "감독관 요청으로 조기 종료"
    assert plan["endedBy"] == operator
    screenshot(admin, "admin-after-end")


def test_admin_console_creates_registers_and_starts(server, new_browser, tmp_path):
    admin = new_browser()
    admin.get(f"{server.url}/admin")
    css(admin, "#token").send_keys(ADMIN_TOKEN)
    css(admin, "#login-form button").click()
    wait(admin, lambda d: css(d, "#console").is_displayed())
    exam_id = f"ui-{int(time.time() * 1000)}"
    css(admin, "#new-id").send_keys(exam_id)
    css(admin, "#new-title").send_keys("콘솔에서 만든 시험")
    choice = css(admin, "#new-choice")
    choice.clear()
    choice.send_keys("10")
    css(admin, "#create-form button").click()
    wait(admin, lambda d: css(d, "#detail").get_attribute("data-exam") == exam_id)
    upload = tmp_path / "candidates.csv"  # a CSV file with a header line, as spreadsheets export it
    upload.write_text(f"수험번호,이름\r\n{exam_id}-c1,홍길동\r\n{exam_id}-c2,\"성춘향\"\r\n", encoding="utf-8")
    css(admin, "#candidates-file").send_keys(str(upload))
    wait(admin, lambda d: "홍길동" in css(d, "#candidates-text").get_attribute("value"))
    css(admin, "#candidates-form button[type=submit]").click()
    wait(admin, lambda d: "2명 등록" in css(d, "#info").text)
    css(admin, "#proctors-text").send_keys("not a line")
    css(admin, "#proctors-form button[type=submit]").click()
    wait(admin, lambda d: "1번째 줄" in css(d, "#error").text)
    css(admin, "#proctors-text").clear()
    css(admin, "#proctors-text").send_keys(f"{exam_id}-p1,감독관")
    css(admin, "#proctors-form button[type=submit]").click()
    wait(admin, lambda d: "1명 등록" in css(d, "#info").text)
    click(admin, '#detail-actions button[data-action="start"]')
    wait(admin, lambda d: css(d, "#detail").get_attribute("data-status") == "in_progress")
    css(admin, "#make-links").click()
    wait(admin, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#links tr")) == 3)
    plan = server.ok("GET", f"exams/{exam_id}")
    assert plan["candidates"]["total"] == 2 and plan["choiceItems"] == 10
    names = {c["candidateId"]: c["name"] for c in server.ok("GET", f"exams/{exam_id}/roster")["candidates"]}
    assert names == {f"{exam_id}-c1": "홍길동", f"{exam_id}-c2": "성춘향"}
    screenshot(admin, "admin-created-exam")


def test_english_switch(server, new_browser):
    exam = server.make_exam(candidates=1, proctors=0)
    driver = new_browser(width=820, height=1180)  # a tablet
    open_page(driver, exam["sessions"][exam["candidates"][0]])
    assert css(driver, "#lang").text == "English"
    assert "답안지" in driver.find_element(By.TAG_NAME, "h2").text
    css(driver, "#lang").click()
    wait(driver, lambda d: "Answer sheet" in d.find_element(By.TAG_NAME, "h2").text)
    assert css(driver, "#lang").text == "한국어"
    assert css(driver, "fieldset.item legend").text == "Question 1"
    assert driver.execute_script("return document.documentElement.lang") == "en"
    driver.refresh()  # the choice is remembered
    wait(driver, lambda d: css(d, "#connection").get_attribute("data-state") == "open")
    assert "Answer sheet" in driver.find_element(By.TAG_NAME, "h2").text
    server.ok("POST", f"exams/{exam['examId']}/end", {"reason": "english"})
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ended") == "true", timeout=2)
    assert "The exam has ended." in css(driver, "#end-notice").text
    screenshot(driver, "candidate-ended-english-tablet")
    css(driver, "#review").click()  # the notice shrinks to a bar; the header is reachable again
    css(driver, "#lang").click()
    wait(driver, lambda d: "시험이 종료되었습니다." in css(d, "#end-notice").text)


def test_pages_of_an_exam_whose_sessions_closed_say_so_and_stop(new_browser):
    """Tokens close with their exam (issue 15): after --session-close-after the pages say the
    exam's sessions have closed, show no answer sheet and open no socket."""
    with running_server("--session-close-after", str(GRACE_SECONDS + 1)) as closing:
        exam = closing.make_exam(candidates=1, proctors=1)
        candidate = exam["sessions"][exam["candidates"][0]]
        closing.ok("POST", f"exams/{exam['examId']}/end", {"reason": "closing"})
        deadline = time.monotonic() + 20
        while True:
            status, body = closing.api("GET", "session", token=candidate["token"])
            if status == 401:
                assert body["error"]["code"] == "session_closed"
                break
            assert status == 200 and time.monotonic() < deadline, f"the session never closed: {status} {body}"
            time.sleep(0.2)
        driver = new_browser()
        for session in (candidate, exam["sessions"][exam["proctors"][0]]):
            driver.get(session["pageUrl"])
            wait(driver, lambda d: "세션은 종료되었습니다" in css(d, "#error").text, message="no closed-session message")
            assert driver.execute_script("return document.querySelectorAll('input[name^=q]').length") == 0
            assert not css(driver, "#connection").is_displayed(), "no connection indicator for a closed session"
            assert not css(driver, "main > section").is_displayed()
        screenshot(driver, "session-closed")
