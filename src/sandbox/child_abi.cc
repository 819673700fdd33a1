// libpycell_child.so: the zygote's init and ready messages, and failure reports (see
// child_abi.h). The fork loop is in fork_loop.cc.
#include "pycell/sandbox/child_abi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "pycell/sandbox/fd_passing.h"
#include "pycell/sandbox/isolate.h"
#include "pycell/sandbox/zygote_wire.h"

namespace {

char lastError[256];
// Set once by pycell_receive_init, before any fork; never freed (every child uses it).
std::string* initJson = nullptr;
pycell::sandbox::IsolationSpec* childSpec = nullptr;

void closeAll(const int* fds, int n) {
  for (int i = 0; i < n; ++i) close(fds[i]);
}

// The whole memfd, mapped read-only (no heap copy: a large block malloc'd and freed here,
// before the zygote imports its modules, would leave a hole its children then write into).
bool mapPayload(int fd, std::string_view& out, size_t& mapped) {
  struct stat st{};
  if (fstat(fd, &st) != 0) return false;
  if (st.st_size <= 0 || static_cast<size_t>(st.st_size) > pycell::sandbox::wire::kMaxPayload) {
    errno = EFBIG;
    return false;
  }
  mapped = static_cast<size_t>(st.st_size);
  void* at = mmap(nullptr, mapped, PROT_READ, MAP_PRIVATE, fd, 0);
  if (at == MAP_FAILED) return false;
  out = std::string_view(static_cast<const char*>(at), mapped);
  return true;
}

}  // namespace

namespace pycell::sandbox {

int childFail(const char* step) {
  snprintf(lastError, sizeof lastError, "%s: %s", step, strerror(errno));
  return -1;
}

const IsolationSpec* childIsolationSpec() { return childSpec; }

}  // namespace pycell::sandbox

using pycell::sandbox::childFail;
namespace wire = pycell::sandbox::wire;

extern "C" {

const char* pycell_last_error(void) { return lastError; }

long pycell_receive_init(int ctl) {
  char buf[sizeof(wire::Header) + 64];
  int fds[pycell::sandbox::kMaxPassedFds];
  int nfds = 0;
  bool truncated = false;
  ssize_t n = pycell::sandbox::receiveWithFds(ctl, buf, sizeof buf, fds, &nfds, &truncated);
  if (n <= 0) {
    if (n == 0) errno = ECONNRESET;
    return childFail("receive init");
  }
  auto message = wire::decode(buf, static_cast<size_t>(n), nfds, truncated);
  if (!message || message->op() != wire::Op::Init) {
    closeAll(fds, nfds);
    snprintf(lastError, sizeof lastError, "init message refused: %s", message ? "not Init" : message.error());
    return -1;
  }
  std::string_view payload;
  size_t mapped = 0;
  bool read = mapPayload(fds[0], payload, mapped);
  closeAll(fds, nfds);
  if (!read) return childFail("map init payload");
  auto init = wire::decodeInit(payload);
  munmap(const_cast<char*>(payload.data()), mapped);
  if (!init) {
    snprintf(lastError, sizeof lastError, "init payload refused: %s", init.error());
    return -1;
  }
  initJson = new std::string(std::move(init->json));
  childSpec = new pycell::sandbox::IsolationSpec(std::move(init->child));
  return static_cast<long>(initJson->size());
}

const char* pycell_init_json(void) { return initJson ? initJson->c_str() : ""; }

int pycell_send_ready(int ctl, const char* json, size_t len) {
  std::string message = wire::encode(wire::Op::Ready, {}, std::string_view(json, len));
  if (message.empty()) {
    errno = EMSGSIZE;
    return childFail("encode ready");
  }
  if (pycell::sandbox::sendWithFds(ctl, message.data(), message.size(), nullptr, 0) < 0) return childFail("send ready");
  return 0;
}

void pycell_report_failure(const char* step, int err, const char* detail) {
  pycell::sandbox::writeStepFailure(4, pycell::sandbox::stepFailure(step, err, detail));
}

}  // extern "C"
