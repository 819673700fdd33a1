#!/usr/bin/env python3
"""Writes pycell.json, the seccomp profile a container running pycell needs: the container
runtime's default profile with the system calls pycell's own sandbox makes allowed.

The base is the default profile of Debian 12's container tools (podman, buildah, CRI-O:
/usr/share/containers/seccomp.json from golang-github-containers-common, Apache-2.0),
in the Docker/OCI JSON format every runtime reads. It already allows unshare, clone, mount,
pivot_root and setns to a container without CAP_SYS_ADMIN (Docker's own default does not:
this file allows them too, so it serves Docker and containerd as well). What pycell needs
beyond it was found by running `pycell check` in a container with the base profile, one
refusal at a time (docs/CONTAINERS.md), and is NEEDED below.

    python3 deploy/seccomp/generate.py [BASE] > deploy/seccomp/pycell.json
"""
import json
import sys

# Each system call pycell needs that the base profile denies, and why pycell makes it.
NEEDED = {
    "sethostname": "each sandbox has its own UTS namespace and names itself 'pycell' in it; "
                   "the base allows sethostname only with CAP_SYS_ADMIN in the container",
}

DEFAULT_BASE = "/usr/share/containers/seccomp.json"


def with_pycell_rules(base):
    """The base profile with NEEDED taken out of every rule and allowed by one rule of its own.

    Taken out first because a runtime refuses two unconditional rules with different actions
    for one system call, and the base denies these where the container lacks a capability.
    """
    profile = dict(base)
    rules = []
    for rule in base["syscalls"]:
        names = [n for n in rule["names"] if n not in NEEDED]
        if names:
            rules.append({**rule, "names": names})
    rules.append({
        "names": sorted(NEEDED),
        "action": "SCMP_ACT_ALLOW",
        "comment": "pycell: " + "; ".join(f"{n}: {why}" for n, why in sorted(NEEDED.items())),
    })
    profile["syscalls"] = rules
    return profile


def main(argv):
    path = argv[1] if len(argv) > 1 else DEFAULT_BASE
    try:
        with open(path) as f:
            base = json.load(f)
    except OSError as e:
        sys.exit(f"generate.py: cannot read the base profile {path}: {e.strerror} "
                 "(apt-get install golang-github-containers-common, which podman brings)")
    json.dump(with_pycell_rules(base), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
