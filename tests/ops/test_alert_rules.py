"""The operations kit without a server: the alert rules pass ``promtool check rules`` and their
unit tests (``promtool test rules``, Debian's ``prometheus`` package), every alert has a firing
and a quiet case there, a severity, a summary, a runbook link and a runbook line in README's
Operations section; the scrape-config examples pass ``promtool check config``; the Grafana
dashboard is a complete, importable document."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from prometheustool import require_prometheus

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "chattts-server.json"
RUNBOOK = "https://github.com/chattts-server/chattts-server/blob/main/README.md#alerts"


def promtool(*args: str, cwd: Path = PROM) -> str:
    tool, _ = require_prometheus()
    proc = subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return out


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in rules() if "alert" in r}


def operations_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Operations\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end > 0 else None]


def test_promtool_check_rules_is_clean() -> None:
    out = promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(rules())} rules found" in out
    assert "WARNING" not in out.upper()


def test_promtool_rule_unit_tests_pass() -> None:
    out = promtool("test", "rules", "alerts_test.yml")
    assert "SUCCESS" in out and "FAILED" not in out


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    doc = yaml.safe_load((PROM / "alerts_test.yml").read_text())
    assert doc["rule_files"] == ["alerts.yml"]
    cases: dict[str, dict[str, int]] = {}
    for test in doc["tests"]:
        for case in test.get("alert_rule_test", []):
            kind = "firing" if case["exp_alerts"] else "quiet"
            cases.setdefault(case["alertname"], {"firing": 0, "quiet": 0})[kind] += 1
    assert set(cases) == set(alerts())
    assert all(c["firing"] >= 1 and c["quiet"] >= 1 for c in cases.values()), cases


def test_the_issues_alerts_are_all_there() -> None:
    assert set(alerts()) >= {
        "ChatTTSUnavailable",  # server not ready (none)
        "ChatTTSNotReady",  # server not ready (one)
        "ChatTTSDown",
        "ChatTTSHighErrorRatio",  # 5xx ratio
        "ChatTTSOverloaded",  # 503 ratio (capacity)
        "ChatTTSSlowFirstAudio",  # TTFA p95
        "ChatTTSFallingBehindRealTime",  # RTF p50 over 1
        "ChatTTSQueueNearlyFull",
        "ChatTTSReplicaMissing",  # scale-out
    }


def test_every_alert_is_documented_and_says_what_to_do() -> None:
    ops = operations_section()
    for name, rule in alerts().items():
        assert re.fullmatch(r"\d+m", rule["for"]), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook_url"] == RUNBOOK, name
        row = next((x for x in ops.splitlines() if x.startswith(f"| `{name}` |")), None)
        assert row is not None, f"{name} has no runbook line in README's Operations section"
        cells = [c.strip() for c in row.split("|")]
        assert rule["for"] in cells, f"README's line for {name} does not give its for: duration"
        assert rule["labels"]["severity"] in cells, name
    assert "### Alerts" in ops  # the runbook_url's anchor


def test_every_rule_selects_our_job() -> None:
    for rule in rules():
        expr = rule["expr"]
        for selector in re.findall(r"(?<![\w:])(?:chattts_\w+|up)\{([^}]*)\}", expr):
            assert 'job="chattts"' in selector, (rule, selector)


def test_the_static_scrape_config_passes_promtool() -> None:
    out = promtool("check", "config", "prometheus.yml")
    assert "SUCCESS: prometheus.yml is valid" in out


def test_the_kuberay_scrape_config_passes_promtool(tmp_path: Path) -> None:
    """Debian builds Prometheus without Kubernetes discovery: the file is checked with its
    kubernetes_sd_configs swapped for a static target (relabelling, rules and the rest)."""
    doc = yaml.safe_load((PROM / "prometheus-kuberay.yml").read_text())
    (job,) = doc["scrape_configs"]
    assert job["job_name"] == "chattts"
    assert [sd["role"] for sd in job.pop("kubernetes_sd_configs")] == ["pod"]
    job["static_configs"] = [{"targets": ["10.0.0.1:8000"]}]
    doc["rule_files"] = [str(RULES)]
    (tmp_path / "kuberay.yml").write_text(yaml.safe_dump(doc))
    out = promtool("check", "config", "kuberay.yml", cwd=tmp_path)
    assert "SUCCESS: kuberay.yml is valid" in out
    keeps = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if
             r.get("action") == "keep"}  # fmt: skip
    assert keeps[("__meta_kubernetes_pod_label_ray_io_node_type",)] == "worker"


# --- the dashboard --------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def test_the_dashboard_is_a_complete_importable_document() -> None:
    d = dashboard()
    assert d["uid"] == "chattts-server" and d["title"] and d["schemaVersion"] >= 36
    assert "__inputs" not in d and "${DS_" not in DASHBOARD.read_text()  # nothing to map
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["multi"] and variables["instance"]["includeAll"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
    for p in panels():
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert p["targets"] and len(refs) == len(set(refs)), p["title"]
        assert all(t["expr"].strip() for t in p["targets"]), p["title"]


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    d = dashboard()
    rows = [p for p in d["panels"] if p["type"] == "row"]
    assert [r.get("repeat") for r in rows] == [None, "instance"]  # a row per replica
    exprs = " ".join(t["expr"] for p in panels() for t in p["targets"])
    for metric in ("chattts_requests_total", "chattts_time_to_first_audio_seconds_bucket",
                   "chattts_real_time_factor_bucket", "chattts_queue_depth", "chattts_in_flight",
                   "chattts_gpt_batch_rows", "chattts_audio_seconds_total"):  # fmt: skip
        assert metric in exprs, metric
    assert "by (route, status)" in exprs
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.95," in exprs
    per_replica = [p for p in panels() if p["gridPos"]["y"] > rows[1]["gridPos"]["y"]]
    assert per_replica and all(
        'instance=~"$instance"' in t["expr"] for p in per_replica for t in p["targets"]
    )


@pytest.mark.parametrize("path", [RULES, DASHBOARD], ids=["rules", "dashboard"])
def test_recorded_series_used_are_defined(path: Path) -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    used = set(re.findall(r"\b[a-z_]+:chattts_[a-z0-9_]+:[a-z0-9_]+\b", path.read_text()))
    assert used <= recorded, used - recorded
