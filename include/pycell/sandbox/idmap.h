#pragma once
// allowWrite directories as their owner would write them, for a root server.
//
// A sandbox's host uid is nobody when the server is root (its uid 1000 inside maps to 65534
// outside): in a root-owned directory it could write nothing, and what it wrote in a
// world-writable one belonged to nobody. So each writable bind of a root server is an
// id-mapped mount (mount_setattr MOUNT_ATTR_IDMAP): the server clones the host directory
// (open_tree OPEN_TREE_CLONE) and maps it through a user namespace whose one line is
// "OWNER SANDBOX 1", where OWNER is the directory's owner and SANDBOX the sandbox's host id.
// Through that mount the sandbox's host uid (nobody) acts on OWNER's files as OWNER does, and
// what it creates belongs on the host to OWNER; inside, those files are the sandbox's own
// (uid 1000). Its user namespace still maps 1000 to nobody, and nothing else of the host
// changes owner. The server makes the detached mount before the clone; the child inherits
// its descriptor and attaches it (move_mount) in place of the plain bind (mount_exec.cc).
//
// Since those files belong to OWNER on the host, a sandbox must not be able to give them a
// set-user-ID or set-group-ID bit there (a set-user-ID root program of its making): a small
// extra seccomp filter refuses modes with S_ISUID or S_ISGID (chmod family, open/creat with
// such a mode, mknod) and openat2, whose mode it cannot read. Without seccomp, no id-mapping.
//
// Only root can do this (the host file system's superblock belongs to the initial user
// namespace). An unprivileged server's sandboxes already write as the server's own uid.
#include <linux/filter.h>

#include <string>
#include <vector>

#include "pycell/error.h"
#include "pycell/process/unique_fd.h"
#include "pycell/sandbox/mounts.h"

namespace pycell::sandbox {

// A detached, id-mapped, nosuid and nodev copy of the host tree at `path` (recursive), for a
// sandbox whose host ids are `sandboxUid`/`sandboxGid`: the path's owner maps to them. An
// invalid fd when no mapping is needed (the path already belongs to those ids).
[[nodiscard]] Result<UniqueFd> idmappedTree(const std::string& path, unsigned sandboxUid, unsigned sandboxGid);

// For each BindWritable op of `mounts`: an id-mapped copy (idmappedTree) in op.fd, its
// descriptor kept in `keep` (the caller holds it until the child has attached it). Where one
// cannot be made, the op stays a plain bind (today's ownership) and a warning is logged.
// Returns whether any op got one.
bool attachIdmappedBinds(std::vector<MountOp>& mounts, unsigned sandboxUid, unsigned sandboxGid,
                         std::vector<UniqueFd>& keep);

// The extra seccomp filter of a sandbox with an id-mapped bind (see above).
[[nodiscard]] const std::vector<sock_filter>& setIdBitsFilter();

// How a server's sandboxes own what they create in allowWrite directories.
struct WritableBindsSupport {
  bool idmapped = false;  // attachIdmappedBinds is used
  std::string mode;       // "owner" (id-mapped), "server" (the server's own uid), "nobody"
  std::string detail;
};
// Tries an id-mapped copy of each of `paths` (the configured writable binds; none: /tmp) as
// a root server with sandboxes of host ids `sandboxUid`/`sandboxGid`. `seccomp`: whether the
// set-id filter can be installed.
[[nodiscard]] WritableBindsSupport probeWritableBinds(const std::vector<std::string>& paths, unsigned sandboxUid,
                                                      unsigned sandboxGid, bool seccomp);

}  // namespace pycell::sandbox
