#include <unistd.h>

#include <iostream>

#include "pycell/cli/cli.h"
#include "pycell/process/log.h"
#include "pycell/server/server.h"

namespace pycell::cli {

int serveMain(const ServeOptions& options, server::Server::Dialect dialect) {
  auto config = loadConfigOrReport(options.common);
  if (!config) return 2;
  auto ctx = sandbox::makeContext(std::move(*config), options.common.server);
  if (!ctx) {
    log::error(ctx.error().message());
    return 3;
  }
  EventLoop loop;
  // MCP clients speak NDJSON only (PROTOCOL.md section 5).
  auto framing = dialect == server::Server::Dialect::Mcp ? protocol::Framing::Ndjson : options.framing;
  server::Server server(loop, **ctx, framing, STDIN_FILENO, STDOUT_FILENO, dialect);
  if (options.clientProcessId) {
    if (auto st = server.watchClientProcess(*options.clientProcessId); !st) {
      log::error(st.error().message());
      return 2;
    }
  }
  return server.run();
}

}  // namespace pycell::cli
