"""The exam day around the end in real headless Chromium against a real `exambell serve`
(issue 13): time changes pushed live, a candidate's own end, hand-in, announcements, a page
offline at its end, and the end's receipts on the roster."""
import datetime
import time
import uuid

from selenium.webdriver.common.by import By

from conftest import GRACE_SECONDS, screenshot
from test_exam_day import choose, click, css, open_page, read, roster_row, wait


def iso(seconds_from_now):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def body(driver, name):
    return driver.find_element(By.TAG_NAME, "body").get_attribute(f"data-{name}")


def open_console(server, new_browser, exam):
    """The admin console logged in, with the exam open."""
    from conftest import ADMIN_TOKEN
    admin = new_browser()
    admin.get(f"{server.url}/admin")
    css(admin, "#token").send_keys(ADMIN_TOKEN)
    css(admin, "#login-form button").click()
    wait(admin, lambda d: d.find_elements(By.CSS_SELECTOR, f'#exams tr[data-exam="{exam["examId"]}"]'))
    click(admin, f'#exams tr[data-exam="{exam["examId"]}"] button[data-action="open"]')
    wait(admin, lambda d: css(d, "#detail").get_attribute("data-exam") == exam["examId"])
    return admin


def planned_end(driver):
    return css(driver, "#remaining").get_attribute("data-end")


def test_extending_the_time_changes_the_remaining_time_without_a_reload(server, new_browser):
    exam = server.make_exam(candidates=2, proctors=1)
    first, second = exam["candidates"]
    driver = new_browser()
    open_page(driver, exam["sessions"][first])
    proctor = new_browser()
    open_page(proctor, exam["sessions"][exam["proctors"][0]])
    driver.execute_script("window.__notReloaded = true")
    before = planned_end(driver)
    assert before == "2099-01-01T00:00:00Z"
    remaining_before = css(driver, "#remaining").text

    result = server.ok("POST", f"exams/{exam['examId']}/time", {"addMinutes": 10, "reason": "정전으로 10분 연장"})
    assert result["scheduledEndDatetime"] == "2099-01-01T00:10:00Z"
    wait(driver, lambda d: planned_end(d) == "2099-01-01T00:10:00Z", message="the new end never reached the page")
    assert driver.execute_script("return window.__notReloaded") is True, "the page was reloaded"
    assert css(driver, "#time-notice").is_displayed()
    wait(driver, lambda d: css(d, "#remaining").text != remaining_before)
    screenshot(driver, "candidate-time-extended")

    def has_new_time(d, candidate):
        return read(d, roster_row(candidate), "data-has-new-time")

    # The roster shows who has the new time: the open page acknowledged it, the absent one not.
    wait(proctor, lambda d: has_new_time(d, first) == "true", message="the ack never showed")
    assert has_new_time(proctor, second) in (None, "null", "undefined", "false")
    # A page opened after the change gets the new time from the server, and the roster says so.
    late = new_browser()
    open_page(late, exam["sessions"][second])
    assert planned_end(late) == "2099-01-01T00:10:00Z"
    wait(proctor, lambda d: has_new_time(d, second) == "true", message="the late page's time never showed")
    screenshot(proctor, "proctor-new-time")


def test_an_accommodated_candidate_locks_at_its_own_time_while_the_others_keep_working(server, new_browser):
    exam = server.make_exam(candidates=2, proctors=0)
    early, other = exam["candidates"]
    early_page, other_page = new_browser(), new_browser()
    open_page(early_page, exam["sessions"][early])
    open_page(other_page, exam["sessions"][other])
    own_end = iso(8)
    result = server.ok("POST", f"exams/{exam['examId']}/time",
                       {"scheduledEndDatetime": own_end, "candidateIds": [early], "reason": "개인 시간"})
    assert result["candidates"] == [{"candidateId": early, "scheduledEndDatetime": own_end}]
    wait(early_page, lambda d: planned_end(d) == own_end)
    wait(early_page, lambda d: body(d, "ended") == "true", timeout=30, message="the candidate never locked at its own end")
    screenshot(early_page, "candidate-own-end")

    # Ended alone at its own time, in the DB (the page locks on the server's clock at its planned
    # end; the server's scheduler ends it within its next pass): the others keep working.
    def roster():
        return {c["candidateId"]: c for c in server.ok("GET", f"exams/{exam['examId']}/roster")["candidates"]}
    wait(early_page, lambda d: roster()[early]["status"] == "completed", timeout=10, message="the server never ended the candidate")
    rows = roster()
    assert rows[other]["status"] == "in_progress"
    assert body(other_page, "ended") is None
    choose(other_page, 1, 2)
    wait(other_page, lambda d: css(d, "#save-state").get_attribute("data-state") == "saved", message="the other could not save")
    assert server.ok("GET", f"exams/{exam['examId']}")["status"] == "in_progress"


def test_the_hand_in_button_asks_then_locks_and_the_roster_shows_it(server, new_browser):
    exam = server.make_exam(candidates=2, proctors=1)
    candidate = exam["candidates"][0]
    driver = new_browser()
    open_page(driver, exam["sessions"][candidate])
    proctor = new_browser()
    open_page(proctor, exam["sessions"][exam["proctors"][0]])
    choose(driver, 1, 4)
    css(driver, 'input[name="q5"]').send_keys("부산")
    css(driver, "#hand-in").click()
    wait(driver, lambda d: css(d, "#hand-in-dialog").is_displayed())
    screenshot(driver, "candidate-hand-in-confirm")
    css(driver, "#hand-in-cancel").click()  # changing one's mind changes nothing
    assert not css(driver, "#hand-in-dialog").is_displayed()
    assert body(driver, "ended") is None
    css(driver, "#hand-in").click()
    css(driver, "#hand-in-confirm").click()
    wait(driver, lambda d: body(d, "ended") == "true" and body(d, "handed-in") == "true")
    wait(driver, lambda d: body(d, "final-saved") == "true", message="the final save never arrived")
    token = exam["sessions"][candidate]["token"]
    assert server.ok("GET", "answers", token=token)["answers"] == {"1": "4", "5": "부산"}

    def step(d, name):
        return read(d, roster_row(candidate), f"data-{name}")

    wait(proctor, lambda d: step(d, "told") == "true" and step(d, "locked") == "true"
         and step(d, "saved") == "true", message="told / locked / saved never showed on the roster")
    assert "종료" in read(proctor, roster_row(candidate))
    wait(proctor, lambda d: "잠금 1 / 2" in css(d, "#delivery-counts").text)
    screenshot(proctor, "proctor-receipts")
    delivery = server.ok("GET", f"exams/{exam['examId']}/delivery")
    assert delivery["counts"] == {"candidates": 2, "told": 1, "locked": 1, "saved": 1}


def test_an_announcement_is_shown_until_dismissed_and_the_roster_shows_who_saw_it(server, new_browser):
    exam = server.make_exam(candidates=2, proctors=1)
    first, second = exam["candidates"]
    driver = new_browser()
    open_page(driver, exam["sessions"][first])
    result = server.ok("POST", f"exams/{exam['examId']}/announcements", {"message": "남은 시간 10분입니다."})
    notice_id = result["announcementId"]
    selector = f'.announcement[data-announcement="{notice_id}"]'
    wait(driver, lambda d: "남은 시간 10분입니다." in css(d, selector).text)
    screenshot(driver, "candidate-announcement")
    # Only for the other candidate: not shown here.
    server.ok("POST", f"exams/{exam['examId']}/announcements", {"message": "2번 책상", "candidateIds": [second]})
    time.sleep(0.5)
    assert len(driver.find_elements(By.CSS_SELECTOR, ".announcement")) == 1
    css(driver, f"{selector} button").click()
    assert not driver.find_elements(By.CSS_SELECTOR, selector)

    def seen():
        rows = {c["candidateId"]: c for c in server.ok("GET", f"exams/{exam['examId']}/roster")["candidates"]}
        return rows[first]["announcementsSeen"] == [notice_id]

    wait(driver, lambda d: seen(), message="the roster never showed the announcement as seen")
    driver.refresh()  # a dismissed notice stays dismissed
    wait(driver, lambda d: css(d, "#connection").get_attribute("data-state") == "open")
    time.sleep(0.5)
    assert not driver.find_elements(By.CSS_SELECTOR, ".announcement")


def test_a_page_offline_at_its_end_locks_itself_and_its_answers_arrive_when_it_is_back(server, new_browser):
    exam = server.make_exam(candidates=1, proctors=0)
    candidate = exam["candidates"][0]
    driver = new_browser()
    open_page(driver, exam["sessions"][candidate])
    end = iso(12)  # room for the steps below before the end, however slow the machine
    server.ok("POST", f"exams/{exam['examId']}/time", {"scheduledEndDatetime": end, "candidateIds": [candidate], "reason": "offline test"})
    wait(driver, lambda d: planned_end(d) == end)

    conditions = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)
    choose(driver, 2, 3)  # answered while offline: kept on the page
    wait(driver, lambda d: body(d, "ended") == "true" and body(d, "locked-locally") == "true", timeout=30,
         message="the offline page never locked itself at its end")
    assert all(not i.is_enabled() for i in driver.find_elements(By.CSS_SELECTOR, "#answers input"))
    screenshot(driver, "candidate-offline-locked")
    time.sleep(GRACE_SECONDS + 2)  # away past the grace window: its answers become a late submission
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {**conditions, "offline": False})

    def arrived():
        token = exam["sessions"][candidate]["token"]
        answers = server.ok("GET", "answers", token=token)["answers"]
        late = server.ok("GET", f"exams/{exam['examId']}/late-submissions")["lateSubmissions"]
        return answers.get("2") == "3" or any(row["answers"].get("2") == "3" for row in late)

    wait(driver, lambda d: arrived(), timeout=20, message="the answers of the offline page never arrived")
    wait(driver, lambda d: body(d, "final-saved") == "true")
    delivery = server.ok("GET", f"exams/{exam['examId']}/delivery")
    assert delivery["counts"]["saved"] == 1
    wait(driver, lambda d: server.ok("GET", f"exams/{exam['examId']}/delivery")["counts"]["locked"] == 1,
         message="the lock was never reported after the page came back")

    # A late submission is the operator's to decide: accepted from the console, it joins the sheet.
    late = server.ok("GET", f"exams/{exam['examId']}/late-submissions")["lateSubmissions"]
    if late:
        admin = open_console(server, new_browser, exam)
        wait(admin, lambda d: css(d, "#late-block").is_displayed())
        screenshot(admin, "admin-late-submission")
        css(admin, "#late-reason").send_keys("네트워크 장애 확인")
        click(admin, '#late-rows tr button[data-action="accept"]')
        wait(admin, lambda d: css(d, "#late-rows tr").get_attribute("data-decision") == "accepted")
        token = exam["sessions"][candidate]["token"]
        assert server.ok("GET", "answers", token=token)["answers"].get("2") == "3"


def test_the_admin_console_previews_and_confirms_a_time_change_and_announces(server, new_browser):
    exam = server.make_exam(candidates=2, proctors=0)
    admin = open_console(server, new_browser, exam)
    wait(admin, lambda d: css(d, "#exam-day").is_displayed())
    minutes = css(admin, "#time-minutes")
    minutes.clear()
    minutes.send_keys("15")
    css(admin, "#time-form button[type=submit]").click()  # no reason: refused on the page
    wait(admin, lambda d: css(d, "#error").text != "")
    css(admin, "#time-reason").send_keys("시스템 점검")
    css(admin, "#time-form button[type=submit]").click()
    wait(admin, lambda d: css(d, "#time-preview").is_displayed())
    previewed = admin.execute_script(
        "return [...document.querySelectorAll('#time-preview-rows tr')].map(r => r.dataset.candidate)")
    assert previewed == exam["candidates"]
    assert server.ok("GET", f"exams/{exam['examId']}")["scheduledEndDatetime"] == "2099-01-01T00:00:00Z", "a preview changes nothing"
    screenshot(admin, "admin-time-preview")
    css(admin, "#time-confirm").click()
    wait(admin, lambda d: server.ok("GET", f"exams/{exam['examId']}")["scheduledEndDatetime"] == "2099-01-01T00:15:00Z")
    css(admin, "#announce-text").send_keys("휴대폰을 꺼 주세요")
    css(admin, "#announce-form button[type=submit]").click()
    wait(admin, lambda d: d.find_elements(By.CSS_SELECTOR, "#announcement-list li"))
    # One candidate ended from the console: its receipts row appears (not told: no page open).
    first = exam["candidates"][0]
    css(admin, "#candidate-end-id").send_keys(first)
    css(admin, "#candidate-end-reason").send_keys("부정행위 의심")
    css(admin, "#candidate-end-form button[type=submit]").click()
    wait(admin, lambda d: d.find_elements(By.CSS_SELECTOR, f'#receipt-rows tr[data-candidate="{first}"]'),
         message="the ended candidate's receipts never showed")
    missing = read(admin, "#receipt-missing")
    assert "미전달" in missing and first in missing
    audit = [e["action"] for e in server.ok("GET", f"exams/{exam['examId']}/audit")["entries"]]
    assert audit.count("change_time") == 1 and "announce" in audit and "end_candidate" in audit
    screenshot(admin, "admin-exam-day")
