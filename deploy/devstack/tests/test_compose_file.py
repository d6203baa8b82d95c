"""compose.yaml and the configurations it mounts, checked without a Docker engine.

Against the Compose specification (its JSON schema, as vendored by check-jsonschema with its
licence), against the code (every variable a service is given is read by its settings, every
command exists in its image) and against the tools that will read the files (``nginx -t``,
``promtool check config``), so a configuration error fails here and not at deploy time.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from importlib import resources
from importlib.metadata import distribution, entry_points
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic_settings import BaseSettings

from agent.settings import AgentSettings
from approver.settings import ApproverSettings
from auditor.settings import AuditorSettings
from devstack import nginx
from devstack.compose_check import InterpolationError, interpolate, load, settings_read, variables
from devstack.stack import REPO
from gateway.settings import GatewaySettings
from retriever.settings import RetrieverSettings

pytestmark = pytest.mark.unit

COMPOSE = REPO / "compose.yaml"
DEPLOY = REPO / "deploy"
SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "retriever": RetrieverSettings,
    "agent": AgentSettings,
    "approver": ApproverSettings,
    "auditor": AuditorSettings,
}
#: What an operator's .env holds (values made up for the test; see deploy/compose.env.example).
SECRETS = {
    "POSTGRES_PASSWORD": "pg-test-password",
    "REDIS_PASSWORD": "redis-test-password",
    "AUTH_JWT_SECRET": "a-test-secret-of-at-least-thirty-two-bytes",
    "QDRANT_API_KEY": "qdrant-test-key",
    "GRAFANA_ADMIN_PASSWORD": "grafana-test-password",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE, SECRETS)


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _image_service(service: dict[str, Any]) -> str | None:
    """The platform service whose image a compose service runs (build arg SERVICE)."""
    build = service.get("build")
    if not build:
        return None
    assert build["dockerfile"] == "deploy/Dockerfile"
    return str(build["args"]["SERVICE"])


# ---------------------------------------------------------------------- the specification
def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose, schema, cls=jsonschema.Draft202012Validator)


def test_the_schema_check_catches_a_mistake(compose: dict[str, Any]) -> None:
    schema_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["gateway"]["deploy"] = {"replica": 3}  # misspelt
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


# ---------------------------------------------------------------------- secrets
def test_every_secret_is_required_and_none_is_written_in_the_file() -> None:
    text = COMPOSE.read_text()
    found = variables(COMPOSE)
    for name in SECRETS:
        assert found.get(name) == {":?"}, f"{name} must be ${{{name}:?...}} (required, no default)"
    assert not re.search(r"(PASSWORD|SECRET|API_KEY)\w*:\s+['\"]?[A-Za-z0-9]", text), (
        "a literal secret in compose.yaml"
    )


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_a_missing_secret_stops_compose_naming_it(missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(InterpolationError, match=missing):
        load(COMPOSE, env)


def test_a_service_refuses_to_start_in_production_without_its_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLATFORM_ENV", "production")
    monkeypatch.delenv("AUTH_JWT_SECRET", raising=False)
    with pytest.raises(ValueError, match="AUTH_JWT_SECRET"):
        GatewaySettings()


def test_interpolation_follows_compose() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("$$A ${A} $A ${B:-x} ${EMPTY:-y} ${EMPTY-z}", env) == "$A 1 1 x y "
    with pytest.raises(InterpolationError, match="EMPTY"):
        interpolate("${EMPTY:?give EMPTY}", env)


# ---------------------------------------------------------------------- the code
def test_every_variable_a_service_is_given_is_read_by_its_settings(
    compose: dict[str, Any],
) -> None:
    unread = {}
    for name, service in _services(compose).items():
        image = _image_service(service)
        if image is None:
            continue
        settings = SETTINGS[image]
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"{name}: environment as a mapping"
        missing = [
            v for v in environment if v != "REDIS_URL" and not settings_read(settings, str(v))
        ]
        if missing:
            unread[name] = missing
    assert not unread, f"variables no settings read (a typo, or a removed field): {unread}"


def test_redis_url_is_read_by_the_settings() -> None:
    if not any(settings_read(s, "REDIS_URL") for s in SETTINGS.values()):
        pytest.skip(
            "no settings block reads REDIS_URL yet: compose and `make up` export it for the"
            " Redis-backed shared caches (another branch); this check turns on when one does"
        )
    assert all(settings_read(s, "REDIS_URL") for s in SETTINGS.values())


def test_the_settings_check_refuses_unknown_variables() -> None:
    assert settings_read(GatewaySettings, "GATEWAY_HTTP__PORT")
    assert settings_read(GatewaySettings, "KAFKA_MIN_INSYNC_REPLICAS")
    assert settings_read(RetrieverSettings, "RETRIEVER_INDEX__QDRANT_URL")
    assert settings_read(ApproverSettings, "APPROVER_BACKGROUND")
    assert settings_read(ApproverSettings, "PLATFORM_ENV")
    assert not settings_read(GatewaySettings, "GATEWAY_HTTP__PROT")
    assert not settings_read(GatewaySettings, "KAFKA_ACK")
    assert not settings_read(GatewaySettings, "RETRIEVER_INDEX__QDRANT_URL")


def test_a_shared_blocks_own_alias_counts_as_read() -> None:
    """How a cache block reading REDIS_URL (by alias, under its CACHE_ prefix) is seen."""
    from pydantic import AliasChoices, Field
    from pydantic_settings import SettingsConfigDict

    from shared.settings import ServiceSettings

    class Caches(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="CACHE_", extra="forbid")
        redis_url: str | None = Field(
            default=None, validation_alias=AliasChoices("REDIS_URL", "CACHE_REDIS_URL")
        )

    class WithCaches(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="X_", env_nested_delimiter="__")
        caches: Caches = Field(default_factory=Caches)

    assert settings_read(WithCaches, "REDIS_URL")
    assert settings_read(WithCaches, "CACHE_REDIS_URL")
    assert not settings_read(WithCaches, "REDIS_URI")


def test_the_production_environment_builds_every_services_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's environment is valid, not only known: the values parse and pass the
    production checks (idempotent producer, real secrets, replicas consistent)."""
    for name, service in _services(compose).items():
        image = _image_service(service)
        if image is None:
            continue
        with monkeypatch.context() as m:
            for key, value in (service.get("environment") or {}).items():
                if key != "REDIS_URL":
                    m.setenv(str(key), str(value))
            settings: Any = SETTINGS[image]()
            assert settings.environment.value == "production", name
            assert settings.kafka.enable_idempotence and settings.kafka.acks == "all", name
            assert settings.kafka.replication_factor == 3, name
            assert settings.kafka.min_insync_replicas == 2, name


def test_every_command_exists_in_its_image(compose: dict[str, Any]) -> None:
    scripts = {e.name: e for e in entry_points(group="console_scripts")}
    for name, service in _services(compose).items():
        image = _image_service(service)
        if image is None:
            continue
        package = f"support-{image}"
        in_image = {package, *_workspace_requirements(package)}
        command = service.get("command") or ["python", "-m", image]  # the Dockerfile's CMD
        if command[:2] == ["python", "-m"]:
            module = command[2]
            spec = importlib.util.find_spec(module)
            assert spec is not None, f"{name}: no module {module}"
            assert module.split(".")[0] in {p.removeprefix("support-") for p in in_image}, (
                f"{name}: {module} is not in the {image} image"
            )
        else:
            entry = scripts.get(command[0])
            assert entry is not None, f"{name}: no entry point {command[0]}"
            assert entry.dist is not None and entry.dist.name in in_image, (
                f"{name}: {command[0]} comes from {entry.dist}, not in the {image} image"
            )
            entry.load()


def _workspace_requirements(package: str) -> set[str]:
    requires = distribution(package).requires or []
    return {r.split(">")[0].split("=")[0].strip() for r in requires if r.startswith("support-")}


def test_the_dockerfile_is_multi_stage_non_root_and_pinned() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert len(stages) >= 2, "multi-stage"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, flags=re.M)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base[1]), "pinned base"
    assert re.search(r"^FROM ghcr.io/astral-sh/uv:\d+\.\d+\.\d+ AS uv", text, flags=re.M)
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0"), "runs as an unprivileged user"
    assert "COPY --chown=app:app deploy/knowledge-base /srv/knowledge-base" in text


def test_the_ingest_job_reads_the_knowledge_base_in_the_image(compose: dict[str, Any]) -> None:
    ingest = _services(compose)["ingest"]
    assert ingest["command"][:2] == ["retriever", "ingest"]
    assert ingest["command"][2] == "/srv/knowledge-base"
    retriever = _services(compose)["retriever"]
    assert retriever["depends_on"]["ingest"]["condition"] == "service_completed_successfully"
    assert (
        ingest["environment"]["RETRIEVER_INDEX__QDRANT_URL"]
        == retriever["environment"]["RETRIEVER_INDEX__QDRANT_URL"]
    )


# ---------------------------------------------------------------------- shape
def test_the_shape_the_issue_asks_for(compose: dict[str, Any]) -> None:
    services = _services(compose)
    replicas = {n: (s.get("deploy") or {}).get("replicas", 1) for n, s in services.items()}
    assert replicas["gateway"] == 3
    for name in ("retriever", "agent", "approver", "executor"):
        assert replicas[name] == 2, name
    assert services["executor"]["command"] == ["python", "-m", "approver.worker"]
    assert services["approver"]["environment"]["APPROVER_BACKGROUND"] == "false"
    assert services["nginx"]["image"].startswith("nginx:")
    for state in ("kafka-1", "postgres", "redis", "qdrant", "prometheus", "grafana"):
        volumes = services[state]["volumes"]
        named = [v.split(":")[0] for v in volumes if not v.startswith(".")]
        assert named and all(n in compose["volumes"] for n in named), state


def test_no_host_port_is_published_twice_and_no_replicated_service_publishes_one(
    compose: dict[str, Any],
) -> None:
    seen: dict[str, str] = {}
    for name, service in _services(compose).items():
        ports = service.get("ports") or []
        if ports:
            assert (service.get("deploy") or {}).get("replicas", 1) == 1, (
                f"{name} has replicas: they cannot share one host port (nginx publishes)"
            )
        for port in ports:
            host = str(port).rsplit(":", 1)[0]
            assert host not in seen, f"host port {host}: {seen.get(host)} and {name}"
            seen[host] = name
    assert seen, "something is published"


def test_every_service_with_dependants_has_a_health_check(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        for target, condition in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on a missing {target}"
            wanted = condition["condition"]
            check = services[target].get("healthcheck") or {}
            if wanted == "service_healthy":
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {target} to be healthy, which has no health check"
                )
            else:
                assert wanted == "service_completed_successfully", f"{name} -> {target}"
                assert "restart" not in services[target], f"{target} is a one-shot job"


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts a missing {source}"


# ---------------------------------------------------------------------- nginx
def _nginx_required() -> None:
    if nginx.binary() is None:
        pytest.skip("nginx is not installed (deploy/apt-packages.txt; apt-get install nginx)")


def test_the_committed_nginx_config_is_the_rendered_one() -> None:
    committed = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert committed == nginx.render(nginx.compose_config()), (
        "deploy/nginx/nginx.conf is stale: run `uv run devstack nginx-conf`"
    )


def test_nginx_listens_where_compose_publishes(compose: dict[str, Any]) -> None:
    config = nginx.compose_config()
    published = {str(p).rsplit(":", 1)[1] for p in _services(compose)["nginx"]["ports"]}
    assert published == {config.gateway_listen, config.approver_listen}
    servers = (*config.gateway_servers, *config.approver_servers, *config.agent_servers)
    upstreams = {s.split(":")[0] for s in servers}
    assert upstreams <= set(_services(compose)), "nginx proxies to compose services"
    expose = {s.split(":")[1] for s in servers}
    assert expose == {"8000"}
    assert _services(compose)["gateway"]["environment"]["GATEWAY_HTTP__PORT"] == "8000"


def test_nginx_accepts_the_compose_configuration(tmp_path: Path) -> None:
    """`nginx -t` resolves upstream names, and `gateway` resolves only inside compose's
    network: the names are replaced by loopback, nothing else is changed."""
    _nginx_required()
    text = nginx.render(nginx.compose_config())
    text = text.replace("server gateway:", "server 127.0.0.1:")
    text = text.replace("server approver:", "server 127.0.0.1:")
    text = text.replace("server agent:", "server 127.0.0.1:")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    result = nginx.check(conf, tmp_path)
    assert result.returncode == 0, result.stderr


def test_nginx_accepts_the_local_configuration(tmp_path: Path) -> None:
    _nginx_required()
    config = nginx.NginxConfig(
        gateway_servers=["127.0.0.1:18001", "127.0.0.1:18012", "127.0.0.1:18013"],
        approver_servers=["127.0.0.1:18004"],
        agent_servers=["127.0.0.1:18003"],
        gateway_listen="127.0.0.1:18080",
        approver_listen="127.0.0.1:18081",
        runtime_dir=tmp_path,
        worker_processes="1",
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx.render(config))
    result = nginx.check(conf, tmp_path)
    assert result.returncode == 0, result.stderr
    text = conf.read_text()
    assert "client_max_body_size 64k;" in text
    events = text.split("location ~ ^/v1/requests/[^/]+/events$")[1].split("}")[0]
    assert "proxy_buffering off;" in events


def test_nginx_t_catches_a_broken_configuration(tmp_path: Path) -> None:
    _nginx_required()
    text = nginx.render(nginx.compose_config()).replace("server gateway:", "server 127.0.0.1:")
    text = text.replace("server approver:", "server 127.0.0.1:")
    text = text.replace("server agent:", "server 127.0.0.1:")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text.replace("proxy_buffering off;", "proxy_bufering off;"))
    result = nginx.check(conf, tmp_path)
    assert result.returncode != 0 and "proxy_bufering" in result.stderr


# ---------------------------------------------------------------------- Prometheus, Grafana
def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return found


def test_promtool_accepts_the_prometheus_configuration_with_the_rules(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The rule files are checked too: the glob is pointed at deploy/prometheus/rules, which
    compose mounts where the configuration looks for them."""
    promtool = _promtool()
    mounts = _services(compose)["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in mounts
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(DEPLOY / "prometheus" / "rules" / "*.yml")]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(local)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert set(SETTINGS) <= jobs, "every service is scraped"


def test_grafana_is_provisioned_from_the_mounted_folders(compose: dict[str, Any]) -> None:
    mounts = dict(v.rsplit(":", 2)[:2] for v in _services(compose)["grafana"]["volumes"])
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())
    assert [p["options"]["path"] for p in providers["providers"]] == [
        mounts["./deploy/grafana/dashboards"]
    ]
    sources = yaml.safe_load((provisioning / "datasources" / "datasources.yml").read_text())
    urls = {s["uid"]: s["url"] for s in sources["datasources"]}
    assert urls == {"prometheus": "http://prometheus:9090", "jaeger": "http://jaeger:16686"}
    for dashboard in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        json.loads(dashboard.read_text())  # each one loads


@pytest.mark.parametrize(
    ("service", "port", "path"), [("qdrant", 6333, "readyz"), ("nginx", 8080, "nginx-health")]
)
def test_the_dev_tcp_health_checks_pass_on_200_and_fail_otherwise(
    compose: dict[str, Any], tmp_path: Path, service: str, port: int, path: str
) -> None:
    """The images without curl are probed through bash's /dev/tcp: the command is run here
    against an HTTP server that answers 200 on the probed path, then 404."""
    import http.server
    import threading

    from devstack.ports import free_port

    (tmp_path / path).write_text("ok")
    local = free_port()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", local), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        test = _services(compose)[service]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "bash", "-c"]
        script = test[3].replace(f"127.0.0.1/{port}", f"127.0.0.1/{local}")
        assert script != test[3]
        ok = subprocess.run(["bash", "-c", script], timeout=10, check=False)
        assert ok.returncode == 0
        (tmp_path / path).unlink()
        missing = subprocess.run(["bash", "-c", script], timeout=10, check=False)
        assert missing.returncode != 0
    finally:
        server.shutdown()
