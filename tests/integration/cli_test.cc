// The command line as a shell script uses it: `pycell run`, `pycell check`, --version, --help.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include "host_view.h"
#include "server_process.h"

using namespace pycell::testing;
using namespace std::chrono_literals;

namespace {

std::string describe(const CommandResult& r) {
  std::string code = r.exitCode ? std::to_string(*r.exitCode) : "none (killed at timeout)";
  return "exit " + code + " after " + std::to_string(r.elapsed.count()) + " ms\n  stdout: " +
         r.out.substr(0, 2000) + "\n  stderr: " + r.err.substr(0, 2000);
}

std::string readWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

TEST_CASE("pycell run prints the program's output and exits 0", "[cli]") {
  TempFile program("hello", "import sys\nprint('hello from run')\nprint('to stderr', file=sys.stderr)\n");
  CommandResult r = runPycell({"run", program.path()});
  INFO(describe(r));
  CHECK(r.exitCode == 0);
  CHECK(r.out == "hello from run\n");
  CHECK(r.err.find("to stderr") != std::string::npos);
}

TEST_CASE("pycell run exits with the program's exit code", "[cli]") {
  TempFile program("exit3", "import sys\nsys.exit(3)\n");
  CommandResult r = runPycell({"run", program.path()});
  INFO(describe(r));
  CHECK(r.exitCode == 3);
}

TEST_CASE("pycell run - reads the program from stdin", "[cli]") {
  CommandResult r = runPycell({"run", "-"}, "print(6 * 7)\n");
  INFO(describe(r));
  CHECK(r.exitCode == 0);
  CHECK(r.out == "42\n");
}

TEST_CASE("pycell run refuses to show the host's root inside, and runs nothing", "[cli]") {
  TempFile program("root", "print('ran')\n");
  for (const char* flag : {"--allow-read", "--allow-write"}) {
    CommandResult r = runPycell({"run", program.path(), flag, "/"});
    INFO(flag << ": " << describe(r));
    CHECK(r.exitCode == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("the host's root would cover the sandbox's own") != std::string::npos);
  }
}

TEST_CASE("pycell run --timeout 1 stops an infinite loop with exit code 124", "[cli]") {
  TempFile program("loop", "while True:\n    pass\n");
  CommandResult r = runPycell({"run", program.path(), "--timeout", "1"});
  INFO(describe(r));
  CHECK(r.exitCode == 124);
  CHECK(r.elapsed < 10000ms);
}

TEST_CASE("pycell run --json prints the execute result", "[cli]") {
  TempFile program("json", "print('as json')\n6 * 7\n");
  CommandResult r = runPycell({"run", program.path(), "--json"});
  INFO(describe(r));
  CHECK(r.exitCode == 0);
  Json result = Json::parse(r.out, nullptr, false);
  REQUIRE_FALSE(result.is_discarded());
  CHECK(result["status"] == "ok");
  CHECK(result["stdout"] == "as json\n");
  CHECK(result["value"] == 42);
}

TEST_CASE("pycell check exits 0 and reports each isolation item", "[cli]") {
  CommandResult r = runPycell({"check"});
  INFO(describe(r));
  CHECK(r.exitCode == 0);
  std::string text = lower(r.out + r.err);
  for (const char* item : {"user", "pid", "mount", "net", "ipc", "seccomp", "cgroup"}) {
    INFO("item: " << item);
    CHECK(text.find(item) != std::string::npos);
  }
}

TEST_CASE("pycell check reports the built-in profiles' preloads as their zygotes did, and every warning's reason",
          "[cli]") {
  CommandResult r = runPycell({"check"});
  INFO(describe(r));
  REQUIRE(r.exitCode.has_value());
  std::istringstream lines(r.out);
  std::string line;
  int preloadRows = 0;
  while (std::getline(lines, line)) {
    INFO("line: " << line);
    if (line.starts_with("warn  ")) {
      // A machine's missing capability (cgroups, the network stack) may warn, with its reason.
      auto colon = line.find(": ");
      REQUIRE(colon != std::string::npos);
      CHECK(line.find_first_not_of(' ', colon + 2) != std::string::npos);
    }
    if (line.find(" preload: ") == std::string::npos) continue;
    ++preloadRows;
    // The built-in datascience profile preloads numpy, pandas and matplotlib (installed on
    // the machines these tests run on); its zygote imports them all.
    CHECK(line.starts_with("ok    profile datascience preload: the zygote imported numpy, pandas, matplotlib"));
  }
  CHECK(preloadRows == 1);
}

TEST_CASE("a refused config is reported as pycell: config FILE:LINE:COL: message, exit 2", "[cli]") {
  TempFile badJson("bad-json", "{\n  \"profiles\": {\n    \"p\": {\"description\": \"x\",}\n  }\n}\n");
  CommandResult r = runPycell({"check", "--config", badJson.path()});
  INFO(describe(r));
  CHECK(r.exitCode == 2);
  CHECK(r.err.starts_with("pycell: config " + badJson.path() + ":3:30: not valid JSON: syntax error"));

  TempFile mistyped("mistyped", "{\"profiles\": {\n  \"p\": {\"description\": 5}}}\n");
  r = runPycell({"run", "--config", mistyped.path(), "-"}, "print(1)\n");
  INFO(describe(r));
  CHECK(r.exitCode == 2);
  CHECK(r.err == "pycell: config " + mistyped.path() + ":2:9: profile 'p': field 'description' must be a string, not an integer\n");

  TempFile notObject("not-object", "[1, 2]\n");
  r = runPycell({"check", "--config", notObject.path()});
  INFO(describe(r));
  CHECK(r.exitCode == 2);
  CHECK(r.err == "pycell: config " + notObject.path() + ": config must be a JSON object, not an array\n");
}

TEST_CASE("pycell run --profile with an unknown name lists the profiles there are", "[cli]") {
  CommandResult r = runPycell({"run", "--profile", "nope", "-"}, "print(1)\n");
  INFO(describe(r));
  CHECK(r.exitCode == 2);
  CHECK(r.err.find("pycell run: unknown profile 'nope' (available: datascience, default, javascript)") != std::string::npos);
  CHECK(r.out.empty());
}

TEST_CASE("pycell --version and --help answer and exit 0", "[cli]") {
  CommandResult version = runPycell({"--version"}, {}, 5000ms);
  INFO(describe(version));
  CHECK(version.exitCode == 0);
  CHECK(std::regex_search(version.out, std::regex(R"(\d+\.\d+)")));

  CommandResult help = runPycell({"--help"}, {}, 5000ms);
  INFO(describe(help));
  CHECK(help.exitCode == 0);
  for (const char* word : {"serve", "run", "check"}) CHECK(help.out.find(word) != std::string::npos);
}

TEST_CASE("every command answers --help, -h and pycell help COMMAND with the same text, exit 0", "[cli]") {
  for (const char* command : {"serve", "mcp", "run", "check"}) {
    INFO("command: " << command);
    CommandResult help = runPycell({command, "--help"}, {}, 5000ms);
    INFO(describe(help));
    CHECK(help.exitCode == 0);
    CHECK(help.out.find(std::string("Usage: pycell ") + command) != std::string::npos);
    CommandResult shortFlag = runPycell({command, "-h"}, {}, 5000ms);
    CHECK(shortFlag.exitCode == 0);
    CHECK(shortFlag.out == help.out);
    CommandResult viaHelp = runPycell({"help", command}, {}, 5000ms);
    CHECK(viaHelp.exitCode == 0);
    CHECK(viaHelp.out == help.out);
  }
  CommandResult unknown = runPycell({"help", "frobnicate"}, {}, 5000ms);
  INFO(describe(unknown));
  CHECK(unknown.exitCode == 2);
  CHECK(unknown.err.find("no command 'frobnicate'") != std::string::npos);
}

TEST_CASE("pycell run passes its standard input on to the program", "[cli]") {
  TempFile program("ask", "name = input()\nprint('hello', name)\n");
  CommandResult r = runPycell({"run", program.path()}, "bob\n");
  INFO(describe(r));
  CHECK(r.exitCode == 0);
  CHECK(r.out == "hello bob\n");
}

TEST_CASE("pycell run --cpu limits CPU apart from the wall clock, and --verbose sums the run up", "[cli]") {
  TempFile program("spin", "while True:\n    pass\n");
  CommandResult r = runPycell({"run", program.path(), "--cpu", "1", "--timeout", "30", "--verbose"});
  INFO(describe(r));
  CHECK(r.exitCode == 124);
  CHECK(r.err.find("pycell: timeout; wall ") != std::string::npos);
  CHECK(r.err.find("isolation isolated") != std::string::npos);

  TempFile blocked("blocked", "import socket\n");
  CommandResult b = runPycell({"run", blocked.path(), "--verbose"});
  INFO(describe(b));
  CHECK(b.err.find("pycell: policy_violation;") != std::string::npos);
  CHECK(b.err.find("pycell: blocked import: socket") != std::string::npos);
  CHECK(runPycell({"run", program.path(), "--cpu", "0"}).exitCode == 2);
  CHECK(runPycell({"run", program.path(), "--cpu", "x"}).exitCode == 2);
}

TEST_CASE("pycell run checks --report and --usage-chart paths before the program runs", "[cli]") {
  TempFile program("marker", "print('ran')\n");
  for (const char* flag : {"--report", "--usage-chart"}) {
    CommandResult r = runPycell({"run", program.path(), flag, "/nonexistent-dir/out"});
    INFO(flag << ": " << describe(r));
    CHECK(r.exitCode == 2);
    CHECK(r.out.empty());  // nothing ran
    CHECK(r.err.find("/nonexistent-dir/out") != std::string::npos);
  }
}

TEST_CASE("pycell run --env sets a variable for the program; a bad one is refused", "[cli]") {
  TempFile program("env", "import os\nprint(os.environ['GREETING'])\n");
  CommandResult r = runPycell({"run", program.path(), "--env", "GREETING=hi there"});
  INFO(describe(r));
  CHECK(r.exitCode == 0);
  CHECK(r.out == "hi there\n");
  CommandResult bad = runPycell({"run", program.path(), "--env", "HOME=/root"});
  INFO(describe(bad));
  CHECK(bad.exitCode == 2);
  CHECK(bad.err.find("HOME is set by the sandbox") != std::string::npos);
  CHECK(runPycell({"run", program.path(), "--env", "NOEQUALS"}).exitCode == 2);
}

TEST_CASE("pycell run --figures writes each figure as a PNG; --out with --return brings files back", "[cli]") {
  SharedDir figures("figures");
  SharedDir out("out");
  // The datascience profile has matplotlib; it runs one-shot here (no pool in this command).
  TempFile plots("plots",
                 "import matplotlib.pyplot as plt\n"
                 "plt.plot([1, 2, 3])\n"
                 "plt.figure(); plt.bar([1, 2], [3, 4])\n");
  CommandResult r = runPycell({"run", plots.path(), "--profile", "datascience", "--figures", figures.path.string(),
                               "--verbose"}, {}, 60000ms);
  INFO(describe(r));
  REQUIRE(r.exitCode == 0);
  for (const char* name : {"figure-1.png", "figure-2.png"}) {
    INFO(name);
    std::string png = readWholeFile(figures.path / name);
    REQUIRE(png.size() > 100);
    CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  }
  CHECK_FALSE(std::filesystem::exists(figures.path / "figure-3.png"));
  CHECK(r.err.find("2 figure(s) written") != std::string::npos);

  TempFile program("files",
                   "import os\n"
                   "os.makedirs('sub', exist_ok=True)\n"
                   "open('sub/data.csv', 'w').write('a,b\\n1,2\\n')\n"
                   "open('skip.txt', 'w').write('not asked for')\n");
  CommandResult f = runPycell({"run", program.path(), "--out", out.path.string(), "--return", "sub/*.csv", "--verbose"});
  INFO(describe(f));
  REQUIRE(f.exitCode == 0);
  CHECK(readWholeFile(out.path / "sub" / "data.csv") == "a,b\n1,2\n");
  CHECK_FALSE(std::filesystem::exists(out.path / "skip.txt"));
  CHECK(f.err.find("1 file(s) written") != std::string::npos);

  // A directory that is not there is refused before anything runs; --out needs --return.
  CommandResult missing = runPycell({"run", program.path(), "--figures", "/nonexistent-dir"});
  CHECK(missing.exitCode == 2);
  CHECK(runPycell({"run", program.path(), "--out", out.path.string()}).exitCode == 2);
  CHECK(runPycell({"run", program.path(), "--return", "*.csv"}).exitCode == 2);
}

namespace {

// Writes `contents` to `dir`/`name`, readable by everyone (the server may run as another uid).
std::string writeIn(const std::filesystem::path& dir, const std::string& name, const std::string& contents) {
  std::filesystem::path path = dir / name;
  std::ofstream(path, std::ios::binary) << contents;
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                         std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  return path.string();
}

}  // namespace

TEST_CASE("pycell run FILE sees FILE's directory as python3 FILE does: sibling modules, data files, sys.path[0]",
          "[cli]") {
  SharedDir dir("script");
  std::string real = std::filesystem::canonical(dir.path).string();
  writeIn(dir.path, "helper.py", "def greet(name):\n    return 'hello ' + name\n");
  writeIn(dir.path, "data.txt", "from the data file\n");
  std::string script = writeIn(dir.path, "main.py",
                               "import os, sys\n"
                               "import helper\n"
                               "print(helper.greet('bob'))\n"
                               "print(open(os.path.join(os.path.dirname(__file__), 'data.txt')).read().strip())\n"
                               "print(sys.path[0] == os.path.dirname(__file__), sys.argv[0] == __file__)\n"
                               "print(os.getcwd())\n"
                               "print(__file__)\n"
                               "try:\n"
                               "    open(os.path.join(os.path.dirname(__file__), 'new.txt'), 'w')\n"
                               "    print('written')\n"
                               "except OSError as e:\n"
                               "    print('read-only', e.errno)\n");
  CommandResult r = runPycell({"run", script});
  INFO(describe(r));
  CHECK(r.exitCode == 0);
  CHECK(r.out == "hello bob\nfrom the data file\nTrue True\n/sandbox\n" + real + "/main.py\nread-only 30\n");
  // Under an allow list (datascience, without os) the program's own modules import as well.
  std::string allowList = writeIn(dir.path, "allowed.py",
                                  "import helper\n"
                                  "print(helper.greet('ann'))\n"
                                  "print(open(__file__.rsplit('/', 1)[0] + '/data.txt').read().strip())\n");
  CommandResult ds = runPycell({"run", "--profile", "datascience", allowList}, {}, 60000ms);
  INFO(describe(ds));
  CHECK(ds.exitCode == 0);
  CHECK(ds.out == "hello ann\nfrom the data file\n");
  CHECK_FALSE(std::filesystem::exists(dir.path / "new.txt"));

  // A sibling module is the program's own code for the policy: its imports are checked too.
  writeIn(dir.path, "netting.py", "import socket\n");
  std::string importer = writeIn(dir.path, "importer.py", "import netting\nprint('not reached')\n");
  CommandResult blocked = runPycell({"run", importer, "--verbose"});
  INFO(describe(blocked));
  CHECK(blocked.exitCode == 1);
  CHECK(blocked.out.empty());
  CHECK(blocked.err.find("pycell: blocked import: socket") != std::string::npos);

  // From standard input there is no file: no directory is shown, the name is <pycell>.
  CommandResult piped = runPycell({"run", "-"}, "import sys\nprint(sys.argv[0], '" + real + "' in sys.path)\n");
  INFO(describe(piped));
  CHECK(piped.exitCode == 0);
  CHECK(piped.out == "<pycell> False\n");
}

TEST_CASE("pycell run FILE names FILE and the line in tracebacks, and error.line is the program's", "[cli]") {
  SharedDir dir("traceback");
  std::string real = std::filesystem::canonical(dir.path).string();
  writeIn(dir.path, "lib.py", "def fail():\n    raise ValueError('bad value')\n");
  std::string script = writeIn(dir.path, "prog.py", "import lib\nx = 1\nlib.fail()\n");
  CommandResult r = runPycell({"run", script});
  INFO(describe(r));
  CHECK(r.exitCode == 1);
  CHECK(r.err.find("File \"" + real + "/prog.py\", line 3") != std::string::npos);
  CHECK(r.err.find("File \"" + real + "/lib.py\", line 2") != std::string::npos);
  CHECK(r.err.find("ValueError: bad value") != std::string::npos);
  CHECK(r.err.find("<pycell>") == std::string::npos);

  CommandResult json = runPycell({"run", script, "--json"});
  INFO(describe(json));
  Json result = Json::parse(json.out, nullptr, false);
  REQUIRE(result.is_object());
  CHECK(result["status"] == "error");
  CHECK(result["error"]["line"] == 3);
  CHECK(result["error"]["type"] == "ValueError");

  // From standard input, the name stays <pycell>.
  CommandResult piped = runPycell({"run", "-"}, "x = 1\nraise KeyError('k')\n");
  INFO(describe(piped));
  CHECK(piped.err.find("File \"<pycell>\", line 2") != std::string::npos);
}

TEST_CASE("pycell run --analyze prints the analysis as FILE:LINE:COL: code: message, then runs the program", "[cli]") {
  SharedDir dir("analyze");
  std::string script = writeIn(dir.path, "lint.py", "print('ran')\nif False:\n    import socket\n");
  CommandResult r = runPycell({"run", "--analyze", script});
  INFO(describe(r));
  CHECK(r.exitCode == 0);
  CHECK(r.out == "ran\n");
  CHECK(r.err.find(script + ":3:12: forbidden-import: ") != std::string::npos);
  // Without the flag, no analysis.
  CommandResult plain = runPycell({"run", script});
  INFO(describe(plain));
  CHECK(plain.exitCode == 0);
  CHECK(plain.err.find("forbidden-import") == std::string::npos);
  // From standard input, the file is <stdin>.
  CommandResult piped = runPycell({"run", "--analyze", "-"}, "x = 1\nimport socket\n");
  INFO(describe(piped));
  CHECK(piped.err.find("<stdin>:2:8: forbidden-import: ") != std::string::npos);
}

TEST_CASE("a profile whose python is missing or not executable is a config error at load time, exit 2", "[cli]") {
  TempFile missing("no-python", "{\"profiles\": {\n  \"p\": {\"python\": \"/nonexistent/bin/python3\"}}}\n");
  for (std::vector<std::string> args : {std::vector<std::string>{"check"}, {"run", "-"}}) {
    args.insert(args.begin() + 1, {"--config", missing.path()});
    CommandResult r = runPycell(args, "print(1)\n");
    INFO(args[0] << ": " << describe(r));
    CHECK(r.exitCode == 2);
    CHECK(r.out.empty());
    CHECK(r.err == "pycell: config " + missing.path() +
                       ":2:9: profile 'p': python /nonexistent/bin/python3: No such file or directory\n");
  }
  TempFile notExecutable("not-exec", "");  // 0644
  TempFile config("plain-file-python", "{\"profiles\": {\"q\": {\n    \"python\": \"" + notExecutable.path() + "\"}}}\n");
  CommandResult r = runPycell({"run", "--config", config.path(), "-"}, "print(1)\n");
  INFO(describe(r));
  CHECK(r.exitCode == 2);
  CHECK(r.err == "pycell: config " + config.path() + ":2:5: profile 'q': python " + notExecutable.path() +
                     " is not an executable file\n");
}

// ---- --allow-write: the directory's owner writes ------------------------------------------

namespace {

struct Owner {
  uid_t uid;
  gid_t gid;
};

Owner ownerOf(const std::filesystem::path& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return {static_cast<uid_t>(-1), static_cast<gid_t>(-1)};
  return {st.st_uid, st.st_gid};
}

// The row `pycell check` prints for writableBinds: "owner", "server", "nobody" or "mixed".
std::string writableBindsReport() {
  CommandResult check = runPycell({"check"});
  std::smatch m;
  static const std::regex row(R"((?:ok|warn)\s+writableBinds: (\w+) )");
  return std::regex_search(check.out, m, row) ? m[1].str() : "(no writableBinds row in: " + check.out + ")";
}

}  // namespace

TEST_CASE("pycell run --allow-write DIR writes as DIR's owner: new files belong to the owner, set-id bits refused, "
          "nothing else writable",
          "[cli][security]") {
  // DIR belongs to the caller (root, or the uid the server runs as) and only it may write
  // there (0755): as python3 run by that caller would, the program writes into it.
  auto runAs = runAsUid();
  Owner caller{runAs ? *runAs : ::geteuid(), runAs ? static_cast<gid_t>(*runAs) : ::getegid()};
  SharedDir dir("allow-write"), other("allow-write-other");
  std::string d = std::filesystem::canonical(dir.path).string(), o = std::filesystem::canonical(other.path).string();
  writeIn(dir.path, "existing.txt", "there before");
  for (const auto& p : {dir.path, dir.path / "existing.txt", other.path})
    REQUIRE(::chown(p.c_str(), caller.uid, caller.gid) == 0);
  REQUIRE(::chmod(d.c_str(), 0755) == 0);
  REQUIRE(::chmod(o.c_str(), 0755) == 0);
  std::string report = writableBindsReport();
  INFO("isolation writableBinds: " << report);
  // Who the files are expected to belong to: the caller, through an id-mapped mount as root.
  bool idmapped = report == "owner";
  if (runAs) {
    CHECK(report == "server");
  } else if (!idmapped) {
    WARN("id-mapped mounts do not work here (writableBinds: " << report
                                                               << "): a root server's sandbox writes as nobody");
    CHECK(report == "nobody");
  }

  std::string program =
      "import errno, json, os, stat\n"
      "d, o = " + pyString(d) + ", " + pyString(o) + "\n"
      "def attempt(fn):\n"
      "    try:\n"
      "        fn()\n"
      "        return 'ok'\n"
      "    except OSError as e:\n"
      "        return errno.errorcode.get(e.errno, str(e.errno))\n"
      "out = {'uid': os.getuid(), 'gid': os.getgid(), 'dirUid': os.stat(d).st_uid, 'dirWritable': os.access(d, os.W_OK)}\n"
      "def create():\n"
      "    with open(d + '/new.txt', 'w') as f:\n"
      "        f.write('from the sandbox')\n"
      "    os.mkdir(d + '/sub')\n"
      "    with open(d + '/sub/inner.txt', 'w') as f:\n"
      "        f.write('inner')\n"
      "out['create'] = attempt(create)\n"
      "def append():\n"
      "    with open(d + '/existing.txt', 'a') as f:\n"
      "        f.write(', and after')\n"
      "out['existing'] = attempt(append)\n"
      "out['newUid'] = os.stat(d + '/new.txt').st_uid if os.path.exists(d + '/new.txt') else None\n"
      "out['suidChmod'] = attempt(lambda: os.chmod(d + '/new.txt', 0o4755))\n"
      "out['sgidChmod'] = attempt(lambda: os.chmod(d + '/new.txt', 0o2755))\n"
      "out['suidCreate'] = attempt(lambda: os.close(os.open(d + '/suid.bin', os.O_CREAT | os.O_WRONLY, 0o4755)))\n"
      "out['readOnlyBind'] = attempt(lambda: open(o + '/x', 'w').close())\n"
      "out['root'] = attempt(lambda: open('/usr/pycell-allow-write', 'w').close())\n"
      "out['uidMap'] = open('/proc/self/uid_map').read().split()\n"
      "print(json.dumps(out))\n";
  TempFile script("allow-write", program);
  std::set<std::string> mountsBefore = pycellMounts();
  CommandResult r = runPycell({"run", script.path(), "--allow-write", d, "--allow-read", o});
  INFO(describe(r));
  REQUIRE(r.exitCode == 0);
  Json out = Json::parse(r.out);
  // Inside: the sandbox's own ids, its user namespace still mapping 1000 to nobody (65534)
  // when the server is root, to the server's uid otherwise.
  CHECK(out["uid"] == 1000);
  CHECK(out["gid"] == 1000);
  CHECK(out["uidMap"] == Json::array({"1000", std::to_string(runAs ? *runAs : 65534), "1"}));
  CHECK(out["readOnlyBind"] == "EROFS");
  CHECK(out["root"] == "EROFS");
  CHECK_FALSE(std::filesystem::exists(other.path / "x"));
  if (runAs || idmapped) {
    // The directory is the sandbox's own inside, and what it writes is the caller's outside.
    CHECK(out["dirUid"] == 1000);
    CHECK(out["dirWritable"] == true);
    CHECK(out["create"] == "ok");
    CHECK(out["existing"] == "ok");
    CHECK(out["newUid"] == 1000);
    CHECK(readWholeFile(dir.path / "new.txt") == "from the sandbox");
    CHECK(readWholeFile(dir.path / "sub" / "inner.txt") == "inner");
    CHECK(readWholeFile(dir.path / "existing.txt") == "there before, and after");
    for (const auto& p : {dir.path / "new.txt", dir.path / "sub", dir.path / "sub" / "inner.txt", dir.path / "existing.txt"}) {
      INFO(p.string());
      CHECK(ownerOf(p).uid == caller.uid);
      CHECK(ownerOf(p).gid == caller.gid);
    }
    CHECK(std::filesystem::is_directory(dir.path / "sub"));
  } else {
    // Today's fallback: nobody may not write into the caller's 0755 directory.
    CHECK(out["create"] == "EACCES");
  }
  if (idmapped) {
    // The files belong to root on the host: the sandbox may not make a set-id program of them.
    CHECK(out["suidChmod"] == "EPERM");
    CHECK(out["sgidChmod"] == "EPERM");
    CHECK(out["suidCreate"] == "EPERM");
    CHECK((std::filesystem::status(dir.path / "new.txt").permissions() & (std::filesystem::perms::set_uid |
                                                                           std::filesystem::perms::set_gid)) ==
          std::filesystem::perms::none);
    CHECK_FALSE(std::filesystem::exists(dir.path / "suid.bin"));
  }
  // Nothing stays mounted on the host (the id-mapped copies were never attached here).
  std::set<std::string> mountsAfter = pycellMounts();
  for (const auto& line : mountsAfter) {
    INFO("mount left: " << line);
    CHECK(mountsBefore.count(line) == 1);
  }
}

TEST_CASE("pycell run --allow-write on a file system without id-mapped mounts is a plain bind as before, and says so",
          "[cli][security]") {
  if (runAsUid()) {
    // An unprivileged server makes no id-mapped mounts: its sandboxes write as its own uid.
    CHECK(writableBindsReport() == "server");
    WARN("unprivileged server: no id-mapped mount to fall back from (writableBinds: server)");
    return;
  }
  // ramfs cannot be id-mapped: mounted, in a mount namespace of the command's own, on DIR.
  SharedDir dir("allow-write-ramfs");
  std::string d = std::filesystem::canonical(dir.path).string();
  TempFile script("allow-write-ramfs",
                  "import os\n"
                  "with open(" + pyString(d + "/made.txt") + ", 'w') as f:\n"
                  "    f.write('x')\n"
                  "print(os.getuid(), os.stat(" + pyString(d + "/made.txt") + ").st_uid)\n"
                  "print(os.stat(" + pyString(d + "/made.txt") + ").st_uid == os.getuid())\n");
  std::string shell = "mount -t ramfs pycell-it-ramfs \"$1\" && chmod 0777 \"$1\" && \"$2\" run --allow-write \"$1\" \"$3\" && "
                      "stat -c %u \"$1/made.txt\"";
  CommandResult r = runCommand({findInPath("unshare"), "--mount", "--propagation", "private", "sh", "-c", shell, "sh", d,
                                pycellBinary(), script.path()});
  INFO(describe(r));
  CHECK(r.exitCode == 0);
  // Inside, the file is the sandbox's (1000); outside, nobody's, as without id-mapped mounts.
  CHECK(r.out == "1000 1000\nTrue\n65534\n");
  CHECK(r.err.find("id-mapped mount of " + d) != std::string::npos);
  CHECK(r.err.find("belong to its host uid 65534") != std::string::npos);
  // The ramfs was only in the command's own mount namespace.
  CHECK(std::filesystem::is_empty(dir.path));
}

TEST_CASE("pycell run x.js runs JavaScript, with the same flags: sibling modules, limits, exit codes, --analyze",
          "[cli][javascript]") {
  SharedDir dir("jsscript");
  std::string real = std::filesystem::canonical(dir.path).string();
  writeIn(dir.path, "lib.js", "exports.greet = name => 'hello ' + name;\n");
  std::string script = writeIn(dir.path, "main.js",
                               "const lib = require('./lib.js');\n"
                               "console.log(lib.greet('bob'));\n"
                               "console.log(__filename, process.cwd());\n"
                               "process.exitCode = 4;\n");
  CommandResult r = runPycell({"run", script});
  INFO(describe(r));
  CHECK(r.exitCode == 4);
  CHECK(r.out == "hello bob\n" + real + "/main.js /sandbox\n");
  // The same flags as for Python: a wall-clock limit is exit 124.
  std::string spin = writeIn(dir.path, "spin.mjs", "for (;;) {}\n");
  CommandResult timedOut = runPycell({"run", spin, "--timeout", "1"});
  INFO(describe(timedOut));
  CHECK(timedOut.exitCode == 124);
  // From standard input, the language named.
  CommandResult piped = runPycell({"run", "--language", "javascript", "--json", "-"}, "[1, 2].map(x => x * 21)\n");
  INFO(describe(piped));
  REQUIRE(piped.exitCode == 0);
  CHECK(Json::parse(piped.out)["value"] == Json::parse("[21, 42]"));
  // --analyze: file:line:col: code: message, then the run.
  std::string bad = writeIn(dir.path, "bad.js", "const cp = require('child_process');\n");
  CommandResult analyzed = runPycell({"run", "--analyze", bad});
  INFO(describe(analyzed));
  CHECK_THAT(analyzed.err, Catch::Contains(real + "/bad.js:1:") && Catch::Contains("forbidden-import"));
  CHECK(analyzed.exitCode != 0);  // the policy stops the run: policy_violation
  // A language the profile does not run is refused before anything starts.
  CommandResult mismatch = runPycell({"run", "--profile", "default", script});
  CHECK(mismatch.exitCode == 2);
  CHECK_THAT(mismatch.err, Catch::Contains("runs python, not javascript"));
}
