"""Export and import pages: the forms, direct downloads, export and import jobs, and who may use them."""

from __future__ import annotations

import gzip
import json

import pytest
from sqlalchemy import func, select

from app.annotation.models import Judgement
from app.auth.models import Role
from app.export.service import exports_dir
from app.export.snapshot import load_snapshot
from app.importing.jobs import imports_dir
from app.jobs.models import Job, JobStatus
from tests.export.data import judged_pair
from tests.factories import PromptSetFactory, UserFactory
from tests.helpers import log_in_as, login, run_job

XSS = "<script>alert(1)</script>"


@pytest.fixture()
def admin(client, db):
    return log_in_as(client, "root", Role.admin)


class TestExport:
    def test_the_form_lists_sets_escaped(self, client, db, admin):
        PromptSetFactory(name=XSS)
        page = client.get("/admin/export")
        assert page.status_code == 200 and XSS not in page.text and "&lt;script&gt;" in page.text
        assert 'formaction="/admin/export/download"' in page.text and "formmethod" not in page.text

    def test_direct_download_streams_an_attachment(self, client, db, admin):
        judged_pair(db, a="=cmd|' /C calc'!A0", b="no", verdicts=[(UserFactory(), "a")])
        response = client.post("/admin/export/download", data={"format": "csv", "csrf_token": client.csrf})
        assert response.status_code == 200
        disposition = response.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="rlhf-csv-') and disposition.endswith('.csv"')
        assert response.headers["content-type"].startswith("text/csv")
        assert "'=cmd|" in response.text
        trl = client.post("/admin/export/download", data={"format": "trl", "csrf_token": client.csrf})
        assert json.loads(trl.text.splitlines()[0])["chosen"] == "=cmd|' /C calc'!A0"  # JSON is data, not a spreadsheet

    def test_binary_formats_and_bad_filters_are_refused_with_a_message(self, client, db, admin):
        parquet = client.post("/admin/export/download", data={"format": "parquet", "csrf_token": client.csrf})
        assert parquet.status_code == 422 and "run it as an export job" in parquet.text
        bad = client.post(
            "/admin/export/download", data={"format": "trl", "min_agreement": "7", "csrf_token": client.csrf}
        )
        assert bad.status_code == 422 and "min_agreement" in bad.text

    def test_an_export_job_writes_the_file_and_its_snapshot(self, client, db, admin, session_factory, settings):
        for i in range(3):
            judged_pair(db, a=f"good {i}", verdicts=[(UserFactory(), "a")])
        launched = client.post(
            "/admin/export",
            data={
                "csrf_token": client.csrf,
                "format": "hh",
                "min_agreement": "0.5",
                "exclude_annotators": "nobody, else",
            },
            follow_redirects=False,
        )
        assert launched.status_code == 303
        job = db.scalar(select(Job).where(Job.kind == "export"))
        assert launched.headers["location"] == f"/dashboard/jobs/{job.id}"
        assert job.params["format"] == "hh" and job.params["exclude_annotators"] == ["nobody", "else"]
        job = run_job(db, session_factory, settings, job_id=job.id)
        assert job.status is JobStatus.succeeded, job.error
        result = job.result
        assert result["snapshot"]["counts"]["rows"] == 3
        snapshot = load_snapshot(db, export_job_id=job.id, exports_dir=exports_dir(settings))  # what a reward job names
        assert (snapshot.sha256, snapshot.format, snapshot.counts["rows"]) == (result["snapshot"]["sha256"], "hh", 3)
        assert snapshot.file.is_file() and len(snapshot.ids_file.read_text().split()) == 3
        download = client.get(f"/admin/export/jobs/{job.id}/download")
        assert (
            download.status_code == 200
            and download.headers["content-disposition"] == f'attachment; filename="{result["file"]}"'
        )
        assert [
            json.loads(line)["chosen"].endswith(f"good {i}") for i, line in enumerate(download.text.splitlines())
        ] == [True] * 3
        page = client.get(f"/dashboard/jobs/{job.id}")
        assert f'href="/admin/export/jobs/{job.id}/download"' in page.text

    def test_a_tampered_file_name_is_not_served(self, client, db, admin):
        job = Job(
            kind="export", params={}, status=JobStatus.succeeded, result={"format": "trl", "file": "../../secret_key"}
        )
        db.add(job)
        db.commit()
        assert client.get(f"/admin/export/jobs/{job.id}/download").status_code == 404

    def test_researchers_export_and_annotators_cannot(self, client, db):
        """One rule for the pages and the API (issue 17): researchers may export, annotators may not."""
        UserFactory(username="rita", role=Role.researcher)
        csrf = login(client, "rita")
        assert client.get("/admin/export").status_code == 200
        assert client.post("/admin/export/download", data={"format": "trl", "csrf_token": csrf}).status_code == 200
        UserFactory(username="anna", role=Role.annotator)
        csrf = login(client, "anna")
        assert client.get("/admin/export").status_code == 403
        assert client.post("/admin/export/download", data={"format": "trl", "csrf_token": csrf}).status_code == 403


class TestImport:
    def test_upload_runs_an_import_job(self, client, db, admin, session_factory, settings):
        line = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Bye."}
        body = gzip.compress((json.dumps(line) + "\n").encode())
        done = client.post(
            "/admin/import",
            data={"csrf_token": client.csrf, "format": "hh", "name": "hh-mini"},
            files={"file": ("whatever.bin", body, "application/octet-stream")},
            follow_redirects=False,
        )
        assert done.status_code == 303
        job = db.scalar(select(Job).where(Job.kind == "import"))
        assert job.params["upload"].endswith(".jsonl.gz") and job.max_attempts == 1
        before = db.scalar(select(func.count()).select_from(Judgement))
        job = run_job(db, session_factory, settings, job_id=job.id)
        assert job.status is JobStatus.succeeded, job.error
        result = job.result
        assert result["pairs"] == 1 and result["source"] == "external:hh-mini"
        assert db.scalar(select(func.count()).select_from(Judgement)) == before + 1
        assert not (imports_dir(settings) / job.params["upload"]).exists()

    def test_a_rejected_file_fails_the_job_naming_the_line(self, client, db, admin, session_factory, settings):
        client.post(
            "/admin/import",
            data={"csrf_token": client.csrf, "format": "trl", "name": "broken"},
            files={
                "file": ("x.jsonl", b'{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": 1}\n', "text/plain")
            },
        )
        job = db.scalar(select(Job).where(Job.kind == "import"))
        job = run_job(db, session_factory, settings, job_id=job.id)
        assert job.status is JobStatus.failed and "line 2" in job.error

    def test_bad_form_input_is_shown_and_stores_nothing(self, client, db, admin, settings):
        page = client.post(
            "/admin/import",
            data={"csrf_token": client.csrf, "format": "hh", "name": "Bad Name"},
            files={"file": ("x.jsonl", b"{}\n", "text/plain")},
        )
        assert page.status_code == 422 and "name: must be 1-55" in page.text
        assert not imports_dir(settings).exists() or not any(imports_dir(settings).iterdir())
        assert db.scalar(select(Job).where(Job.kind == "import")) is None
