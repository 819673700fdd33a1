#!/usr/bin/env python3
"""Installs npm itself from the npm registry (a pinned release, checked against its sha512
integrity) into PREFIX/lib/node_modules/npm, with PREFIX/bin/npm and npx. Debian 12's `npm`
package would pull in some 350 node-* packages; npm's own tarball bundles its dependencies.
Usage: install-npm.py [PREFIX]   (default /usr/local). Python 3 standard library only."""
import base64
import hashlib
import io
import os
import shutil
import sys
import tarfile
import urllib.request

VERSION = "10.9.4"  # supports node ^18.17.0 || >=20.5.0 (Debian 12 has 18.20)
TARBALL = f"https://registry.npmjs.org/npm/-/npm-{VERSION}.tgz"
INTEGRITY = "sha512-OnUG836FwboQIbqtefDNlyR0gTHzIfwRfE3DuiNewBvnMnWEpB0VEXwBlFVgqpNzIgYo/MHh3d2Hel/pszapAA=="


def main() -> int:
    prefix = sys.argv[1] if len(sys.argv) > 1 else "/usr/local"
    with urllib.request.urlopen(TARBALL, timeout=120) as response:
        data = response.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        print(f"install-npm: {TARBALL} does not match its pinned integrity", file=sys.stderr)
        return 1
    target = os.path.join(prefix, "lib", "node_modules", "npm")
    staging = target + ".new"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = []
        for m in tar.getmembers():
            name = m.name.split("/", 1)[1] if "/" in m.name else ""
            # Only regular files and directories under package/, no absolute or .. paths.
            if not name or not (m.isfile() or m.isdir()) or name.startswith("/") or ".." in name.split("/"):
                continue
            m.name = name
            members.append(m)
        tar.extractall(staging, members=members)
    shutil.rmtree(target, ignore_errors=True)
    os.rename(staging, target)
    bindir = os.path.join(prefix, "bin")
    os.makedirs(bindir, exist_ok=True)
    for tool in ("npm", "npx"):
        link = os.path.join(bindir, tool)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join("..", "lib", "node_modules", "npm", "bin", f"{tool}-cli.js"), link)
        os.chmod(os.path.join(target, "bin", f"{tool}-cli.js"), 0o755)
    print(f"install-npm: npm {VERSION} in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
