"""Structural checks of Dockerfile and docker-compose.yml (no Docker engine needed)."""
import re
import sys

import yaml

problems = []

dockerfile = open("Dockerfile").read()
stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.M | re.I)
if len(stages) < 2:
    problems.append("Dockerfile: expected a multi-stage build (build, then run)")
else:
    if "swift" not in stages[0][0]:
        problems.append("Dockerfile: the first stage should build with the Swift toolchain image")
    if "slim" not in stages[-1][0]:
        problems.append("Dockerfile: the run stage should be a slim Debian image")
run_stage = dockerfile[dockerfile.rfind("FROM "):]
for library in ["libpq5", "librabbitmq4", "libcurl4", "ca-certificates", "tzdata"]:
    if library not in run_stage:
        problems.append(f"Dockerfile: the run stage does not install {library}")
user = re.findall(r"^USER\s+(\S+)", run_stage, re.M)
if not user or user[-1] in ("root", "0"):
    problems.append("Dockerfile: the run stage must switch to a non-root USER")
for program in ["scheduler-web", "scheduler-beat", "scheduler-worker", "scheduler-ctl"]:
    if program not in dockerfile:
        problems.append(f"Dockerfile: {program} is not built into the image")
if "migrations" not in run_stage:
    problems.append("Dockerfile: the migrations are not copied into the image")

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
plugins = open("rabbitmq/enabled_plugins").read()
for plugin in ["rabbitmq_management", "rabbitmq_prometheus"]:
    if plugin not in plugins:
        problems.append(f"rabbitmq/enabled_plugins: {plugin} is not enabled")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("container files: ok")
