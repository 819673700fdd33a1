#include "pycell/sandbox/caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace pycell::sandbox {

int dropAllCapabilities(const char** step) {
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    // EINVAL: a capability this kernel does not know; EPERM: no CAP_SETPCAP (already gone).
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL && errno != EPERM) {
      *step = "drop bounding set";
      return -1;
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    *step = "clear ambient capabilities";
    return -1;
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capset, &header, data) != 0) {
    *step = "capset";
    return -1;
  }
  return 0;
}

}  // namespace pycell::sandbox
