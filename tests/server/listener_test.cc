// The listener's pieces that need no server: address forms, loopback, the token's compare and
// its file.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "pycell/server/connection.h"
#include "pycell/server/listener.h"

using namespace pycell::server;

TEST_CASE("listen addresses: unix, tcp (IPv4 and bracketed IPv6), systemd", "[listener]") {
  auto u = parseListenAddress("unix:/run/pycell/pycell.sock");
  REQUIRE(u);
  CHECK(u->kind == ListenAddress::Kind::Unix);
  CHECK(u->path == "/run/pycell/pycell.sock");
  auto t = parseListenAddress("tcp:127.0.0.1:7777");
  REQUIRE(t);
  CHECK(t->kind == ListenAddress::Kind::Tcp);
  CHECK(t->host == "127.0.0.1");
  CHECK(t->port == 7777);
  auto v6 = parseListenAddress("tcp:[::1]:0");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 0);
  CHECK(parseListenAddress("systemd")->kind == ListenAddress::Kind::Systemd);
  for (const char* bad : {"unix:", "tcp:", "tcp:127.0.0.1", "tcp:127.0.0.1:", "tcp:127.0.0.1:65536", "tcp:127.0.0.1:-1",
                          "tcp:::1:7777", "tcp:[::1]7777", "tcp::7777", "udp:1.2.3.4:5", "", "systemd:3"}) {
    INFO(bad);
    CHECK_FALSE(parseListenAddress(bad).has_value());
  }
}

TEST_CASE("loopback hosts", "[listener]") {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) CHECK(isLoopbackHost(host));
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "128.0.0.1", "example.org", "::ffff:127.0.0.1x"})
    CHECK_FALSE(isLoopbackHost(host));
}

TEST_CASE("tokens are compared whole", "[listener]") {
  CHECK(sameSecret("abc", "abc"));
  CHECK_FALSE(sameSecret("abd", "abc"));
  CHECK_FALSE(sameSecret("ab", "abc"));
  CHECK_FALSE(sameSecret("abcd", "abc"));
  CHECK_FALSE(sameSecret("", "abc"));
  CHECK_FALSE(sameSecret(std::string("abc\0", 4), "abc"));
}

TEST_CASE("a token file: its first line, kept from other users", "[listener]") {
  auto path = std::filesystem::temp_directory_path() / ("pycell-token-test-" + std::to_string(::getpid()));
  std::ofstream(path) << "the-token\r\nignored\n";
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  auto token = readTokenFile(path);
  REQUIRE(token);
  CHECK(*token == "the-token");
  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  auto open = readTokenFile(path);
  REQUIRE_FALSE(open);
  CHECK(open.error().message().find("chmod 600") != std::string::npos);
  std::ofstream(path, std::ios::trunc) << "\n";
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  CHECK_FALSE(readTokenFile(path));
  std::filesystem::remove(path);
  CHECK_FALSE(readTokenFile(path));
}
