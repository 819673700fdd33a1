// Hostile code after the host's files through the sandbox's mounts: a read-only root and /usr,
// /proc, /sys and /dev that show only the sandbox, device nodes, and the routes to a host
// file (/proc/*/root, .., symlinks and hard links). Each case runs the code through the real
// server and checks what the program could read or write.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "hostile_support.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace pycell::testing::hostile;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// ---- the sandbox's own file system ----------------------------------------------------------

TEST_CASE("the root and /usr are read-only", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server,
      "import os, errno\n"
      "def attempt(f):\n"
      "    try:\n"
      "        f()\n"
      "        return 'ok'\n"
      "    except OSError as e:\n"
      "        return errno.errorcode.get(e.errno, str(e.errno))\n"
      "out = {\n"
      "  'root_file': attempt(lambda: open('/pycell-hostile', 'w').close()),\n"
      "  'root_dir': attempt(lambda: os.mkdir('/pycell-hostile-dir')),\n"
      "  'usr_file': attempt(lambda: open('/usr/pycell-hostile', 'w').close()),\n"
      "  'usr_bin_file': attempt(lambda: open('/usr/bin/pycell-hostile', 'w').close()),\n"
      "  'etc_file': attempt(lambda: open('/etc/pycell-hostile', 'w').close()),\n"
      "  'sandbox_file': attempt(lambda: open('/sandbox/ok', 'w').close()),\n"
      "  'tmp_file': attempt(lambda: open('/tmp/ok', 'w').close()),\n"
      "}\n"
      "out",
      {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  for (const char* key : {"root_file", "root_dir", "usr_file", "usr_bin_file", "etc_file"}) {
    INFO(key << ": " << value[key]);
    CHECK((value[key] == "EROFS" || value[key] == "EACCES" || value[key] == "EPERM"));
  }
  CHECK(value["sandbox_file"] == "ok");
  CHECK(value["tmp_file"] == "ok");
}

TEST_CASE("device nodes cannot be created and the host's devices are absent", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, R"py(
import errno, os, stat
def attempt(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out = {
  'mknod_mem': attempt(lambda: os.mknod('/sandbox/mem', stat.S_IFCHR | 0o600, os.makedev(1, 1))),
  'mknod_null': attempt(lambda: os.mknod('/sandbox/null', stat.S_IFCHR | 0o666, os.makedev(1, 3))),
  'mknod_disk': attempt(lambda: os.mknod('/tmp/sda', stat.S_IFBLK | 0o600, os.makedev(8, 0))),
  'mknod_in_dev': attempt(lambda: os.mknod('/dev/kmsg', stat.S_IFCHR | 0o600, os.makedev(1, 11))),
  'write_in_dev': attempt(lambda: open('/dev/evil', 'w').close()),
  'remove_in_dev': attempt(lambda: os.unlink('/dev/null')),
  'null_works': open('/dev/null', 'w').write('x') == 1 and open('/dev/zero', 'rb').read(4) == b'\0' * 4,
}
for d in ('mem', 'kmem', 'port', 'kmsg', 'tty', 'console', 'sda', 'vda', 'nvme0', 'fuse', 'kvm',
          'net/tun', 'loop0', 'loop-control', 'dri', 'snd', 'input', 'hidraw0', 'cpu', 'mapper'):
    out['exists_' + d] = os.path.exists('/dev/' + d)
out
)py", {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  for (const char* call : {"mknod_mem", "mknod_null", "mknod_disk", "mknod_in_dev"}) {
    INFO(call << ": " << value[call]);
    CHECK((value[call] == "EPERM" || value[call] == "EROFS"));
  }
  CHECK(value["mknod_mem"] == "EPERM");
  CHECK(value["mknod_disk"] == "EPERM");
  for (const char* call : {"write_in_dev", "remove_in_dev"}) {
    INFO(call << ": " << value[call]);
    CHECK((value[call] == "EROFS" || value[call] == "EACCES" || value[call] == "EPERM"));
  }
  CHECK(value["null_works"] == true);
  for (const auto& [key, exists] : value.items()) {
    if (key.rfind("exists_", 0) != 0) continue;
    INFO(key);
    CHECK(exists == false);
  }
}

// ---- /proc, /sys and /dev -------------------------------------------------------------------

TEST_CASE("/proc, /sys and /dev show only the sandbox", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server,
      "import os\n"
      "def read(path):\n"
      "    try:\n"
      "        with open(path, 'rb') as f:\n"
      "            return f.read().decode('utf-8', 'replace')\n"
      "    except OSError as e:\n"
      "        return 'error: ' + e.__class__.__name__\n"
      "{'environ1': read('/proc/1/environ'), 'mountinfo': read('/proc/self/mountinfo'),\n"
      " 'sys': os.path.exists('/sys') and os.listdir('/sys'), 'dev': sorted(os.listdir('/dev'))}",
      {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value, 6000));
  const std::string cwd = fs::current_path().string();
  for (const char* key : {"environ1", "mountinfo"}) {
    const std::string text = value[key].get<std::string>();
    INFO(key << ": " << text);
    CHECK(text.find("/home") == std::string::npos);
    CHECK(text.find("/root") == std::string::npos);
    if (cwd != "/") CHECK(text.find(cwd) == std::string::npos);
  }
  CHECK(value["mountinfo"].get<std::string>().find("/sandbox") != std::string::npos);
  CHECK(value["sys"] == false);
  const std::set<std::string> allowed = {"null",   "zero",   "full",   "random", "urandom",
                                         "fd",     "stdin",  "stdout", "stderr", "shm"};
  for (const auto& entry : value["dev"]) {
    INFO("/dev/" << entry);
    CHECK(allowed.count(entry.get<std::string>()) == 1);
  }
}

TEST_CASE("/proc and /sys show no host secrets and not the server", "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  const std::string serverPid = std::to_string(server->pid());
  const std::string testPid = std::to_string(::getpid());
  Json value = requireValue(*server, "SERVER, TESTS = " + serverPid + ", " + testPid + R"py(
import errno, os
def attempt(f):
    try:
        return f()
    except OSError as e:
        return 'error: ' + errno.errorcode.get(e.errno, str(e.errno))
def write(p, text):
    with open(p, 'w') as f:
        f.write(text)
    return 'ok'
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
out = {
  'server_visible': os.path.exists('/proc/%d' % SERVER),
  'tests_visible': os.path.exists('/proc/%d' % TESTS),
  'nspid': status['NSpid'].split(),
  'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),
  'kcore': attempt(lambda: open('/proc/kcore', 'rb').read(16) and 'read'),
  'sysrq': attempt(lambda: write('/proc/sysrq-trigger', 'h')),
  'core_pattern': attempt(lambda: write('/proc/sys/kernel/core_pattern', '|/sandbox/x')),
  'modprobe': attempt(lambda: write('/proc/sys/kernel/modprobe', '/sandbox/x')),
  'kallsyms_nonzero': attempt(lambda: sum(1 for l in open('/proc/kallsyms') if not l.startswith('0000000000000000'))),
  'sys_firmware': os.path.exists('/sys/firmware'),
  'sys_debug': os.path.exists('/sys/kernel/debug'),
  'sys_cgroup': os.path.exists('/sys/fs/cgroup'),
  'environ': open('/proc/self/environ', 'rb').read().decode('latin-1'),
}
out
)py");
  INFO("sandbox: " << brief(value));
  CHECK(value["server_visible"] == false);
  CHECK(value["tests_visible"] == false);
  CHECK(value["nspid"] == Json::array({"1"}));  // no host pid shows through
  for (const auto& pid : value["pids"]) CHECK(pid <= 20);
  CHECK(value["kcore"].get<std::string>().rfind("error: ", 0) == 0);
  CHECK(value["sysrq"].get<std::string>().rfind("error: ", 0) == 0);
  CHECK(value["core_pattern"].get<std::string>().rfind("error: ", 0) == 0);
  CHECK(value["modprobe"].get<std::string>().rfind("error: ", 0) == 0);
  if (value["kallsyms_nonzero"].is_number()) CHECK(value["kallsyms_nonzero"] == 0);
  CHECK(value["sys_firmware"] == false);
  CHECK(value["sys_debug"] == false);
  CHECK(value["sys_cgroup"] == false);
  const std::string environ = value["environ"];
  INFO("environ: " << environ);
  CHECK(environ.find("PYCELL_TEST") == std::string::npos);  // nothing of the test's environment
  const char* home = std::getenv("HOME");
  if (home && *home && std::string(home) != "/") CHECK(environ.find(std::string("HOME=") + home) == std::string::npos);
}

// ---- host files -----------------------------------------------------------------------------

TEST_CASE("host files stay out of reach through /proc/*/root, .. and symlinks", "[security]") {
  TempFile marker("hostile-marker", "host-only marker 7f3a91\n");
  auto server = startKernelServer(Framing::kNdjson);
  const std::string path = marker.path();
  const char* homeEnv = std::getenv("HOME");
  const std::string home = homeEnv && *homeEnv ? homeEnv : "/root";
  Json value = requireValue(*server, "import os\nMARKER, HOME = " + pyString(path) + ", " + pyString(home) + R"py(
def read(p):
    try:
        with open(p, 'rb') as f:
            return f.read(4096).decode('latin-1')
    except OSError as e:
        return 'error: ' + type(e).__name__
routes = [MARKER, '/proc/self/root' + MARKER, '/proc/1/root' + MARKER, '/proc/1/cwd/../..' + MARKER,
          '/sandbox/../../..' + MARKER, '/proc/self/cwd/../' + MARKER, '/.pycell/../..' + MARKER,
          '/proc/1/root/etc/shadow', '/proc/self/root/etc/shadow', '/etc/shadow', '/etc/passwd',
          '/root/.bashrc', '/root/.ssh/id_rsa', '/home', HOME + '/.bashrc', HOME + '/.ssh/id_rsa',
          '/proc/1/root' + HOME + '/.bashrc', HOME + '/.ssh/id_ed25519', HOME + '/.profile']
out = {r: read(r) for r in routes}
try:
    os.symlink(MARKER, '/sandbox/link')
    out['symlink'] = read('/sandbox/link')
except OSError as e:
    out['symlink'] = 'error: ' + type(e).__name__
try:
    os.link(MARKER, '/sandbox/hard')
    out['hardlink'] = read('/sandbox/hard')
except OSError as e:
    out['hardlink'] = 'error: ' + type(e).__name__
try:
    fd = os.open('/proc/1/root', os.O_RDONLY | os.O_DIRECTORY)
    out['openat_root'] = read('/proc/self/fd/%d' % fd + MARKER)
except OSError as e:
    out['openat_root'] = 'error: ' + type(e).__name__
out
)py");
  INFO("sandbox: " << brief(value));
  for (const auto& [route, seen] : value.items()) {
    INFO(route << ": " << seen);
    const std::string text = seen.get<std::string>();
    CHECK(text.find("marker 7f3a91") == std::string::npos);
    CHECK(text.find("root:") == std::string::npos);  // no passwd or shadow line of the host
    CHECK(text.rfind("error: ", 0) == 0);
  }
}
