"""Checks of deploy/: the Kubernetes manifests say what running the service needs (beside
kubernetes-validate's schema check), and every Grafana panel's query is PromQL (written
out as recording rules for `promtool check rules`, given as the first argument)."""
import json
import sys

import yaml

problems = []
root = "deploy/kubernetes"
kustomization = yaml.safe_load(open(f"{root}/kustomization.yaml"))
documents = []
for name in kustomization["resources"]:
    documents += [(name, document) for document in yaml.safe_load_all(open(f"{root}/{name}")) if document]
kinds = {(document["kind"], document["metadata"]["name"]) for _, document in documents}
# The drain each program needs before a SIGTERM becomes a SIGKILL, in seconds.
drains = {"web": 15, "beat": 15, "worker": 45}
ports = {"web": 8000, "beat": 9101, "worker": 9102}
for component, drain in drains.items():
    name = f"seed-scheduler-{component}"
    deployment = next((d for _, d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == name), None)
    if deployment is None:
        problems.append(f"{root}: no Deployment {name}")
        continue
    spec = deployment["spec"]["template"]["spec"]
    if spec.get("terminationGracePeriodSeconds", 30) <= drain:
        problems.append(f"{name}: terminationGracePeriodSeconds must exceed the drain ({drain} s)")
    container = spec["containers"][0]
    if container.get("command") != [f"scheduler-{component}"]:
        problems.append(f"{name}: runs {container.get('command')}, not scheduler-{component}")
    for probe, path in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")]:
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") != ports[component]:
            problems.append(f"{name}: {probe} should GET {path} on port {ports[component]}")
    resources = container.get("resources", {})
    if not resources.get("requests") or not resources.get("limits", {}).get("memory"):
        problems.append(f"{name}: set resource requests and a memory limit")
    if not spec.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"{name}: run as non-root")
    sources = {next(iter(source.values()))["name"] for source in container.get("envFrom", [])}
    if not {"seed-scheduler"} <= sources or len(container.get("envFrom", [])) < 2:
        problems.append(f"{name}: takes its settings from the seed-scheduler ConfigMap and Secret")
    if ("PodDisruptionBudget", name) not in kinds:
        problems.append(f"{name}: no PodDisruptionBudget")
job = next((d for _, d in documents if d["kind"] == "Job"), None)
if job is None or job["spec"]["template"]["spec"]["containers"][0].get("command") != ["scheduler-ctl", "migrate"]:
    problems.append(f"{root}: the migration runs as a Job (scheduler-ctl migrate)")
config = next((d for _, d in documents if d["kind"] == "ConfigMap"), {"data": {}})
secret = next((d for _, d in documents if d["kind"] == "Secret"), {"stringData": {}})
for variable in ["SCHEDULER_DATABASE", "BROKER_URL", "SECRET_KEY"]:
    if variable not in secret.get("stringData", {}):
        problems.append(f"{root}: the Secret lacks {variable}")
    if variable in config.get("data", {}):
        problems.append(f"{root}: {variable} belongs in the Secret, not the ConfigMap")

dashboard = json.load(open("deploy/grafana/seed-scheduler.json"))
rules = [
    {"record": f"dashboard:panel_{panel['id']}_{target['refId'].lower()}", "expr": target["expr"]}
    for panel in dashboard["panels"] for target in panel["targets"]
]
if not rules:
    problems.append("deploy/grafana: the dashboard has no queries")
with open(sys.argv[1], "w") as out:
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, out)

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"deploy files: ok ({len(documents)} Kubernetes objects, {len(rules)} dashboard queries)")
