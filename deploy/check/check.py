#!/usr/bin/env python3
"""Offline checks of Bulwark's deployment recipes (deploy/): the Helm chart rendered without Helm,
the Compose file, the Dockerfile, their scripts, and yamllint over all of it.

Run through deploy/check/run, which finds a Python with PyYAML and yamllint, builds the renderer
(deploy/check/render, Go's standard library only) and passes it as --render. Prints one line per
check (`ok`, `FAIL` with the reasons, or `skip` with why), then `N passed, N failed`, and exits 1
when a check failed.

Nothing here starts a container or a cluster: none runs where these checks run. Each checker
returns a list of problems; the negative self-tests feed it broken input (a writable root file
system, root, a secret in an environment literal, …) and fail unless it objects, so the checks
cannot pass by checking nothing.
"""

from __future__ import annotations

import argparse
import base64
import copy
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "bulwark"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
SEED_INSTALL = DEPLOY / "container" / "bulwark-seed-install"
MAKE_SECRETS = DEPLOY / "compose" / "make-secrets"
INITDB_SQL = DEPLOY / "compose" / "initdb" / "10-bulwark-roles.sql"
CADDYFILE = DEPLOY / "compose" / "Caddyfile"
YAMLLINT = DEPLOY / ".yamllint"
DEPLOY_MD = ROOT / "docs" / "deploy.md"
CONFIG_REFERENCE = ROOT / "docs" / "config-reference.md"

# BULWARK_* variables that are not configuration keys (crates/bulwark-server/src/config/env.rs).
NON_CONFIG_ENV = {"BULWARK_CONFIG", "BULWARK_APP_ROLE", "BULWARK_MIGRATE_DATABASE_URL", "BULWARK_LOG"}
SEED_RE = re.compile(r"^bulwark-seed-v1:[0-9a-f]{64}$")
URL_WITH_PASSWORD = re.compile(r"postgres(?:ql)?://[^:/@\s]+:[^@\s]+@")

# Values the chart is rendered with: made up, recognisable wherever they leak.
SEED = "bulwark-seed-v1:" + "5e" * 32
APP_PASSWORD = "AppSentinel4d1f8b"
OWNER_PASSWORD = "OwnerSentinel9c2e7a"
APP_URL = f"postgres://bulwark_app:{APP_PASSWORD}@db.example.internal:5432/bulwark?sslmode=verify-full"
OWNER_URL = f"postgres://bulwark_owner:{OWNER_PASSWORD}@db.example.internal:5432/bulwark?sslmode=verify-full"
SECRET_TEXTS = [SEED, "5e" * 32, APP_PASSWORD, OWNER_PASSWORD, APP_URL, OWNER_URL]
MINIMAL = {
    "seed": SEED,
    "database": {"url": APP_URL, "ownerUrl": OWNER_URL},
    "http": {"trustedProxies": ["10.0.0.0/8"]},
}


# --- YAML ------------------------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (merge keys aside)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=StrictLoader)


def dig(obj: Any, *path: Any, default: Any = None) -> Any:
    for p in path:
        if isinstance(obj, dict) and p in obj:
            obj = obj[p]
        elif isinstance(obj, list) and isinstance(p, int) and -len(obj) <= p < len(obj):
            obj = obj[p]
        else:
            return default
    return obj


# --- the configuration keys ------------------------------------------------------------------


def config_keys() -> tuple[set[str], set[str], set[str]]:
    """Documented keys, the keys that are tables (`vault.pkcs11`), and the secret ones."""
    keys, tables, secrets = set(), set(), set()
    for line in CONFIG_REFERENCE.read_text().splitlines():
        m = re.match(r"^\| `([a-z0-9_.]+)` \| ([^|]*)\|", line)
        if not m:
            continue
        key, kind = m.group(1), m.group(2)
        keys.add(key)
        if kind.strip() == "table":
            tables.add(key)
        if "secret" in kind:
            secrets.add(key)
    # The PIN inside [vault.pkcs11] is a secret (config-reference.md describes it in the row).
    secrets.add("vault.pkcs11.pin")
    return keys, tables, secrets


KEYS, TABLES, SECRET_KEYS = config_keys()


def key_known(key: str) -> bool:
    return key in KEYS or any(key.startswith(t + ".") for t in TABLES)


def env_problem(name: str) -> str | None:
    """Why Bulwark would refuse BULWARK_* variable `name` (None when it is accepted)."""
    if not name.startswith("BULWARK_") or name in NON_CONFIG_ENV:
        return None
    if name.startswith(("BULWARK_TEST_", "BULWARK_BENCH_")):
        return f"`{name}` is reserved for the test harness"
    base = name[len("BULWARK_"):]
    if base.endswith("_FILE"):
        base = base[: -len("_FILE")]
    key = ".".join(base.lower().split("__"))
    if not key_known(key):
        return f"`{name}` names no configuration key (`{key}`): Bulwark refuses unknown BULWARK_* variables"
    return None


def toml_problems(text: str, where: str) -> list[str]:
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return [f"{where}: not TOML: {e}"]
    problems = []

    def walk(t: dict, prefix: str) -> None:
        for k, v in t.items():
            key = f"{prefix}{k}"
            if key in SECRET_KEYS:
                problems.append(f"{where}: secret key `{key}` in plain configuration (use a Secret and BULWARK_…_FILE)")
            if isinstance(v, dict) and not key_known(key):
                walk(v, key + ".")
            elif not key_known(key):
                problems.append(f"{where}: unknown configuration key `{key}`")
            elif isinstance(v, dict) and key in TABLES:
                walk(v, key + ".")

    walk(table, "")
    return problems


# --- Helm: values, rendering -----------------------------------------------------------------


def coalesce(base: Any, override: Any) -> Any:
    """Helm's merge of a values override into the chart's values: maps merge, everything else is
    replaced, and null deletes."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    out = copy.deepcopy(base)
    for k, v in override.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = coalesce(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class Rendered:
    def __init__(self, ok: bool, text: str, error: str, manifests: bool = True):
        self.ok, self.text, self.error = ok, text, error
        self.docs: list[dict] = []
        self.sources: list[str] = []
        if ok and manifests:
            for chunk in re.split(r"(?m)^---\n", text):
                if not chunk.strip():
                    continue
                m = re.match(r"# Source: (\S+)\n", chunk)
                self.sources.append(m.group(1) if m else "?")
                self.docs.append(yaml.load(chunk, Loader=StrictLoader))

    def kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if isinstance(d, dict) and d.get("kind") == kind]


class Renderer:
    def __init__(self, binary: str):
        self.binary = binary
        self.chart = load_yaml(CHART / "Chart.yaml")
        self.values = load_yaml(CHART / "values.yaml")

    def render(self, override: dict, notes: bool = False, upgrade: bool = False) -> Rendered:
        payload = {
            "chart_dir": str(CHART),
            "chart": {
                "Name": self.chart["name"],
                "Version": self.chart["version"],
                "AppVersion": self.chart.get("appVersion", ""),
                "Description": self.chart.get("description", ""),
                "APIVersion": self.chart["apiVersion"],
                "Type": self.chart.get("type", ""),
            },
            "release": {
                "Name": "bulwark",
                "Namespace": "bulwark",
                "Service": "Helm",
                "IsInstall": not upgrade,
                "IsUpgrade": upgrade,
                "Revision": 2 if upgrade else 1,
            },
            "values": coalesce(self.values, override),
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(payload, f)
        try:
            args = [self.binary, "-in", f.name] + (["-notes"] if notes else [])
            p = subprocess.run(args, capture_output=True, text=True, timeout=60)
        finally:
            os.unlink(f.name)
        return Rendered(p.returncode == 0, p.stdout, p.stderr.strip(), manifests=not notes)


# --- Helm: what every rendering must hold ----------------------------------------------------

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def pod_spec(doc: dict) -> dict:
    return dig(doc, "spec", "template", "spec", default={}) or {}


def pod_labels(doc: dict) -> dict:
    return dig(doc, "spec", "template", "metadata", "labels", default={}) or {}


def selects(selector: dict | None, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def env_literal_problems(where: str, env: list | None) -> list[str]:
    problems = []
    for e in env or []:
        name = e.get("name", "")
        if (p := env_problem(name)) is not None:
            problems.append(f"{where}: {p}")
        if "value" not in e:
            continue
        value = str(e["value"])
        if URL_WITH_PASSWORD.search(value) or "bulwark-seed-v1:" in value or any(s in value for s in SECRET_TEXTS):
            problems.append(f"{where}: env `{name}` holds a secret as a literal value (use a Secret: *_FILE or valueFrom)")
        base = name[len("BULWARK_"):] if name.startswith("BULWARK_") else ""
        if base and not base.endswith("_FILE") and ".".join(base.lower().split("__")) in SECRET_KEYS:
            problems.append(f"{where}: env `{name}` sets a secret key from a literal (use {name}_FILE with a Secret)")
    return problems


def container_problems(where: str, c: dict) -> list[str]:
    problems = []
    sc = c.get("securityContext") or {}
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: securityContext.readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: securityContext.allowPrivilegeEscalation is not false")
    if "ALL" not in (dig(sc, "capabilities", "drop", default=[]) or []):
        problems.append(f"{where}: securityContext.capabilities.drop does not hold ALL")
    if dig(sc, "capabilities", "add"):
        problems.append(f"{where}: securityContext.capabilities.add is set")
    if sc.get("privileged"):
        problems.append(f"{where}: privileged")
    if "runAsUser" in sc and not (isinstance(sc["runAsUser"], int) and sc["runAsUser"] > 0):
        problems.append(f"{where}: securityContext.runAsUser is root")
    res = c.get("resources") or {}
    for part, names in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
        for n in names:
            if not dig(res, part, n):
                problems.append(f"{where}: resources.{part}.{n} is not set")
    problems += env_literal_problems(where, c.get("env"))
    return problems


def workload_problems(doc: dict) -> list[str]:
    """Every Deployment and Job: the pod and container hardening, resources, no host access."""
    name = f"{doc.get('kind')} {dig(doc, 'metadata', 'name')}"
    spec = pod_spec(doc)
    problems = []
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        problems.append(f"{name}: pod securityContext.runAsNonRoot is not true")
    if not (isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0):
        problems.append(f"{name}: pod securityContext.runAsUser is not a non-zero uid")
    if dig(psc, "seccompProfile", "type") != "RuntimeDefault":
        problems.append(f"{name}: pod seccompProfile is not RuntimeDefault")
    if psc.get("fsGroup") is None:
        problems.append(f"{name}: pod securityContext.fsGroup is not set")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            problems.append(f"{name}: {host} is set")
    for v in spec.get("volumes") or []:
        if "hostPath" in v:
            problems.append(f"{name}: volume `{v.get('name')}` is a hostPath")
    if spec.get("enableServiceLinks") is not False:
        problems.append(
            f"{name}: enableServiceLinks is not false (a Service named bulwark would add BULWARK_SERVICE_HOST, "
            "which Bulwark refuses as an unknown variable)"
        )
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: automountServiceAccountToken is not false")
    containers = spec.get("containers") or []
    if not containers:
        problems.append(f"{name}: no containers")
    for c in containers + (spec.get("initContainers") or []):
        problems += container_problems(f"{name} container {c.get('name')}", c)
    return problems


def probe_problems(doc: dict) -> list[str]:
    name = f"Deployment {dig(doc, 'metadata', 'name')}"
    c = (pod_spec(doc).get("containers") or [{}])[0]
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    problems = []
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = dig(c, probe, "httpGet")
        if not get:
            problems.append(f"{name}: no {probe} httpGet")
            continue
        if get.get("path") != path:
            problems.append(f"{name}: {probe} checks {get.get('path')}, not {path}")
        if get.get("port") not in ports and get.get("port") not in ports.values():
            problems.append(f"{name}: {probe} port {get.get('port')} is not a container port")
    return problems


def hook_problems(doc: dict) -> list[str]:
    name = f"Job {dig(doc, 'metadata', 'name')}"
    hooks = set((dig(doc, "metadata", "annotations", "helm.sh/hook") or "").split(","))
    problems = []
    if not {"pre-install", "pre-upgrade"} <= hooks:
        problems.append(f"{name}: helm.sh/hook is not pre-install,pre-upgrade")
    if not dig(doc, "metadata", "annotations", "helm.sh/hook-delete-policy"):
        problems.append(f"{name}: no helm.sh/hook-delete-policy")
    spec = pod_spec(doc)
    if spec.get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append(f"{name}: restartPolicy must be Never or OnFailure")
    c = (spec.get("containers") or [{}])[0]
    script = " ".join(map(str, (c.get("command") or []) + (c.get("args") or [])))
    if not re.search(r"(^|[ /])bulwark migrate\b", script):
        problems.append(f"{name}: does not run `bulwark migrate`")
    env = {e.get("name"): e for e in c.get("env") or []}
    # The owner URL: from a file of a mounted Secret, read into the variable by the shell.
    m = re.search(r'BULWARK_MIGRATE_DATABASE_URL="\$\(cat (/[^)]+)/([^/)]+)\)"', script)
    mounts = {vm.get("mountPath"): vm.get("name") for vm in c.get("volumeMounts") or []}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    if "BULWARK_MIGRATE_DATABASE_URL" in env:
        problems.append(f"{name}: BULWARK_MIGRATE_DATABASE_URL in the environment (a Secret's value keeps its trailing newline there)")
    if not m or not dig(volumes.get(mounts.get(m.group(1)), {}), "secret", "secretName"):
        problems.append(f"{name}: BULWARK_MIGRATE_DATABASE_URL is not read from a mounted Secret")
    if not env.get("BULWARK_APP_ROLE", {}).get("value"):
        problems.append(f"{name}: BULWARK_APP_ROLE is not set")
    return problems


def manifest_problems(r: Rendered, values: dict) -> list[str]:
    """What every rendering must hold, whatever the values."""
    problems = []
    for src, d in zip(r.sources, r.docs):
        if not isinstance(d, dict):
            problems.append(f"{src}: a document that is not a mapping")
            continue
        name = dig(d, "metadata", "name")
        if not d.get("apiVersion") or not d.get("kind") or not name:
            problems.append(f"{src}: a document without apiVersion, kind and metadata.name")
            continue
        if not DNS1123.match(name) or len(name) > 63:
            problems.append(f"{src}: name `{name}` is not a DNS-1123 label")
        if d["kind"] == "ConfigMap":
            for k, text in (d.get("data") or {}).items():
                where = f"ConfigMap {name} {k}"
                if URL_WITH_PASSWORD.search(text) or "bulwark-seed-v1:" in text or any(s in text for s in SECRET_TEXTS):
                    problems.append(f"{where}: holds a secret")
                if k.endswith(".toml"):
                    problems += toml_problems(text, where)
        if d["kind"] == "Secret":
            for k, v in (d.get("data") or {}).items():
                try:
                    base64.b64decode(v, validate=True)
                except ValueError:
                    problems.append(f"Secret {name}: {k} is not base64")
    for i, line in enumerate(r.text.splitlines(), 1):
        if line.strip() and line != line.rstrip():
            problems.append(f"rendered line {i}: trailing spaces after content")
    # A secret value may appear only base64-encoded in a Secret's data.
    secret_b64 = {base64.b64encode(s.encode()).decode() for s in SECRET_TEXTS if s.startswith(("bulwark-seed", "postgres"))}
    for src, d, chunk in zip(r.sources, r.docs, [c for c in re.split(r"(?m)^---\n", r.text) if c.strip()]):
        for s in SECRET_TEXTS:
            if s in chunk:
                problems.append(f"{src}: the secret value `{s[:12]}…` appears in clear")
        if isinstance(d, dict) and d.get("kind") != "Secret":
            for b in secret_b64:
                if b in chunk:
                    problems.append(f"{src}: a secret value appears (base64) outside a Secret")

    deployments = r.kind("Deployment")
    jobs = r.kind("Job")
    if len(deployments) != 1:
        problems.append(f"{len(deployments)} Deployments, not 1")
    for d in deployments + jobs:
        problems += workload_problems(d)
    for d in deployments:
        problems += probe_problems(d)
        if not selects(dig(d, "spec", "selector", "matchLabels"), pod_labels(d)):
            problems.append("Deployment: its selector does not pick its own pods")
        if dig(d, "spec", "replicas") != values["replicaCount"]:
            problems.append(f"Deployment: replicas {dig(d, 'spec', 'replicas')} is not replicaCount {values['replicaCount']}")
    if values["migration"]["enabled"]:
        if len(jobs) != 1:
            problems.append(f"{len(jobs)} migration Jobs, not 1")
        for j in jobs:
            problems += hook_problems(j)
    elif jobs:
        problems.append("a migration Job with migration.enabled false")

    server_labels = pod_labels(deployments[0]) if deployments else {}
    containers = pod_spec(deployments[0]).get("containers", []) if deployments else []
    port_names = {p.get("name"): p.get("containerPort") for c in containers for p in c.get("ports") or []}
    services = r.kind("Service")
    for s in services:
        sname = dig(s, "metadata", "name")
        if not selects(dig(s, "spec", "selector"), server_labels):
            problems.append(f"Service {sname}: its selector picks no server pod")
        for p in dig(s, "spec", "ports", default=[]) or []:
            if p.get("targetPort") not in port_names:
                problems.append(f"Service {sname}: targetPort {p.get('targetPort')} is no container port")
    main = [s for s in services if not dig(s, "metadata", "name", default="").endswith("-metrics")]
    for s in main:
        for p in dig(s, "spec", "ports", default=[]) or []:
            if p.get("targetPort") == "metrics" or p.get("port") == values["metrics"]["port"]:
                problems.append(f"Service {dig(s, 'metadata', 'name')}: exposes the metrics port")
    for pdb in r.kind("PodDisruptionBudget"):
        if not selects(dig(pdb, "spec", "selector", "matchLabels"), server_labels):
            problems.append("PodDisruptionBudget: its selector picks no server pod")

    monitors = r.kind("ServiceMonitor")
    want_monitor = values["metrics"]["enabled"] and values["metrics"]["serviceMonitor"]["enabled"]
    if bool(monitors) != bool(want_monitor):
        problems.append(f"{len(monitors)} ServiceMonitors with metrics.serviceMonitor.enabled {want_monitor}")
    for m in monitors:
        targets = [s for s in services if selects(dig(m, "spec", "selector", "matchLabels"), dig(s, "metadata", "labels", default={}))]
        if len(targets) != 1:
            problems.append(f"ServiceMonitor: selects {len(targets)} Services, not the metrics Service alone")
        names = {p.get("name") for t in targets for p in dig(t, "spec", "ports", default=[])}
        for ep in dig(m, "spec", "endpoints", default=[]) or []:
            if ep.get("port") not in names:
                problems.append(f"ServiceMonitor: endpoint port {ep.get('port')} is not a port of the metrics Service")

    policies = r.kind("NetworkPolicy")
    if values["networkPolicy"]["enabled"]:
        server = [p for p in policies if selects(dig(p, "spec", "podSelector", "matchLabels"), server_labels)]
        if len(server) != 1:
            problems.append(f"{len(server)} NetworkPolicies pick the server pods, not 1")
        for p in server:
            problems += policy_problems(p, values)
        job_labels = [pod_labels(j) for j in jobs]
        for labels in job_labels:
            if not any(selects(dig(p, "spec", "podSelector", "matchLabels"), labels) for p in policies):
                problems.append("no NetworkPolicy picks the migration Job's pods")
    elif policies:
        problems.append("NetworkPolicies with networkPolicy.enabled false")

    # Every Secret and ConfigMap a pod reads exists, or is one the values name as made by you.
    made = {dig(d, "metadata", "name") for d in r.kind("Secret")}
    external = {values.get("existingSecret"), values["migration"].get("existingSecret"),
                values["tls"].get("existingSecret"), values["database"].get("caSecret")} - {"", None}
    external |= {dig(v, "secret", "secretName") for v in values.get("extraVolumes") or [] if dig(v, "secret")}
    configmaps = {dig(d, "metadata", "name") for d in r.kind("ConfigMap")}
    for w in deployments + jobs:
        spec = pod_spec(w)
        refs = [dig(v, "secret", "secretName") for v in spec.get("volumes") or [] if "secret" in v]
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            refs += [dig(e, "valueFrom", "secretKeyRef", "name") for e in c.get("env") or [] if dig(e, "valueFrom", "secretKeyRef")]
        for ref in refs:
            if ref not in made and ref not in external:
                problems.append(f"{w['kind']}: reads Secret `{ref}`, which is neither rendered nor named in the values")
        for v in spec.get("volumes") or []:
            cm = dig(v, "configMap", "name")
            if cm and cm not in configmaps:
                problems.append(f"{w['kind']}: reads ConfigMap `{cm}`, which is not rendered")
    return problems


def policy_problems(p: dict, values: dict) -> list[str]:
    problems = []
    ingress = dig(p, "spec", "ingress", default=[]) or []
    ports = lambda rule: {q.get("port") for q in rule.get("ports") or []}  # noqa: E731
    http = [rule for rule in ingress if 8420 in ports(rule)]
    if len(http) != 1:
        problems.append("NetworkPolicy: no single ingress rule for port 8420")
    elif values["networkPolicy"]["http"]["from"] and not http[0].get("from"):
        problems.append("NetworkPolicy: port 8420 is open to all although networkPolicy.http.from is set")
    for rule in ingress:
        if values["metrics"]["port"] in ports(rule) and not rule.get("from"):
            problems.append("NetworkPolicy: the metrics port is open to anyone")
        if not rule.get("ports"):
            problems.append("NetworkPolicy: an ingress rule open on every port")
    egress = dig(p, "spec", "egress", default=[]) or []
    egress_ports = set().union(*(ports(rule) for rule in egress)) if egress else set()
    if values["networkPolicy"]["postgres"]["port"] not in egress_ports:
        problems.append("NetworkPolicy: no egress to PostgreSQL")
    if 53 not in egress_ports:
        problems.append("NetworkPolicy: no egress to DNS")
    if "Egress" not in (dig(p, "spec", "policyTypes") or []):
        problems.append("NetworkPolicy: egress is not restricted (policyTypes lacks Egress)")
    return problems


# --- Compose -----------------------------------------------------------------------------------


def compose_problems(doc: dict) -> list[str]:
    problems = []
    services = doc.get("services") or {}
    top_secrets = doc.get("secrets") or {}
    image = lambda s: str(s.get("image", ""))  # noqa: E731
    servers = [n for n, s in services.items() if "bulwark" in image(s) and "serve" in (s.get("command") or [])]
    migrates = [n for n, s in services.items() if "bulwark" in image(s) and "migrate" in " ".join(map(str, s.get("command") or []))]
    if len(servers) < 2:
        problems.append(f"{len(servers)} `serve` replicas, not at least 2")
    if len(migrates) != 1:
        problems.append(f"{len(migrates)} `migrate` services, not 1")
    for name, s in services.items():
        where = f"service {name}"
        if s.get("read_only") is not True:
            problems.append(f"{where}: read_only is not true")
        user = str(s.get("user", ""))
        if not re.match(r"^[1-9][0-9]*(:[0-9]+)?$", user):
            problems.append(f"{where}: user `{user}` is not a numeric non-root uid")
        if "ALL" not in (s.get("cap_drop") or []):
            problems.append(f"{where}: cap_drop does not hold ALL")
        if s.get("cap_add"):
            problems.append(f"{where}: cap_add is set")
        if "no-new-privileges:true" not in (s.get("security_opt") or []):
            problems.append(f"{where}: security_opt lacks no-new-privileges:true")
        if s.get("privileged") or s.get("network_mode") == "host" or s.get("pid") == "host":
            problems.append(f"{where}: privileged or host namespaces")
        for v in s.get("volumes") or []:
            src = str(v).split(":")[0]
            if src.startswith(("/", "~")) or src == ".":
                problems.append(f"{where}: mounts a host path `{src}`")
            elif src.startswith("./") and not str(v).endswith(":ro"):
                problems.append(f"{where}: a bind mount `{src}` that is not read-only")
        mounted = set(s.get("secrets") or [])
        for sec in mounted:
            if sec not in top_secrets:
                problems.append(f"{where}: secret `{sec}` is not declared")
        env = s.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        for k, v in env.items():
            value = str(v)
            if URL_WITH_PASSWORD.search(value) or "bulwark-seed-v1:" in value:
                problems.append(f"{where}: env `{k}` holds a secret literal")
            if k.endswith("_FILE"):
                m = re.match(r"^/run/secrets/([A-Za-z0-9_.-]+)$", value)
                if not m or m.group(1) not in mounted:
                    problems.append(f"{where}: `{k}` names `{value}`, not a secret this service mounts")
            if "bulwark" in image(s) and (p := env_problem(k)) is not None:
                problems.append(f"{where}: {p}")
        if s.get("restart") != "no" and name != "proxy":
            test = dig(s, "healthcheck", "test") or []
            if not test or dig(s, "healthcheck", "disable"):
                problems.append(f"{where}: no healthcheck")
    for name in servers:
        s = services[name]
        where = f"service {name}"
        entry = [str(x) for x in s.get("entrypoint") or []]
        if not entry or not entry[0].endswith("bulwark-seed-install") or "--" not in entry:
            problems.append(f"{where}: does not install the seed with bulwark-seed-install before serving")
        test = " ".join(map(str, dig(s, "healthcheck", "test") or []))
        if "bulwark healthcheck" not in test.replace("/usr/local/bin/", ""):
            problems.append(f"{where}: the healthcheck is not `bulwark healthcheck`")
        env = s.get("environment") or {}
        if "BULWARK_DATABASE_URL" in env or "BULWARK_DATABASE_URL_FILE" not in env:
            problems.append(f"{where}: the database URL must come from BULWARK_DATABASE_URL_FILE")
        deps = s.get("depends_on") or {}
        for m in migrates:
            if dig(deps, m, "condition") != "service_completed_successfully":
                problems.append(f"{where}: does not wait for {m} to complete successfully")
        if dig(deps, "postgres", "condition") != "service_healthy":
            problems.append(f"{where}: does not wait for postgres to be healthy")
    seeds = {tuple(str(x) for x in (services[n].get("entrypoint") or [])[1:2]) for n in servers}
    if len(seeds) != 1:
        problems.append("the replicas do not read the same seed secret")
    datas = [tuple(str(v) for v in services[n].get("volumes") or [] if str(v).endswith(":/var/lib/bulwark")) for n in servers]
    if any(len(d) != 1 for d in datas) or len(set(datas)) != len(datas):
        problems.append("each replica needs its own volume at /var/lib/bulwark")
    for m in migrates:
        s = services[m]
        if s.get("restart") != "no":
            problems.append(f"service {m}: restart must be \"no\" (a one-shot)")
        if dig(s, "depends_on", "postgres", "condition") != "service_healthy":
            problems.append(f"service {m}: does not wait for postgres to be healthy")
        if "BULWARK_APP_ROLE" not in (s.get("environment") or {}):
            problems.append(f"service {m}: BULWARK_APP_ROLE is not set")
    pg = services.get("postgres") or {}
    if "front" in (pg.get("networks") or {}) or pg.get("ports"):
        problems.append("service postgres: reachable from outside the back network")
    if not dig(doc, "networks", "back", "internal"):
        problems.append("network back is not internal")
    for sec, spec in top_secrets.items():
        if not str((spec or {}).get("file", "")).startswith("./secrets/"):
            problems.append(f"secret {sec}: not a file under ./secrets/")
    # The trusted proxy is the proxy's fixed address, in the front network.
    proxy_ip = dig(services, "proxy", "networks", "front", "ipv4_address")
    subnet = dig(doc, "networks", "front", "ipam", "config", 0, "subnet")
    for n in servers:
        trusted = (services[n].get("environment") or {}).get("BULWARK_HTTP__TRUSTED_PROXIES", "[]")
        if json.loads(trusted) != [proxy_ip]:
            problems.append(f"service {n}: BULWARK_HTTP__TRUSTED_PROXIES is not the proxy's address {proxy_ip}")
    if proxy_ip and subnet and ipaddress.ip_address(proxy_ip) not in ipaddress.ip_network(subnet):
        problems.append(f"the proxy's address {proxy_ip} is outside the front network {subnet}")
    return problems


def caddyfile_problems(text: str, compose: dict) -> list[str]:
    problems = []
    m = re.search(r"reverse_proxy\s+([^{\n]+)", text)
    upstreams = set(m.group(1).split()) if m else set()
    servers = {n for n, s in (compose.get("services") or {}).items() if "serve" in (s.get("command") or [])}
    if upstreams != {f"{n}:8420" for n in servers}:
        problems.append(f"Caddyfile: upstreams {sorted(upstreams)} are not the replicas {sorted(servers)}")
    if "health_uri /readyz" not in text:
        problems.append("Caddyfile: replicas are not taken out when /readyz fails")
    if "{$PUBLIC_HOST}" in text and "PUBLIC_HOST" not in (dig(compose, "services", "proxy", "environment") or {}):
        problems.append("Caddyfile: PUBLIC_HOST is not set on the proxy service")
    return problems


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    out, buf = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def dockerignore_excludes(rules: list[str], path: str) -> bool:
    def pattern(p: str) -> re.Pattern:
        rx = ""
        i = 0
        while i < len(p):
            if p.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif p.startswith("**", i):
                rx += ".*"
                i += 2
            elif p[i] == "*":
                rx += "[^/]*"
                i += 1
            elif p[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(p[i])
                i += 1
        return re.compile("^" + rx + "$")

    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in rules:
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        rule = rule.lstrip("!").strip("/")
        rx = pattern(rule)
        if any(rx.match(p) for p in prefixes):
            excluded = not negate
    return excluded


def dockerfile_problems(text: str, ignore: str, toolchain: str, version: str) -> list[str]:
    problems = []
    ins = dockerfile_instructions(text)
    froms = [(i, rest) for i, (w, rest) in enumerate(ins) if w == "FROM"]
    if len(froms) < 2:
        problems.append("Dockerfile: not multi-stage (fewer than two FROM)")
        return problems
    if not re.search(r"\bAS build$", froms[0][1], re.I):
        problems.append("Dockerfile: the first stage is not named `build`")
    last_from = froms[-1][0]
    final = ins[last_from:]
    if "rust:" in froms[-1][1]:
        problems.append("Dockerfile: the runtime stage is the Rust image")
    args = {}
    for w, rest in ins[: froms[0][0]]:
        if w == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k] = v
    if args.get("RUST_VERSION") != toolchain:
        problems.append(f"Dockerfile: RUST_VERSION {args.get('RUST_VERSION')} is not rust-toolchain.toml's {toolchain}")
    users = [rest for w, rest in final if w == "USER"]
    if not users or not re.match(r"^[1-9][0-9]*(:[0-9]+)?$", users[-1]):
        problems.append(f"Dockerfile: the final USER {users[-1] if users else None} is not a numeric non-root uid")
    health = [rest for w, rest in final if w == "HEALTHCHECK"]
    if not health or not re.search(r'CMD \["/usr/local/bin/bulwark", ?"healthcheck"\]', health[-1]):
        problems.append("Dockerfile: the HEALTHCHECK does not run `bulwark healthcheck` (exec form)")
    if ("ENTRYPOINT", '["/usr/local/bin/bulwark"]') not in final:
        problems.append("Dockerfile: ENTRYPOINT is not [\"/usr/local/bin/bulwark\"]")
    if ("CMD", '["serve"]') not in final:
        problems.append("Dockerfile: CMD is not [\"serve\"]")
    exposed = set(" ".join(rest for w, rest in final if w == "EXPOSE").split())
    if not {"8420", "9464"} <= exposed:
        problems.append(f"Dockerfile: EXPOSE {sorted(exposed)} lacks 8420 or 9464")
    if not any(w == "VOLUME" and "/var/lib/bulwark" in rest for w, rest in final):
        problems.append("Dockerfile: no VOLUME /var/lib/bulwark")
    labels = " ".join(rest for w, rest in final if w == "LABEL")
    for label in ("title", "description", "licenses", "version", "revision"):
        if f"org.opencontainers.image.{label}=" not in labels:
            problems.append(f"Dockerfile: no org.opencontainers.image.{label} label")
    if not any(w == "COPY" and "--from=build" in rest for w, rest in final):
        problems.append("Dockerfile: the runtime stage does not copy the binary from the build stage")
    if not any(w == "RUN" and re.search(r"install -d -m 0?700 -o 10001 -g 10001 /var/lib/bulwark", rest) for w, rest in final):
        problems.append("Dockerfile: /var/lib/bulwark is not made 0700 for uid 10001")
    final_args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for w, rest in final if w == "ARG" and "=" in rest}
    if final_args.get("BULWARK_VERSION") != version:
        problems.append(f"Dockerfile: BULWARK_VERSION {final_args.get('BULWARK_VERSION')} is not the workspace version {version}")
    for w, rest in ins:
        if w == "ENV":
            for name in re.findall(r"(BULWARK_[A-Z0-9_]+)=", rest):
                if (p := env_problem(name)) is not None:
                    problems.append(f"Dockerfile: {p}")
        if w == "ADD" and re.search(r"https?://", rest):
            problems.append("Dockerfile: ADD from a URL")
    for w, rest in ins:
        if w == "RUN" and not rest.startswith("["):
            script = re.sub(r"^(--[a-z]+=\S+\s+)+", "", rest)
            if subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode != 0:
                problems.append(f"Dockerfile: a RUN is not valid sh: {script[:60]}…")
    rules = ignore.splitlines()
    for w, rest in ins:
        if w == "COPY" and "--from=" not in rest:
            srcs = [s for s in rest.split() if not s.startswith("--")][:-1]
            for s in srcs:
                if s != "." and dockerignore_excludes(rules, s):
                    problems.append(f".dockerignore excludes `{s}`, which the Dockerfile copies")
    for needed in ("Cargo.lock", "crates/bulwark-cli/Cargo.toml", "docs/config-reference.md",
                   "security/asvs.toml", "rust-toolchain.toml", "deploy/container/bulwark-seed-install"):
        if dockerignore_excludes(rules, needed):
            problems.append(f".dockerignore excludes `{needed}`, which the build needs")
    for secret in (".git/config", "target/release/bulwark", "deploy/secrets/bulwark_seed", "bulwark-data/seed"):
        if not dockerignore_excludes(rules, secret):
            problems.append(f".dockerignore lets `{secret}` into the build context")
    return problems


# --- scripts ---------------------------------------------------------------------------------


def sh(args: list[str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def seed_install_problems(script: Path) -> list[str]:
    problems = []
    if sh(["sh", "-n", str(script)]).returncode != 0:
        return [f"{script.name}: sh -n fails"]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        good = tmp / "seed-secret"
        good.write_text("bulwark-seed-v1:" + "0123456789abcdef" * 4 + "\n")
        good.chmod(0o444)
        data = tmp / "data"
        p = sh(["sh", str(script), str(good), str(data), "--", "sh", "-c", "echo ran"])
        seed = data / "seed"
        if p.returncode != 0 or p.stdout.strip() != "ran":
            problems.append(f"{script.name}: did not install and run the command: {p.stderr.strip()}")
        elif (data.stat().st_mode & 0o777) != 0o700 or (seed.stat().st_mode & 0o777) != 0o600:
            problems.append(f"{script.name}: modes {oct(data.stat().st_mode & 0o777)} / {oct(seed.stat().st_mode & 0o777)}, not 0700 / 0600")
        elif not SEED_RE.match(seed.read_text().rstrip("\n")):
            problems.append(f"{script.name}: the installed seed is not in the seed format")
        if sh(["sh", str(script), str(good), str(data)]).returncode != 0:
            problems.append(f"{script.name}: refuses the same seed a second time")
        other = tmp / "other"
        other.write_text("bulwark-seed-v1:" + "f" * 64 + "\n")
        if sh(["sh", str(script), str(other), str(data)]).returncode != 3:
            problems.append(f"{script.name}: replaces a different seed (must refuse, exit 3)")
        for bad in ("bulwark-seed-v1:" + "A" * 64, "bulwark-seed-v1:" + "a" * 63, "a" * 80, ""):
            f = tmp / "bad"
            f.write_text(bad + "\n")
            if sh(["sh", str(script), str(f), str(tmp / "data2")]).returncode != 2:
                problems.append(f"{script.name}: accepts a malformed seed {bad[:20]!r}")
            if (tmp / "data2" / "seed").exists():
                problems.append(f"{script.name}: wrote a malformed seed")
    return problems


def make_secrets_problems(script: Path, out: Path) -> list[str]:
    problems = []
    if sh(["bash", "-n", str(script)]).returncode != 0:
        return [f"{script.name}: bash -n fails"]
    p = sh(["bash", str(script), "--dir", str(out), "--host", "bulwark.example.test"])
    if p.returncode != 0:
        return [f"{script.name}: {p.stderr.strip()}"]
    compose = load_yaml(COMPOSE)
    for name, spec in (compose.get("secrets") or {}).items():
        f = out / Path(spec["file"]).name
        if not f.exists():
            problems.append(f"{script.name}: does not write secret `{name}`")
    if (out.stat().st_mode & 0o777) != 0o700:
        problems.append(f"{script.name}: the directory is not 0700")
    seed = (out / "bulwark_seed").read_text().rstrip("\n")
    if not SEED_RE.match(seed):
        problems.append(f"{script.name}: bulwark_seed is not bulwark-seed-v1: and 64 hex digits")
    for role in ("owner", "app"):
        url = (out / f"bulwark_{role}_url").read_text().strip()
        if not re.match(rf"^postgres://bulwark_{role}:[0-9a-f]{{64}}@postgres:5432/bulwark\?sslmode=verify-full&sslrootcert=/run/secrets/postgres_ca$", url):
            problems.append(f"{script.name}: bulwark_{role}_url is not the expected verify-full URL")
    v = sh(["openssl", "verify", "-CAfile", str(out / "postgres_ca"), "-verify_hostname", "postgres", str(out / "postgres_tls_cert")])
    if v.returncode != 0:
        problems.append(f"{script.name}: the database certificate does not verify for `postgres`: {v.stdout}{v.stderr}")
    before = (out / "bulwark_seed").read_text()
    again = sh(["bash", str(script), "--dir", str(out)])
    if again.returncode != 0 or (out / "bulwark_seed").read_text() != before:
        problems.append(f"{script.name}: a second run does not keep the files it made")
    return problems


def migrate_wrapper_problems(compose: dict, job: dict) -> list[str]:
    """Runs the shell that hands `bulwark migrate` its owner URL, from Compose and from the Job,
    with a stand-in `bulwark`: the URL must arrive whole, without the file's trailing newline."""
    problems = []
    url = "postgres://bulwark_owner:0a1b2c@postgres:5432/bulwark?sslmode=verify-full"
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        (tmp / "url").write_text(url + "\n")
        stub = tmp / "bulwark"
        stub.write_text('#!/bin/sh\nprintf "%s|%s|%s" "$1" "$BULWARK_MIGRATE_DATABASE_URL" "$BULWARK_APP_ROLE"\n')
        stub.chmod(0o755)
        c = (pod_spec(job).get("containers") or [{}])[0]
        m = dig(compose, "services", "migrate") or {}
        cases = [
            ("Compose", [str(x) for x in (m.get("entrypoint") or []) + (m.get("command") or [])],
             "/run/secrets/bulwark_owner_url", (m.get("environment") or {}).get("BULWARK_APP_ROLE"), True),
            ("the Job", [str(x) for x in c.get("command") or []], "/etc/bulwark/owner/url",
             next((e.get("value") for e in c.get("env") or [] if e.get("name") == "BULWARK_APP_ROLE"), None), False),
        ]
        for where, argv, path, role, compose_escapes in cases:
            if len(argv) != 3 or argv[0] != "/bin/sh":
                problems.append(f"{where}: migrate is not `/bin/sh -ec SCRIPT`")
                continue
            script = argv[2].replace("$$", "$") if compose_escapes else argv[2]
            script = script.replace(path, str(tmp / "url")).replace("/usr/local/bin/bulwark", str(stub))
            p = sh(["sh", argv[1], script], env={**os.environ, "BULWARK_APP_ROLE": str(role)})
            if p.stdout != f"migrate|{url}|{role}":
                problems.append(f"{where}: `bulwark migrate` got {p.stdout!r} {p.stderr.strip()}")
    return problems


def find_pg_bin() -> Path | None:
    for name in ("initdb", "pg_ctl"):
        if not shutil.which(name):
            break
    else:
        return Path(shutil.which("initdb")).resolve().parent
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True)
    for d in dirs:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


def initdb_problems(secrets: Path) -> tuple[list[str], str | None]:
    """Runs the Compose init script against a throwaway PostgreSQL with TLS from make-secrets'
    certificate, then signs in as each role over TLS (verify-full, as Bulwark connects)."""
    pg_bin = find_pg_bin()
    psql = shutil.which("psql") or (str(pg_bin / "psql") if pg_bin else None)
    if not pg_bin or not psql:
        return [], "PostgreSQL (initdb, pg_ctl, psql) is not installed"
    as_pg: list[str] = []
    if os.geteuid() == 0:
        if sh(["id", "-u", "postgres"]).returncode != 0:
            return [], "running as root and there is no `postgres` user to run the server"
        as_pg = ["runuser", "-u", "postgres", "--"]
    tmp = Path(tempfile.mkdtemp(prefix="bulwark-initdb.", dir="/tmp"))
    data = tmp / "data"
    started = False
    problems: list[str] = []
    try:
        pgsecrets = tmp / "secrets"
        pgsecrets.mkdir()
        for name in ("bulwark_owner_url", "bulwark_app_url"):
            shutil.copy(secrets / name, pgsecrets / name)
        shutil.copy(secrets / "postgres_tls_cert", tmp / "server.crt")
        shutil.copy(secrets / "postgres_tls_key", tmp / "server.key")
        (tmp / "server.key").chmod(0o600)
        if as_pg:
            sh(["chown", "-R", "postgres:", str(tmp)])
        init = sh(as_pg + [str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                           "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
        if init.returncode != 0:
            return [f"initdb: {init.stderr.strip()}"], None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = str(s.getsockname()[1])
        opts = (f"-k {tmp} -p {port} -c listen_addresses=127.0.0.1 -c ssl=on -c fsync=off "
                f"-c ssl_cert_file={tmp}/server.crt -c ssl_key_file={tmp}/server.key")
        start = sh(as_pg + [str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"), "-w", "-o", opts, "start"])
        if start.returncode != 0:
            log = (tmp / "log").read_text() if (tmp / "log").exists() else ""
            return [f"PostgreSQL did not start: {start.stderr.strip()} {log[-500:]}"], None
        started = True
        run = sh(as_pg + [psql, "-X", "-q", "-h", str(tmp), "-p", port, "-U", "postgres", "-d", "postgres",
                          "-v", f"secrets={pgsecrets}", "-f", str(INITDB_SQL)])
        if run.returncode != 0:
            return [f"{INITDB_SQL.name}: {run.stderr.strip()}"], None
        roles = sh(as_pg + [psql, "-X", "-At", "-h", str(tmp), "-p", port, "-U", "postgres", "-d", "postgres", "-c",
                            "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles "
                            "WHERE rolname LIKE 'bulwark%' ORDER BY 1",
                            "-c", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'bulwark'",
                            "-c", "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                                  "WHERE r.rolname = 'bulwark_app'"]).stdout.split()
        if roles != ["bulwark_app|f|f|t", "bulwark_owner|f|f|t", "bulwark_owner", "0"]:
            problems.append(f"{INITDB_SQL.name}: roles or database not as docs/postgres.md says: {roles}")
        for role, statement, should_work in (
            ("owner", "CREATE TABLE deploy_check (id int); DROP TABLE deploy_check;", True),
            ("app", "CREATE TABLE deploy_check (id int);", False),
        ):
            url = (secrets / f"bulwark_{role}_url").read_text().strip()
            password = re.match(r"^postgres://[^:]+:([^@]+)@", url).group(1)
            conninfo = (f"host=postgres hostaddr=127.0.0.1 port={port} dbname=bulwark user=bulwark_{role} "
                        f"sslmode=verify-full sslrootcert={secrets / 'postgres_ca'}")
            who = sh([psql, "-X", "-At", conninfo, "-c",
                      "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"],
                     env={**os.environ, "PGPASSWORD": password})
            if who.stdout.strip() != f"bulwark_{role}|t":
                problems.append(f"bulwark_{role}: cannot sign in over verify-full TLS with its URL's password: {who.stderr.strip()}")
                continue
            act = sh([psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", conninfo, "-c", statement],
                     env={**os.environ, "PGPASSWORD": password})
            if (act.returncode == 0) != should_work:
                problems.append(f"bulwark_{role}: `{statement}` {'failed' if should_work else 'worked'}")
        return problems, None
    finally:
        if started:
            sh(as_pg + [str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(tmp, ignore_errors=True)


# --- documentation -----------------------------------------------------------------------------


def leaves(v: Any, prefix: str = "") -> list[str]:
    if isinstance(v, dict) and v:
        out = []
        for k, x in v.items():
            out += leaves(x, f"{prefix}{k}.")
        return out
    return [prefix[:-1]]


def values_doc_problems(values: dict) -> list[str]:
    if not DEPLOY_MD.exists():
        return ["docs/deploy.md is missing"]
    text = DEPLOY_MD.read_text()
    start = text.find("<!-- values:begin -->")
    end = text.find("<!-- values:end -->")
    if start < 0 or end < 0:
        return ["docs/deploy.md: no values table between <!-- values:begin --> and <!-- values:end -->"]
    documented = [path for cell in re.findall(r"^\| ([^|]+) \|", text[start:end], re.M)
                  for path in re.findall(r"`([A-Za-z0-9_.]+)`", cell)]
    problems = []
    all_leaves = leaves(values)
    for leaf in all_leaves:
        if not any(leaf == d or leaf.startswith(d + ".") for d in documented):
            problems.append(f"docs/deploy.md: value `{leaf}` is not in the values table")
    for d in documented:
        if not any(leaf == d or leaf.startswith(d + ".") for leaf in all_leaves):
            problems.append(f"docs/deploy.md: the values table lists `{d}`, which values.yaml does not have")
    return problems


def docs_value_examples() -> list[dict]:
    """The ```yaml blocks of docs/deploy.md that start with `# values:`: overrides the page shows."""
    if not DEPLOY_MD.exists():
        return []
    blocks = re.findall(r"^```yaml\n(# values:.*?)^```", DEPLOY_MD.read_text(), re.M | re.S)
    return [yaml.load(b, Loader=StrictLoader) or {} for b in blocks]


# --- yamllint ----------------------------------------------------------------------------------


def yamllint(paths: list[str], stdin: str | None = None) -> list[str]:
    """yamllint with deploy/.yamllint. A rendered stream is read with `trailing-spaces` off:
    Sprig's indent pads the blank lines of a block scalar (the ConfigMap's TOML), as it does under
    Helm, and those spaces are not content; trailing spaces after content are checked by
    manifest_problems instead."""
    config = ["-c", str(YAMLLINT)]
    if stdin is not None:
        config = ["-d", json.dumps({"extends": str(YAMLLINT), "rules": {"trailing-spaces": "disable"}})]
    args = [sys.executable, "-m", "yamllint", "--strict", "-f", "parsable"] + config
    p = subprocess.run(args + (["-"] if stdin is not None else paths), input=stdin,
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    if p.returncode == 0:
        return []
    return [line for line in (p.stdout + p.stderr).splitlines() if line.strip()] or [f"yamllint exit {p.returncode}"]


# --- the run -----------------------------------------------------------------------------------


# What the last negative self-test caught, printed after its `ok`.
CAUGHT: list[str] = []


class Run:
    def __init__(self) -> None:
        self.passed = self.failed = self.skipped = 0

    def check(self, name: str, fn: Callable[[], list[str] | tuple[list[str], str | None]]) -> None:
        CAUGHT.clear()
        try:
            result = fn()
        except Exception as e:  # a crash is a failure with its cause, not a traceback mid-run
            result = [f"{type(e).__name__}: {e}"]
        skip = None
        if isinstance(result, tuple):
            result, skip = result
        if skip:
            self.skipped += 1
            print(f"skip {name}: {skip}")
        elif result:
            self.failed += 1
            print(f"FAIL {name}")
            for p in result[:40]:
                print(f"       {p}")
            if len(result) > 40:
                print(f"       … and {len(result) - 40} more")
        else:
            self.passed += 1
            print(f"ok   {name}")
            for c in CAUGHT:
                print(f"       caught: {c}")
        sys.stdout.flush()


def expect_objection(problems: list[str], needle: str) -> list[str]:
    """A negative self-test: the checker must object, with `needle` in its reason."""
    for p in problems:
        if needle in p:
            CAUGHT.append(p)
            return []
    return [f"the checker did not object (wanted a problem naming `{needle}`); it said: {problems[:5]}"]


def expect_render_failure(r: Rendered, needle: str) -> list[str]:
    if r.ok:
        return [f"rendered although it must fail with `{needle}`"]
    if needle not in r.error:
        return [f"failed, but not with `{needle}`: {r.error}"]
    CAUGHT.append(r.error)
    return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--go", required=True, help="the go command that builds deploy/check/render")
    args = ap.parse_args()
    run = Run()
    build_dir = Path(tempfile.mkdtemp(prefix="bulwark-render."))
    try:
        return checks(run, args.go, build_dir)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)


def go_steps(run: Run, go: str, binary: Path) -> bool:
    """Builds the renderer with the standard library alone (no network), vets and tests it."""
    src = DEPLOY / "check" / "render"
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOPROXY": "off", "CGO_ENABLED": "0"}
    out = {}

    def step(name: str, args: list[str]) -> list[str]:
        p = subprocess.run(args, cwd=src, env=env, capture_output=True, text=True, timeout=600)
        out[name] = p.returncode == 0
        return [] if p.returncode == 0 else (p.stdout + p.stderr).strip().splitlines()

    run.check("go: the renderer builds with the standard library only", lambda: step("build", [go, "build", "-o", str(binary), "."]))
    gofmt = str(Path(go).with_name("gofmt")) if Path(go).with_name("gofmt").exists() else "gofmt"
    run.check("go: gofmt, go vet", lambda: (
        [f"gofmt: {f}" for f in subprocess.run([gofmt, "-l", "."], cwd=src, capture_output=True, text=True).stdout.split()]
        + step("vet", [go, "vet", "."])))
    run.check("go: the renderer's tests (toYaml as Helm writes it, the functions, the stream)",
              lambda: step("test", [go, "test", "-count=1", "."]))
    return out.get("build", False)


def checks(run: Run, go: str, build_dir: Path) -> int:
    binary = build_dir / "render"
    if not go_steps(run, go, binary):
        print(f"{run.passed} passed, {run.failed} failed")
        return 1
    renderer = Renderer(str(binary))
    values = renderer.values
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    version = cargo["workspace"]["package"]["version"]
    toolchain = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]

    def chart_meta() -> list[str]:
        c = renderer.chart
        problems = []
        if c.get("apiVersion") != "v2" or c.get("name") != "bulwark":
            problems.append("Chart.yaml: apiVersion must be v2 and name bulwark")
        if not re.match(r"^\d+\.\d+\.\d+$", str(c.get("version"))):
            problems.append("Chart.yaml: version is not semver")
        if str(c.get("appVersion")) != version:
            problems.append(f"Chart.yaml: appVersion {c.get('appVersion')} is not the workspace version {version}")
        return problems

    run.check("chart: Chart.yaml (v2, appVersion = workspace version)", chart_meta)
    run.check("chart: every value is in docs/deploy.md's values table", lambda: values_doc_problems(values))
    run.check("yamllint: compose.yaml, Chart.yaml, values.yaml, .yamllint",
              lambda: yamllint([str(COMPOSE), str(CHART / "Chart.yaml"), str(CHART / "values.yaml"), str(YAMLLINT)]))

    scenarios: list[tuple[str, dict]] = [
        ("defaults (with the required values)", MINIMAL),
        ("existingSecret", {"existingSecret": "bulwark-secrets", "http": {"trustedProxies": ["10.0.0.0/8"]}}),
        ("metrics and ServiceMonitor on", coalesce(MINIMAL, {
            "metrics": {"enabled": True, "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
            "networkPolicy": {"metrics": {"from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "monitoring"}}}]}}})),
        ("networkPolicy off", coalesce(MINIMAL, {"networkPolicy": {"enabled": False}})),
        ("replicas 3", coalesce(MINIMAL, {"replicaCount": 3})),
        ("TLS in the pod, a config file, a database CA, extra env", coalesce(MINIMAL, {
            "http": {"behindTlsProxy": False, "trustedProxies": []},
            "tls": {"existingSecret": "bulwark-tls"},
            "database": {"caSecret": "postgres-ca"},
            "config": '[sso]\npublic_url = "https://bulwark.example.com"\n\n[mail]\nfrom = "bulwark@example.com"\n',
            "extraEnv": [{"name": "BULWARK_LOG__LEVEL", "value": "info"}],
            "networkPolicy": {"http": {"from": [{"podSelector": {"matchLabels": {"app": "ingress"}}}]}}})),
        ("migration off, upgrade", coalesce(MINIMAL, {"migration": {"enabled": False}})),
    ]
    specific: dict[str, Callable[[Rendered], list[str]]] = {
        "defaults (with the required values)": lambda r: (
            ([] if len(r.kind("Secret")) == 2 else [f"{len(r.kind('Secret'))} Secrets, not 2 (seed and URL, the hook's owner URL)"])
            + ([] if len(r.kind("NetworkPolicy")) == 2 else ["not 2 NetworkPolicies"])
            + ([] if r.kind("PodDisruptionBudget") else ["no PodDisruptionBudget"])),
        "existingSecret": lambda r: (
            ([] if not r.kind("Secret") else ["Secrets rendered although existingSecret is set"])
            + ([] if "bulwark-secrets" in r.text else ["existingSecret is not used"])),
        "metrics and ServiceMonitor on": lambda r: (
            [] if any(9464 in {q.get("port") for rule in dig(p, "spec", "ingress", default=[]) for q in rule.get("ports", [])}
                      for p in r.kind("NetworkPolicy")) else ["the metrics port is not opened to networkPolicy.metrics.from"]),
        "networkPolicy off": lambda r: [],
        "replicas 3": lambda r: [],
        "TLS in the pod, a config file, a database CA, extra env": lambda r: (
            ([] if all(dig(c, p, "httpGet", "scheme") == "HTTPS" for d in r.kind("Deployment")
                       for c in pod_spec(d)["containers"] for p in ("livenessProbe", "readinessProbe", "startupProbe"))
             else ["probes are not HTTPS with tls.existingSecret"])
            + ([] if "BULWARK_TLS__CERT_PATH" in r.text and "BULWARK_BEHIND_TLS_PROXY" not in r.text
               else ["TLS variables not set as tls.existingSecret asks"])),
        "migration off, upgrade": lambda r: [] if not r.kind("Job") else ["a Job with migration.enabled false"],
    }
    for i, example in enumerate(docs_value_examples(), 1):
        scenarios.append((f"the values example {i} of docs/deploy.md", coalesce(MINIMAL, example)))
        specific[f"the values example {i} of docs/deploy.md"] = lambda r: []
    for name, override in scenarios:
        merged = coalesce(values, override)
        upgrade = name.endswith("upgrade")

        def one(override: dict = override, merged: dict = merged, name: str = name, upgrade: bool = upgrade) -> list[str]:
            r = renderer.render(override, upgrade=upgrade)
            if not r.ok:
                return [f"render failed: {r.error}"]
            problems = manifest_problems(r, merged) + specific[name](r)
            problems += [f"yamllint: {line}" for line in yamllint([], stdin=r.text)]
            notes = renderer.render(override, notes=True, upgrade=upgrade)
            if not notes.ok:
                problems.append(f"NOTES.txt: {notes.error}")
            return problems

        run.check(f"helm: {name}", one)

    # Negative self-tests: broken values must be caught, by the renderer or by the checks.
    def caught(override: dict, needle: str) -> Callable[[], list[str]]:
        def f() -> list[str]:
            r = renderer.render(coalesce(MINIMAL, override))
            if not r.ok:
                return [f"render failed: {r.error}"]
            return expect_objection(manifest_problems(r, coalesce(values, coalesce(MINIMAL, override))), needle)
        return f

    run.check("negative: a writable root file system is caught",
              caught({"containerSecurityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"))
    run.check("negative: root is caught", caught({"podSecurityContext": {"runAsUser": 0}}, "runAsUser"))
    run.check("negative: a database URL in an env literal is caught",
              caught({"extraEnv": [{"name": "BULWARK_DATABASE_URL", "value": APP_URL}]}, "literal"))
    run.check("negative: an unknown BULWARK_ variable is caught",
              caught({"extraEnv": [{"name": "BULWARK_LISTN", "value": "x"}]}, "names no configuration key"))
    run.check("negative: a secret in the ConfigMap is caught",
              caught({"config": 'database_url = "' + APP_URL + '"\n'}, "secret"))
    run.check("negative: service links left on are caught",
              lambda: expect_objection(workload_problems({"kind": "Deployment", "metadata": {"name": "x"},
                                                          "spec": {"template": {"spec": {"containers": []}}}}),
                                       "enableServiceLinks"))
    run.check("negative: no seed fails the rendering",
              lambda: expect_render_failure(renderer.render(coalesce(MINIMAL, {"seed": None})), "seed is required"))
    run.check("negative: no owner URL fails the rendering",
              lambda: expect_render_failure(renderer.render(coalesce(MINIMAL, {"database": {"ownerUrl": None}})),
                                            "database.ownerUrl is required"))
    run.check("negative: the chart's defaults alone do not render",
              lambda: expect_render_failure(renderer.render({}), "is required"))
    run.check("negative: a proxy without trustedProxies fails the rendering",
              lambda: expect_render_failure(renderer.render(coalesce(MINIMAL, {"http": {"trustedProxies": []}})),
                                            "http.trustedProxies is required"))
    run.check("negative: plain HTTP without a proxy fails the rendering",
              lambda: expect_render_failure(renderer.render(coalesce(MINIMAL, {"http": {"behindTlsProxy": False}})),
                                            "tls.posture"))

    compose = load_yaml(COMPOSE)
    run.check("compose: hardening, order, secrets, seed, replicas", lambda: compose_problems(compose))
    run.check("compose: Caddyfile upstreams and health checks", lambda: caddyfile_problems(CADDYFILE.read_text(), compose))

    def compose_negative() -> list[str]:
        problems = []
        for path, change, needle in (
            (("services", "bulwark-2"), lambda s: s.pop("read_only"), "read_only"),
            (("services", "bulwark-1"), lambda s: s.update(user="0:0"), "non-root"),
            (("services", "migrate"), lambda s: s.update(security_opt=[]), "no-new-privileges"),
            (("services", "bulwark-1"), lambda s: s["depends_on"].pop("migrate"), "complete successfully"),
            (("services", "bulwark-2"), lambda s: s["environment"].update(BULWARK_DATABASE_URL=APP_URL), "secret literal"),
        ):
            broken = copy.deepcopy(compose)
            # YAML merge keys share one object between services; break that, change one.
            broken["services"] = {k: copy.deepcopy(v) for k, v in broken["services"].items()}
            change(dig(broken, *path))
            problems += expect_objection(compose_problems(broken), needle)
        return problems

    run.check("negative: broken compose files are caught", compose_negative)
    run.check("compose and helm: the migrate wrappers hand bulwark the owner URL without its newline",
              lambda: migrate_wrapper_problems(compose, renderer.render(MINIMAL).kind("Job")[0]))

    docker_text = DOCKERFILE.read_text()
    ignore = (ROOT / ".dockerignore").read_text()
    run.check("container: Dockerfile and .dockerignore",
              lambda: dockerfile_problems(docker_text, ignore, toolchain, version))

    def docker_negative() -> list[str]:
        problems = []
        for old, new, needle in (
            ("USER 10001:10001", "USER 0", "non-root"),
            ('CMD ["/usr/local/bin/bulwark", "healthcheck"]', 'CMD ["curl", "-f", "http://127.0.0.1:8420/healthz"]', "HEALTHCHECK"),
            ("else unset BULWARK_COMMIT; fi;", "else unset BULWARK_COMMIT;", "not valid sh"),
        ):
            if old not in docker_text:
                problems.append(f"the negative test's anchor `{old}` is not in the Dockerfile")
                continue
            problems += expect_objection(dockerfile_problems(docker_text.replace(old, new), ignore, toolchain, version), needle)
        problems += expect_objection(dockerfile_problems(docker_text, ignore.replace("deploy/*", ""), toolchain, version),
                                     "deploy/secrets")
        return problems

    run.check("negative: a root USER, a curl healthcheck, a broken RUN, secrets in the context are caught", docker_negative)
    run.check("scripts: bulwark-seed-install installs, keeps, refuses", lambda: seed_install_problems(SEED_INSTALL))

    with tempfile.TemporaryDirectory() as t:
        secrets = Path(t) / "secrets"
        made = make_secrets_problems(MAKE_SECRETS, secrets)
        run.check("scripts: make-secrets writes every Compose secret, keeps them on a second run", lambda: made)
        if made:
            run.check("compose: the init script makes the roles (throwaway PostgreSQL, TLS verify-full)",
                      lambda: ([], "make-secrets failed"))
        else:
            run.check("compose: the init script makes the roles (throwaway PostgreSQL, TLS verify-full)",
                      lambda: initdb_problems(secrets))

    total = run.passed + run.failed
    tail = f", {run.skipped} skipped" if run.skipped else ""
    print(f"{run.passed} passed, {run.failed} failed{tail}")
    return 0 if run.failed == 0 and total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
