"""deploy/kubernetes: every object valid against the Kubernetes schemas, and the hub's own rules.

There is no kubectl or kustomize on these machines, so the test renders the kustomizations
itself: every file listed under ``resources`` (directories recursively), loaded with PyYAML.
The renderer understands only ``resources`` and refuses any other field, so the manifests
cannot come to depend on a kustomize feature this test would silently skip.

- Core objects: ``kubernetes_validate`` against the Kubernetes OpenAPI schemas of
  ``K8S_VERSION``, strict (an unknown field is an error), from the schemas the package ships:
  offline.
- KEDA's ScaledObject and TriggerAuthentication are custom resources, absent from those
  schemas: they are validated against ``KEDA_SCHEMAS`` below, written from KEDA's documented
  fields (keda.sh/docs/2.17: scaledobject-spec, authentication, scalers/redis-lists, and
  scaling modifiers), closed to unknown fields, and checked structurally (targets exist, the
  formula names every trigger, the list names are kombu's keys for the queue).
- The hub's rules (:func:`problems`): non-root and read-only everywhere, requests and limits,
  probes, beat single and Recreate, one worker Deployment per queue of ``ALL_QUEUES``, secrets
  only from Secrets, the same commands and probes as docker-compose.yml, the Ingress's routing,
  and the autoscalers' bounds against docs/running.md's sizing table (bench/sizing.py).
  ``test_a_broken_manifest_is_caught`` breaks copies on purpose and expects each to be caught.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import shlex
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kombu.transport.redis import Channel

import celeryconfig
from fusion.config import VARIABLES
from fusion.jobs.queues import ALL_QUEUES
from fusion.runtime.services import BROKER_ONLY_WITHHELD

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("base", "keda", "hpa")
K8S_VERSION = "1.32.0"
HOME = "/var/lib/fusion"  # FUSION_HOME in the ConfigMap (and the Dockerfile)
SECRET_VARIABLES = frozenset(
    {
        *(
            VARIABLES[name]
            for name in (
                "jwt_secret",
                "encryption_keys",
                "database_url",
                "app_database_url",
                "app_db_password",
                "redis_url",  # carries the Redis password
                "metrics_token",
            )
        ),
        "FLOWER_BASIC_AUTH",
    }
)
OWNER_ONLY = frozenset({VARIABLES["database_url"], VARIABLES["app_db_password"]})
KEDA_KINDS = frozenset({"ScaledObject", "TriggerAuthentication"})

Obj = dict[str, Any]


# --- rendering ----------------------------------------------------------------------------


def render(directory: Path) -> list[Obj]:
    """The objects ``kustomize build directory`` gives for these kustomizations."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    unknown = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not unknown, f"{directory}: this test's renderer does not do {sorted(unknown)}"
    assert kustomization["kind"] == "Kustomization"
    objects: list[Obj] = []
    for entry in kustomization["resources"]:
        path = (directory / entry).resolve()
        assert path.is_relative_to(KUBE), f"{directory}: {entry} is outside deploy/kubernetes"
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"{directory}: defined twice: {duplicates}"
    return objects


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    return render(KUBE / request.param)


def test_every_manifest_is_listed() -> None:
    """A YAML file in deploy/kubernetes that no kustomization lists is never applied."""
    listed: set[Path] = set()
    for kustomization in KUBE.rglob("kustomization.yaml"):
        listed.add(kustomization)
        for entry in yaml.safe_load(kustomization.read_text("utf-8"))["resources"]:
            listed.add((kustomization.parent / entry).resolve())
    assert sorted(set(KUBE.rglob("*.yaml")) - listed) == []


# --- schemas ------------------------------------------------------------------------------


def _string_map() -> Obj:
    return {"type": "object", "additionalProperties": {"type": "string"}}


_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": _string_map(),
        "annotations": _string_map(),
    },
    "additionalProperties": False,
}
_AUTH_REF = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "kind": {"enum": ["TriggerAuthentication"]}},
    "additionalProperties": False,
}
_INT_STRING = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}
KEDA_SCHEMAS: dict[str, Obj] = {
    # keda.sh/docs/2.17/reference/scaledobject-spec/ and .../concepts/scaling-deployments/
    "ScaledObject": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "ScaledObject"},
            "metadata": _OBJECT_META,
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "name": {"type": "string"},
                            "envSourceContainerName": {"type": "string"},
                        },
                    },
                    "pollingInterval": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                    "idleReplicaCount": {"type": "integer", "minimum": 0},
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "fallback": {
                        "type": "object",
                        "required": ["failureThreshold", "replicas"],
                        "properties": {
                            "failureThreshold": {"type": "integer", "minimum": 1},
                            "replicas": {"type": "integer", "minimum": 0},
                        },
                    },
                    "advanced": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "restoreToOriginalReplicaCount": {"type": "boolean"},
                            # An autoscaling/v2 HPA's behavior: validated by
                            # test_core_objects_match_the_kubernetes_schemas's HPA schema.
                            "horizontalPodAutoscalerConfig": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "name": {"type": "string"},
                                    "behavior": {"type": "object"},
                                },
                            },
                            "scalingModifiers": {
                                "type": "object",
                                "required": ["formula", "target"],
                                "additionalProperties": False,
                                "properties": {
                                    "formula": {"type": "string", "minLength": 1},
                                    "target": _INT_STRING,
                                    "activationTarget": _INT_STRING,
                                    "metricType": {"enum": ["AverageValue", "Value"]},
                                },
                            },
                        },
                    },
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "additionalProperties": False,
                            "properties": {
                                "type": {"type": "string"},
                                "name": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*$"},
                                "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                                "useCachedMetrics": {"type": "boolean"},
                                "authenticationRef": _AUTH_REF,
                                "metadata": _string_map(),
                            },
                            # keda.sh/docs/2.17/scalers/redis-lists/
                            "if": {"properties": {"type": {"const": "redis"}}},
                            "then": {
                                "properties": {
                                    "metadata": {
                                        "required": ["listName", "listLength"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "listName": {"type": "string", "minLength": 1},
                                            "listLength": _INT_STRING,
                                            "activationListLength": _INT_STRING,
                                            "databaseIndex": _INT_STRING,
                                            "enableTLS": {"enum": ["true", "false"]},
                                            "unsafeSsl": {"enum": ["true", "false"]},
                                            "address": {"type": "string"},
                                            "addressFromEnv": {"type": "string"},
                                            "host": {"type": "string"},
                                            "port": {"type": "string"},
                                            "usernameFromEnv": {"type": "string"},
                                            "passwordFromEnv": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                    },
                },
            },
        },
        "additionalProperties": False,
    },
    # keda.sh/docs/2.17/concepts/authentication/ (secretTargetRef); the redis scaler's
    # parameters (scalers/redis-lists: address, host, port, username, password, TLS files).
    "TriggerAuthentication": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "TriggerAuthentication"},
            "metadata": _OBJECT_META,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["parameter", "name", "key"],
                            "additionalProperties": False,
                            "properties": {
                                "parameter": {
                                    "enum": [
                                        "address",
                                        "host",
                                        "port",
                                        "username",
                                        "password",
                                        "tls",
                                        "ca",
                                        "cert",
                                        "key",
                                    ]
                                },
                                "name": {"type": "string"},
                                "key": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        "additionalProperties": False,
    },
}


def schema_errors(objects: list[Obj]) -> list[str]:
    """Every object against its schema: Kubernetes' for core kinds, ours for KEDA's."""
    errors = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("kind") in KEDA_KINDS:
            validator = jsonschema.Draft202012Validator(KEDA_SCHEMAS[obj["kind"]])
            errors += [f"{where}: {e.message}" for e in validator.iter_errors(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{where}: no schema ({exc})")
    return errors


def test_core_objects_match_the_kubernetes_schemas(rendered: list[Obj]) -> None:
    assert schema_errors(rendered) == []
    # HPA behaviour inside a ScaledObject is an autoscaling/v2 HPA's: check it as one.
    for obj in rendered:
        if obj["kind"] == "ScaledObject":
            config = obj["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
            hpa = {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": obj["metadata"]["name"]},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                    "maxReplicas": 1,
                    "behavior": config.get("behavior", {}),
                },
            }
            kubernetes_validate.validate(hpa, K8S_VERSION, strict=True)


# --- the hub's rules ----------------------------------------------------------------------


def _of(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def _pod(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def _workloads(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob"):
            yield obj, _pod(obj)


def _component(obj: Obj) -> str:
    label: str = obj["metadata"]["labels"]["app.kubernetes.io/component"]
    return label


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _env(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def _security(objects: list[Obj]) -> list[str]:
    out = []
    for obj, pod in _workloads(objects):
        name = obj["metadata"]["name"]
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or psc.get("runAsUser", 0) == 0:
            out.append(f"{name}: the pod must run as a non-root uid")
        if pod.get("automountServiceAccountToken") is not False:
            out.append(f"{name}: no service account token is needed")
        for c in pod.get("initContainers", []) + pod["containers"]:
            csc = c.get("securityContext", {})
            if csc.get("runAsUser") == 0 or csc.get("runAsNonRoot") is False:
                out.append(f"{name}/{c['name']}: runs as root")
            if csc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{name}/{c['name']}: allowPrivilegeEscalation must be false")
            if csc.get("readOnlyRootFilesystem") is not True:
                out.append(f"{name}/{c['name']}: the root filesystem must be read-only")
            if "ALL" not in csc.get("capabilities", {}).get("drop", []):
                out.append(f"{name}/{c['name']}: must drop every capability")
            if csc.get("privileged"):
                out.append(f"{name}/{c['name']}: privileged")
            for kind in ("requests", "limits"):
                have = c.get("resources", {}).get(kind, {})
                for resource in ("cpu", "memory"):
                    if resource not in have:
                        out.append(f"{name}/{c['name']}: no {resource} {kind}")
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if "/tmp" not in mounts:
                out.append(f"{name}/{c['name']}: /tmp must be a writable emptyDir")
    return out


def _probes(objects: list[Obj]) -> list[str]:
    out = []
    for obj in _of(objects, "Deployment"):
        for c in _pod(obj)["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    out.append(f"{obj['metadata']['name']}/{c['name']}: no {probe}")
    return out


def _secrets(objects: list[Obj]) -> list[str]:
    out = []
    if _of(objects, "Secret"):
        out.append("a Secret is committed: docs/running.md has them created instead")
    for cm in _of(objects, "ConfigMap"):
        leaked = SECRET_VARIABLES & set(cm.get("data", {}))
        if leaked:
            out.append(f"ConfigMap/{cm['metadata']['name']} holds secrets: {sorted(leaked)}")
    for obj, pod in _workloads(objects):
        for c in pod["containers"]:
            where = f"{obj['metadata']['name']}/{c['name']}"
            env = _env(c)
            for name, entry in env.items():
                if name in SECRET_VARIABLES and "secretKeyRef" not in entry.get("valueFrom", {}):
                    out.append(f"{where}: {name} must come from a secretKeyRef")
            if _component(obj) != "migrate" and OWNER_ONLY & set(env):
                out.append(f"{where}: only the migration holds the owner's credentials")
            if _component(obj) == "flower" and set(BROKER_ONLY_WITHHELD) & set(env):
                out.append(f"{where}: Flower gets broker settings only")
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    out.append(f"{where}: envFrom a whole Secret; name each variable instead")
    return out


def _compose() -> dict[str, Obj]:
    services: dict[str, Obj] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))[
        "services"
    ]
    return services


def _expand(arg: str) -> str:
    """A compose command's ``${VAR:-default}`` as its default (what runs unless overridden)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", arg)


def _without_schedule(command: list[str]) -> list[str]:
    out, skip = [], False
    for arg in command:
        if skip:
            skip = False
        elif arg == "--schedule":
            skip = True
        elif not arg.startswith("--schedule="):
            out.append(arg)
    return out


def _compose_service(obj: Obj) -> str:
    component = _component(obj)
    if component == "worker":
        return "worker-" + obj["metadata"]["labels"]["fusion.hub/queue"].replace("_", "-")
    return component


def _http_probe_from_compose(service: Obj) -> tuple[int, str] | None:
    test = service.get("healthcheck", {}).get("test")
    found = re.search(r"http://127\.0\.0\.1:(\d+)(/[^'\" ]*)", " ".join(test or []))
    return (int(found.group(1)), found.group(2)) if found else None


def _commands(objects: list[Obj]) -> list[str]:
    """Every container runs what docker-compose.yml's service of the same role runs, and
    probes what its healthcheck checks."""
    out = []
    compose = _compose()
    for obj, pod in _workloads(objects):
        service = compose.get(_compose_service(obj))
        if service is None:
            out.append(f"{obj['metadata']['name']}: no service in docker-compose.yml")
            continue
        c = pod["containers"][0]
        ours, theirs = c["command"], [_expand(a) for a in service["command"]]
        if _component(obj) == "beat":
            # Beat's state lives in FUSION_HOME on its volume (fusion/runtime/services.py).
            if _arg_after(ours, "--schedule") != f"{HOME}/celerybeat-schedule":
                out.append(f"beat: --schedule must be {HOME}/celerybeat-schedule")
            if HOME not in {m["mountPath"] for m in c.get("volumeMounts", [])}:
                out.append("beat: FUSION_HOME must be a volume")
            ours, theirs = _without_schedule(ours), _without_schedule(theirs)
        if ours != theirs:
            out.append(f"{obj['metadata']['name']}: runs {ours}, compose runs {theirs}")
        out += _probe_commands(obj, c, service)
    return out


def _probe_commands(obj: Obj, c: Obj, service: Obj) -> list[str]:
    out, name, component = [], obj["metadata"]["name"], _component(obj)
    probes = [c[p] for p in ("startupProbe", "readinessProbe", "livenessProbe") if p in c]
    if component == "worker":
        queue = obj["metadata"]["labels"]["fusion.hub/queue"]
        expected: list[str] | None = ["fusion", "worker", "--platform", queue, "--ping"]
    elif component == "beat":
        expected = ["fusion", "beat", "--check"]
    else:
        expected = None
    if expected is not None:
        test = service.get("healthcheck", {}).get("test")
        if test and test[0] == "CMD" and test[1:] != expected:
            out.append(f"{name}: compose's healthcheck is {test[1:]}, not {expected}")
        for probe in probes:
            if probe.get("exec", {}).get("command") != expected:
                out.append(f"{name}: every probe must run {shlex.join(expected)}")
    if component in ("api", "streams", "flower"):
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        readiness = c.get("readinessProbe", {}).get("httpGet", {})
        compose_probe = _http_probe_from_compose(service)
        if compose_probe and (ports.get(readiness.get("port")), readiness.get("path")) != (
            compose_probe
        ):
            out.append(f"{name}: readiness {readiness}, compose checks {compose_probe}")
        port = ports.get(readiness.get("port"))
        if not {f"--bind=0.0.0.0:{port}", f"--port={port}"} & set(c["command"]):
            out.append(f"{name}: the probed port {port} is not the one the command binds")
    return out


def _arg_after(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command[:-1] else None


def _workers(objects: list[Obj]) -> list[str]:
    out = []
    workers = [d for d in _of(objects, "Deployment") if _component(d) == "worker"]
    queues = [d["metadata"]["labels"]["fusion.hub/queue"] for d in workers]
    if sorted(queues) != sorted(ALL_QUEUES):
        out.append(f"worker Deployments serve {sorted(queues)}, the queues are {ALL_QUEUES}")
    for d in workers:
        command = _pod(d)["containers"][0]["command"]
        queue = d["metadata"]["labels"]["fusion.hub/queue"]
        if _arg_after(command, "--platform") != queue:
            out.append(f"{d['metadata']['name']}: serves another queue than its label says")
    return out


def _beat(objects: list[Obj]) -> list[str]:
    out = []
    beats = [d for d in _of(objects, "Deployment") if _component(d) == "beat"]
    if len(beats) != 1:
        return [f"{len(beats)} beat Deployments, not one"]
    beat = beats[0]
    if beat["spec"].get("replicas") != 1:
        out.append("beat: replicas must be 1")
    if beat["spec"].get("strategy", {}).get("type") != "Recreate":
        out.append("beat: strategy must be Recreate")
    for scaler in _of(objects, "HorizontalPodAutoscaler") + _of(objects, "ScaledObject"):
        if scaler["spec"]["scaleTargetRef"]["name"] == beat["metadata"]["name"]:
            out.append(f"{scaler['kind']}/{scaler['metadata']['name']} scales beat")
    return out


def _wiring(objects: list[Obj]) -> list[str]:
    """Selectors select, Services and Ingress backends exist, every Deployment's pods are
    its own, the ConfigMaps and claims pods use are there."""
    out = []
    deployments = _of(objects, "Deployment")
    for d in deployments:
        selector = d["spec"]["selector"]["matchLabels"]
        if not _matches(selector, d["spec"]["template"]["metadata"]["labels"]):
            out.append(f"{d['metadata']['name']}: its selector misses its own pods")
        for other in deployments:
            if other is not d and _matches(
                selector, other["spec"]["template"]["metadata"]["labels"]
            ):
                out.append(
                    f"{d['metadata']['name']}: its selector takes "
                    f"{other['metadata']['name']}'s pods"
                )
    templates = {d["metadata"]["name"]: d for d in deployments}
    services = {s["metadata"]["name"]: s for s in _of(objects, "Service")}
    for s in services.values():
        targets = [
            d
            for d in deployments
            if _matches(s["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        if len(targets) != 1:
            out.append(f"Service/{s['metadata']['name']} selects {len(targets)} Deployments")
            continue
        ports = {p["name"] for c in _pod(targets[0])["containers"] for p in c.get("ports", [])}
        for port in s["spec"]["ports"]:
            if port["targetPort"] not in ports:
                out.append(
                    f"Service/{s['metadata']['name']}: no container port {port['targetPort']}"
                )
    for ingress in _of(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = services.get(backend["name"])
                if service is None or backend["port"]["name"] not in {
                    p["name"] for p in service["spec"]["ports"]
                }:
                    out.append(f"Ingress/{ingress['metadata']['name']}: no backend {backend}")
    pdbs = _of(objects, "PodDisruptionBudget")
    for pdb in pdbs:
        if not any(
            _matches(
                pdb["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]
            )
            for d in deployments
        ):
            out.append(f"PodDisruptionBudget/{pdb['metadata']['name']} selects nothing")
    for d in deployments:
        if _component(d) in ("api", "streams", "worker") and not any(
            _matches(
                p["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]
            )
            for p in pdbs
        ):
            out.append(f"{d['metadata']['name']}: no PodDisruptionBudget")
    configmaps = {c["metadata"]["name"] for c in _of(objects, "ConfigMap")}
    claims = {c["metadata"]["name"] for c in _of(objects, "PersistentVolumeClaim")}
    for obj, pod in _workloads(objects):
        for c in pod["containers"]:
            for source in c.get("envFrom", []):
                if source.get("configMapRef", {}).get("name") not in configmaps:
                    out.append(f"{obj['metadata']['name']}: no ConfigMap {source}")
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    out.append(f"{obj['metadata']['name']}: no volume {m['name']}")
        for v in pod.get("volumes", []):
            claim = v.get("persistentVolumeClaim", {}).get("claimName")
            if claim and claim not in claims:
                out.append(f"{obj['metadata']['name']}: no claim {claim}")
    # The migration is applied alone first (kubectl apply -l 'app.kubernetes.io/component in
    # (config,migrate)'), so what its pod needs must carry one of those two labels.
    for obj in objects:
        if {"app.kubernetes.io/name", "app.kubernetes.io/component"} - set(
            obj["metadata"].get("labels", {})
        ):
            out.append(f"{obj['kind']}/{obj['metadata']['name']}: name and component labels")
    early = {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        in ("config", "migrate")
    }
    for job, pod in _workloads(_of(objects, "Job")):
        needs = {("ServiceAccount", pod.get("serviceAccountName", "default"))} | {
            ("ConfigMap", s["configMapRef"]["name"])
            for c in pod["containers"]
            for s in c.get("envFrom", [])
            if "configMapRef" in s
        }
        if needs - early:
            out.append(f"Job/{job['metadata']['name']} needs {sorted(needs - early)} applied first")
    for scaler in _of(objects, "HorizontalPodAutoscaler") + _of(objects, "ScaledObject"):
        if scaler["spec"]["scaleTargetRef"]["name"] not in templates:
            out.append(f"{scaler['kind']}/{scaler['metadata']['name']}: no such Deployment")
    return out


def _queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu's transport fills for ``queue`` under celeryconfig's steps: its
    own ``Channel._q_for_pri``, called on a stand-in holding just what the method reads."""
    steps = cast(list[int], celeryconfig.broker_transport_options["priority_steps"])
    stub = types.SimpleNamespace(sep=Channel.sep, priority_steps=steps)
    channel = cast(Channel, stub)
    stub.priority = lambda n: Channel.priority(channel, n)
    return [Channel._q_for_pri(channel, queue, step) for step in steps]


def _keda(objects: list[Obj]) -> list[str]:
    out = []
    auths = {a["metadata"]["name"] for a in _of(objects, "TriggerAuthentication")}
    deployments = {d["metadata"]["name"]: d for d in _of(objects, "Deployment")}
    for so in _of(objects, "ScaledObject"):
        name, spec = so["metadata"]["name"], so["spec"]
        target = deployments.get(spec["scaleTargetRef"]["name"])
        if target is None:
            continue  # _wiring says so
        queue = target["metadata"]["labels"]["fusion.hub/queue"]
        triggers = spec["triggers"]
        keys = sorted(t["metadata"]["listName"] for t in triggers if t["type"] == "redis")
        if keys != sorted(_queue_keys(queue)):
            out.append(f"ScaledObject/{name} watches {keys}, queue {queue} is {_queue_keys(queue)}")
        names = [str(t.get("name")) for t in triggers]
        formula = spec.get("advanced", {}).get("scalingModifiers", {}).get("formula", "")
        if len(triggers) > 1 and sorted(re.findall(r"[a-z_][a-z0-9_]*", formula)) != sorted(names):
            out.append(f"ScaledObject/{name}: its formula must sum every trigger: {formula!r}")
        for t in triggers:
            if t.get("authenticationRef", {}).get("name") not in auths:
                out.append(
                    f"ScaledObject/{name}: no TriggerAuthentication {t.get('authenticationRef')}"
                )
    return out


def _load_sizing() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sizing", ROOT / "bench" / "sizing.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bounds(objects: list[Obj]) -> list[str]:
    """Every autoscaler's bound is the largest row of docs/running.md's sizing table: not
    short of it, and not past it (a bound the table no longer backs)."""
    out = []
    sizing = _load_sizing()
    needed: dict[str, int] = {}
    for orders_h, skus_h in sizing.SCENARIOS:
        for queue, (_threads, pods) in sizing.plan(orders_h, skus_h).items():
            needed[queue] = max(needed.get(queue, 1), pods)
    deployments = {d["metadata"]["name"]: d for d in _of(objects, "Deployment")}
    for scaler in _of(objects, "HorizontalPodAutoscaler") + _of(objects, "ScaledObject"):
        target = deployments.get(scaler["spec"]["scaleTargetRef"]["name"])
        if target is None:
            continue
        queue = target["metadata"]["labels"]["fusion.hub/queue"]
        spec = scaler["spec"]
        top = spec.get("maxReplicas", spec.get("maxReplicaCount", 100))
        if top != needed.get(queue, 1):
            out.append(
                f"{scaler['kind']}/{scaler['metadata']['name']}: at most {top}, "
                f"the table needs {needed.get(queue)}"
            )
    return out


def problems(objects: list[Obj]) -> list[str]:
    return [
        *_security(objects),
        *_probes(objects),
        *_secrets(objects),
        *_commands(objects),
        *_workers(objects),
        *_beat(objects),
        *_wiring(objects),
        *_keda(objects),
        *_bounds(objects),
    ]


def test_the_manifests_keep_the_hubs_rules(rendered: list[Obj]) -> None:
    assert problems(rendered) == []


def test_each_overlay_scales_every_worker_one_way() -> None:
    for overlay, kind in (("keda", "ScaledObject"), ("hpa", "HorizontalPodAutoscaler")):
        objects = render(KUBE / overlay)
        workers = {
            d["metadata"]["name"] for d in _of(objects, "Deployment") if _component(d) == "worker"
        }
        assert {s["spec"]["scaleTargetRef"]["name"] for s in _of(objects, kind)} == workers
        other = "HorizontalPodAutoscaler" if kind == "ScaledObject" else "ScaledObject"
        assert _of(objects, other) == [], f"{overlay}: two autoscalers would fight"
        for d in _of(objects, "Deployment"):
            if d["metadata"]["name"] in workers:
                assert "replicas" not in d["spec"], "the autoscaler owns the count"


def test_the_ingress_routes_streams_to_streams() -> None:
    objects = render(KUBE / "base")
    routes = [
        (path["path"], path["pathType"], path["backend"]["service"]["name"])
        for ingress in _of(objects, "Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]

    def backend(request_path: str) -> str:
        # ingress-nginx: regex locations (use-regex) first, longest first; ^ implied.
        for path, _kind, service in sorted(routes, key=lambda r: -len(r[0])):
            if re.match(path, request_path):
                return service
        raise AssertionError(request_path)

    org = "0b9c2c5e-2f35-4a8b-9a57-93e0f0d6b4a1"
    assert backend(f"/orgs/{org}/events") == "fusion-streams"
    assert backend(f"/console/orgs/{org}/events") == "fusion-streams"  # the console's live pages
    for path in (f"/orgs/{org}/events/x", f"/orgs/{org}/jobs", "/readyz", "/auth/login",
                 f"/console/orgs/{org}/jobs"):  # fmt: skip
        assert backend(path) == "fusion-api", path


def test_the_sizing_table_in_the_docs_is_the_benches() -> None:
    docs = (ROOT / "docs" / "running.md").read_text("utf-8")
    assert _load_sizing().table() in docs, "run bench/sizing.py and paste its table"


# --- the checks catch what they are for ---------------------------------------------------


def _find(objects: list[Obj], kind: str, name: str) -> Obj:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _worker(objects: list[Obj]) -> Obj:
    return _pod(_find(objects, "Deployment", "fusion-worker-etsy"))["containers"][0]


BREAKAGES = {
    "a worker without its liveness probe": lambda o: _worker(o).pop("livenessProbe"),
    "a worker probing another node": lambda o: _worker(o)["readinessProbe"]["exec"].update(
        command=["fusion", "worker", "--platform", "shopify", "--ping"]
    ),
    "beat rolling": lambda o: _find(o, "Deployment", "fusion-beat")["spec"].update(
        strategy={"type": "RollingUpdate"}
    ),
    "two beats": lambda o: _find(o, "Deployment", "fusion-beat")["spec"].update(replicas=2),
    "a queue without workers": lambda o: o.remove(_find(o, "Deployment", "fusion-worker-printify")),
    "a worker on no queue of the hub": lambda o: _find(o, "Deployment", "fusion-worker-etsy")[
        "metadata"
    ]["labels"].update({"fusion.hub/queue": "ebay"}),
    "a secret in plain text": lambda o: _worker(o)["env"].append(
        {"name": "FUSION_JWT_SECRET", "value": "x" * 40}
    ),
    "a secret in the ConfigMap": lambda o: _find(o, "ConfigMap", "fusion-config")["data"].update(
        FUSION_ENCRYPTION_KEYS="k"
    ),
    "root": lambda o: _pod(_find(o, "Deployment", "fusion-api"))["securityContext"].update(
        runAsUser=0
    ),
    "no memory limit": lambda o: _worker(o)["resources"]["limits"].pop("memory"),
    "a writable root": lambda o: _worker(o)["securityContext"].update(readOnlyRootFilesystem=False),
    "another command": lambda o: _worker(o).update(
        command=["celery", "-A", "workers.app", "worker", "-Q", "etsy"]
    ),
    "flower with the JWT secret": lambda o: _pod(_find(o, "Deployment", "fusion-flower"))[
        "containers"
    ][0]["env"].append(
        {"name": "FUSION_JWT_SECRET", "valueFrom": {"secretKeyRef": {"name": "a", "key": "b"}}}
    ),
    "the API probed on the wrong port": lambda o: _pod(_find(o, "Deployment", "fusion-api"))[
        "containers"
    ][0]["ports"][0].update(containerPort=9000),
    "an autoscaler bound past the table": lambda o: _find(
        o, "ScaledObject", "fusion-worker-default"
    )["spec"].update(maxReplicaCount=4),
}


# What each breakage must be reported as: the check meant for it, not some other one.
CAUGHT_AS = {
    "a worker without its liveness probe": "no livenessProbe",
    "a worker probing another node": "every probe must run",
    "beat rolling": "strategy must be Recreate",
    "two beats": "replicas must be 1",
    "a queue without workers": "worker Deployments serve",
    "a worker on no queue of the hub": "worker Deployments serve",
    "a secret in plain text": "FUSION_JWT_SECRET must come from a secretKeyRef",
    "a secret in the ConfigMap": "holds secrets",
    "root": "non-root",
    "no memory limit": "no memory limits",
    "a writable root": "must be read-only",
    "another command": "compose runs",
    "flower with the JWT secret": "broker settings only",
    "the API probed on the wrong port": "not the one the command binds",
    "an autoscaler bound past the table": "the table needs 1",
}


def test_every_breakage_says_how_it_is_caught() -> None:
    assert sorted(CAUGHT_AS) == sorted(BREAKAGES)


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_manifest_is_caught(breakage: str) -> None:
    objects = copy.deepcopy(render(KUBE / "keda"))
    BREAKAGES[breakage](objects)
    assert schema_errors(objects) == []  # still valid Kubernetes: only the hub's rules object
    found = problems(objects)
    assert any(CAUGHT_AS[breakage] in p for p in found), found


def _schema_breakage(objects: list[Obj], breakage: str) -> None:
    api = _find(objects, "Deployment", "fusion-api")
    so = _find(objects, "ScaledObject", "fusion-worker-etsy")
    if breakage == "a string for replicas":
        api["spec"]["replicas"] = "two"
    elif breakage == "an unknown field":
        api["spec"]["replica"] = 2
    elif breakage == "a misspelt probe":
        _worker(objects)["livenesProbe"] = _worker(objects).pop("livenessProbe")
    elif breakage == "a KEDA field misspelt":
        so["spec"]["maxReplicas"] = 3
    elif breakage == "a KEDA trigger without its list":
        del so["spec"]["triggers"][1]["metadata"]["listName"]
    else:
        raise AssertionError(breakage)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("a string for replicas", "'two' is not of type"),
        ("an unknown field", "'replica' was unexpected"),
        ("a misspelt probe", "'livenesProbe' was unexpected"),
        ("a KEDA field misspelt", "'maxReplicas' was unexpected"),
        ("a KEDA trigger without its list", "'listName' is a required property"),
    ],
)
def test_a_manifest_the_schemas_refuse_is_caught(breakage: str, message: str) -> None:
    objects = copy.deepcopy(render(KUBE / "keda"))
    _schema_breakage(objects, breakage)
    errors = schema_errors(objects)
    assert any(message in e for e in errors), errors


def test_a_lane_the_autoscaler_does_not_watch_is_caught() -> None:
    objects = copy.deepcopy(render(KUBE / "keda"))
    so = _find(objects, "ScaledObject", "fusion-worker-etsy")
    so["spec"]["triggers"][1]["metadata"]["listName"] = "etsy:3"
    assert any("watches" in p for p in problems(objects))
