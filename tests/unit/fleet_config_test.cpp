// The `fleet:` section: every key, the default host, and each error message (exact text).
#include "proxy/config.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <unistd.h>

namespace proxyd {
namespace {

using Errors = std::vector<std::string>;

// A valid config of 6 lines; a test appends `fleet:` at line 7.
const std::string kBase = R"(listeners:
  - {name: public, address: 127.0.0.1:0}
pools:
  blue: {servers: [127.0.0.1:9001]}
routes:
  - {name: web, live: blue}
)";

Errors errors_of(const std::string& fleet) {
  Errors out;
  for (const ConfigError& error : load_config_text(kBase + fleet, "t.yaml").errors)
    out.push_back(error.text());
  return out;
}

TEST(FleetConfigTest, AbsentMeansStandalone) {
  const ConfigResult result = load_config_text(kBase, "t.yaml");
  ASSERT_TRUE(result.config);
  EXPECT_FALSE(result.config->fleet);
}

TEST(FleetConfigTest, EveryKeyIsRead) {
  const ConfigResult result = load_config_text(
      kBase + "fleet: {etcd: [http://127.0.0.1:2379, 'http://[::1]:2380/'], prefix: /proxyd/prod, "
              "host: web-1, user: proxyd, password: s3cret}\n",
      "t.yaml");
  const ConfigResult tls = load_config_text(
      kBase + "fleet: {etcd: [https://etcd-1:2379], prefix: /p, ca: /etc/ca.pem, cert: /c.pem, "
              "key: /c.key}\n",
      "t.yaml");
  ASSERT_TRUE(tls.config) << (tls.errors.empty() ? "" : tls.errors[0].text());
  EXPECT_TRUE(tls.config->fleet->tls);
  EXPECT_EQ(tls.config->fleet->etcd[0].text(), "etcd-1:2379");
  EXPECT_EQ(tls.config->fleet->ca, "/etc/ca.pem");
  EXPECT_EQ(tls.config->fleet->cert, "/c.pem");
  EXPECT_EQ(tls.config->fleet->key, "/c.key");
  ASSERT_TRUE(result.config) << (result.errors.empty() ? "" : result.errors[0].text());
  const FleetConfig& fleet = *result.config->fleet;
  ASSERT_EQ(fleet.etcd.size(), 2u);
  EXPECT_EQ(fleet.etcd[0].text(), "127.0.0.1:2379");
  EXPECT_EQ(fleet.etcd[1].host, "::1");
  EXPECT_EQ(fleet.etcd[1].port, 2380);
  EXPECT_EQ(fleet.prefix, "/proxyd/prod");
  EXPECT_EQ(fleet.host, "web-1");
  EXPECT_EQ(fleet.user, "proxyd");
  EXPECT_EQ(fleet.password, "s3cret");
  EXPECT_FALSE(fleet.tls);
}

TEST(FleetConfigTest, HostDefaultsToTheHostname) {
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  const ConfigResult result =
      load_config_text(kBase + "fleet: {etcd: [http://127.0.0.1:2379], prefix: /p}\n", "t.yaml");
  ASSERT_TRUE(result.config);
  EXPECT_EQ(result.config->fleet->host, host);
}

TEST(FleetConfigTest, Errors) {
  EXPECT_EQ(errors_of("fleet: {prefix: /p, etcd: [http://127.0.0.1:2379], tls: {}}\n"),
            Errors{"t.yaml:7: fleet.tls: unknown key (expected one of: etcd, prefix, host, ca, "
                   "cert, key, user, password)"});
  // etcd's auth takes both.
  EXPECT_EQ(errors_of("fleet: {prefix: /p, etcd: [http://127.0.0.1:2379], user: proxyd}\n"),
            Errors{"t.yaml:7: fleet.password: required with fleet.user"});
  EXPECT_EQ(errors_of("fleet: {prefix: /p, etcd: [http://127.0.0.1:2379], password: x}\n"),
            Errors{"t.yaml:7: fleet.user: required with fleet.password"});
  EXPECT_EQ(errors_of("fleet: {prefix: /p, etcd: [http://127.0.0.1:2379], user: '', password: x}\n"),
            Errors{"t.yaml:7: fleet.user: must not be empty"});
  EXPECT_EQ(errors_of("fleet: {etcd: [http://127.0.0.1:2379]}\n"),
            Errors{"t.yaml:7: fleet.prefix: required key is missing"});
  EXPECT_EQ(errors_of("fleet: {prefix: /p, etcd: []}\n"),
            Errors{"t.yaml:7: fleet.etcd: at least one etcd URL is required"});
  EXPECT_EQ(errors_of("fleet: {prefix: /p, etcd: [https://127.0.0.1:2379, http://127.0.0.1:2380]}\n"),
            Errors{"t.yaml:7: fleet.etcd: mixes http:// and https:// URLs: use https:// for every "
                   "etcd endpoint"});
  EXPECT_EQ(errors_of("fleet: {prefix: /p, etcd: [127.0.0.1:2379, http://h/x]}\n"),
            (Errors{"t.yaml:7: fleet.etcd[0]: expected an http://HOST:PORT or https://HOST:PORT URL, "
                    "got \"127.0.0.1:2379\"",
                    "t.yaml:7: fleet.etcd[1]: expected an http://HOST:PORT or https://HOST:PORT URL, "
                    "got \"http://h/x\""}));
  // TLS files only with https:// URLs, where they are used; a certificate with its key.
  EXPECT_EQ(errors_of("fleet: {prefix: /p, etcd: [http://127.0.0.1:2379], ca: /etc/ca.pem}\n"),
            Errors{"t.yaml:7: fleet.ca: needs https:// etcd URLs (these are http://: nothing to "
                   "check)"});
  EXPECT_EQ(errors_of("fleet: {prefix: /p, etcd: [https://127.0.0.1:2379], cert: /c.pem}\n"),
            Errors{"t.yaml:7: fleet.key: required with fleet.cert"});
  EXPECT_EQ(errors_of("fleet: {prefix: /p/, etcd: [http://127.0.0.1:2379]}\n"),
            Errors{"t.yaml:7: fleet.prefix: expected a key prefix like /proxyd/prod (starts with "
                   "/, no trailing /), got \"/p/\""});
  EXPECT_EQ(errors_of("fleet: {prefix: /p, etcd: [http://127.0.0.1:2379], host: 'a b'}\n"),
            Errors{"t.yaml:7: fleet.host: invalid name \"a b\" (use letters, digits, '-', '_' and "
                   "'.')"});
}

}  // namespace
}  // namespace proxyd
