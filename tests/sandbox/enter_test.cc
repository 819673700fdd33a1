// The plans the server makes (enter.h, mounts.h, rlimits.h): a one-shot sandbox and a
// pooled child of the same profile get the same isolation, namespace flags included; the
// mount and rlimit plans follow the profile and the request.
#include <catch2/catch.hpp>

#include <algorithm>

#include "pycell/sandbox/config.h"
#include "pycell/sandbox/enter.h"

using namespace pycell;
using namespace pycell::sandbox;
using K = MountOp::Kind;

namespace {

PlanInputs inputsFor(const Profile& profile) {
  PlanInputs in;
  in.namespaces = {.user = true, .pid = true, .mount = true, .net = true, .ipc = true, .uts = true, .cgroup = true};
  in.python = profile.python;
  in.pythonRealPath = profile.python;
  in.limits = profile.limits;
  in.binds = profile.binds;
  in.bootstrapSource = "# bootstrap";
  in.extraFiles = {{kPolicyPath, "# policy"}};
  in.outerUid = 65534;
  in.outerGid = 65534;
  return in;
}

const MountOp* find(const std::vector<MountOp>& plan, K kind, const std::string& target) {
  auto it = std::find_if(plan.begin(), plan.end(), [&](const MountOp& op) { return op.kind == kind && op.target == target; });
  return it == plan.end() ? nullptr : &*it;
}

size_t indexOf(const std::vector<MountOp>& plan, const std::string& target) {
  for (size_t i = 0; i < plan.size(); ++i)
    if (plan[i].target == target) return i;
  return plan.size();
}

}  // namespace

TEST_CASE("namespaceFlags: every namespace, the cgroup one unshared after joining the cgroup", "[enter]") {
  Namespaces all{.user = true, .pid = true, .mount = true, .net = true, .ipc = true, .uts = true, .cgroup = true};
  auto flags = namespaceFlags(all);
  CHECK(flags.atClone == (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS));
  CHECK(flags.cgroupAfterJoin);
  CHECK((flags.atClone & CLONE_NEWCGROUP) == 0);
  auto none = namespaceFlags({});
  CHECK(none.atClone == 0);
  CHECK_FALSE(none.cgroupAfterJoin);
}

TEST_CASE("a pooled child applies the one-shot plan of its profile, ids mapped by itself", "[enter]") {
  for (const auto& [name, profile] : builtinConfig().profiles) {
    INFO("profile " << name);
    PlanInputs in = inputsFor(profile);
    IsolationSpec oneShot = makePlan(in).isolation;
    IsolationSpec pooled = pooledChildSpec(in, 65534, 65534);
    CHECK(namespaceFlags(pooled.namespaces).atClone == namespaceFlags(oneShot.namespaces).atClone);
    CHECK(namespaceFlags(pooled.namespaces).cgroupAfterJoin);
    CHECK(namespaceFlags(oneShot.namespaces).cgroupAfterJoin);
    REQUIRE(pooled.mounts.size() == oneShot.mounts.size());
    for (size_t i = 0; i < pooled.mounts.size(); ++i) {
      CHECK(pooled.mounts[i].kind == oneShot.mounts[i].kind);
      CHECK(pooled.mounts[i].target == oneShot.mounts[i].target);
      CHECK(pooled.mounts[i].source == oneShot.mounts[i].source);
      CHECK(pooled.mounts[i].data == oneShot.mounts[i].data);
    }
    CHECK(pooled.seccomp.size() == oneShot.seccomp.size());
    CHECK(pooled.ids.insideUid == oneShot.ids.insideUid);
    CHECK(pooled.ids.outerUid == oneShot.ids.outerUid);
    // What differs: who writes the maps, that no execve follows, and that the shared part
    // of the root was built by the zygote (the mounts end up the same).
    CHECK(pooled.mountsFromTemplate);
    CHECK_FALSE(oneShot.mountsFromTemplate);
    CHECK(pooled.ids.childWritesMaps);
    CHECK_FALSE(oneShot.ids.childWritesMaps);
    CHECK_FALSE(pooled.execFollows);
    CHECK(oneShot.execFollows);
  }
}

TEST_CASE("a zygote keeps its outer ids inside, so its children map onto the same ids", "[enter]") {
  PlanInputs in = inputsFor(builtinConfig().profiles.at("default"));
  in.keepOuterIds = true;
  auto zygote = makePlan(in).isolation;
  CHECK(zygote.ids.insideUid == 65534);
  CHECK(zygote.ids.insideGid == 65534);
  CHECK(pooledChildSpec(inputsFor(builtinConfig().profiles.at("default")), zygote.ids.insideUid, zygote.ids.insideGid)
            .ids.outerUid == makePlan(inputsFor(builtinConfig().profiles.at("default"))).isolation.ids.outerUid);
}

TEST_CASE("the mount plan of the default and datascience profiles", "[enter][mounts]") {
  for (const char* name : {"default", "datascience"}) {
    INFO("profile " << name);
    auto plan = makePlan(inputsFor(builtinConfig().profiles.at(name))).isolation.mounts;
    REQUIRE(find(plan, K::BindReadOnly, "/usr"));
    REQUIRE(find(plan, K::Proc, "/proc"));
    REQUIRE(find(plan, K::Tmpfs, "/dev"));
    REQUIRE(find(plan, K::BindDevice, "/dev/null"));
    REQUIRE(find(plan, K::RemountReadOnly, "/dev"));
    REQUIRE(find(plan, K::File, kBootstrapPath));
    REQUIRE(find(plan, K::File, kPolicyPath));
    const MountOp* scratch = find(plan, K::Scratch, "/.pycell/scratch");
    REQUIRE(scratch);
    CHECK(scratch->data == "64:1000:1000");
    // No host files beyond the system's: no home, no /etc/passwd, no network files.
    for (const char* absent : {"/home", "/root", "/etc/passwd", "/etc/shadow", "/etc/resolv.conf", "/etc/hosts"})
      CHECK(indexOf(plan, absent) == plan.size());
    for (const auto& op : plan) CHECK(op.kind != K::BindWritable);
  }
}

TEST_CASE("the mount plan follows allowRead, allowWrite, diskMb and network", "[enter][mounts]") {
  Profile profile = builtinConfig().profiles.at("default");
  profile.binds = {{"/srv/data", false}, {"/tmp/out", true}};
  profile.limits.diskMb = 200;
  PlanInputs in = inputsFor(profile);
  auto plan = makePlan(in).isolation.mounts;
  const MountOp* read = find(plan, K::BindReadOnly, "/srv/data");
  const MountOp* write = find(plan, K::BindWritable, "/tmp/out");
  REQUIRE(read);
  REQUIRE(write);
  CHECK(read->source == "/srv/data");
  CHECK(find(plan, K::Scratch, "/.pycell/scratch")->data == "200:1000:1000");
  // Binds come after the tmpfs, so one under /tmp lands on it rather than under it.
  CHECK(indexOf(plan, "/tmp/out") > indexOf(plan, "/.pycell/scratch"));
  in.network = true;
  auto online = makePlan(in).isolation.mounts;
  CHECK(find(online, K::File, "/etc/resolv.conf"));
  CHECK(find(online, K::File, "/etc/hosts"));
}

TEST_CASE("a root's shared part (a zygote's template) and its per-sandbox part", "[enter][mounts]") {
  Profile profile = builtinConfig().profiles.at("default");
  profile.binds = {{"/srv/data", false}, {"/tmp/out", true}, {"/sandbox/in", false}};
  auto plan = makePlan(inputsFor(profile)).isolation.mounts;
  std::vector<std::string> perSandboxTargets;
  for (const auto& op : plan)
    if (perSandbox(op)) perSandboxTargets.push_back(op.target);
  // Fresh in each sandbox: its /proc, its scratch tmpfs, and what is bound onto that tmpfs;
  // a bind elsewhere, /dev and every file are built once.
  CHECK(perSandboxTargets == std::vector<std::string>{"/proc", kScratchMountPoint, "/tmp/out", "/sandbox/in"});
  // The scratch directories themselves are mount points, made with the shared part.
  for (const char* dir : {"/tmp", "/sandbox", "/dev/shm"}) CHECK_FALSE(perSandbox(*find(plan, K::Dir, dir)));
  // Each per-sandbox mount that is not on the scratch tmpfs has its mount point made in the
  // shared part, before it: a pooled child mounts it on a read-only template.
  for (const char* target : {"/proc", kScratchMountPoint}) {
    INFO(target);
    const MountOp* dir = find(plan, K::Dir, target);
    REQUIRE(dir);
    CHECK_FALSE(perSandbox(*dir));
    CHECK(dir - plan.data() < std::find_if(plan.begin(), plan.end(), [&](const MountOp& op) {
                                return perSandbox(op) && op.target == target;
                              }) - plan.begin());
  }
  // A prefix is not a parent: /tmpfoo and /sandboxes are not on the scratch tmpfs.
  CHECK_FALSE(perSandbox({K::BindReadOnly, "/tmpfoo", "/tmpfoo", {}}));
  CHECK_FALSE(perSandbox({K::BindReadOnly, "/sandboxes/x", "/x", {}}));
  CHECK(perSandbox({K::BindReadOnly, "/dev/shm/x", "/x", {}}));
}

TEST_CASE("the rlimit plan", "[enter][rlimits]") {
  Limits limits;
  limits.cpuMs = 2500;
  limits.diskMb = 10;
  limits.maxProcesses = 8;
  limits.memoryMb = 100;
  auto value = [](const std::vector<RlimitSetting>& rows, int resource) -> const RlimitSetting* {
    for (const auto& r : rows)
      if (r.resource == resource) return &r;
    return nullptr;
  };
  auto rows = planRlimits(limits, {.memoryByRlimit = false, .processesByRlimit = true});
  REQUIRE(value(rows, RLIMIT_CPU));
  CHECK(value(rows, RLIMIT_CPU)->soft == 3);  // whole seconds, rounded up
  CHECK(value(rows, RLIMIT_CPU)->hard == 3);
  CHECK(value(rows, RLIMIT_FSIZE)->hard == 10u << 20);
  CHECK(value(rows, RLIMIT_NPROC)->soft == 8);
  CHECK(value(rows, RLIMIT_NOFILE)->hard == 256);
  CHECK(value(rows, RLIMIT_CORE)->hard == 0);
  CHECK(value(rows, RLIMIT_AS) == nullptr);  // the memory cgroup holds memory
  auto byRlimit = planRlimits(limits, {.memoryByRlimit = true, .processesByRlimit = false});
  REQUIRE(value(byRlimit, RLIMIT_AS));
  CHECK(value(byRlimit, RLIMIT_AS)->hard == (100u + 32u) << 20);
  CHECK(value(byRlimit, RLIMIT_NPROC) == nullptr);
  auto session = planRlimits(limits, {.sessionCpuMs = 60'000});
  CHECK(value(session, RLIMIT_CPU)->soft == 3);
  CHECK(value(session, RLIMIT_CPU)->hard == 60);
}
