// read_ocsp_staple (proxy/tls.hpp) on OCSP responses made by `openssl ocsp` for certificates of a
// test CA: what a good response keeps, and each reason one is refused, at a chosen time.
#include <gtest/gtest.h>

#include <ctime>
#include <string>

#include "proxy/tls.hpp"
#include "tests/support/tls_fixtures.hpp"

namespace proxyd {
namespace {

class OcspStapleTest : public ::testing::Test {
 protected:
  test::TestPki pki_;
  test::CertFiles site_ = pki_.issue("site", "site");
  std::int64_t now_ = static_cast<std::int64_t>(std::time(nullptr));
};

TEST_F(OcspStapleTest, AGoodResponseIsKeptByteForByteUntilItsNextUpdate) {
  const std::string file = pki_.ocsp(site_, "site.ocsp", test::TestPki::OcspStatus::good, 60);
  const OcspRead read = read_ocsp_staple(file, site_.cert, now_);
  ASSERT_TRUE(read.staple) << read.error;
  EXPECT_EQ(read.error, "");
  EXPECT_EQ(read.staple->response, test::file_bytes(file));
  // `openssl ocsp -nmin 60`: nextUpdate an hour after thisUpdate, which is about now.
  EXPECT_GE(read.staple->next_update, now_ + 59 * 60);
  EXPECT_LE(read.staple->next_update, now_ + 61 * 60);
  EXPECT_TRUE(read.staple->current(now_));
  EXPECT_FALSE(read.staple->current(read.staple->next_update));
}

TEST_F(OcspStapleTest, AnOutOfDateOrNotYetValidResponseIsRefused) {
  const std::string file = pki_.ocsp(site_, "site.ocsp", test::TestPki::OcspStatus::good, 60);
  OcspRead read = read_ocsp_staple(file, site_.cert, now_ + 2 * 3600);
  EXPECT_FALSE(read.staple);
  EXPECT_EQ(read.error.rfind("is out of date: its nextUpdate, 20", 0), 0u) << read.error;
  EXPECT_NE(read.error.find("Z, has passed"), std::string::npos) << read.error;
  // Five minutes of clock skew are allowed, not more.
  EXPECT_TRUE(read_ocsp_staple(file, site_.cert, now_ - 240).staple);
  read = read_ocsp_staple(file, site_.cert, now_ - 3600);
  EXPECT_FALSE(read.staple);
  EXPECT_EQ(read.error.rfind("is not valid yet: its thisUpdate is 20", 0), 0u) << read.error;
}

TEST_F(OcspStapleTest, ARevokedCertificatesResponseIsRefused) {
  const std::string file = pki_.ocsp(site_, "site.ocsp", test::TestPki::OcspStatus::revoked);
  const OcspRead read = read_ocsp_staple(file, site_.cert, now_);
  EXPECT_FALSE(read.staple);
  EXPECT_EQ(read.error, "says the certificate is revoked");
}

TEST_F(OcspStapleTest, AResponseAboutAnotherCertificateIsRefused) {
  const test::CertFiles other = pki_.issue("other", "other");
  const std::string file = pki_.ocsp(other, "other.ocsp");
  const OcspRead read = read_ocsp_staple(file, site_.cert, now_);
  EXPECT_FALSE(read.staple);
  EXPECT_EQ(read.error, "is not about the certificate in " + site_.cert);
}

TEST_F(OcspStapleTest, NotAnOcspResponseOrNoIssuerOrNoFileIsRefused) {
  EXPECT_EQ(read_ocsp_staple(site_.key, site_.cert, now_).error,
            "not a DER-encoded OCSP response");
  // The leaf alone: the response is checked against the leaf and its issuer.
  const std::string leaf_only = pki_.dir() + "/site.leaf.pem";
  const std::string file = pki_.ocsp(site_, "site.ocsp");
  EXPECT_EQ(read_ocsp_staple(file, leaf_only, now_).error,
            "the certificate's issuer must follow it in " + leaf_only);
  EXPECT_EQ(read_ocsp_staple(pki_.dir() + "/missing.ocsp", site_.cert, now_).error,
            "cannot open: No such file or directory");
}

}  // namespace
}  // namespace proxyd
