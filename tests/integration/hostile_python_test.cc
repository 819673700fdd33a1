// Hostile code that works at the Python level: audit hooks, __subclasses__ walks to modules
// never imported, and frame walks into the bootstrap's and the zygote's globals. Python
// offers no boundary: each case checks that whatever the program reaches this way, the
// kernel's refusals (namespaces, seccomp) stay, and that the server still answers.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "hostile_support.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace pycell::testing::hostile;
using namespace std::chrono_literals;

// ---- audit hooks ----------------------------------------------------------------------------

TEST_CASE("Python-level tricks (audit hooks, __subclasses__) do not get past the kernel",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server,
      "import sys, errno\n"
      "sys.addaudithook(lambda event, args: None)\n"
      "found = None\n"
      "todo = list(object.__subclasses__())\n"
      "seen = set()\n"
      "while todo:\n"
      "    cls = todo.pop()\n"
      "    if id(cls) in seen:\n"
      "        continue\n"
      "    seen.add(id(cls))\n"
      "    if cls.__module__ == '_socket' and cls.__name__ == 'socket':\n"
      "        found = cls\n"
      "    try:\n"
      "        todo.extend(cls.__subclasses__())\n"
      "    except TypeError:\n"
      "        pass\n"
      "if found is None:\n"
      "    import _socket\n"
      "    found = _socket.socket\n"
      "try:\n"
      "    found(2, 1, 0).close()\n"
      "    r = 'ok'\n"
      "except OSError as e:\n"
      "    r = errno.errorcode.get(e.errno, str(e.errno))\n"
      "{'walked': len(seen), 'socket': r}",
      {{"timeoutMs", 5000}});
  INFO("sandbox: " << brief(value));
  CHECK(value["socket"] == "EPERM");
}

TEST_CASE("a hostile audit hook cannot break the server, and audit hooks cannot be removed",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  // A hook that raises on every event: the bootstrap's own reporting runs into it.
  Json raising = executeCode(*server, R"py(
import sys
def hook(event, args):
    raise RuntimeError('refused: ' + event)
sys.addaudithook(hook)
print('hooked', flush=True)
open('/sandbox/x', 'w')
)py", {{"timeoutMs", 5000}});
  INFO("raising: " << brief(raising));
  CHECK(raising["status"] == "error");
  CHECK(raising["stdout"] == "hooked\n");
  requireHealthy(*server);

  // A hook that exits the process on any event.
  Json exiting = executeCode(*server, R"py(
import os, sys
sys.addaudithook(lambda event, args: os._exit(3) if event != 'os._exit' else None)
print('hooked', flush=True)
1 + 1
)py", {{"timeoutMs", 5000}});
  INFO("exiting: " << brief(exiting));
  CHECK(exiting["status"] == "error");
  CHECK(exiting["exitCode"] == 3);
  requireHealthy(*server);

  // sys offers no way to remove a hook; the interpreter's internal one is tried through
  // ctypes too. Whatever Python allows, the kernel's refusals stay.
  Json stays = requireValue(*server, R"py(
import ctypes, errno, socket, sys
seen = []
sys.addaudithook(lambda event, args: seen.append(event) if event == 'pycell.probe' else None)
out = {'sys_api': [a for a in dir(sys) if 'audit' in a.lower()]}
try:
    clear = ctypes.pythonapi._PySys_ClearAuditHooks
    clear.argtypes = [ctypes.c_void_p]
    clear(ctypes.pythonapi.PyThreadState_Get())
    out['cleared'] = True
except AttributeError:
    out['cleared'] = False
sys.audit('pycell.probe')
out['still_called'] = seen == ['pycell.probe']
def attempt(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out['shadow'] = attempt(lambda: open('/etc/shadow').read())
out['socket'] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
out
)py", {{"timeoutMs", 5000}});
  INFO("stays: " << brief(stays));
  CHECK(stays["sys_api"] == Json::array({"addaudithook", "audit"}));
  if (stays["cleared"] == false) CHECK(stays["still_called"] == true);
  CHECK(stays["shadow"] == "ENOENT");
  CHECK(stays["socket"] == "EPERM");
}

// ---- reaching what was not imported ---------------------------------------------------------

TEST_CASE("commands reached through a __subclasses__ walk still run inside the sandbox",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  Json value = requireValue(*server, R"py(
wrap = [c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == '_wrap_close'][0]
g = wrap.__init__.__globals__          # the os module's namespace, without importing os
b = g['__builtins__']
imp = b['__import__'] if isinstance(b, dict) else b.__import__
sp = imp('subprocess')
sys = imp('sys')
def run(*argv):
    r = sp.run(list(argv), capture_output=True, text=True)
    return {'rc': r.returncode, 'out': r.stdout.strip(), 'err': r.stderr.strip()[-300:]}
out = {
  'uid': g['getuid'](),
  'id': run('id', '-u'),
  'shadow': run('cat', '/etc/shadow'),
  'proc': run('ls', '/proc'),
  'socket': run(sys.executable, '-c', 'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM)'),
  'system': g['system']('id -u > /sandbox/id.txt; cat /etc/shadow > /sandbox/shadow.txt 2>/dev/null'),
}
out['system_id'] = open('/sandbox/id.txt').read().strip()
out['system_shadow'] = open('/sandbox/shadow.txt').read()
out
)py", {{"timeoutMs", 8000}, {"maxProcesses", 8}});
  INFO("sandbox: " << brief(value));
  const std::string uid = std::to_string(value["uid"].get<int>());
  CHECK(uid != "0");
  CHECK(value["id"]["rc"] == 0);
  CHECK(value["id"]["out"] == uid);
  CHECK(value["system_id"] == uid);
  CHECK(value["shadow"]["rc"] != 0);
  CHECK(value["shadow"]["out"] == "");
  CHECK(value["system_shadow"] == "");
  CHECK(value["socket"]["rc"] != 0);
  CHECK(value["socket"]["err"].get<std::string>().find("PermissionError") != std::string::npos);
  // ls sees a handful of pids: the sandbox's own.
  std::istringstream procs(value["proc"]["out"].get<std::string>());
  int pids = 0;
  for (std::string entry; procs >> entry;)
    if (entry.find_first_not_of("0123456789") == std::string::npos) ++pids;
  CHECK(pids >= 1);
  CHECK(pids <= 10);
}

TEST_CASE("frame walking into the bootstrap's and the zygote's globals does not weaken the kernel",
          "[security]") {
  auto server = startKernelServer(Framing::kNdjson);
  // With a pool for the default profile the run is a zygote's child: its stack goes down
  // through the bootstrap's _main() into the zygote's child() and main(), whose locals hold
  // the child library (lib) and the interpreter's fork hooks (hooks). Without namespaces
  // for a pool, there is no zygote to reach.
  const Json isolation = server->initialize()["isolation"];
  const Json pools = server->callResult("status")["pools"];
  bool pooled = false;
  for (const auto& pool : pools) pooled = pooled || pool["profile"] == "default";
  if (pooled) awaitFullPool(*server);
  Json value = requireValue(*server, R"py(
import array, ctypes, errno, os, socket, struct, sys
PID = os.getpid()
out = {'bootstrap': False, 'zygote': False, 'zygote_frames': []}
boot = None
zyg = {}
f = sys._getframe()
while f is not None:
    if '_RESULT_FD' in f.f_globals:
        boot = f.f_globals
    if 'load_library' in f.f_globals and 'CONTROL_FD' in f.f_globals:  # zygote.py's frames
        out['zygote_frames'].append(f.f_code.co_name)
        for local in ('lib', 'hooks'):
            if local in f.f_locals:
                zyg.setdefault(local, f.f_locals[local])
    f = f.f_back
def attempt(fn):
    try:
        fn()
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else 'OSError: %s' % e
if boot is not None:
    out['bootstrap'] = True
    # The bootstrap's private references and its builtins snapshot: the kernel still decides.
    out['boot_open_shadow'] = attempt(lambda: boot['_os_open']('/etc/shadow', os.O_RDONLY))
    out['boot_builtin_open'] = attempt(lambda: boot['open']('/root/.ssh/id_rsa').read())
if 'lib' in zyg and 'hooks' in zyg:
    out['zygote'] = True
    # The zygote's own way of making a sandbox: its fork loop, in the library it loaded, with
    # the fork hooks it made, fed a Fork request (zygote_wire.h: a 56-byte header, five fds)
    # on a socket of ours. The server's go byte is already on the request pipe, should a
    # child be made at all; after the one request the loop reads the end of the socket.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    go_r, go_w = os.pipe()
    result_r, result_w = os.pipe()
    os.write(go_w, b'g')
    null = os.open('/dev/null', os.O_RDWR)
    header = struct.pack('<IIQiIqqqII', 0x31637970, 2, 77, 0, 0, 0, 0, 0, 5, 0)
    ours.sendmsg([header], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                             array.array('i', [null, null, null, go_r, result_w]))])
    ours.shutdown(socket.SHUT_WR)
    rc = zyg['lib'].pycell_serve_forks(theirs.fileno(), ctypes.byref(zyg['hooks']))
    if os.getpid() != PID:
        os._exit(0)  # a child the loop made: it reports nothing, its parent sees it
    out['loop_returned'] = rc
    out['loop_error'] = zyg['lib'].pycell_last_error().decode('utf-8', 'replace')
    ops = {4: 'Forked', 5: 'Exit', 6: 'Error'}
    replies = []
    ours.setblocking(False)
    while True:
        try:
            data, ancillary, _, _ = ours.recvmsg(4096, socket.CMSG_SPACE(4 * 4))
        except BlockingIOError:
            break
        for _, _, fds in ancillary:
            for fd in array.array('i', fds[:len(fds) - len(fds) % 4]):
                os.close(fd)
        if len(data) < 56:
            replies.append({'short': len(data)})
            continue
        op, ident, _, text_len = struct.unpack_from('<IQiI', data, 4)
        replies.append({'op': ops.get(op, op), 'id': ident,
                        'text': data[56:56 + text_len].decode('utf-8', 'replace')})
    out['loop_replies'] = replies
    os.close(result_w)
    out['child_report_bytes'] = len(os.read(result_r, 4096))  # a child's step failure, if any
out['shadow'] = attempt(lambda: open('/etc/shadow').read())
out['socket'] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
out['setuid'] = attempt(lambda: os.setuid(0))
out
)py", {{"timeoutMs", 5000}, {"maxProcesses", 8}});
  INFO("pools: " << brief(pools) << "\nsandbox: " << brief(value));
  if (value["bootstrap"] != true) WARN("the bootstrap's frames were not reachable: that part was not tried");
  if (value["bootstrap"] == true) {
    CHECK(value["boot_open_shadow"] == "ENOENT");
    CHECK(value["boot_builtin_open"] == "ENOENT");
  }
  if (pooled) {
    // A pooled run must reach the zygote's frames, or this case tests nothing of them.
    CHECK(value["zygote_frames"] == Json::array({"child", "main", "<module>"}));
    REQUIRE(value["zygote"] == true);
  } else {
    // No pool: only without the user, mount or pid namespace a pooled child enters.
    WARN("no pool for the default profile (isolation " << brief(isolation)
                                                        << "): the run is one-shot, there is no zygote to reach");
    CHECK((isolation["userNamespace"] == false || isolation["mountNamespace"] == false ||
           isolation["pidNamespace"] == false));
    CHECK(value["zygote"] == false);
  }
  if (value["zygote"] == true) {
    // The loop took the request and tried its clone3 with the child's namespaces: the
    // filter answers ENOSYS, so no child was made, the loop said so, and ended at the
    // socket's end.
    const Json& replies = value["loop_replies"];
    REQUIRE(replies.size() == 1u);
    CHECK(replies[0]["op"] == "Error");
    CHECK(replies[0]["id"] == 77);
    const std::string why = replies[0].value("text", "");
    CHECK(why.find("clone3") != std::string::npos);
    CHECK(why.find("Function not implemented") != std::string::npos);
    CHECK(value["loop_returned"] == 0);
    CHECK(value["child_report_bytes"] == 0);
  }
  CHECK(value["shadow"] == "ENOENT");
  CHECK(value["socket"] == "EPERM");
  CHECK((value["setuid"] == "EPERM" || value["setuid"] == "EINVAL"));
  requireHealthy(*server);
}
