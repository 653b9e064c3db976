// TLS termination and upstream TLS through the real proxyd, with certificates made for each test
// by the openssl command line (tests/support/tls_fixtures.hpp): curl over HTTPS, SNI, versions,
// a reload that swaps the certificate under an open keep-alive connection, a reload refused for
// a key that does not match, plaintext, garbage and a stalled handshake on the TLS port, pools
// that speak TLS (verification passing and failing, connections reused), WebSocket over TLS, an
// upload cut by a reset, and --check reading the files.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/config_builder.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/log_fields.hpp"
#include "tests/support/proxyd_process.hpp"
#include "tests/support/tls_fixtures.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;

constexpr int kTls11 = 0x0302;

TlsOptions options(std::string ca, std::string sni = "", int max_version = 0, std::string alpn = "") {
  TlsOptions out;
  out.ca = std::move(ca);
  out.sni = std::move(sni);
  out.max_version = max_version;
  out.alpn = std::move(alpn);
  return out;
}

std::string tls_block(const CertFiles& files) {
  return "tls: {cert: " + files.cert + ", key: " + files.key + "}";
}

std::string failures_sample(const std::string& listener, const std::string& reason) {
  return "proxyd_tls_handshake_failures_total{listener=\"" + listener + "\",reason=\"" + reason +
         "\"}";
}

class TlsTest : public ::testing::Test {
 protected:
  TlsTest() : blue_("blue-1") {}

  // proxyd with a plain listener `public` and a TLS listener `secure` (`tls` its block).
  void start(const std::string& tls, const std::string& timeouts = "") {
    ConfigBuilder builder;
    builder.listener("public").listener("secure", tls).metrics();
    builder.pool("blue", {blue_.address()}).route("web", "/", "blue");
    if (!timeouts.empty()) builder.timeouts(timeouts);
    yaml_ = builder.yaml();
    proxy_ = ProxydProcess::start(yaml_);
    ASSERT_TRUE(proxy_);
    port_ = proxy_->port("secure");
    admin_ = proxy_->port("admin.metrics");
    ASSERT_NE(port_, 0);
  }

  TlsOptions trusted(std::string sni = "") const { return options(pki_.ca(), std::move(sni)); }

  TestPki pki_;
  FakeUpstream blue_;
  std::string yaml_;
  std::unique_ptr<ProxydProcess> proxy_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_ = 0;
};

TEST_F(TlsTest, CurlOverHttpsWithTheTestCa) {
  start(tls_block(pki_.issue("site", "site", {"localhost"})));
  // HTTP/1.1 asked for: ALPN would choose h2 otherwise (tests/integration/h2_test.cpp).
  const CommandResult r = run_program({"/usr/bin/curl", "-sS", "--http1.1", "--cacert", pki_.ca(),
                                       "-D", "-",
                                       "https://127.0.0.1:" + std::to_string(port_) + "/headers"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("x-upstream: blue-1\r\n"), std::string::npos) << r.output;
  // The upstream hears that the client spoke HTTPS.
  EXPECT_NE(r.output.find("\nX-Forwarded-Proto: https\n"), std::string::npos) << r.output;

  // The access log says the version and the cipher.
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(1, 5s));
  const std::string line = proxy_->stdout_lines().back();
  EXPECT_NE(line.find(" listener=secure "), std::string::npos) << line;
  EXPECT_NE(line.find(" tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384"), std::string::npos) << line;

  // ALPN answers http/1.1; the plain listener still says http.
  TlsClient client(port_, options(pki_.ca(), "", 0, "http/1.1"));
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client.alpn(), "http/1.1");
  EXPECT_NE(fetch(proxy_->port("public"), "/headers").body.find("\nX-Forwarded-Proto: http\n"),
            std::string::npos);
  EXPECT_EQ(wait_metric(admin_, "proxyd_tls_handshakes_total{listener=\"secure\"}", 2), 2);
}

// An upload over TLS cut by a reset that reaches proxyd with the body's next bytes (here while
// proxyd is stopped, so one event carries both): the request ends at once, client_gone, not at
// client_body. The inbox read that takes the bytes hears from the kernel that nothing is left
// (TCP_INQ counts no reset) and spends the reset's event; each read of the body asks to try the
// socket at once if it needs it (Stream::read_next_at_once).
TEST_F(TlsTest, AnUploadCutByAResetInTheMiddleOfItsBodyEndsAtOnce) {
  start(tls_block(pki_.issue("site", "site")), "client_body: 30s");
  TlsClient client(port_, trusted());
  ASSERT_TRUE(client.ok()) << client.error();
  ASSERT_TRUE(client.send("PUT /sink HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3e8\r\n" + std::string(1000, 'b') + "\r\n"));
  ASSERT_TRUE(blue_.wait_for_requests(1, 5s));  // the head went upstream: the body is relayed
  ASSERT_TRUE(proxy_->signal(SIGSTOP));
  ASSERT_TRUE(client.send("1000\r\n" + std::string(100, 'b')));
  client.reset();
  ASSERT_TRUE(proxy_->signal(SIGCONT));
  const auto began = std::chrono::steady_clock::now();
  ASSERT_TRUE(proxy_->wait_for_stdout_lines(1, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - began, 3s) << "client_body is 30s";
  auto line = log_fields(proxy_->stdout_lines().back());
  EXPECT_EQ(line["target"], "/sink");
  EXPECT_EQ(line["status"], "0");
  EXPECT_EQ(line["end"], "client_gone");
  EXPECT_EQ(line["bytes_in"], "1100");
}

// A ClientHello's first record, whole, with the message it begins cut short, then a reset, both
// there before proxyd reads them (stopped here, as a busy worker would be): the read that takes
// the record comes back short, and the reset's event is spent with it. The handshake must end at
// once, counted as `closed`, not at tls_handshake (30 s): while a handshake is under way, the
// read for its next record tries the socket first. (A FIN in its place, which the kernel's count
// of bytes left reports, ended it at once before that too: checked as well.)
TEST_F(TlsTest, AHandshakeCutAtARecordBoundaryThenResetOrClosedEndsAtOnce) {
  start(tls_block(pki_.issue("site", "site")), "tls_handshake: 30s");
  const std::string active = "proxyd_connections_active{listener=\"secure\"}";
  for (const bool with_reset : {true, false}) {
    SCOPED_TRACE(with_reset ? "reset" : "FIN");
    HttpClient client(port_);
    ASSERT_TRUE(client.connected()) << client.connect_error();
    // Accepted: its handshake waits for the ClientHello.
    ASSERT_EQ(wait_metric(admin_, active, 1), 1);

    ASSERT_TRUE(proxy_->signal(SIGSTOP));
    // A handshake record of 8 bytes: a ClientHello header announcing 256 bytes, and 4 of them.
    ASSERT_TRUE(client.send_raw(
        std::string("\x16\x03\x01\x00\x08\x01\x00\x01\x00\x03\x03\x00\x00", 13)));
    if (with_reset)
      client.reset();
    else
      client.close();
    ASSERT_TRUE(proxy_->signal(SIGCONT));
    const auto began = std::chrono::steady_clock::now();
    const double closed = with_reset ? 1 : 2;
    EXPECT_EQ(wait_metric(admin_, failures_sample("secure", "closed"), closed), closed);
    EXPECT_LT(std::chrono::steady_clock::now() - began, 3s) << "tls_handshake is 30s";
    EXPECT_EQ(wait_metric_down(admin_, active, 0), 0);
  }
  EXPECT_EQ(metric_value(admin_, failures_sample("secure", "timeout")), 0);
}

TEST_F(TlsTest, SniPicksTheCertificateAndAnUnknownNameGetsTheDefault) {
  const CertFiles a = pki_.issue("a", "a", {"a.test"});
  const CertFiles b = pki_.issue("b", "b", {"b.test", "*.apps.test"});
  start("tls: {certificates: [{cert: " + a.cert + ", key: " + a.key + "}, {cert: " + b.cert +
        ", key: " + b.key + "}]}");
  const auto cn_for = [&](const std::string& sni) {
    TlsClient client(port_, trusted(sni));
    EXPECT_TRUE(client.ok()) << sni << ": " << client.error();
    const Response r = client.get("/");
    EXPECT_EQ(r.status, 200u) << sni << ": " << r.error;
    return client.peer_cn();
  };
  EXPECT_EQ(cn_for("a.test"), "a");
  EXPECT_EQ(cn_for("b.test"), "b");
  EXPECT_EQ(cn_for("B.TEST"), "b");
  EXPECT_EQ(cn_for("one.apps.test"), "b");    // the wildcard
  EXPECT_EQ(cn_for("two.one.apps.test"), "a");  // a wildcard covers one label only
  EXPECT_EQ(cn_for("unknown.test"), "a");
  EXPECT_EQ(cn_for(""), "a");
}

TEST_F(TlsTest, Tls11IsRefusedAndCounted) {
  start(tls_block(pki_.issue("site", "site")));
  TlsClient old(port_, options("", "", kTls11));
  EXPECT_FALSE(old.ok());
  EXPECT_NE(old.error().find("protocol version"), std::string::npos) << old.error();
  EXPECT_EQ(wait_metric(admin_, failures_sample("secure", "protocol_version"), 1), 1);

  TlsClient modern(port_, trusted());
  ASSERT_TRUE(modern.ok()) << modern.error();
  EXPECT_EQ(modern.version(), "TLSv1.3");
  EXPECT_EQ(modern.get("/").status, 200u);
}

TEST_F(TlsTest, MinVersion13RefusesTls12) {
  start("tls: {cert: " + pki_.issue("site", "site").cert + ", key: " + pki_.dir() +
        "/site.key, min_version: \"1.3\"}");
  TlsClient tls12(port_, options(pki_.ca(), "", 0x0303));
  EXPECT_FALSE(tls12.ok());
  TlsClient tls13(port_, trusted());
  EXPECT_TRUE(tls13.ok()) << tls13.error();
}

TEST_F(TlsTest, ReloadSwapsTheCertificateWhileAKeepAliveConnectionKeepsWorking) {
  pki_.issue("site", "before");
  start(tls_block({pki_.dir() + "/site.pem", pki_.dir() + "/site.key"}));
  TlsClient kept(port_, trusted());
  ASSERT_TRUE(kept.ok()) << kept.error();
  EXPECT_EQ(kept.peer_cn(), "before");
  Response r = kept.get("/");
  ASSERT_EQ(r.status, 200u) << r.error;
  EXPECT_EQ(r.header("x-upstream"), "blue-1");

  pki_.issue("site", "after");  // the same paths, a new certificate and key
  const auto mark = proxy_->line_count();
  ASSERT_TRUE(proxy_->signal(SIGHUP));
  const std::string reloaded = proxy_->wait_for_line("proxyd: reload", 10s, mark).value_or("");
  ASSERT_NE(reloaded.find("proxyd: reload ok"), std::string::npos) << proxy_->stderr_text();

  // The open connection keeps its session and keeps serving; new handshakes get the new one.
  for (int i = 0; i < 3; ++i) {
    r = kept.get("/");
    EXPECT_EQ(r.status, 200u) << r.error;
    EXPECT_EQ(r.header("x-upstream"), "blue-1");
  }
  EXPECT_EQ(kept.peer_cn(), "before");
  TlsClient fresh(port_, trusted());
  ASSERT_TRUE(fresh.ok()) << fresh.error();
  EXPECT_EQ(fresh.peer_cn(), "after");
  EXPECT_EQ(fresh.get("/").status, 200u);
}

// Session resumption by ticket: a client that kept its session resumes it, also after a reload
// (the ticket keys come from a secret made at start, not from the contexts a reload replaces).
TEST_F(TlsTest, ASessionIsResumedAlsoAfterAReload) {
  start(tls_block(pki_.issue("site", "site")));
  std::shared_ptr<void> session;
  {
    TlsClient first(port_, trusted());
    ASSERT_TRUE(first.ok()) << first.error();
    EXPECT_FALSE(first.resumed());
    ASSERT_EQ(first.get("/").status, 200u);
    session = first.session();
    ASSERT_TRUE(session);
  }
  TlsOptions again = trusted();
  again.session = session;
  TlsClient second(port_, again);
  ASSERT_TRUE(second.ok()) << second.error();
  EXPECT_TRUE(second.resumed());
  ASSERT_EQ(second.get("/").status, 200u);

  const auto mark = proxy_->line_count();
  ASSERT_TRUE(proxy_->signal(SIGHUP));
  ASSERT_NE(proxy_->wait_for_line("proxyd: reload ok", 10s, mark), std::nullopt);
  again.session = second.session();
  TlsClient third(port_, again);
  ASSERT_TRUE(third.ok()) << third.error();
  EXPECT_TRUE(third.resumed());
  EXPECT_EQ(third.get("/").status, 200u);
}

// TLS 1.3 clients use a ticket once (RFC 8446, C.4), so each resumption must hand out the next
// one: a server that issued none left wrk's and browsers' next connection a full handshake.
TEST_F(TlsTest, EachTls13ResumptionIssuesAFreshTicketThatResumesTheNext) {
  start(tls_block(pki_.issue("site", "site")));
  std::shared_ptr<void> session;
  {
    TlsClient first(port_, trusted());
    ASSERT_TRUE(first.ok()) << first.error();
    EXPECT_EQ(first.version(), "TLSv1.3");
    ASSERT_EQ(first.get("/").status, 200u);
    session = first.session();
  }
  for (int i = 0; i < 3; ++i) {
    const std::string used = TlsClient::ticket(session);
    ASSERT_FALSE(used.empty()) << "connection " << i;
    TlsOptions again = trusted();
    again.session = session;
    TlsClient next(port_, again);
    ASSERT_TRUE(next.ok()) << next.error();
    EXPECT_TRUE(next.resumed()) << "connection " << i;
    ASSERT_EQ(next.get("/").status, 200u);
    session = next.session();
    const std::string issued = TlsClient::ticket(session);
    EXPECT_FALSE(issued.empty()) << "connection " << i;
    EXPECT_TRUE(issued != used) << "connection " << i << ": no new ticket after the resumption";
  }
}

TEST_F(TlsTest, AReloadWithAKeyThatDoesNotMatchIsRefusedAndTheOldCertificateStays) {
  const CertFiles site = pki_.issue("site", "site");
  const CertFiles other = pki_.issue("other", "other");
  start(tls_block(site));
  const std::string bad = substitute(yaml_, {{site.key, other.key}});
  proxy_->write_config(bad);
  const auto mark = proxy_->line_count();
  ASSERT_TRUE(proxy_->signal(SIGHUP));
  const std::string line = proxy_->wait_for_line("proxyd: reload", 10s, mark).value_or("");
  EXPECT_EQ(line, "proxyd: reload failed: " + proxy_->config_path() +
                      ":4: listeners[1].tls.key: " + other.key +
                      ": does not match the certificate " + site.cert);
  EXPECT_EQ(wait_metric(admin_, "proxyd_config_reloads_total{result=\"failed\"}", 1), 1);

  TlsClient client(port_, trusted());
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client.peer_cn(), "site");
  EXPECT_EQ(client.get("/").status, 200u);

  // --check reads the files the same way.
  const CommandResult check = ProxydProcess::check(bad);
  EXPECT_EQ(check.exit_code, 1) << check.output;
  EXPECT_EQ(check.output, check.config_path + ":4: listeners[1].tls.key: " + other.key +
                              ": does not match the certificate " + site.cert + "\n");
}

TEST_F(TlsTest, CheckNamesAMissingOrBadFile) {
  const CertFiles site = pki_.issue("site", "site");
  const std::string missing = pki_.dir() + "/missing.pem";
  CommandResult r = ProxydProcess::check(
      ConfigBuilder()
          .listener("secure", tls_block({missing, site.key}))
          .pool("blue", {blue_.address()})
          .route("web", "/", "blue")
          .yaml());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output, r.config_path + ":3: listeners[0].tls.cert: " + missing +
                          ": cannot open: No such file or directory\n");
  // A key given as the certificate is not a certificate.
  r = ProxydProcess::check(ConfigBuilder()
                               .listener("secure", tls_block({site.key, site.key}))
                               .pool("blue", {blue_.address()})
                               .route("web", "/", "blue")
                               .yaml());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(":3: listeners[0].tls.cert: " + site.key + ": not a PEM certificate"),
            std::string::npos)
      << r.output;
}

// OCSP stapling: a client that asks gets the file's response byte for byte, for the certificate
// SNI chose; one that does not ask, or whose certificate has no `ocsp`, gets none; a reload staples
// the renewed file; curl's --cert-status verifies the staple against the CA.
TEST_F(TlsTest, TheOcspFileIsStapledForItsCertificateAndAReloadRenewsIt) {
  const CertFiles a = pki_.issue("a", "a", {"a.test"});
  const CertFiles b = pki_.issue("b", "b", {"b.test"});
  const std::string ocsp = pki_.ocsp(a, "a.ocsp");
  start("tls: {certificates: [{cert: " + a.cert + ", key: " + a.key + ", ocsp: " + ocsp +
        "}, {cert: " + b.cert + ", key: " + b.key + "}]}");
  const auto stapled = [&](const std::string& sni, bool ask) {
    TlsOptions asking = trusted(sni);
    asking.ocsp = ask;
    TlsClient client(port_, asking);
    EXPECT_TRUE(client.ok()) << sni << ": " << client.error();
    EXPECT_EQ(client.get("/").status, 200u) << sni;
    return client.ocsp_response();
  };
  const std::string first = file_bytes(ocsp);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(stapled("a.test", true), first);
  EXPECT_EQ(stapled("", true), first);  // no SNI: the default certificate, a
  EXPECT_EQ(stapled("a.test", false), "");
  EXPECT_EQ(stapled("b.test", true), "");

  const std::string port = std::to_string(port_);
  const auto curl_cert_status = [&](const std::string& host) {
    return run_program({"/usr/bin/curl", "-sS", "--http1.1", "--cacert", pki_.ca(),
                        "--cert-status", "--resolve", host + ":" + port + ":127.0.0.1",
                        "https://" + host + ":" + port + "/"});
  };
  const CommandResult with_staple = curl_cert_status("a.test");
  EXPECT_EQ(with_staple.exit_code, 0) << with_staple.output;
  const CommandResult without = curl_cert_status("b.test");
  EXPECT_NE(without.exit_code, 0) << without.output;
  EXPECT_NE(without.output.find("No OCSP response received"), std::string::npos)
      << without.output;

  pki_.ocsp(a, "a.ocsp");  // renewed in place, as a cron job would
  const std::string renewed = file_bytes(ocsp);
  ASSERT_NE(renewed, first);
  const auto mark = proxy_->line_count();
  ASSERT_TRUE(proxy_->signal(SIGHUP));
  const std::string reloaded = proxy_->wait_for_line("proxyd: reload", 10s, mark).value_or("");
  ASSERT_NE(reloaded.find("proxyd: reload ok"), std::string::npos) << proxy_->stderr_text();
  EXPECT_EQ(stapled("a.test", true), renewed);
}

// A bad OCSP file is an error naming it, at --check and at a reload, which then changes nothing.
TEST_F(TlsTest, ABadOcspFileIsAnErrorAndAReloadKeepsTheStapleInUse) {
  const CertFiles site = pki_.issue("site", "site");
  const CertFiles other = pki_.issue("other", "other");
  const std::string good = pki_.ocsp(site, "site.ocsp");
  const std::string revoked = pki_.ocsp(site, "revoked.ocsp", TestPki::OcspStatus::revoked);
  const std::string about_other = pki_.ocsp(other, "other.ocsp");
  const auto block = [&](const std::string& ocsp) {
    return "tls: {cert: " + site.cert + ", key: " + site.key + ", ocsp: " + ocsp + "}";
  };
  start(block(good));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {site.key, "not a DER-encoded OCSP response"},
      {revoked, "says the certificate is revoked"},
      {about_other, "is not about the certificate in " + site.cert},
      {pki_.dir() + "/missing.ocsp", "cannot open: No such file or directory"},
  };
  for (const auto& [file, why] : bad) {
    const std::string yaml = substitute(yaml_, {{block(good), block(file)}});
    const CommandResult check = ProxydProcess::check(yaml);
    EXPECT_EQ(check.exit_code, 1) << check.output;
    EXPECT_EQ(check.output,
              check.config_path + ":4: listeners[1].tls.ocsp: " + file + ": " + why + "\n");
    proxy_->write_config(yaml);
    const auto mark = proxy_->line_count();
    ASSERT_TRUE(proxy_->signal(SIGHUP));
    const std::string line = proxy_->wait_for_line("proxyd: reload", 10s, mark).value_or("");
    EXPECT_EQ(line, "proxyd: reload failed: " + proxy_->config_path() +
                        ":4: listeners[1].tls.ocsp: " + file + ": " + why);
  }
  TlsOptions asking = trusted();
  asking.ocsp = true;
  TlsClient client(port_, asking);
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client.ocsp_response(), file_bytes(good));
}

TEST_F(TlsTest, CheckNamesABadCipherListOrCaFile) {
  const CertFiles site = pki_.issue("site", "site");
  CommandResult r = ProxydProcess::check(
      ConfigBuilder()
          .listener("secure", "tls: {cert: " + site.cert + ", key: " + site.key +
                                  ", ciphers: NO-SUCH-CIPHER}")
          .pool("blue", {blue_.address()}, "tls: {ca: " + pki_.dir() + "/none.pem}")
          .route("web", "/", "blue")
          .yaml());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output, r.config_path + ":3: listeners[0].tls.ciphers: no usable cipher in "
                                      "\"NO-SUCH-CIPHER\"\n" +
                          r.config_path + ":11: pools.blue.tls.ca: " + pki_.dir() +
                          "/none.pem: cannot open: No such file or directory\n");
}

// Listener changes take effect on restart: a reload whose file drops a listener's tls block keeps
// that listener serving TLS with the certificates it has, rather than leave it with none.
TEST_F(TlsTest, AReloadThatDropsTheTlsBlockKeepsTheListenerServing) {
  start(tls_block(pki_.issue("site", "site")));
  proxy_->write_config(substitute(yaml_, {{", " + tls_block({pki_.dir() + "/site.pem",
                                                              pki_.dir() + "/site.key"}),
                                           ""}}));
  const auto mark = proxy_->line_count();
  ASSERT_TRUE(proxy_->signal(SIGHUP));
  ASSERT_NE(proxy_->wait_for_line("proxyd: reload ok", 10s, mark), std::nullopt)
      << proxy_->stderr_text();
  EXPECT_NE(proxy_->wait_for_line("take effect on restart", 5s, mark), std::nullopt);
  TlsClient client(port_, trusted());
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client.peer_cn(), "site");
  EXPECT_EQ(client.get("/").status, 200u);
}

TEST_F(TlsTest, PlaintextAndGarbageAreClosedAndCountedWithoutDisturbingOthers) {
  start(tls_block(pki_.issue("site", "site")));
  TlsClient before(port_, trusted());
  ASSERT_TRUE(before.ok()) << before.error();

  HttpClient plain(port_);
  ASSERT_TRUE(plain.connected());
  ASSERT_TRUE(plain.send_raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(plain.read_raw(1024), "");
  EXPECT_TRUE(plain.is_closed_by_peer());
  EXPECT_EQ(wait_metric(admin_, failures_sample("secure", "plain_http"), 1), 1);

  HttpClient garbage(port_);
  ASSERT_TRUE(garbage.connected());
  ASSERT_TRUE(garbage.send_raw(std::string(300, '\x7f')));
  EXPECT_TRUE(garbage.is_closed_by_peer());
  EXPECT_EQ(wait_metric(admin_, failures_sample("secure", "malformed"), 1), 1);

  // The connection made before is unaffected, and new ones work.
  EXPECT_EQ(before.get("/").status, 200u);
  TlsClient after(port_, trusted());
  ASSERT_TRUE(after.ok()) << after.error();
  EXPECT_EQ(after.get("/").status, 200u);
}

// New TLS connections at once, after a burst of failed handshakes: a worker takes from its
// backlog only while few handshakes are unfinished (Worker::accept_loop), and each handshake,
// failed or done, is counted out, so every connection is still accepted and answered.
TEST_F(TlsTest, ABurstOfNewTlsConnectionsIsServedWhole) {
  start(tls_block(pki_.issue("site", "site")));
  constexpr int kPlain = 16;
  std::vector<std::unique_ptr<HttpClient>> plain;
  for (int i = 0; i < kPlain; ++i) {
    plain.push_back(std::make_unique<HttpClient>(port_));
    ASSERT_TRUE(plain.back()->connected());
    ASSERT_TRUE(plain.back()->send_raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  for (auto& client : plain) EXPECT_TRUE(client->is_closed_by_peer());

  constexpr int kClients = 64;
  std::vector<unsigned> statuses(kClients, 0);
  std::vector<std::string> bodies(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      TlsClient client(port_, trusted());
      if (!client.ok()) return;
      Response r = client.get("/burst/" + std::to_string(i));
      statuses[i] = r.status;
      bodies[i] = r.body;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(statuses[i], 200u) << i;
    EXPECT_EQ(bodies[i], "blue-1\n") << i;
  }
  EXPECT_EQ(wait_metric(admin_, failures_sample("secure", "plain_http"), kPlain), kPlain);
  EXPECT_EQ(metric_value(admin_, "proxyd_tls_handshakes_total{listener=\"secure\"}"), kClients);
}

TEST_F(TlsTest, AStalledHandshakeIsClosedAtItsDeadline) {
  start(tls_block(pki_.issue("site", "site")), "tls_handshake: 300ms, drain: 2s");
  HttpClient stalled(port_, 5s);
  ASSERT_TRUE(stalled.connected());
  // Meanwhile another client is served at once: the stalled handshake holds up nobody.
  TlsClient other(port_, trusted());
  ASSERT_TRUE(other.ok()) << other.error();
  EXPECT_EQ(other.get("/").status, 200u);

  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(stalled.is_closed_by_peer());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_EQ(wait_metric(admin_, failures_sample("secure", "timeout"), 1), 1);
  EXPECT_EQ(other.get("/").status, 200u);
}

// A local reply that closes the connection reaches the client whole over TLS (close_notify, then
// the lingering close reads what the client still sends without decrypting it).
TEST_F(TlsTest, ARefusedRequestGetsItsReplyAndTheConnectionCloses) {
  start(tls_block(pki_.issue("site", "site")));
  TlsClient client(port_, trusted());
  ASSERT_TRUE(client.ok()) << client.error();
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\n\r\n" + std::string(4096, 'x')));
  const Response r = client.read_response();
  EXPECT_EQ(r.status, 400u) << r.error;
  EXPECT_EQ(r.body, "400 Bad Request (bad_request)\n");
  EXPECT_TRUE(client.is_closed_by_peer());
}

TEST_F(TlsTest, WebSocketOverTls) {
  start(tls_block(pki_.issue("site", "site")));
  TlsClient client(port_, trusted());
  ASSERT_TRUE(client.ok()) << client.error();
  ASSERT_TRUE(client.send("GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
                          "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
  const Response head = client.read_response();
  ASSERT_EQ(head.status, 101u) << head.error;
  EXPECT_EQ(head.header("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // The tunnel echoes bytes both ways, through TLS on the client's side.
  for (const std::string message : {"hello", "over tls"}) {
    ASSERT_TRUE(client.send(message));
    std::string echoed;
    while (echoed.size() < message.size()) {
      const std::string got = client.read_some(64);
      if (got.empty()) break;
      echoed += got;
    }
    EXPECT_EQ(echoed, message);
  }
}

// A pool that speaks TLS: proxyd in front of another proxyd's TLS listener (which stands for an
// HTTPS server and logs which connection each request came on).
class UpstreamTlsTest : public ::testing::Test {
 protected:
  UpstreamTlsTest() : blue_("blue-1") {
    server_ = ProxydProcess::start(ConfigBuilder()
                                       .listener("secure", tls_block(pki_.issue(
                                                               "server", "server",
                                                               {"app.internal", "localhost"})))
                                       .pool("blue", {blue_.address()})
                                       .route("web", "/", "blue")
                                       .yaml());
  }

  std::unique_ptr<ProxydProcess> front(const std::string& pool_tls) {
    return ProxydProcess::start(
        ConfigBuilder()
            .metrics()
            .pool("tls", {"127.0.0.1:" + std::to_string(server_->port("secure"))}, pool_tls)
            .route("web", "/", "tls")
            .yaml());
  }

  TestPki pki_;
  FakeUpstream blue_;
  std::unique_ptr<ProxydProcess> server_;
};

TEST_F(UpstreamTlsTest, VerifiedAndReused) {
  ASSERT_TRUE(server_);
  auto proxy = front("tls: {ca: " + pki_.ca() + ", sni: app.internal}");
  ASSERT_TRUE(proxy);
  for (int i = 0; i < 3; ++i) {
    const Response r = fetch(proxy->port("public"), "/");
    ASSERT_EQ(r.status, 200u) << r.error;
    EXPECT_EQ(r.header("x-upstream"), "blue-1");
  }
  // The TLS server saw three requests on one connection: the idle TLS connection was reused.
  ASSERT_TRUE(server_->wait_for_stdout_lines(3, 5s));
  const auto lines = server_->stdout_lines();
  const auto client_of = [](const std::string& line) {
    const auto at = line.find(" client=");
    return line.substr(at, line.find(' ', at + 1) - at);
  };
  EXPECT_EQ(client_of(lines[0]), client_of(lines[1]));
  EXPECT_EQ(client_of(lines[1]), client_of(lines[2]));
  EXPECT_NE(lines[0].find(" tls=TLSv1.3 "), std::string::npos) << lines[0];
}

// Active health checks of a pool with tls speak TLS too, with the same verification.
TEST_F(UpstreamTlsTest, HealthChecksSpeakTls) {
  ASSERT_TRUE(server_);
  auto proxy = ProxydProcess::start(
      ConfigBuilder()
          .pool("tls", {"127.0.0.1:" + std::to_string(server_->port("secure"))},
                "tls: {ca: " + pki_.ca() + ", sni: app.internal}\n"
                "    health: {path: /healthz, interval: 200ms, timeout: 150ms, rise: 1}")
          .route("web", "/", "tls")
          .yaml());
  ASSERT_TRUE(proxy);
  ASSERT_TRUE(blue_.wait_for_health_checks(1, 5s));
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  Response r = fetch(proxy->port("public"), "/");
  while (r.status != 200 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    r = fetch(proxy->port("public"), "/");
  }
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.header("x-upstream"), "blue-1");
}

TEST_F(UpstreamTlsTest, AServerThatFailsVerificationGets502) {
  ASSERT_TRUE(server_);
  TestPki stranger("another CA");
  // Signed by a CA the pool does not trust.
  auto untrusted = front("tls: {ca: " + stranger.ca() + "}");
  ASSERT_TRUE(untrusted);
  Response r = fetch(untrusted->port("public"), "/");
  EXPECT_EQ(r.status, 502u);
  EXPECT_EQ(r.body, "502 Bad Gateway (upstream_tls)\n");
  const std::string server = "127.0.0.1:" + std::to_string(server_->port("secure"));
  EXPECT_EQ(wait_metric(untrusted->port("admin.metrics"),
                        "proxyd_upstream_failures_total{pool=\"tls\",server=\"" + server +
                            "\",reason=\"tls_failed\"}",
                        1),
            1);
  // Trusted, but not for that name.
  auto wrong_name = front("tls: {ca: " + pki_.ca() + ", sni: other.internal}");
  ASSERT_TRUE(wrong_name);
  EXPECT_EQ(fetch(wrong_name->port("public"), "/").status, 502u);
  // verify: false takes any certificate.
  auto unverified = front("tls: {verify: false}");
  ASSERT_TRUE(unverified);
  EXPECT_EQ(fetch(unverified->port("public"), "/").status, 200u);
}

}  // namespace
}  // namespace proxyd::test
