#include <unistd.h>

#include <iostream>

#include "pycell/cli/cli.h"
#include "pycell/process/log.h"
#include "pycell/server/server.h"

namespace pycell::cli {

int serveMain(const ServeOptions& options, server::Dialect dialect) {
  auto config = loadConfigOrReport(options.common);
  if (!config) return 2;
  std::string token;
  if (!options.tokenFile.empty()) {
    auto read = server::readTokenFile(options.tokenFile);
    if (!read) {
      log::error(read.error().message());
      return 2;
    }
    token = std::move(*read);
  }
  auto ctx = sandbox::makeContext(std::move(*config), options.common.server);
  if (!ctx) {
    log::error(ctx.error().message());
    return 3;
  }
  EventLoop loop;
  server::Server server(loop, **ctx, dialect);
  Status started;
  if (options.listen) {
    started = server.listen({.address = *options.listen,
                             .framing = options.framing,
                             .token = std::move(token),
                             .maxConnections = options.maxConnections,
                             .maxExecutionsPerConnection = options.maxExecutionsPerConnection});
  } else {
    // MCP clients speak NDJSON only (PROTOCOL.md section 5).
    auto framing = dialect == server::Dialect::Mcp ? protocol::Framing::Ndjson : options.framing;
    started = server.serveStdio(framing, STDIN_FILENO, STDOUT_FILENO, options.clientProcessId);
  }
  if (!started) {
    log::error(started.error().message());
    return 2;
  }
  return server.run();
}

}  // namespace pycell::cli
