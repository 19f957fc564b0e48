"""deploy/ agrees with the code: Docker is not needed to check that the compose file and the systemd units only
use settings the node reads, commands the CLI has, the health path the API serves and consistent ports."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from node.cli import app
from node.config import NodeSettings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
HEALTH = "/api/v1/health"
# read by load_settings, not fields: the config file, and the directory of secret files
NOT_FIELDS = {"LIENTHONG_CONFIG", "LIENTHONG_SECRETS_DIR"}
NODES = ("axis", "agency")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _is_setting(variable: str) -> bool:
    """LIENTHONG_X or LIENTHONG_X__Y… names a field of NodeSettings (nested models followed through ``__``)."""
    if variable in NOT_FIELDS:
        return True
    if not variable.startswith("LIENTHONG_"):
        return False
    model: Any = NodeSettings
    for part in variable.removeprefix("LIENTHONG_").lower().split("__"):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        model = fields[part].annotation
        args = getattr(model, "__args__", ())  # X | None
        model = next((a for a in args if hasattr(a, "model_fields")), model)
    return True


def _check_command(argv: list[str]) -> None:
    """``argv`` (starting with ``lienthong``) names an existing command, and each --option exists on it."""
    assert Path(argv[0]).name == "lienthong", argv
    command: Any = typer.main.get_command(app)  # typer may carry its own click: duck-typed below
    rest = argv[1:]
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        assert sub is not None, f"`lienthong` has no command {rest[0]!r} ({' '.join(argv)})"
        command, rest = sub, rest[1:]
    assert not hasattr(command, "commands"), f"{' '.join(argv)}: a group, not a command"
    options = {opt for param in command.params for opt in param.opts}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in options, f"{' '.join(argv)}: no option {word}"


def test_compose_settings_are_fields_of_the_settings_model(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for variable in _environment(service):
            if variable.startswith("LIENTHONG_"):
                assert _is_setting(variable), f"service {name}: {variable} is not a setting of node/config.py"
    for name in NODES:
        targets = [s["target"] for s in compose["services"][name]["secrets"]]
        assert _environment(compose["services"][name])["LIENTHONG_SECRETS_DIR"] == "/run/secrets"
        for target in targets:
            assert _is_setting(target.upper()), f"{name}: secret file {target} sets no setting"
        assert set(targets) == {"lienthong_database_url", "lienthong_object_store"}


def test_the_settings_check_itself_knows_fields() -> None:
    assert _is_setting("LIENTHONG_PORT") and _is_setting("LIENTHONG_UPSTREAM__URL")
    assert _is_setting("LIENTHONG_DELIVERY__MAX_AGE")
    assert not _is_setting("LIENTHONG_DATABASE") and not _is_setting("LIENTHONG_UPSTREAM__URI")


def test_compose_commands_exist_in_the_cli(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        command = service.get("command")
        if isinstance(command, list) and command and command[0] == "lienthong":
            _check_command(command)
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd is not None
    _check_command(yaml.safe_load(cmd.group(1)))


def test_readme_commands_exist_in_the_cli() -> None:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    lines = " ".join(blocks).replace("\\\n", " ")
    found = 0
    for line in lines.splitlines():
        for match in re.finditer(r"(?:^|[\s(])(lienthong\s[^|>;&)]*)", line):
            words = [w for w in shlex.split(match.group(1).replace("…", ""), posix=True) if w]
            if len(words) > 1 and not words[1].startswith(("/", "-")) and "@" not in words[1]:
                _check_command(words)
                found += 1
    assert found >= 6


@pytest.fixture(scope="module")
def api_paths(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    from node.api import create_app
    from node.config import load_settings
    from node.network import write_node_key
    from node.runtime import NodeRuntime

    directory = tmp_path_factory.mktemp("axis")
    write_node_key(directory / "node-key.pem")
    config = directory / "node.yaml"
    config.write_text(
        "role: axis\nnode_id: truc\ntrace_organ_id: 000.00.00.H41\nnode_key: node-key.pem\n", encoding="utf-8"
    )
    runtime = NodeRuntime(load_settings(config))
    try:
        return {getattr(route, "path", "") for route in create_app(runtime).routes}
    finally:
        runtime.close()


def test_healthchecks_use_the_api_health_path_on_the_node_port(compose: dict[str, Any], api_paths: set[str]) -> None:
    assert HEALTH in api_paths
    for name in NODES:
        service = compose["services"][name]
        port = _environment(service)["LIENTHONG_PORT"]
        check = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}{HEALTH}" in check, f"{name}: healthcheck {check}"
        published = [str(p).split(":")[-1] for p in service["ports"]]
        assert published == [port], f"{name}: publishes {published}, listens on {port}"
        assert _environment(service)["LIENTHONG_HOST"] == "0.0.0.0"  # reachable from the other containers
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert HEALTH in dockerfile and "EXPOSE 8400" in dockerfile


def test_the_agency_reaches_the_axis_on_its_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    upstream = _environment(services["agency"])["LIENTHONG_UPSTREAM__URL"]
    assert upstream == f"http://axis:{_environment(services['axis'])['LIENTHONG_PORT']}"
    assert services["agency"]["depends_on"]["axis"]["condition"] == "service_healthy"


def test_nodes_wait_for_postgres_and_locked_buckets(compose: dict[str, Any]) -> None:
    services = compose["services"]
    init = " ".join(services["minio-init"]["command"])
    for name in NODES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["minio-init"]["condition"] == "service_completed_successfully"
        assert f"lt/lienthong-{name}" in init
        volumes = [str(v).split(":")[1] for v in services[name]["volumes"]]
        assert "/etc/lienthong" in volumes and "/var/lib/lienthong" in volumes  # keys and data survive
    assert "mb --with-lock" in init
    sql = (DEPLOY / "postgres" / "init.sql").read_text(encoding="utf-8")
    databases = {services["postgres"]["environment"]["POSTGRES_DB"], *re.findall(r"CREATE DATABASE (\w+)", sql)}
    assert databases == {f"lienthong_{n}" for n in NODES}
    script = (DEPLOY / "make-secrets.sh").read_text(encoding="utf-8")
    assert "postgres:5432/lienthong_${n}" in script and "@minio:9000/lienthong-${n}" in script
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")


def _unit(path: Path) -> list[tuple[str, str]]:
    """The key=value lines of a systemd unit (keys may repeat, so no configparser)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    return pairs


@pytest.mark.parametrize("unit", sorted(p.name for p in (DEPLOY / "systemd").glob("*.service")))
def test_systemd_units_use_real_commands_and_settings(unit: str) -> None:
    pairs = _unit(DEPLOY / "systemd" / unit)
    execs = [v for k, v in pairs if k == "ExecStart"]
    assert execs
    for line in execs:
        _check_command(shlex.split(line))
        assert "--config /etc/lienthong/%i/node.yaml" in line
    for key, value in pairs:
        if key == "Environment":
            variable = value.split("=", 1)[0]
            assert _is_setting(variable), f"{unit}: {variable} is not a setting"
        if key == "LoadCredential":
            name = value.split(":", 1)[0]
            assert _is_setting(name.upper()), f"{unit}: credential {name} sets no setting"
    assert ("Environment", "LIENTHONG_SECRETS_DIR=%d") in pairs


def test_the_timer_starts_its_service() -> None:
    timers = list((DEPLOY / "systemd").glob("*.timer"))
    assert timers
    for timer in timers:
        assert (timer.with_suffix(".service")).is_file()


def test_operating_guide_links_the_deploy_readme() -> None:
    operating = (DEPLOY.parent / "docs" / "operating.md").read_text(encoding="utf-8")
    assert "../deploy/README.md" in operating
