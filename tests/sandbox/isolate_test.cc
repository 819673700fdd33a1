// The isolation sequence's failure record (isolate.h), and a failed step reported the one
// way, from a real child.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "pycell/sandbox/isolate.h"

using namespace pycell::sandbox;

TEST_CASE("a step failure round-trips through its record", "[isolate]") {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  writeStepFailure(p[1], stepFailure("setrlimit", EPERM, "RLIMIT_FSIZE"));
  StepFailureRecord record;
  REQUIRE(::read(p[0], &record, sizeof record) == static_cast<ssize_t>(sizeof record));
  ::close(p[0]);
  ::close(p[1]);
  StepFailure back;
  REQUIRE(decodeStepFailure(&record, sizeof record, back));
  CHECK(std::string(back.step) == "setrlimit");
  CHECK(back.err == EPERM);
  CHECK(std::string(back.detail) == "RLIMIT_FSIZE");
  CHECK_FALSE(decodeStepFailure(&record, sizeof record - 1, back));
  record.magic[1] = 'x';
  CHECK_FALSE(decodeStepFailure(&record, sizeof record, back));
  char r = 'R';
  CHECK_FALSE(decodeStepFailure(&r, 1, back));
}

TEST_CASE("long step names and details are cut, never overrun", "[isolate]") {
  std::string longText(500, 'x');
  StepFailure f = stepFailure(longText.c_str(), 1, longText.c_str());
  CHECK(std::strlen(f.step) == sizeof f.step - 1);
  CHECK(std::strlen(f.detail) == sizeof f.detail - 1);
}

TEST_CASE("isolate() stops at the first failed step and names it", "[isolate]") {
  int result[2];
  REQUIRE(::pipe2(result, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // No namespaces: the mount step is a chdir into the host work directory, which is gone.
    IsolationSpec spec;
    spec.hostWorkDir = "/nonexistent/pycell-test-dir";
    int devnull = ::open("/dev/null", O_RDWR);
    int fds[5] = {devnull, devnull, devnull, devnull, result[1]};
    auto st = isolate(spec, fds);
    if (!st) writeStepFailure(fds[4], st.error());
    ::_exit(st ? 0 : 127);
  }
  ::close(result[1]);
  StepFailureRecord record;
  ssize_t n = ::read(result[0], &record, sizeof record);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  ::close(result[0]);
  CHECK(WEXITSTATUS(status) == 127);
  StepFailure failure;
  REQUIRE(decodeStepFailure(&record, static_cast<size_t>(n), failure));
  CHECK(std::string(failure.step) == "chdir");
  CHECK(failure.err == ENOENT);
  CHECK(std::string(failure.detail) == "/nonexistent/pycell-test-dir");
}
