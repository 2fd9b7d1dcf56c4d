"""schemathesis against a live `exambell serve`: the API answers as `openapi.json` says,
with no 5xx, for admin calls and for a candidate's session calls (issue 6)."""
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import ADMIN_TOKEN, ROOT, running_server

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def schemathesis(server, token, *extra):
    command = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{server.url}/openapi.json",
               "-H", f"Authorization: Bearer {token}", "--checks", CHECKS, "--max-examples", "30",
               "--warnings", "off", *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=280, cwd=ROOT / ".build-venv")
    summary = "\n".join(result.stdout.splitlines()[-25:])
    assert result.returncode == 0, f"schemathesis found problems:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert " passed" in result.stdout and "failed" not in summary.lower(), summary
    return result.stdout


def test_the_document_is_served_and_lists_every_route(server):
    with urllib.request.urlopen(f"{server.url}/openapi.json") as response:
        assert response.headers["Content-Type"].startswith("application/json")
        served = json.load(response)
    kept = json.loads((ROOT / "Sources/ExamBellWeb/Public/openapi.json").read_text())
    assert served == kept
    assert served["openapi"].startswith("3.1")
    for path in ["/api/exams", "/api/exams/{examId}/end", "/api/exams/{examId}/sessions", "/api/answers", "/ready"]:
        assert path in served["paths"]


def test_admin_api_conforms():
    # A server of its own: what the generated requests did is all it holds.
    with running_server() as own:
        assert own.ok("GET", "exams")["exams"] == []
        schemathesis(own, ADMIN_TOKEN, "--exclude-path-regex", "^/api/(session|answers|announcements)$")
        # Generated requests that were valid did take effect: exams exist on a server that had none.
        assert len(own.ok("GET", "exams")["exams"]) >= 1


def test_session_api_conforms(server):
    exam = server.make_exam(candidates=1, proctors=0, choice=20, short=2)
    token = exam["sessions"][exam["candidates"][0]]["token"]
    schemathesis(server, token, "--include-path-regex", "^/api/(session|answers|announcements)$")
    actions = {entry["action"] for entry in server.ok("GET", f"exams/{exam['examId']}/audit")["entries"]}
    assert "answers_saved" in actions, "some generated saves were valid and taken"
