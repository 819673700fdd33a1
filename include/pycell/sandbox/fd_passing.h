#pragma once
// One datagram with file descriptors (SCM_RIGHTS) over a SOCK_SEQPACKET socket: how the
// server and a zygote talk. Plain syscalls and no allocation, so the zygote's fork loop in
// libpycell_child.so uses the same code as the server.
#include <stddef.h>
#include <sys/types.h>

namespace pycell::sandbox {

constexpr int kMaxPassedFds = 8;

// sendmsg(MSG_NOSIGNAL) of `len` bytes and `nfds` (<= kMaxPassedFds) fds, retried on EINTR.
// Returns the bytes sent, or -1 with errno set.
ssize_t sendWithFds(int sock, const void* data, size_t len, const int* fds, int nfds);

// recvmsg(MSG_CMSG_CLOEXEC) into `buf`, retried on EINTR; the fds that came with it (at most
// kMaxPassedFds) land in `fds` and their count in `*nfds`. `*truncated` says whether the
// datagram or its fds did not fit. Returns the bytes received (0 at EOF), or -1 with errno.
ssize_t receiveWithFds(int sock, void* buf, size_t len, int* fds, int* nfds, bool* truncated);

}  // namespace pycell::sandbox
