#pragma once
// Dropping every capability (bounding, ambient, effective/permitted/inheritable): the last
// step before no_new_privs and seccomp, shared by one-shot and pooled children.

namespace pycell::sandbox {

// Returns 0, or -1 with errno set; `step` names the failing call.
[[nodiscard]] int dropAllCapabilities(const char** step);

}  // namespace pycell::sandbox
