"""Structural checks of Dockerfile and docker-compose.yml (no Docker engine needed)."""
import re
import sys

import yaml

problems = []

def instructions(path):
    """The Dockerfile's instructions as (KEYWORD, arguments), comments dropped and
    continuation lines joined: a check reads what Docker would run, never a comment."""
    result, current = [], ""
    for raw in open(path).read().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, arguments = current.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        current = ""
    return result


steps = instructions("Dockerfile")
stage_starts = [index for index, (keyword, _) in enumerate(steps) if keyword == "FROM"]
stages = [re.match(r"(\S+)(?:\s+AS\s+(\S+))?", steps[index][1], re.I).groups() for index in stage_starts]
if len(stages) < 2:
    problems.append("Dockerfile: expected a multi-stage build (build, then run)")
else:
    if "swift" not in stages[0][0]:
        problems.append("Dockerfile: the first stage should build with the Swift toolchain image")
    if "slim" not in stages[-1][0]:
        problems.append("Dockerfile: the run stage should be a slim Debian image")
run_steps = steps[stage_starts[-1]:] if stage_starts else []
build_steps = steps[:stage_starts[-1]] if stage_starts else steps
installed = " ".join(arguments for keyword, arguments in run_steps if keyword == "RUN" and "apt-get install" in arguments)
for library in ["libpq5", "librabbitmq4", "libcurl4", "ca-certificates", "tzdata"]:
    if not re.search(rf"(^|\s){re.escape(library)}(\s|$)", installed):
        problems.append(f"Dockerfile: the run stage does not install {library}")
user = [arguments for keyword, arguments in run_steps if keyword == "USER"]
if not user or user[-1].split(":")[0] in ("root", "0"):
    problems.append("Dockerfile: the run stage must switch to a non-root USER")
copied = " ".join(arguments for keyword, arguments in run_steps if keyword == "COPY")
built = " ".join(arguments for keyword, arguments in build_steps if keyword == "RUN")
for program in ["scheduler-web", "scheduler-beat", "scheduler-worker", "scheduler-ctl"]:
    if program not in built or "swift build" not in built:
        problems.append(f"Dockerfile: {program} is not built into the image")
    if program not in copied and "/bin" not in copied:
        problems.append(f"Dockerfile: {program} is not copied into the run stage")
if ".resources" not in built:
    problems.append("Dockerfile: the programs' resource bundles (*.resources) are not copied beside them")
if "migrations" not in copied:
    problems.append("Dockerfile: the migrations are not copied into the image")
if not any(keyword in ("CMD", "ENTRYPOINT") for keyword, _ in run_steps):
    problems.append("Dockerfile: the run stage has no CMD or ENTRYPOINT")

compose = yaml.safe_load(open("docker-compose.yml"))
services = compose.get("services", {})
for name in ["postgres", "rabbitmq", "migrate", "web", "beat", "worker"]:
    if name not in services:
        problems.append(f"docker-compose.yml: no {name} service")
commands = {name: " ".join(service.get("command", [])) for name, service in services.items()}
expected = {"migrate": "scheduler-ctl migrate", "web": "scheduler-web", "beat": "scheduler-beat", "worker": "scheduler-worker"}
for name, command in expected.items():
    if commands.get(name) != command:
        problems.append(f"docker-compose.yml: {name} should run '{command}', runs '{commands.get(name)}'")
if services.get("worker", {}).get("deploy", {}).get("replicas") != 2:
    problems.append("docker-compose.yml: run two workers (deploy.replicas: 2)")
for name in ["web", "beat", "worker"]:
    service = services.get(name, {})
    environment = service.get("environment", {})
    for variable in ["SCHEDULER_DATABASE", "BROKER_URL", "SECRET_KEY"]:
        if variable not in environment:
            problems.append(f"docker-compose.yml: {name} lacks {variable}")
    depends = service.get("depends_on", {})
    if depends.get("migrate", {}).get("condition") != "service_completed_successfully":
        problems.append(f"docker-compose.yml: {name} should wait for migrate to finish")
rabbit_mounts = " ".join(services.get("rabbitmq", {}).get("volumes", []))
for path in ["rabbitmq.conf", "definitions.json", "enabled_plugins"]:
    if path not in rabbit_mounts:
        problems.append(f"docker-compose.yml: rabbitmq does not mount rabbitmq/{path}")
# No fixed passwords: each comes from the environment, required.
raw_compose = open("docker-compose.yml").read()
for service, variable in [("postgres", "POSTGRES_PASSWORD"), ("rabbitmq", "RABBITMQ_DEFAULT_PASS")]:
    value = str(services.get(service, {}).get("environment", {}).get(variable, ""))
    if not value.startswith("${") or ":?" not in value:
        problems.append(f"docker-compose.yml: {service}'s {variable} must come from the environment (${{NAME:?...}}), not '{value}'")
for name, service in services.items():
    for variable, value in (service.get("environment") or {}).items():
        if variable in ("SCHEDULER_DATABASE", "BROKER_URL") and "${" not in str(value):
            problems.append(f"docker-compose.yml: {name}'s {variable} has a fixed password")
# Published ports listen on 127.0.0.1 unless the operator says otherwise.
for name, service in services.items():
    for port in service.get("ports", []):
        if not (str(port).startswith("127.0.0.1:") or str(port).startswith("${") and ":-127.0.0.1}" in str(port)):
            problems.append(f"docker-compose.yml: {name} publishes '{port}' on every address (bind it to 127.0.0.1)")
if "scheduler:scheduler@" in raw_compose:
    problems.append("docker-compose.yml: a fixed password in a connection URL")
# The cluster profile: two more nodes joining `rabbitmq` through rabbitmq/cluster.conf.
cluster_conf = open("rabbitmq/cluster.conf").read()
for name in ["rabbitmq", "rabbitmq-2", "rabbitmq-3"]:
    service = services.get(name, {})
    if service.get("hostname") != name:
        problems.append(f"docker-compose.yml: {name} needs hostname {name} (its node is rabbit@{name})")
    if f"rabbit@{name}" not in cluster_conf:
        problems.append(f"rabbitmq/cluster.conf: rabbit@{name} is not among the cluster's nodes")
    if "RABBITMQ_ERLANG_COOKIE" not in (service.get("environment") or {}):
        problems.append(f"docker-compose.yml: {name} lacks the shared RABBITMQ_ERLANG_COOKIE")
for name in ["rabbitmq-2", "rabbitmq-3"]:
    service = services.get(name, {})
    if service.get("profiles") != ["cluster"]:
        problems.append(f"docker-compose.yml: {name} belongs to the cluster profile")
    if "cluster.conf" not in " ".join(service.get("volumes", [])):
        problems.append(f"docker-compose.yml: {name} does not mount rabbitmq/cluster.conf")
# A supported RabbitMQ (4.x), and the topology's policies imported before the programs start.
for name in ["rabbitmq", "rabbitmq-definitions"]:
    image = str(services.get(name, {}).get("image", ""))
    if not re.match(r"rabbitmq:4\.", image):
        problems.append(f"docker-compose.yml: {name} should run a RabbitMQ 4.x image, runs '{image}'")
if "import_definitions" not in " ".join(services.get("rabbitmq-definitions", {}).get("command", [])):
    problems.append("docker-compose.yml: rabbitmq-definitions should import rabbitmq/definitions.json")
for name in ["web", "beat", "worker"]:
    depends = services.get(name, {}).get("depends_on", {})
    if depends.get("rabbitmq-definitions", {}).get("condition") != "service_completed_successfully":
        problems.append(f"docker-compose.yml: {name} should wait for the definitions to be imported")
plugins = open("rabbitmq/enabled_plugins").read()
for plugin in ["rabbitmq_management", "rabbitmq_prometheus"]:
    if plugin not in plugins:
        problems.append(f"rabbitmq/enabled_plugins: {plugin} is not enabled")

# Probes: the image checks readiness itself (no curl in it), and compose knows each
# program's probe and lets it drain before killing it.
health = [arguments for keyword, arguments in run_steps if keyword == "HEALTHCHECK"]
if not health or "scheduler-ctl" not in health[-1] or "probe" not in health[-1]:
    problems.append("Dockerfile: the run stage needs a HEALTHCHECK running scheduler-ctl probe")


def seconds(text):
    match = re.fullmatch(r"(\d+)(s|m)", str(text))
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1) if match else 0


for name, (port, least) in {"web": (8000, 15), "beat": (9101, 15), "worker": (9102, 45)}.items():
    service = services.get(name, {})
    test = " ".join(service.get("healthcheck", {}).get("test", []))
    if "scheduler-ctl probe" not in test or f":{port}/readyz" not in test:
        problems.append(f"docker-compose.yml: {name} needs a healthcheck probing its /readyz on port {port}")
    if seconds(service.get("stop_grace_period", "")) <= least:
        problems.append(f"docker-compose.yml: {name}'s stop_grace_period must exceed its drain ({least} s)")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("container files: ok")
