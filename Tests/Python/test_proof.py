"""Evidence anyone can check without ExamBell's code (issue 27): a receipt's Ed25519
signature and an audit chain's hashes, recomputed here with Python's json, hashlib and
cryptography from DESIGN's rules alone; and `exambell verify` / `exambell audit verify`
on the same files, whole and with one byte changed."""
import base64
import hashlib
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from conftest import ADMIN_TOKEN, GRACE_SECONDS, ROOT

BINARY = Path(os.environ.get("EXAMBELL_BIN", ROOT / ".build" / "debug" / "exambell"))


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def run(*arguments):
    return subprocess.run([str(BINARY), *arguments], capture_output=True, text=True, timeout=60)


def ended_candidate(server):
    exam = server.make_exam(candidates=1, proctors=0, choice=4, short=1)
    candidate = exam["candidates"][0]
    token = exam["sessions"][candidate]["token"]
    server.ok("PUT", "answers", {"answers": {"1": "3", "5": "광합성 \"작용\""}}, token=token)
    server.ok("POST", f"exams/{exam['examId']}/end", {"reason": "정시 종료"})
    server.ok("PUT", "answers", {"answers": {"2": "4"}, "final": True}, token=token)
    return exam, candidate, token


def test_a_receipt_checks_out_with_python_alone_and_with_exambell_verify(server, tmp_path):
    exam, candidate, token = ended_candidate(server)
    # Issued once the grace window after the end has passed.
    deadline = time.monotonic() + GRACE_SECONDS + 10
    while True:
        status, signed = server.api("GET", "receipt", token=token)
        if status == 200 or time.monotonic() > deadline:
            break
        assert status == 409 and signed["error"]["code"] == "receipt_not_ready"
        time.sleep(0.25)
    assert status == 200, signed
    receipt = signed["receipt"]
    answers = server.ok("GET", "answers", token=token)["answers"]
    assert answers == {"1": "3", "2": "4", "5": "광합성 \"작용\""}
    assert receipt["answersSha256"] == hashlib.sha256(canonical(answers).encode()).hexdigest()
    assert receipt["answeredCount"] == 3 and receipt["candidateId"] == candidate and receipt["endedBy"] == "exam"

    keys = server.ok("GET", "receipt-keys", token="none")["keys"]
    key = next(k for k in keys if k["keyId"] == signed["keyId"])
    assert key["alg"] == "Ed25519"
    # Raises InvalidSignature when it does not hold.
    Ed25519PublicKey.from_public_bytes(b64url(key["publicKey"])).verify(b64url(signed["signature"]), canonical(receipt).encode())
    print(f"receipt {signed['fingerprint']} for {candidate}: {canonical(receipt)}")

    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text(json.dumps(signed, ensure_ascii=False, indent=2))
    result = run("verify", str(receipt_file), "--keys", f"{server.url}/api/receipt-keys")
    assert result.returncode == 0, result.stderr
    assert "holds" in result.stdout

    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({"keys": keys}))
    changed = json.loads(receipt_file.read_text())
    changed["receipt"]["answeredCount"] = 4
    changed_file = tmp_path / "changed.json"
    changed_file.write_text(json.dumps(changed))
    result = run("verify", str(changed_file), "--keys", str(keys_file))
    assert result.returncode == 1
    assert "field answeredCount was changed" in result.stderr, result.stderr


def test_an_audit_chain_checks_out_with_python_alone_and_a_changed_row_is_named(server, tmp_path):
    exam, _, _ = ended_candidate(server)
    request = f"{server.url}/api/exams/{exam['examId']}/audit?format=jsonl"
    with urllib.request.urlopen(urllib.request.Request(request, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}), timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/jsonl")
        text = r.read().decode()
    rows = [json.loads(line) for line in text.splitlines()]
    previous = "0" * 64
    for number, row in enumerate(rows, start=1):
        assert row["seq"] == number and row["prevHash"] == previous
        body = {k: v for k, v in row.items() if k != "hash"}
        assert row["hash"] == hashlib.sha256((previous + canonical(body)).encode()).hexdigest(), f"row {number}"
        previous = row["hash"]
    head = server.ok("GET", f"exams/{exam['examId']}/audit")["head"]
    assert head == previous
    print(f"audit chain of {exam['examId']}: {len(rows)} rows, head {head}")

    chain = tmp_path / "audit.jsonl"
    chain.write_text(text)
    result = run("audit", "verify", str(chain), "--head", head)
    assert result.returncode == 0, result.stderr
    assert f"{len(rows)} rows" in result.stdout

    lines = text.splitlines()
    lines[1] = lines[1].replace('"actor":"', '"actor":"x', 1)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    result = run("audit", "verify", str(broken))
    assert result.returncode == 1
    assert "row 2: hash does not match" in result.stderr, result.stderr
    print(f"broken chain: {result.stderr.strip()}")


def test_the_exam_report_on_the_embedded_node_in_the_console_and_as_csv(server, new_browser):
    """The report of a small day on `exambell serve` (SQLite, memory engine): a candidate in
    Chromium the whole time, one whose page went away and came back, one never connected (a
    name a spreadsheet would run); read back with Python's csv module; the console draws it and
    the proctor page lists the receipts."""
    import csv
    import io

    from test_exam_day import css, open_page, wait
    from test_exam_time import open_console

    exam = server.make_exam(candidates=2, proctors=1)
    exam_id = exam["examId"]
    first, second = exam["candidates"]
    third = f"c3-{exam_id}"
    server.ok("POST", f"exams/{exam_id}/candidates", {"candidates": [{"candidateId": third, "name": "=HYPERLINK(\"x\")"}]})
    page = new_browser()
    open_page(page, exam["sessions"][first])
    away = new_browser()
    open_page(away, exam["sessions"][second])
    proctor = new_browser()
    open_page(proctor, exam["sessions"][exam["proctors"][0]])

    def connected():
        return server.ok("GET", f"exams/{exam_id}")["connected"]["candidates"]

    deadline = time.monotonic() + 15
    while connected() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert connected() == 2
    # The second candidate's browser goes away for about 3 s and comes back. (Navigating
    # away is not enough: headless Chromium keeps the page's socket open in its page cache.)
    away.quit()
    gone = time.monotonic()
    while connected() > 1 and time.monotonic() < gone + 15:
        time.sleep(0.1)
    assert connected() == 1, "the second page's socket never closed"
    time.sleep(3)
    away = new_browser()
    open_page(away, exam["sessions"][second])
    back = time.monotonic()
    server.ok("POST", f"exams/{exam_id}/time", {"addMinutes": 5, "candidateIds": [first], "reason": "편의 제공"})
    server.ok("POST", f"exams/{exam_id}/end", {"reason": "정시 종료"})

    deadline = time.monotonic() + GRACE_SECONDS + 20
    while True:
        report = server.ok("GET", f"exams/{exam_id}/report")
        rows = {row["candidateId"]: row for row in report["candidates"]}
        if (report["receiptsPending"] == 0 and rows[first]["locked"] and rows[second]["locked"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert report["receiptsPending"] == 0, report
    assert set(rows) == {first, second, third}
    assert rows[first]["disconnects"] == 0 and rows[first]["offlineSeconds"] == 0
    assert [(c["by"], c["scheduledEndDatetime"], c["reason"]) for c in rows[first]["timeChanges"]] == [
        ("admin", "2099-01-01T00:05:00Z", "편의 제공")]
    assert rows[second]["timeChanges"] == [] and rows[second]["disconnects"] == 1
    assert 2 <= rows[second]["offlineSeconds"] <= back - gone + 2, rows[second]
    assert rows[third]["disconnects"] is None and rows[third]["offlineSeconds"] is None and rows[third]["told"] is None
    for row in rows.values():
        assert row["endedBy"] == "exam" and row["status"] == "completed" and len(row["answersSha256"]) == 64

    request = urllib.request.Request(f"{server.url}/api/exams/{exam_id}/report?format=csv",
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/csv")
        assert f'filename="{exam_id}-report.csv"' in response.headers["Content-Disposition"]
        table = list(csv.reader(io.StringIO(response.read().decode())))
    assert table[0] == ["candidateId", "name", "status", "endDatetime", "endedBy", "told", "locked", "saved", "lastSavedAt",
                        "answeredCount", "disconnects", "offlineSeconds", "timeChanges", "answersSha256"]
    by_id = {line[0]: line for line in table[1:]}
    assert by_id[third][1] == "'=HYPERLINK(\"x\")", "a formula is shown as text"
    assert by_id[first][13] == rows[first]["answersSha256"] and by_id[second][10] == "1"

    console = open_console(server, new_browser, exam)
    css(console, "#report-show").click()
    wait(console, lambda d: len(d.find_elements("css selector", "#report-rows tr")) == 3, message="the console drew no report")
    assert "편의 제공" in css(console, f'#report-rows tr[data-candidate="{first}"]').text
    wait(proctor, lambda d: len(d.find_elements("css selector", "#receipt-list tr")) == 3, timeout=20,
         message="the proctor page listed no receipts")
