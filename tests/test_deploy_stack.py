"""The monitoring stack for real: Prometheus scrapes a real worker and a real trainer service, evaluates
deploy/'s rules and sends the dead-letter alert through a real Alertmanager (deploy/'s routing) to a webhook in this test.

The rules are the production files with one change: every `for:` is rendered as 0s (the expressions,
windows and thresholds stay as shipped), so an alert fires at the first evaluation where its
condition holds instead of minutes later. Prometheus scrapes and evaluates every second;
Alertmanager's group_wait/group_interval are 1 s. Every PromQL expression of the Grafana
dashboards is then evaluated against this Prometheus and must return data, except the gate's RMSEP, which exists
only after a retrain's gate decision (tests/test_trainer_service.py checks its values after one).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from nirstream.devtools.embedded_broker import free_port
from tests.streaming import produce, run
from tests.test_deploy_config import ALERTMANAGER_CONFIG, DASHBOARDS, PROMETHEUS_DIR, RULES, dashboard_exprs, tool

GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__interval": "1s", "$analyzer": ".*", "$target": ".*", "$coverage": "0.9"}


class Webhook:
    """Tiny Alertmanager webhook receiver: records every notification."""

    def __init__(self):
        self.notifications: list[dict] = []
        self.changed = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.changed:
                    hook.notifications.append({"path": self.path, **body})
                    hook.changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def firing(self, alertname: str) -> list[dict]:
        return [alert for n in self.notifications for alert in n["alerts"]
                if alert["labels"].get("alertname") == alertname and alert["status"] == "firing"]

    def wait_for(self, alertname: str, deadline: float, while_waiting=None) -> list[dict]:
        with self.changed:
            while not self.firing(alertname) and time.monotonic() < deadline:
                if while_waiting:
                    self.changed.release()
                    try:
                        while_waiting()
                    finally:
                        self.changed.acquire()
                self.changed.wait(timeout=0.5)
            return self.firing(alertname)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Daemon:
    """A Prometheus/Alertmanager process with its log, always stopped by the fixture."""

    def __init__(self, args: list, log: Path, ready_url: str):
        self.log = log
        self.process = subprocess.Popen([str(a) for a in args], stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.ready_url = ready_url

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)  # readiness polling interval
        raise TimeoutError(f"{self.ready_url} not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def render_rules(target: Path) -> list[Path]:
    """The production rule files with every `for:` set to 0s (see the module docstring)."""
    target.mkdir()
    rendered = []
    for path in RULES:
        groups = yaml.safe_load(path.read_text())
        for group in groups["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rule["for"] = "0s"
        (target / path.name).write_text(yaml.safe_dump(groups, sort_keys=False))
        rendered.append(target / path.name)
    return rendered


def render_prometheus(path: Path, rules_dir: Path, worker_port: int, trainer_port: int, alertmanager_port: int) -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules_dir / "*.yml")]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
    worker_job = next(job for job in config["scrape_configs"] if job["job_name"] == "nirstream-worker")
    worker_job.pop("dns_sd_configs")
    worker_job["static_configs"] = [{"targets": [f"127.0.0.1:{worker_port}"]}]
    trainer_job = next(job for job in config["scrape_configs"] if job["job_name"] == "nirstream-trainer")
    trainer_job["static_configs"] = [{"targets": [f"127.0.0.1:{trainer_port}"]}]
    config["scrape_configs"] = [worker_job, trainer_job]
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def render_alertmanager(path: Path, webhook_url: str) -> None:
    """The production routing, every receiver pointed at the test webhook, 1 s grouping waits."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            webhook["url"] = f"{webhook_url}/{receiver['name']}"
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
def monitoring(tmp_path):
    """Webhook + Alertmanager + a Prometheus factory (for the worker's port); all stopped afterwards."""
    prometheus_bin, alertmanager_bin = tool("prometheus"), tool("alertmanager")
    webhook = Webhook()
    daemons: list[Daemon] = []
    try:
        am_port = free_port()
        render_alertmanager(tmp_path / "alertmanager.yml", webhook.url)
        alertmanager = Daemon([alertmanager_bin, f"--config.file={tmp_path / 'alertmanager.yml'}",
                               f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                               "--cluster.listen-address=", "--log.level=warn"],
                              tmp_path / "alertmanager.log", f"http://127.0.0.1:{am_port}/-/ready")
        daemons.append(alertmanager)

        def start_prometheus(worker_port: int, trainer_port: int) -> str:
            port = free_port()
            rules_dir = tmp_path / "rules"
            render_rules(rules_dir)
            render_prometheus(tmp_path / "prometheus.yml", rules_dir, worker_port, trainer_port, am_port)
            prometheus = Daemon([prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'prom-data'}", f"--web.listen-address=127.0.0.1:{port}",
                                 # an alert firing at the first evaluation (Watchdog) is sent before Prometheus has
                                 # found its Alertmanager; the resend delay (1 min by default) sends it again
                                 "--rules.alert.resend-delay=1s", "--log.level=warn"],
                                tmp_path / "prometheus.log", f"http://127.0.0.1:{port}/-/ready")
            daemons.append(prometheus)
            alertmanager.wait_ready()
            prometheus.wait_ready()
            return f"http://127.0.0.1:{port}"

        yield webhook, start_prometheus
    finally:
        for daemon in daemons:
            daemon.stop()
        webhook.stop()


def query(prometheus: str, expr: str) -> list[dict]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def wait_for_series(prometheus: str, expr: str, deadline: float) -> list[dict]:
    while True:
        result = query(prometheus, expr)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.25)  # polling interval of the query, not synchronisation


def test_dead_letters_reach_the_webhook_and_every_dashboard_query_has_data(
        broker, registry, topics, tecator, start_worker, monitoring, tmp_path):
    from tests.test_trainer_service import service

    started = time.monotonic()
    webhook, start_prometheus = monitoring
    # the learning loop archives the worker's lab pairs; no retrain here (this test is about the monitoring)
    trainer = service(broker, registry, topics, tmp_path, NIRSTREAM_RETRAIN__MIN_NEW_PAIRS="100000",
                      NIRSTREAM_RETRAIN__BIAS_K="1e9").start()
    try:
        _monitored_stack(broker, registry, topics, tecator, start_worker, webhook, start_prometheus, trainer, started)
    finally:
        trainer.stop()


def _monitored_stack(broker, registry, topics, tecator, start_worker, webhook, start_prometheus, trainer, started):
    from nirstream.devtools.simulate import Analyzer, ProcessEffects

    worker = start_worker(NIRSTREAM_REGISTRY_POLL_SECONDS="1")
    trainer.wait_ready()
    prometheus = start_prometheus(worker.web_port, trainer.web_port)
    assert wait_for_series(prometheus, 'up{job="nirstream-worker"} == 1', time.monotonic() + 20)
    assert wait_for_series(prometheus, 'up{job="nirstream-trainer"} == 1', time.monotonic() + 20)

    # Phase 1, clean stream and lab values: line-1 as calibrated, line-2 drifted out of the model's domain.
    line1 = Analyzer("line-1", tecator, seed=1)
    line2 = Analyzer("line-2", tecator, effects=ProcessEffects(drift=1.0), seed=2)
    faulty = Analyzer("line-3", tecator, effects=ProcessEffects(faults=0.6), seed=3)
    sequence = 0

    def send(analyzers, count):
        nonlocal sequence
        messages = []
        for _ in range(count):
            for analyzer in analyzers:
                messages.append((analyzer.analyzer_id.encode(), analyzer.message(sequence, elapsed=600.0)[0]))
            sequence += 1
        run(produce(broker.bootstrap_servers, topics.spectra, messages))
        return range(sequence - count, sequence)

    sent = send([line1, line2], 40)
    deadline = time.monotonic() + 30
    while worker.metric("nirstream_predictions_total") < 80 and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the worker until it predicted them
    lab = [(a.analyzer_id.encode(), a.reference_message(s).model_dump_json().encode()) for s in sent for a in (line1, line2)]
    run(produce(broker.bootstrap_servers, topics.reference, lab))

    # A promotion: the worker hot-swaps to version 2 (model timeline, swap annotation).
    registry.promote("2", "deployment test")
    deadline = time.monotonic() + 30
    while worker.metric("nirstream_model_version") != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.metric("nirstream_model_version") == 2, worker.log_tail()

    # Phase 2: an analyzer with faults joins; keep the stream going until the alert arrives.
    def keep_streaming():
        send([line1, line2, faulty], 5)
        time.sleep(0.3)  # pacing of the simulated analyzers

    alerts = webhook.wait_for("NirstreamDeadLetterRateHigh", time.monotonic() + 45, while_waiting=keep_streaming)
    assert alerts, f"no dead-letter alert at the webhook; got {webhook.notifications}; ALERTS: {query(prometheus, 'ALERTS')}"
    alert = alerts[0]
    assert alert["labels"]["severity"] == "warning" and alert["labels"]["job"] == "nirstream-worker"
    assert alert["annotations"]["runbook_url"].endswith("#nirstreamdeadletterratehigh")
    notification = next(n for n in webhook.notifications if alert in n["alerts"])
    assert notification["path"] == "/nirstream-ops" and notification["receiver"] == "nirstream-ops"  # warning route
    # the dead man's switch fires from the first evaluation and reaches the heartbeat receiver, and only it
    assert webhook.wait_for("Watchdog", time.monotonic() + 10)
    assert {n["receiver"] for n in webhook.notifications
            if any(a["labels"]["alertname"] == "Watchdog" for a in n["alerts"])} == {"nirstream-deadman"}

    # Every Grafana expression returns data from this Prometheus.
    send([line1, line2, faulty], 5)
    deadline = time.monotonic() + 20
    empty = []
    for path in DASHBOARDS:
        for expr in dashboard_exprs(json.loads(path.read_text())):
            rendered = expr
            for variable, value in GRAFANA_VARIABLES.items():
                rendered = rendered.replace(variable, value)
            if "nirstream_trainer_gate_rmsep" in expr:  # only after a gate decision (see the module docstring)
                query(prometheus, rendered)  # but it must be a query Prometheus accepts
                continue
            if not wait_for_series(prometheus, rendered, deadline):
                empty.append(f"{path.name}: {expr}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    assert trainer.metric("nirstream_trainer_pairs_archived_total") >= 80  # the worker's lab pairs reached the store
    url = f"{prometheus}/api/v1/label/analyzer/values?" + urllib.parse.urlencode({"match[]": "nirstream_predictions_total"})
    with urllib.request.urlopen(url, timeout=5) as response:  # the $analyzer template variable
        assert {"line-1", "line-2", "line-3"} <= set(json.loads(response.read())["data"])
    assert time.monotonic() - started < 90
