#!/usr/bin/env python3
"""Checks deploy/: the Kubernetes manifests parse and use only fields of the Kubernetes API,
their Localhost seccomp profile is deploy/seccomp/pycell.json, and that file is a valid
Docker/OCI seccomp profile whose additions to the runtime default are exactly the ones
deploy/seccomp/generate.py documents.

    python3 tests/deploy/check_manifests.py SOURCE_DIR
"""
import json
import os
import sys
import unittest

import yaml

sys.dont_write_bytecode = True  # generate.py is imported: leave no __pycache__ in deploy/

SOURCE = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
DEPLOY = os.path.join(SOURCE, "deploy")
PROFILE = os.path.join(DEPLOY, "seccomp", "pycell.json")

# The fields each Kubernetes object type has that the manifests may use, from the API
# reference (kubernetes.io/docs/reference/kubernetes-api/, v1.31: Deployment,
# PodTemplateSpec, PodSpec, Container, SecurityContext, Probe, ResourceRequirements,
# Volume). A type maps each field to the type of its value; "" is a scalar, a list in
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
                  "volumeMounts": "[VolumeMount]"},
    "EnvVar": {"name": "", "value": ""},
    "SecurityContext": {"seccompProfile": "SeccompProfile", "appArmorProfile": "AppArmorProfile",
                        "procMount": "", "runAsUser": "", "runAsGroup": "", "runAsNonRoot": "",
                        "capabilities": "Capabilities", "allowPrivilegeEscalation": "", "privileged": "",
                        "readOnlyRootFilesystem": ""},
    "SeccompProfile": {"type": "", "localhostProfile": ""},
    "AppArmorProfile": {"type": "", "localhostProfile": ""},
    "Capabilities": {"add": "[]", "drop": "[]"},
    "ResourceRequirements": {"requests": "map", "limits": "map"},
    "Probe": {"exec": "ExecAction", "initialDelaySeconds": "", "periodSeconds": "", "timeoutSeconds": "",
              "failureThreshold": "", "successThreshold": ""},
    "ExecAction": {"command": "[]"},
    "VolumeMount": {"name": "", "mountPath": "", "readOnly": "", "subPath": ""},
    "Volume": {"name": "", "emptyDir": "EmptyDirVolumeSource"},
    "EmptyDirVolumeSource": {"medium": "", "sizeLimit": ""},
}
# Enumerated values the API reference lists for the fields the manifests rely on.
ENUMS = {
    ("SeccompProfile", "type"): {"RuntimeDefault", "Unconfined", "Localhost"},
    ("AppArmorProfile", "type"): {"RuntimeDefault", "Unconfined", "Localhost"},
    ("SecurityContext", "procMount"): {"Default", "Unmasked"},
    ("Container", "imagePullPolicy"): {"Always", "IfNotPresent", "Never"},
}


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


def containers(doc):
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


class Manifests(unittest.TestCase):
    def test_there_is_a_deployment(self):
        kinds = [doc.get("kind") for _, doc in manifests()]
        self.assertIn("Deployment", kinds)

    def test_only_api_fields(self):
        for name, doc in manifests():
            self.assertIn(doc.get("kind"), API, f"{name}: a kind this test has no field list for")
            self.assertEqual(unknown_fields(doc, doc["kind"], f"{name}:{doc['kind']}"), [])

    def test_the_field_check_can_fail(self):
        # The check itself: a misspelt field and a wrong enum value are caught.
        bad = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [
            {"name": "x", "securityContext": {"procmount": "Unmasked", "seccompProfile": {"type": "localhost"}}}]}}}}
        problems = unknown_fields(bad, "Deployment", "bad")
        self.assertEqual(len(problems), 2, problems)

    def test_selector_matches_template(self):
        for name, doc in manifests():
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            self.assertTrue(selector.items() <= labels.items(), name)

    def test_seccomp_profile_is_the_repository_file(self):
        for name, doc in manifests():
            for c in containers(doc):
                profile = c["securityContext"]["seccompProfile"]
                self.assertEqual(profile["type"], "Localhost", f"{name}: {c['name']}")
                # The kubelet resolves it below its seccomp directory: profiles/<file name>.
                self.assertEqual(profile["localhostProfile"], "profiles/" + os.path.basename(PROFILE))

    def test_what_docs_containers_found(self):
        for name, doc in manifests():
            self.assertIs(doc["spec"]["template"]["spec"].get("hostUsers"), False, name)
            for c in containers(doc):
                sc = c["securityContext"]
                self.assertEqual(sc["procMount"], "Unmasked")
                self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                self.assertEqual(sorted(sc["capabilities"]["add"]), ["SETGID", "SETUID"])
                self.assertIs(sc["allowPrivilegeEscalation"], False)
                self.assertIs(sc.get("privileged", False), False)
                self.assertEqual(c["readinessProbe"]["exec"]["command"][-1], "check")
                for key in ("requests", "limits"):
                    self.assertIn("memory", c["resources"][key])
                    self.assertIn("cpu", c["resources"][key])


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
