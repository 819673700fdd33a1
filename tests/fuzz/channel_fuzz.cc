// libFuzzer target: everything the server reads from a sandbox. Arbitrary bytes, in reads
// of arbitrary size, go through the result channel (src/exec/result_channel.cc) as one run
// would write them, then through what the server does with what the channel accepted: the
// report cut to its caps, the activity summary, and the result dumped as JSON. It must
// never crash or throw, never take a line without the token, never take two reports, and
// never allocate more than a fixed multiple of its input.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "pycell/exec/activity.h"
#include "pycell/exec/result_channel.h"

using pycell::exec::ChannelLimits;
using pycell::exec::ChannelSink;
using pycell::exec::ReportCaps;
using pycell::exec::ResultChannel;
using nlohmann::json;

// Live and peak bytes on the heap, where a sanitizer's allocator can tell (libFuzzer and
// the sanitizer build); the plain replay build checks everything else.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PYCELL_COUNT_HEAP 1
#endif
#elif defined(__SANITIZE_ADDRESS__)
#define PYCELL_COUNT_HEAP 1
#endif
namespace {
std::atomic<size_t> live{0}, peak{0};
}  // namespace
#ifdef PYCELL_COUNT_HEAP
// The sanitizer runtime's allocator hooks (declared here: GCC ships no header for them).
extern "C" {
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, size_t),
                                              void (*free_hook)(const volatile void*));
size_t __sanitizer_get_allocated_size(const volatile void* p);
}
namespace {
void onMalloc(const volatile void*, size_t n) {
  size_t now = live += n;
  for (size_t seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
  }
}
void onFree(const volatile void* p) { live -= __sanitizer_get_allocated_size(p); }
const int installed = __sanitizer_install_malloc_and_free_hooks(onMalloc, onFree);
}  // namespace
#endif

namespace {
struct Sink : ChannelSink {
  json events = json::array();
  json report;
  int reports = 0;
  void channelEvent(json event) override { events.push_back(std::move(event)); }
  void channelReport(json r) override {
    ++reports;
    report = std::move(r);
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t chunk = 1 + data[0] % 97;
  bool idleFirst = data[1] & 1;  // bytes before the run began (a session between runs)
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  size_t before = live.load();
  peak = before;
  {
    ChannelLimits limits;
    limits.maxLineBytes = 4096;
    limits.maxEventBytes = 512;
    limits.maxRunBytes = 16384;
    limits.maxDepth = 32;
    limits.maxValues = 2000;
    limits.maxEvents = 40;
    limits.maxEventTotalBytes = 8192;
    ResultChannel channel(limits);
    Sink sink;
    size_t split = idleFirst ? input.size() / 3 : 0;
    channel.idle();
    channel.feed(input.substr(0, split), sink);
    channel.expect("tok");
    for (size_t i = split; i < input.size(); i += chunk) channel.feed(input.substr(i, chunk), sink);
    channel.close(sink);
    if (sink.reports > 1 || channel.buffered() != 0) std::abort();
    ReportCaps caps;
    caps.maxValueBytes = 256;
    caps.maxReprChars = 64;
    caps.maxTextBytes = 128;
    caps.maxDisplayBytes = 1024;
    caps.maxFileBytes = 512;
    caps.maxTotalFileBytes = 1024;
    caps.maxFiles = 4;
    pycell::exec::sanitizeReport(sink.report, caps);
    if (sink.report.is_object() && sink.report.contains("value") &&
        pycell::exec::jsonSizeUpTo(sink.report["value"], 1 << 20) > caps.maxValueBytes + 24)
      std::abort();
    json result = {{"report", std::move(sink.report)}, {"activity", pycell::exec::summarizeActivity(sink.events)}};
    std::string text = result.dump(-1, ' ', false, json::error_handler_t::replace);
    (void)text;
  }
  // A fixed multiple of the input (plus a constant for the containers themselves).
#ifdef PYCELL_COUNT_HEAP
  (void)installed;
  if (peak.load() - before > 64 * size + (256u << 10)) std::abort();
#else
  (void)before;
#endif
  return 0;
}
