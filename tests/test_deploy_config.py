"""Deployment assets (deploy/, docker-compose.yml) checked with the real Prometheus/Alertmanager tools.

promtool, prometheus and prometheus-alertmanager/amtool come from the Debian packages `prometheus` and
`prometheus-alertmanager` (`.ci/run` installs them). Locally the tests skip when a tool is missing;
with CI=true they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RUNBOOK = DEPLOY / "RUNBOOK.md"
DATASOURCE_UID = "nirstream-prometheus"
DASHBOARD_UIDS = {"nirstream-overview", "nirstream-quality"}  # stable: links and bookmarks depend on them

TOPICS = {"nirstream.spectra": 4, "nirstream.predictions": 4, "nirstream.deadletter": 1, "nirstream.models": 1,
          "nirstream.reference": 4, "nirstream.labelled": 4, "nirstream.lab-join": 4}

# Debian names first; upstream tarball names as fallback.
TOOL_NAMES = {"promtool": ["promtool"], "prometheus": ["prometheus"],
              "alertmanager": ["prometheus-alertmanager", "alertmanager"], "amtool": ["amtool"]}


def tool(name: str) -> str:
    """Path of a Prometheus tool; skip (locally) or fail (CI=true) when it is not installed."""
    for candidate in TOOL_NAMES[name]:
        found = shutil.which(candidate) or next((p for p in (f"/usr/bin/{candidate}", f"/usr/sbin/{candidate}") if os.access(p, os.X_OK)), None)
        if found:
            return found
    message = f"{name} not installed: apt-get install -y prometheus prometheus-alertmanager"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the deployment tests must run; .ci/run installs the packages)")
    pytest.skip(message)


def run_tool(*args, cwd: Path = REPO) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def alert_rules() -> list[dict]:
    return [rule for path in RULES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def dashboard_exprs(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if a.get("expr")]
    return exprs


def github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


# --------------------------------------------------------------------------- Prometheus rules and config


def test_promtool_check_rules():
    run_tool(tool("promtool"), "check", "rules", *RULES)


def test_promtool_check_config():
    out = run_tool(tool("promtool"), "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert f"{len(RULES)} rule files found" in out.stdout + out.stderr


def test_promtool_unit_tests_pass():
    run_tool(tool("promtool"), "test", "rules", *RULE_TESTS, cwd=PROMETHEUS_DIR / "tests")


def test_every_alert_has_metadata_a_runbook_section_and_a_unit_test():
    alerts = alert_rules()
    assert len(alerts) >= 11
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names))
    anchors = {github_anchor(line[3:]) for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    tested = {t["alertname"] for path in RULE_TESTS for group in yaml.safe_load(path.read_text())["tests"]
              for t in group.get("alert_rule_test", []) if t.get("exp_alerts")}  # a firing case, not only silence
    for alert in alerts:
        # Watchdog, the dead man's switch, always fires: severity none, routed to the heartbeat receiver only
        assert alert["labels"]["severity"] in ({"none"} if alert["alert"] == "Watchdog" else {"critical", "warning"}), alert["alert"]
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"]), alert["alert"]
        path, _, anchor = alert["annotations"]["runbook_url"].partition("#")
        assert (REPO / path).resolve() == RUNBOOK.resolve() and anchor in anchors, alert["alert"]
        assert alert["alert"] in tested, f"no promtool unit test where {alert['alert']} fires"
    required = {"NirstreamWorkerDown", "NirstreamNotConsuming", "NirstreamConsumerLagGrowing", "NirstreamDeadLetterRateHigh",
                "NirstreamOutlierFractionHigh", "NirstreamPredictionOutOfSpec", "NirstreamRollingBiasHigh",
                "NirstreamModelStale", "NirstreamModelSwapFailed", "Watchdog", "NirstreamMessagesUnpublishable",
                "NirstreamDeadLettersLost", "NirstreamCommitFailing", "NirstreamOpcUaDown", "NirstreamOpcUaValuesStale",
                "NirstreamIngestBacklog", "NirstreamIngestFilesRejected"}
    assert required <= set(names)


def test_the_production_page_lists_every_alert():
    section = (REPO / "docs/production.md").read_text().split("| alert | severity | means |", 1)[1].split("\n\n", 1)[0]
    for alert in alert_rules():
        assert f"`{alert['alert']}`" in section


# --------------------------------------------------------------------------- Alertmanager


def test_alertmanager_config_is_valid_with_a_webhook_receiver():
    run_tool(tool("amtool"), "check-config", ALERTMANAGER_CONFIG)
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    assert all(receiver.get("webhook_configs") for receiver in config["receivers"])


def test_the_watchdog_goes_to_the_dead_man_receiver_every_minute_and_nothing_else_does():
    def receiver(*labels: str) -> str:
        return run_tool(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
                        *labels).stdout.split()[-1]

    assert receiver("alertname=Watchdog", "severity=none", "component=monitoring") == "nirstream-deadman"
    assert receiver("alertname=NirstreamNoWorkers", "severity=critical") == "nirstream-oncall"
    assert receiver("alertname=NirstreamIngestBacklog", "severity=warning") == "nirstream-ops"
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    [route] = [r for r in config["route"]["routes"] if r["receiver"] == "nirstream-deadman"]
    assert route["repeat_interval"] == "1m" and route["continue"] is False
    # no inhibition may silence the switch: every inhibit rule targets component="nirstream" or named alerts
    watchdog = {"alertname": "Watchdog", "severity": "none", "component": "monitoring"}
    for rule in config["inhibit_rules"]:
        assert not all(matcher_matches(m, watchdog) for m in rule["target_matchers"]), rule


def matcher_matches(matcher: str, labels: dict[str, str]) -> bool:
    """One Alertmanager matcher (``name="v"``, ``!=``, ``=~``, ``!~``) against a label set."""
    name, op, value = re.fullmatch(r'(\w+)(=~|!~|!=|=)"(.*)"', matcher).groups()
    actual = labels.get(name, "")
    return {"=": actual == value, "!=": actual != value, "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None}[op]


# --------------------------------------------------------------------------- Grafana


def test_grafana_provisioning_and_dashboards():
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert [d["uid"] for d in datasources] == [DATASOURCE_UID] and datasources[0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/nirstream.yml").read_text())["providers"]
    assert all(p["allowUiUpdates"] is False and p["type"] == "file" for p in providers)
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{providers[0]['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts

    dashboards = [json.loads(path.read_text()) for path in DASHBOARDS]
    assert {d["uid"] for d in dashboards} == DASHBOARD_UIDS
    titles = " ".join(p["title"].lower() for d in dashboards for p in d["panels"])
    for topic in ("throughput", "latency", "batch size", "lag", "dead letters", "specification", "outlier", "rmsep", "bias", "model"):
        assert topic in titles, topic
    for dashboard in dashboards:
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dashboard["panels"]:
            if panel["type"] == "row":  # a row only heads the panels below it: no query of its own
                continue
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            assert panel["targets"] and all(t["datasource"]["uid"] == DATASOURCE_UID for t in panel["targets"])
    assert any("histogram_quantile" in e and "nirstream_end_to_end_latency_seconds_bucket" in e
               for d in dashboards for e in dashboard_exprs(d))


def test_quality_dashboard_is_per_target_with_prediction_intervals():
    dashboard = json.loads((GRAFANA / "dashboards" / "nirstream-quality.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["target"]["definition"] == "label_values(nirstream_model_info, target)"
    assert variables["target"]["multi"] and variables["target"]["includeAll"]
    assert variables["target"]["datasource"]["uid"] == DATASOURCE_UID
    rmsep = next(p for p in dashboard["panels"] if "rmsep" in p["title"].lower())
    assert rmsep["repeat"] == "target" and "$target" in rmsep["title"]
    assert all('target=~"$target"' in t["expr"] for t in rmsep["targets"])
    band = next(p for p in dashboard["panels"] if "interval" in p["title"].lower() and p["type"] == "timeseries")
    assert band["repeat"] == "target" and "nirstream_model_interval_half_width" in (REPO / "stream/metrics.py").read_text()
    assert sum("nirstream_model_interval_half_width" in t["expr"] for t in band["targets"]) == 2  # upper and lower
    cells = [(x, y) for p in dashboard["panels"] for g in [p["gridPos"]]
             for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])]
    assert len(cells) == len(set(cells)), "panels overlap"


def test_quality_dashboard_has_a_learning_loop_row_on_the_trainers_own_metrics():
    from nirstream.trainer.service_metrics import TrainerMetrics

    dashboard = json.loads((GRAFANA / "dashboards" / "nirstream-quality.json").read_text())
    [row] = [p for p in dashboard["panels"] if p["type"] == "row" and "learning loop" in p["title"].lower()]
    below = [p for p in dashboard["panels"] if p["type"] != "row" and p["gridPos"]["y"] > row["gridPos"]["y"]]
    exprs = " ".join(t["expr"] for p in below for t in p["targets"])
    for shown in ("nirstream_trainer_pairs_archived_total", "by (outcome) (increase(nirstream_trainer_retrains_total",
                  "by (decision) (increase(nirstream_trainer_gate_decisions_total",
                  "by (model, target) (nirstream_trainer_gate_rmsep", "nirstream_trainer_rollbacks_total",
                  "nirstream_trainer_last_retrain_seconds"):
        assert shown in exprs, shown
    # every trainer metric a dashboard or rule names is one the service exports (a renamed metric shows no data)
    families = list(TrainerMetrics().registry.collect())  # a labelled gauge has no sample before its first value
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    used = {m for path in DASHBOARDS + RULES for m in re.findall(r"nirstream_trainer_\w+", path.read_text())}
    assert used and used <= exported, used - exported


# --------------------------------------------------------------------------- docker-compose.yml, Dockerfile


def compose() -> dict:
    """docker-compose.yml as Compose reads it with none of its variables set: ``${VAR:-default}`` is the default."""
    text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", (REPO / "docker-compose.yml").read_text())
    return yaml.safe_load(text)


# the profiles a deployment runs together: trial or plant OPC UA, never both
PROFILE_SETS = [set(), {"kafka", "train", "simulate", "trial"}, {"kafka", "train", "simulate", "opcua"}]


def running(services: dict, profiles: set[str]) -> dict:
    return {name: s for name, s in services.items() if not s.get("profiles") or profiles & set(s["profiles"])}


def test_compose_services_volumes_ports_and_files():
    config = compose()
    services = config["services"]
    assert {"kafka", "kafka-init", "worker", "opcua", "trainer", "train", "simulator", "prometheus", "alertmanager",
            "grafana"} <= set(services)

    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:") and "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "NIRSTREAM_GROUP_ID" in services["worker"]["environment"]
    assert services["worker"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    # the one-shot training job is `train` (profile train); `trainer` is the always-on learning loop
    assert services["train"]["profiles"] == ["train"] and "nirstream train" in services["train"]["command"][0]
    trainer = services["trainer"]
    assert "profiles" not in trainer and trainer["command"] == ["trainer"] and trainer["restart"] == "unless-stopped"
    assert "plant-data:/plant-data" in trainer["volumes"] and trainer["environment"]["NIRSTREAM_STORE"].startswith("/plant-data/")
    assert trainer["environment"]["NIRSTREAM_WORKDIR"].startswith("/plant-data/")
    assert "6067/ready" in " ".join(trainer["healthcheck"]["test"]) and "ports" not in trainer
    assert services["simulator"]["profiles"] == ["simulate"] and "--analyzer line-1=tablets1:test" in services["simulator"]["command"][0]
    # the registry: read-write where it is written, read-only where it is read, absent where it is not needed
    for name in ("train", "trainer"):
        assert "models:/models" in services[name]["volumes"], name
    for name in ("opcua", "opcua-trial"):
        opcua = services[name]
        assert opcua["image"] == services["worker"]["image"] and opcua["command"][0] == "opcua"
        assert opcua["ports"][0].endswith(":4840:4840") and "opc.tcp://0.0.0.0:4840/nirstream/" in opcua["command"]
        assert "models:/models" not in opcua["volumes"]  # it reads the predictions topic, never the registry
    assert "models:/models:ro" in services["worker"]["volumes"]

    declared_volumes = set(config["volumes"])
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        assert service.get("restart") in {"unless-stopped", "on-failure", "always", "no"}, name
        long_running = service.get("restart") in {"unless-stopped", "always"}  # one-shots and the simulator need none
        if long_running:
            assert "healthcheck" in service and not service["healthcheck"].get("disable"), f"{name} has no health check"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared_volumes, f"{name}: volume {source} not declared"
        for port in service.get("ports", []):
            # every published port names the address it opens: no door on all interfaces by omission
            assert re.fullmatch(r"[\d.]+:\d+:\d+", str(port)), f"{name}: use quoted ADDRESS:HOST:CONTAINER ports, got {port!r}"
        build = service.get("build")
        if build:
            assert (REPO / build["context"] / build["dockerfile"]).exists()
    for profiles in PROFILE_SETS:
        host_ports = [p.split(":")[1] for s in running(services, profiles).values() for p in s.get("ports", [])]
        assert len(host_ports) == len(set(host_ports)), profiles
    assert "ports" not in services["worker"], "replicas cannot share a host port; Prometheus scrapes them inside"

    # no secret in the file: security variables are passed through from the environment
    env = services["worker"]["environment"]
    for key in ("NIRSTREAM_SECURITY__SASL_PASSWORD", "NIRSTREAM_SECURITY__SASL_USERNAME", "NIRSTREAM_SECURITY__SSL_KEYFILE"):
        assert key in env and env[key] is None
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] is None
    text = (REPO / "docker-compose.yml").read_text()
    assert "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:-}" in text
    # a variable's default is the only place a value could hide inside ${...}: none for a secret
    assert all(not default for _, default in re.findall(r"\$\{\w*(PASSWORD|SECRET|TOKEN)\w*:?-([^}]*)\}", text))
    unquoted = re.sub(r"\$\{[^}]*\}", "$VAR", text)
    assert not re.search(r"(PASSWORD|SECRET|TOKEN)\w*:[ \t]*[^\s$#]", unquoted), "literal secret in docker-compose.yml"


def test_compose_closes_the_doors_by_default():
    services = compose()["services"]
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    # Prometheus: no lifecycle API (POST /-/quit, /-/reload); Prometheus and Alertmanager on this machine only,
    # unless the user sets the bind variable
    assert not any("lifecycle" in flag for flag in services["prometheus"]["command"])
    assert raw["prometheus"]["ports"] == ["${PROMETHEUS_BIND:-127.0.0.1}:9090:9090"]
    assert raw["alertmanager"]["ports"] == ["${ALERTMANAGER_BIND:-127.0.0.1}:9093:9093"]
    for profiles in PROFILE_SETS:
        for name, service in running(services, profiles).items():
            for port in service.get("ports", []):
                address = port.split(":")[0]
                # open to the network only: Grafana (password required) and OPC UA with SignAndEncrypt
                assert address == "127.0.0.1" or name in {"grafana", "opcua"}, (name, port)

    # OPC UA: the plant service is SignAndEncrypt with a trust folder from a read-only mount; None only in the
    # trial profile, with --allow-insecure, published on 127.0.0.1
    opcua, trial = services["opcua"], services["opcua-trial"]
    assert opcua["profiles"] == ["opcua"] and trial["profiles"] == ["trial"]
    env = opcua["environment"]
    assert env["NIRSTREAM_OPCUA__SECURITY_MODE"] == "SignAndEncrypt" and "--allow-insecure" not in opcua["command"]
    mount_source, mount_target, mode = opcua["volumes"][0].rsplit(":", 2)
    assert mode == "ro" and (REPO / mount_source).is_dir()
    for key in ("NIRSTREAM_OPCUA__CERTIFICATE", "NIRSTREAM_OPCUA__PRIVATE_KEY", "NIRSTREAM_OPCUA__TRUSTED_CLIENTS"):
        assert env[key].startswith(mount_target + "/"), key
    assert not any(p.suffix in {".pem", ".der", ".key"} for p in (REPO / mount_source).rglob("*"))  # no key committed
    assert "--allow-insecure" in trial["command"] and trial["ports"] == ["127.0.0.1:4840:4840"]
    assert all("NIRSTREAM_OPCUA__ALLOW_INSECURE" not in s.get("environment", {}) for s in services.values())


def test_grafana_refuses_to_start_without_an_admin_password(tmp_path):
    grafana = compose()["services"]["grafana"]
    shell, flag, script = grafana["entrypoint"]
    script = script.replace("$$", "$")  # Compose's escape for a literal $
    assert shell == "/bin/sh" and flag == "-c" and script.endswith("exec /run.sh")
    # the real check, run by a real shell; /run.sh (Grafana's own entrypoint) is a stand-in here
    (tmp_path / "run.sh").write_text("#!/bin/sh\necho grafana started\n")
    (tmp_path / "run.sh").chmod(0o755)
    runnable = script.replace("/run.sh", str(tmp_path / "run.sh"))
    env = {"PATH": os.environ["PATH"]}
    refused = subprocess.run(["/bin/sh", "-c", runnable], env=env, capture_output=True, text=True, timeout=10)
    assert refused.returncode == 1 and "refusing to start without an admin password" in refused.stderr
    for password in ({"GF_SECURITY_ADMIN_PASSWORD": "s3cret"}, {"GF_SECURITY_ADMIN_PASSWORD__FILE": "/run/secrets/gf"}):
        started = subprocess.run(["/bin/sh", "-c", runnable], env=env | password, capture_output=True, text=True, timeout=10)
        assert started.returncode == 0 and started.stdout == "grafana started\n", started.stderr
    empty = subprocess.run(["/bin/sh", "-c", runnable], env=env | {"GF_SECURITY_ADMIN_PASSWORD": ""}, capture_output=True,
                           text=True, timeout=10)
    assert empty.returncode == 1  # GRAFANA_ADMIN_PASSWORD unset gives the variable an empty value


def test_compose_signed_models_keys_are_mounted_not_written():
    """The worker trusts public keys from a read-only folder and refuses unsigned models unless told; the trainer's
    private key comes as a docker secret from a file named by the environment (deploy/compose.signing.yml)."""
    services = compose()["services"]
    worker = services["worker"]
    assert "./deploy/trusted-keys:/trusted-keys:ro" in worker["volumes"]
    assert worker["environment"]["NIRSTREAM_TRUSTED_KEYS_DIR"] == "/trusted-keys"
    assert str(worker["environment"]["NIRSTREAM_ALLOW_UNSIGNED"]).lower() == "false"  # compose() applies the default
    signing = yaml.safe_load((DEPLOY / "compose.signing.yml").read_text())
    assert signing["secrets"]["nirstream_signing_key"]["file"].startswith("${NIRSTREAM_SIGNING_KEY:?")
    for name in ("trainer", "train"):
        assert signing["services"][name]["secrets"] == ["nirstream_signing_key"]
        assert signing["services"][name]["environment"]["NIRSTREAM_SIGNING_KEY_FILE"] == "/run/secrets/nirstream_signing_key"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert not [f for f in tracked if (REPO / f).is_file() and b"PRIVATE KEY-----" in (REPO / f).read_bytes()[:1 << 20]
                and not f.endswith((".py", ".md"))], "a private key is committed"


def test_compose_mounts_match_the_prometheus_and_alertmanager_configs():
    services = compose()["services"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in services["alertmanager"]["volumes"]
    prometheus = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    worker_job = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "nirstream-worker")
    assert worker_job["dns_sd_configs"][0]["names"] == ["worker"] and worker_job["dns_sd_configs"][0]["port"] == 6066
    assert services["worker"]["environment"]["NIRSTREAM_WEB_PORT"] == 6066
    opcua_job = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "nirstream-opcua")
    assert opcua_job["dns_sd_configs"][0]["names"] == ["opcua", "opcua-trial"]
    for name in ("opcua", "opcua-trial"):
        assert services[name]["environment"]["NIRSTREAM_OPCUA__WEB_PORT"] == opcua_job["dns_sd_configs"][0]["port"]
    trainer_job = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "nirstream-trainer")
    assert trainer_job["static_configs"][0]["targets"] == [f"trainer:{services['trainer']['environment']['NIRSTREAM_WEB_PORT']}"]


def _topics_the_script_creates(tmp_path, env: dict[str, str]) -> dict[str, tuple[int, int, dict[str, str]]]:
    """Run create-topics.sh with a kafka-topics.sh that records its arguments: topic -> (partitions, replicas, configs)."""
    log = tmp_path / "calls.txt"
    tmp_path.mkdir()
    fake = tmp_path / "kafka-topics.sh"
    fake.write_text(f'#!/bin/bash\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    subprocess.run(["bash", DEPLOY / "kafka" / "create-topics.sh"], check=True, capture_output=True,
                   env={"PATH": os.environ["PATH"], "KAFKA_TOPICS_BIN": str(fake), **env})
    created = {}
    for line in log.read_text().splitlines():
        if "--create" not in line:
            continue
        words = line.split()
        value = lambda flag: words[words.index(flag) + 1]  # noqa: E731
        configs = dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--config")
        created[value("--topic")] = (int(value("--partitions")), int(value("--replication-factor")), configs)
    return created


def test_topic_script_creates_the_topics_the_worker_would_with_the_same_configs(tmp_path):
    from nirstream.core.settings import TopicNames
    from nirstream.stream.settings import Settings
    from nirstream.stream.topics import topic_configs, topic_plan

    assert topic_plan(Settings()) == TOPICS  # what the worker creates when the topics are missing
    renamed = {f"NIRSTREAM_TOPICS__{name.upper()}": f"plant7.{name}" for name in TopicNames.model_fields}
    for env in ({}, {**renamed, "NIRSTREAM_REPLICATION_FACTOR": "5", "NIRSTREAM_MIN_INSYNC_REPLICAS": "3",
                     "NIRSTREAM_SPECTRA_PARTITIONS": "6", "NIRSTREAM_JOIN_RETENTION_SECONDS": "600"}):
        settings = Settings(embedded_broker=False,  # the script is for Kafka (the tests' own broker sets the variable)
                            **{k.removeprefix("NIRSTREAM_").lower(): v for k, v in env.items() if "TOPICS" not in k},
                            topics=TopicNames(**{k.split("__")[1].lower(): v for k, v in env.items() if "TOPICS" in k}))
        durability = settings.durability()
        assert (durability.replication_factor, durability.min_insync_replicas) == ((5, 3) if env else (3, 2))
        configs = topic_configs(settings)
        expected = {name: (partitions, durability.replication_factor, configs[name])
                    for name, partitions in topic_plan(settings).items()}
        assert _topics_the_script_creates(tmp_path / str(len(env)), env) == expected
    refused = subprocess.run(["bash", DEPLOY / "kafka" / "create-topics.sh"], capture_output=True, text=True,
                             env={"PATH": os.environ["PATH"], "KAFKA_TOPICS_BIN": "/bin/true",
                                  "NIRSTREAM_REPLICATION_FACTOR": "1", "NIRSTREAM_MIN_INSYNC_REPLICAS": "2"})
    assert refused.returncode == 2 and "above the replication factor" in refused.stderr
    assert "./deploy/kafka/create-topics.sh:/create-topics.sh:ro" in compose()["services"]["kafka-init"]["volumes"]


def test_embedded_broker_topics_have_one_replica_and_no_idempotent_producers():
    from nirstream.stream.settings import Settings

    embedded = Settings(embedded_broker=True)
    assert embedded.durability() == type(embedded.durability())(1, 1, False)
    assert embedded.kafka_producer_options()["enable_idempotence"] is False
    kafka = Settings(embedded_broker=False)
    assert kafka.kafka_producer_options()["enable_idempotence"] is True and kafka.kafka_producer_options()["acks"] == "all"
    assert Settings(embedded_broker=True, replication_factor=2).durability().replication_factor == 2  # explicit wins


def test_dockerfile_is_non_root_with_a_serving_default_and_training_and_gpu_targets():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", text, re.M)
    assert stages[-1] == "serving" and {"training", "gpu"} <= set(stages)  # the last stage is the default target
    body = {stage: [line for line in text.split(f"AS {stage}\n", 1)[1].split("\nFROM ", 1)[0].splitlines()
                    if line.strip() and not line.startswith("#")] for stage in stages}
    for stage in ("serving", "training", "gpu"):
        assert body[stage][-1] == "USER nirstream", stage
    serving = "\n".join(body["base"] + body["serving"])
    assert "requirements-training" not in serving and "tensorflow" not in serving.lower()  # the slim image
    assert "HEALTHCHECK" in text and "tensorflow[and-cuda]" in text


def test_compose_runs_serving_services_on_the_serving_image_and_training_on_the_training_image():
    services = compose()["services"]
    for name in ("worker", "opcua", "opcua-trial"):
        assert services[name]["build"]["target"] == "serving" and services[name]["image"] == "nirstream:serving", name
    for name in ("trainer", "train", "simulator"):
        assert services[name]["build"]["target"] == "training" and services[name]["image"] == "nirstream:training", name


def test_dockerfile_copies_every_package_the_install_includes():
    # `pip install .` in the image installs only the folders copied before it: a missing one breaks the entry point
    text = (DEPLOY / "Dockerfile").read_text()
    folders = set(tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    assert folders == {"nirstream", "stream", "trainer", "devtools"}
    for folder in folders:
        assert re.search(rf"^COPY {folder} \./{folder}$", text, re.M), f"Dockerfile does not copy {folder}/"


def locked(name: str) -> dict[str, str]:
    """The pins of ``deploy/<name>``; every entry ("name==version \\" and its "--hash=sha256:..." lines) has a hash."""
    from packaging.utils import canonicalize_name

    lock = (DEPLOY / name).read_text()
    entries = [e for e in re.split(r"\n(?=[A-Za-z0-9])", re.sub(r"^#.*\n", "", lock, flags=re.M).strip()) if e]
    pinned = {}
    for entry in entries:
        package, version = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)", entry).groups()
        assert re.findall(r"--hash=sha256:[0-9a-f]{64}", entry), f"{package} has no hash"
        pinned[canonicalize_name(package)] = version
    assert len(pinned) == len(entries)  # no name twice
    return pinned


@pytest.mark.parametrize(("lock", "extras"), [("requirements-serving.lock", ()),
                                              ("requirements-training.lock", ("train",))])
def test_each_image_installs_from_a_lock_file_with_a_hash_for_every_package(lock, extras):
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pinned = locked(lock)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    wanted += [line for extra in extras for line in project["project"]["optional-dependencies"][extra]]
    for requirement in map(Requirement, wanted):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} (pyproject.toml) is not in deploy/{lock}: regenerate it"
        assert requirement.specifier.contains(pinned[name], prereleases=True), f"{name}=={pinned[name]} violates {requirement}"
    if not extras:
        assert not {"tensorflow-cpu", "keras", "scikit-learn", "scipy", "pandas"} & set(pinned)
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"pip install --require-hashes --no-deps -r {lock}" in dockerfile
    assert re.search(r"pip install --no-deps --no-build-isolation --no-index \.", dockerfile)
    assert "pip install .\n" not in dockerfile and "pip install . " not in dockerfile


def test_the_training_lock_pins_the_serving_packages_as_the_serving_lock_does():
    # the training image installs its lock over the serving image's packages, without resolving again
    serving, training = locked("requirements-serving.lock"), locked("requirements-training.lock")
    assert {name: training.get(name) for name in serving} == serving
