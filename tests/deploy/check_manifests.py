#!/usr/bin/env python3
"""Checks deploy/: the Kubernetes manifests parse and use only fields of the Kubernetes API,
their Localhost seccomp profile is deploy/seccomp/pycell.json, the Deployment's pods listen
on TCP with the token of a Secret that deploy/kubernetes/README.md says how to make (no
token is committed), the Service reaches them, and deploy/seccomp/pycell.json is a valid
Docker/OCI seccomp profile whose additions to the runtime default are exactly the ones
deploy/seccomp/generate.py documents.

    python3 tests/deploy/check_manifests.py SOURCE_DIR
"""
import json
import os
import re
import shlex
import sys
import unittest

import yaml

sys.dont_write_bytecode = True  # generate.py is imported: leave no __pycache__ in deploy/

SOURCE = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
DEPLOY = os.path.join(SOURCE, "deploy")
PROFILE = os.path.join(DEPLOY, "seccomp", "pycell.json")

# The fields each Kubernetes object type has that the manifests may use, from the API
# reference (kubernetes.io/docs/reference/kubernetes-api/, v1.31: Deployment,
# PodTemplateSpec, PodSpec, Container, ContainerPort, SecurityContext, Probe,
# ResourceRequirements, Volume, SecretVolumeSource, KeyToPath, Service, ServiceSpec,
# ServicePort). A type maps each field to the type of its value; "" is a scalar, a list in
# brackets is a list of that type, "map" is a map of strings (labels, resource amounts).
API = {
    "Deployment": {"apiVersion": "", "kind": "", "metadata": "ObjectMeta", "spec": "DeploymentSpec"},
    "ObjectMeta": {"name": "", "namespace": "", "labels": "map", "annotations": "map"},
    "DeploymentSpec": {"replicas": "", "selector": "LabelSelector", "template": "PodTemplateSpec",
                       "strategy": "DeploymentStrategy", "minReadySeconds": "", "revisionHistoryLimit": "",
                       "progressDeadlineSeconds": "", "paused": ""},
    "DeploymentStrategy": {"type": "", "rollingUpdate": "RollingUpdateDeployment"},
    "RollingUpdateDeployment": {"maxSurge": "", "maxUnavailable": ""},
    "LabelSelector": {"matchLabels": "map", "matchExpressions": "[LabelSelectorRequirement]"},
    "LabelSelectorRequirement": {"key": "", "operator": "", "values": "[]"},
    "PodTemplateSpec": {"metadata": "ObjectMeta", "spec": "PodSpec"},
    "PodSpec": {"containers": "[Container]", "initContainers": "[Container]", "volumes": "[Volume]",
                "hostUsers": "", "automountServiceAccountToken": "", "enableServiceLinks": "",
                "terminationGracePeriodSeconds": "", "serviceAccountName": "", "nodeSelector": "map",
                "securityContext": "PodSecurityContext", "restartPolicy": "", "priorityClassName": ""},
    "PodSecurityContext": {"seccompProfile": "SeccompProfile", "appArmorProfile": "AppArmorProfile",
                           "runAsUser": "", "runAsGroup": "", "runAsNonRoot": "", "fsGroup": ""},
    "Container": {"name": "", "image": "", "imagePullPolicy": "", "command": "[]", "args": "[]",
                  "env": "[EnvVar]", "stdin": "", "stdinOnce": "", "tty": "", "workingDir": "",
                  "securityContext": "SecurityContext", "resources": "ResourceRequirements",
                  "readinessProbe": "Probe", "livenessProbe": "Probe", "startupProbe": "Probe",
                  "volumeMounts": "[VolumeMount]", "ports": "[ContainerPort]"},
    "ContainerPort": {"name": "", "containerPort": "", "protocol": "", "hostPort": "", "hostIP": ""},
    "EnvVar": {"name": "", "value": ""},
    "SecurityContext": {"seccompProfile": "SeccompProfile", "appArmorProfile": "AppArmorProfile",
                        "procMount": "", "runAsUser": "", "runAsGroup": "", "runAsNonRoot": "",
                        "capabilities": "Capabilities", "allowPrivilegeEscalation": "", "privileged": "",
                        "readOnlyRootFilesystem": ""},
    "SeccompProfile": {"type": "", "localhostProfile": ""},
    "AppArmorProfile": {"type": "", "localhostProfile": ""},
    "Capabilities": {"add": "[]", "drop": "[]"},
    "ResourceRequirements": {"requests": "map", "limits": "map"},
    "Probe": {"exec": "ExecAction", "tcpSocket": "TCPSocketAction", "initialDelaySeconds": "", "periodSeconds": "",
              "timeoutSeconds": "", "failureThreshold": "", "successThreshold": ""},
    "ExecAction": {"command": "[]"},
    "TCPSocketAction": {"port": "", "host": ""},
    "VolumeMount": {"name": "", "mountPath": "", "readOnly": "", "subPath": ""},
    "Volume": {"name": "", "emptyDir": "EmptyDirVolumeSource", "secret": "SecretVolumeSource"},
    "EmptyDirVolumeSource": {"medium": "", "sizeLimit": ""},
    "SecretVolumeSource": {"secretName": "", "items": "[KeyToPath]", "defaultMode": "", "optional": ""},
    "KeyToPath": {"key": "", "path": "", "mode": ""},
    "Service": {"apiVersion": "", "kind": "", "metadata": "ObjectMeta", "spec": "ServiceSpec"},
    "ServiceSpec": {"type": "", "selector": "map", "ports": "[ServicePort]", "sessionAffinity": "", "clusterIP": "",
                    "internalTrafficPolicy": "", "publishNotReadyAddresses": "", "ipFamilyPolicy": ""},
    "ServicePort": {"name": "", "port": "", "targetPort": "", "protocol": "", "appProtocol": ""},
}
# Enumerated values the API reference lists for the fields the manifests rely on.
ENUMS = {
    ("SeccompProfile", "type"): {"RuntimeDefault", "Unconfined", "Localhost"},
    ("AppArmorProfile", "type"): {"RuntimeDefault", "Unconfined", "Localhost"},
    ("SecurityContext", "procMount"): {"Default", "Unmasked"},
    ("Container", "imagePullPolicy"): {"Always", "IfNotPresent", "Never"},
    ("ContainerPort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("ServicePort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("ServiceSpec", "type"): {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"},
    ("ServiceSpec", "sessionAffinity"): {"None", "ClientIP"},
    ("ServiceSpec", "internalTrafficPolicy"): {"Cluster", "Local"},
}
# apiVersion of each kind the manifests may hold.
API_VERSIONS = {"Deployment": "apps/v1", "Service": "v1"}


def unknown_fields(value, type_name, path):
    """The paths in `value` that are not fields of `type_name` (recursively), with why."""
    if type_name == "":
        return [] if not isinstance(value, (dict, list)) else [f"{path}: expected a scalar"]
    if type_name == "map":
        ok = isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values())
        return [] if ok else [f"{path}: expected a map of scalars"]
    if type_name.startswith("["):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        inner = type_name[1:-1]
        return [p for i, item in enumerate(value) for p in unknown_fields(item, inner, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({type_name})"]
    problems = []
    for key, item in value.items():
        if key not in API[type_name]:
            problems.append(f"{path}.{key}: not a field of {type_name}")
            continue
        allowed = ENUMS.get((type_name, key))
        if allowed is not None and item not in allowed:
            problems.append(f"{path}.{key}: {item!r} is not one of {sorted(allowed)}")
        problems += unknown_fields(item, API[type_name][key], f"{path}.{key}")
    return problems


def manifests():
    directory = os.path.join(DEPLOY, "kubernetes")
    for name in sorted(os.listdir(directory)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(directory, name)) as f:
                for doc in yaml.safe_load_all(f):
                    if doc is not None:
                        yield name, doc


def of_kind(kind):
    return [(name, doc) for name, doc in manifests() if doc.get("kind") == kind]


def containers(doc):
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def option(command, flag):
    """The value after `flag` in an argv list, or None."""
    return command[command.index(flag) + 1] if flag in command and command.index(flag) + 1 < len(command) else None


def listen_port(address):
    """The port of a `--listen tcp:HOST:PORT` address (HOST may be [v6])."""
    match = re.fullmatch(r"tcp:(\[[^]]*\]|[^:]+):([0-9]+)", address)
    return int(match.group(2)) if match else None


def pycell_container(doc):
    """The container that runs `pycell serve`."""
    found = [c for c in doc["spec"]["template"]["spec"]["containers"] if c.get("command", [])[1:2] == ["serve"]]
    assert len(found) == 1, "one container runs pycell serve"
    return found[0]


class Manifests(unittest.TestCase):
    def test_there_is_a_deployment(self):
        kinds = [doc.get("kind") for _, doc in manifests()]
        self.assertIn("Deployment", kinds)

    def test_only_api_fields(self):
        for name, doc in manifests():
            self.assertIn(doc.get("kind"), API_VERSIONS, f"{name}: a kind this test has no field list for")
            self.assertEqual(doc.get("apiVersion"), API_VERSIONS[doc["kind"]], name)
            self.assertEqual(unknown_fields(doc, doc["kind"], f"{name}:{doc['kind']}"), [])

    def test_the_field_check_can_fail(self):
        # The check itself: a misspelt field and a wrong enum value are caught.
        bad = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [
            {"name": "x", "securityContext": {"procmount": "Unmasked", "seccompProfile": {"type": "localhost"}}}]}}}}
        problems = unknown_fields(bad, "Deployment", "bad")
        self.assertEqual(len(problems), 2, problems)
        bad = {"apiVersion": "v1", "kind": "Service", "spec": {"type": "Internal", "ports": [
            {"port": 7777, "targetport": "jsonrpc", "protocol": "tcp"}]}}
        problems = unknown_fields(bad, "Service", "bad")
        self.assertEqual(len(problems), 3, problems)

    def test_selector_matches_template(self):
        for name, doc in of_kind("Deployment"):
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            self.assertTrue(selector.items() <= labels.items(), name)

    def test_seccomp_profile_is_the_repository_file(self):
        for name, doc in of_kind("Deployment"):
            for c in containers(doc):
                profile = c["securityContext"]["seccompProfile"]
                self.assertEqual(profile["type"], "Localhost", f"{name}: {c['name']}")
                # The kubelet resolves it below its seccomp directory: profiles/<file name>.
                self.assertEqual(profile["localhostProfile"], "profiles/" + os.path.basename(PROFILE))

    def test_what_docs_containers_found(self):
        for name, doc in of_kind("Deployment"):
            self.assertIs(doc["spec"]["template"]["spec"].get("hostUsers"), False, name)
            for c in containers(doc):
                sc = c["securityContext"]
                self.assertEqual(sc["procMount"], "Unmasked")
                self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                self.assertEqual(sorted(sc["capabilities"]["add"]), ["SETGID", "SETUID"])
                self.assertIs(sc["allowPrivilegeEscalation"], False)
                self.assertIs(sc.get("privileged", False), False)
                for key in ("requests", "limits"):
                    self.assertIn("memory", c["resources"][key])
                    self.assertIn("cpu", c["resources"][key])

    def test_serve_listens_on_tcp_with_the_secret_token(self):
        # The contract of --listen: a non-loopback address only with --token-file.
        for name, doc in of_kind("Deployment"):
            c = pycell_container(doc)
            command = c["command"]
            self.assertEqual(command[:2], ["/usr/bin/pycell", "serve"], name)
            address, token_file = option(command, "--listen"), option(command, "--token-file")
            self.assertIsNotNone(address, f"{name}: serve without --listen")
            self.assertIsNotNone(listen_port(address), f"{name}: {address} is not tcp:HOST:PORT")
            self.assertIsNotNone(token_file, f"{name}: a TCP listener without --token-file")
            self.assertNotIn(c.get("stdin"), (True,), f"{name}: a listening server reads no stdin")
            # The port is the container's, by name for the Service.
            ports = {p["containerPort"]: p for p in c.get("ports", [])}
            self.assertIn(listen_port(address), ports, f"{name}: {address} is not a containerPort")
            self.assertEqual(ports[listen_port(address)].get("protocol", "TCP"), "TCP")
            # The token file comes from a Secret, mounted read-only, readable by its owner only.
            volume = self.secret_volume(doc, c, token_file)
            self.assertEqual(volume["secret"].get("defaultMode", 0o644) & 0o077, 0, f"{name}: token readable by others")

    def secret_volume(self, doc, container, path):
        """The secret volume that holds `path` in `container`, checked to hold it."""
        directory, file_name = os.path.split(path)
        mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"].rstrip("/") == directory]
        self.assertEqual(len(mounts), 1, f"nothing is mounted at {directory}")
        self.assertIs(mounts[0].get("readOnly"), True, f"{directory} is not mounted read-only")
        volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
        volume = volumes[mounts[0]["name"]]
        self.assertIn("secret", volume, f"{directory} is not a Secret")
        items = volume["secret"].get("items")
        files = [i["path"] for i in items] if items else None
        if files is not None:
            self.assertIn(file_name, files, f"the Secret's items do not make {file_name}")
        return volume

    def test_no_token_is_committed(self):
        # The Secret is made by hand (README.md); a manifest holding one would hold a token.
        self.assertEqual(of_kind("Secret"), [])
        for name, doc in of_kind("Deployment"):
            for c in containers(doc):
                for env in c.get("env", []):
                    self.assertNotRegex(env["name"].lower(), "token", f"{name}: a token in env")

    def test_readme_makes_the_secret_the_pods_mount(self):
        with open(os.path.join(DEPLOY, "kubernetes", "README.md")) as f:
            readme = f.read()
        lines = [line for line in readme.replace("\\\n", " ").splitlines() if "kubectl create secret generic" in line]
        self.assertEqual(len(lines), 1, "README.md: one `kubectl create secret generic` command")
        argv = shlex.split(lines[0][lines[0].index("kubectl"):])
        secret_name = argv[4]
        keys = [a.split("=", 2)[1] for a in argv if a.startswith(("--from-file=", "--from-literal="))]
        for name, doc in of_kind("Deployment"):
            for volume in doc["spec"]["template"]["spec"]["volumes"]:
                if "secret" in volume:
                    self.assertEqual(volume["secret"]["secretName"], secret_name, name)
                    for item in volume["secret"].get("items", []):
                        self.assertIn(item["key"], keys, f"{name}: key {item['key']} is not made by README.md")

    def test_readiness_checks_isolation_and_the_listener(self):
        for name, doc in of_kind("Deployment"):
            c = pycell_container(doc)
            probe = " ".join(c["readinessProbe"]["exec"]["command"])
            self.assertIn("/usr/bin/pycell check &&", probe, f"{name}: readiness without pycell check")
            port = listen_port(option(c["command"], "--listen"))
            self.assertRegex(probe, r'create_connection\(\("127\.0\.0\.1", %d\)' % port,
                             f"{name}: readiness does not connect to the listener's port")

    def test_service_reaches_the_listener(self):
        services, deployments = of_kind("Service"), of_kind("Deployment")
        self.assertTrue(services, "no Service")
        for name, service in services:
            spec = service["spec"]
            # Plain TCP with a bearer token: inside the cluster only.
            self.assertEqual(spec.get("type", "ClusterIP"), "ClusterIP", name)
            pods = [d for _, d in deployments if spec["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
            self.assertEqual(len(pods), 1, f"{name}: its selector matches no Deployment's pods (or several)")
            c = pycell_container(pods[0])
            by_name = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            listening = listen_port(option(c["command"], "--listen"))
            for port in spec["ports"]:
                target = port.get("targetPort", port["port"])
                self.assertEqual(by_name.get(target, target), listening, f"{name}: port {port} misses the listener")
                self.assertEqual(port.get("protocol", "TCP"), "TCP")


ACTIONS = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"}
OPS = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"}


class SeccompProfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(PROFILE) as f:
            cls.profile = json.load(f)

    def test_docker_oci_format(self):
        p = self.profile
        self.assertIn(p["defaultAction"], ACTIONS)
        self.assertTrue(p["archMap"])
        for arch in p["archMap"]:
            self.assertTrue(arch["architecture"].startswith("SCMP_ARCH_"), arch)
            for sub in arch.get("subArchitectures") or []:
                self.assertTrue(sub.startswith("SCMP_ARCH_"), sub)
        self.assertTrue(p["syscalls"])
        for rule in p["syscalls"]:
            self.assertTrue(rule["names"] and all(isinstance(n, str) and n for n in rule["names"]), rule)
            self.assertIn(rule["action"], ACTIONS, rule)
            for arg in rule.get("args") or []:
                self.assertIn(arg["op"], OPS, rule)
                self.assertIsInstance(arg["index"], int)
                self.assertIsInstance(arg["value"], int)

    def test_allows_what_pycell_needs_unconditionally(self):
        # What pycell's sandbox calls (src/sandbox): each must have an allow rule with no
        # argument or capability condition, and no unconditional deny.
        needed = {"unshare", "clone", "mount", "umount2", "pivot_root", "sethostname", "seccomp", "prctl",
                  "open_tree", "mount_setattr"}
        plain = lambda r: not r.get("args") and not (r.get("includes") or {}) and not (r.get("excludes") or {})
        allowed = {n for r in self.profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and plain(r) for n in r["names"]}
        denied = {n for r in self.profile["syscalls"] if r["action"] != "SCMP_ACT_ALLOW" and plain(r) for n in r["names"]}
        self.assertEqual(needed - allowed, set())
        self.assertEqual(needed & denied, set())

    def test_is_the_generated_file(self):
        # Where the base profile is installed (podman brings it), the committed file is
        # exactly generate.py's output: nothing allowed beyond what NEEDED documents.
        base = "/usr/share/containers/seccomp.json"
        if not os.path.exists(base):
            self.skipTest(f"{base} is not installed (golang-github-containers-common)")
        sys.path.insert(0, os.path.join(DEPLOY, "seccomp"))
        import generate
        with open(base) as f:
            self.assertEqual(generate.with_pycell_rules(json.load(f)), self.profile,
                             "deploy/seccomp/pycell.json is not generate.py's output: regenerate it")


if __name__ == "__main__":
    unittest.main(verbosity=2)
