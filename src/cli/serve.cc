#include <unistd.h>

#include <iostream>

#include "pycell/cli/cli.h"
#include "pycell/log.h"
#include "pycell/server/server.h"

namespace pycell::cli {

int serveMain(const ServeOptions& options) {
  auto config = loadConfigOrReport(options.common);
  if (!config) return 2;
  auto ctx = sandbox::makeContext(std::move(*config), options.common.server);
  if (!ctx) {
    log::error(ctx.error().message());
    return 3;
  }
  EventLoop loop;
  server::Server server(loop, **ctx, options.framing, STDIN_FILENO, STDOUT_FILENO);
  if (options.clientProcessId) {
    if (auto st = server.watchClientProcess(*options.clientProcessId); !st) {
      log::error(st.error().message());
      return 2;
    }
  }
  return server.run();
}

}  // namespace pycell::cli
