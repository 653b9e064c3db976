// The Debian package built by `cpack -G DEB` (the Package.Build fixture): its exact file list and
// modes, its control fields (Depends from dpkg-shlibdeps), its conffiles, manual pages that are
// the binaries' own, lintian, and a real install on this throwaway root CI machine: dpkg -i,
// proxyd --check of the packaged config as user proxyd, an upgrade that keeps an edited
// conffile, and dpkg -P that leaves nothing behind. Nothing is ever started.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/proxyd_process.hpp"

namespace proxyd::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The one .deb the fixture built.
std::string deb_path() {
  std::vector<std::string> debs;
  for (const auto& entry : fs::directory_iterator(PROXYD_DEB_DIR)) {
    if (entry.path().extension() == ".deb") debs.push_back(entry.path().string());
  }
  EXPECT_EQ(debs.size(), 1u) << PROXYD_DEB_DIR;
  return debs.empty() ? "" : debs.front();
}

CommandResult sh(const std::string& command, std::chrono::milliseconds timeout = 60s) {
  return run_program({"/bin/sh", "-c", command}, timeout);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// `dpkg-deb -c`: path -> "MODE OWNER" for everything but directories.
std::map<std::string, std::string> file_list(const std::string& deb) {
  const CommandResult listed = run_program({"/usr/bin/dpkg-deb", "-c", deb});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  std::map<std::string, std::string> out;
  for (const std::string& line : lines(listed.output)) {
    std::istringstream words(line);
    std::string mode, owner, size, date, time, path;
    words >> mode >> owner >> size >> date >> time >> path;
    if (mode.starts_with("d")) continue;
    out[path.substr(1)] = mode + " " + owner;  // "./usr/sbin/proxyd" -> "/usr/sbin/proxyd"
  }
  return out;
}

TEST(Package, HoldsExactlyTheseFilesWithTheseModes) {
  const std::map<std::string, std::string> expected{
      {"/etc/logrotate.d/proxyd", "-rw-r--r-- root/root"},
      {"/etc/proxyd/proxyd.yaml", "-rw-r--r-- root/root"},
      {"/lib/systemd/system/proxyd.service", "-rw-r--r-- root/root"},
      {"/usr/bin/proxyctl", "-rwxr-xr-x root/root"},
      {"/usr/sbin/proxyd", "-rwxr-xr-x root/root"},
      {"/usr/share/bash-completion/completions/proxyctl", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/README.md", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/architecture.md", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/changelog.Debian.gz", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/configuration.md", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/control-protocol.md", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/copyright", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/deploy.md", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/examples/example.yaml", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/examples/proxyd-alerts.yaml", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/examples/proxyd-dashboard.json", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/metrics.md", "-rw-r--r-- root/root"},
      {"/usr/share/doc/proxyd/operations.md", "-rw-r--r-- root/root"},
      {"/usr/share/lintian/overrides/proxyd", "-rw-r--r-- root/root"},
      {"/usr/share/man/man8/proxyctl.8.gz", "-rw-r--r-- root/root"},
      {"/usr/share/man/man8/proxyd.8.gz", "-rw-r--r-- root/root"},
  };
  EXPECT_EQ(file_list(deb_path()), expected);
}

std::string field(const std::string& deb, const std::string& name) {
  const CommandResult r = run_program({"/usr/bin/dpkg-deb", "-f", deb, name});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output.empty() ? r.output : r.output.substr(0, r.output.size() - 1);
}

// The sonames of a binary's NEEDED entries (`readelf -d`).
std::set<std::string> needed_libraries(const char* binary) {
  const CommandResult needed = run_program({"/usr/bin/readelf", "-d", binary});
  EXPECT_EQ(needed.exit_code, 0) << needed.output;
  std::set<std::string> out;
  for (const std::string& line : lines(needed.output)) {
    const std::size_t open = line.find("(NEEDED)");
    if (open == std::string::npos) continue;
    const std::size_t begin = line.find('[', open) + 1;
    out.insert(line.substr(begin, line.find(']', begin) - begin));
  }
  return out;
}

TEST(Package, ControlFieldsAndDependsFromShlibdeps) {
  const std::string deb = deb_path();
  EXPECT_EQ(field(deb, "Package"), "proxyd");
  EXPECT_EQ(field(deb, "Version"), PROXYD_VERSION "-1");
  EXPECT_EQ(field(deb, "Section"), "httpd");
  EXPECT_EQ(field(deb, "Priority"), "optional");
  const CommandResult arch = run_program({"/usr/bin/dpkg", "--print-architecture"});
  EXPECT_EQ(field(deb, "Architecture") + "\n", arch.output);
  // Each library the binaries need (their NEEDED entries) appears as its Debian package, with a
  // minimum version, and adduser for postinst: nothing more, nothing less.
  const std::map<std::string, std::string> package_of{
      {"libboost_json.so.1.81.0", "libboost-json1.81.0"},
      {"ld-linux-x86-64.so.2", "libc6"},
      {"libc.so.6", "libc6"},
      {"libcrypto.so.3", "libssl3"},
      {"libgcc_s.so.1", "libgcc-s1"},
      {"libm.so.6", "libc6"},
      {"libmimalloc.so.2", "libmimalloc2.0"},
      {"libnghttp2.so.14", "libnghttp2-14"},
      {"libssl.so.3", "libssl3"},
      {"libstdc++.so.6", "libstdc++6"},
      {"libyaml-cpp.so.0.7", "libyaml-cpp0.7"},
  };
  std::set<std::string> expected{"adduser"};
  for (const char* binary : {PROXYD_BINARY, PROXYCTL_BINARY}) {
    for (const std::string& soname : needed_libraries(binary)) {
      const auto known = package_of.find(soname);
      ASSERT_NE(known, package_of.end()) << "a new library: which package has " << soname << "?";
      expected.insert(known->second);
    }
  }
  for (const char* library : {"libboost-json1.81.0", "libc6", "libyaml-cpp0.7", "libnghttp2-14"}) {
    EXPECT_TRUE(expected.contains(library)) << library;
  }
  EXPECT_EQ(expected.contains("libmimalloc2.0"), std::string_view(PROXYD_ALLOCATOR) == "mimalloc");
  std::set<std::string> names;
  std::istringstream depends(field(deb, "Depends"));
  for (std::string entry; std::getline(depends, entry, ',');) {
    entry.erase(0, entry.find_first_not_of(' '));
    const std::string name = entry.substr(0, entry.find(' '));
    names.insert(name);
    if (name != "adduser") {
      EXPECT_NE(entry.find(" (>= "), std::string::npos) << entry;
    }
  }
  EXPECT_EQ(names, expected);
}

// proxyctl's start is part of every routing change a deploy script waits for: with
// PROXYD_STATIC_PROXYCTL (the default) it links libstdc++, libgcc and Boost.JSON in, and the
// dynamic loader has only glibc left to map.
TEST(Package, ProxyctlNeedsOnlyGlibcWhenLinkedStatically) {
  if (!PROXYCTL_STATIC_RUNTIME) GTEST_SKIP() << "built with -DPROXYD_STATIC_PROXYCTL=OFF";
  const std::set<std::string> needed = needed_libraries(PROXYCTL_BINARY);
  EXPECT_TRUE(needed.contains("libc.so.6"));
  for (const std::string& soname : needed) {
    EXPECT_TRUE(soname == "libc.so.6" || soname == "libm.so.6" || soname.starts_with("ld-linux"))
        << soname;
  }
  EXPECT_TRUE(needed_libraries(PROXYD_BINARY).contains("libstdc++.so.6"));
}

TEST(Package, ConffilesAndMaintainerScripts) {
  const std::string deb = deb_path();
  const CommandResult conffiles = run_program({"/usr/bin/dpkg-deb", "-I", deb, "conffiles"});
  EXPECT_EQ(conffiles.exit_code, 0);
  EXPECT_EQ(conffiles.output, "/etc/logrotate.d/proxyd\n/etc/proxyd/proxyd.yaml\n");
  const std::string dir = make_temp_dir("proxyd-control-");
  ASSERT_EQ(run_program({"/usr/bin/dpkg-deb", "-e", deb, dir}).exit_code, 0);
  for (const char* script : {"postinst", "prerm", "postrm"}) {
    struct stat st {};
    ASSERT_EQ(stat((dir + "/" + script).c_str(), &st), 0) << script;
    EXPECT_EQ(st.st_mode & 07777, 0755u) << script;
    EXPECT_EQ(read_file(dir + "/" + script),
              read_file(std::string(PROXYD_SOURCE_DIR) + "/packaging/debian/" + script));
  }
  fs::remove_all(dir);
}

TEST(Package, ShipsTheSourceTreesFilesAndTheBinariesOwnManualPages) {
  const std::string root = make_temp_dir("proxyd-deb-");
  ASSERT_EQ(run_program({"/usr/bin/dpkg-deb", "-x", deb_path(), root}).exit_code, 0);
  const std::string source = PROXYD_SOURCE_DIR;
  EXPECT_EQ(read_file(root + "/etc/proxyd/proxyd.yaml"), read_file(source + "/conf/proxyd.yaml"));
  EXPECT_EQ(read_file(root + "/lib/systemd/system/proxyd.service"),
            read_file(source + "/packaging/proxyd.service"));
  EXPECT_EQ(read_file(root + "/etc/logrotate.d/proxyd"),
            read_file(source + "/packaging/proxyd.logrotate"));
  EXPECT_EQ(read_file(root + "/usr/share/bash-completion/completions/proxyctl"),
            read_file(source + "/packaging/proxyctl.bash-completion"));
  const CommandResult proxyd_man = run_program({PROXYD_BINARY, "--man"});
  const CommandResult proxyctl_man = run_program({PROXYCTL_BINARY, "--man"});
  ASSERT_EQ(proxyd_man.exit_code, 0);
  ASSERT_EQ(proxyctl_man.exit_code, 0);
  EXPECT_EQ(sh("zcat " + root + "/usr/share/man/man8/proxyd.8.gz").output, proxyd_man.output);
  EXPECT_EQ(sh("zcat " + root + "/usr/share/man/man8/proxyctl.8.gz").output, proxyctl_man.output);
  EXPECT_EQ(sh("zcat " + root + "/usr/share/doc/proxyd/changelog.Debian.gz").output,
            read_file(source + "/packaging/debian/changelog"));
  fs::remove_all(root);
}

TEST(Package, LintianReportsNothing) {
  // --fail-on error,warning: an error or a warning fails; packaging/debian/lintian-overrides
  // says why each accepted one is.
  const CommandResult r = run_program(
      {"/usr/bin/lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", deb_path()},
      180s);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const std::string& line : lines(r.output)) {
    EXPECT_FALSE(line.starts_with("E: ") || line.starts_with("W: ")) << line;
  }
}

bool installed(const std::string& package) {
  return sh("dpkg-query -W -f='${Status}' " + package + " 2>/dev/null").output ==
         "install ok installed";
}

// Purges the package when the test ends, however it ends.
struct PurgeAtExit {
  ~PurgeAtExit() { sh("dpkg -P proxyd", 120s); }
};

TEST(Package, InstallsChecksUpgradesKeepingTheEditedConfigAndPurges) {
  if (geteuid() != 0) GTEST_SKIP() << "installing the package needs root (./setup runs as root)";
  ASSERT_FALSE(installed("proxyd"))
      << "a proxyd package is installed on this machine; this test installs and purges its own, "
         "so it will not touch that one (dpkg -P proxyd to run it)";
  const std::string deb = deb_path();
  PurgeAtExit purge;
  const CommandResult install = sh("dpkg -i " + deb + " 2>&1", 120s);
  ASSERT_EQ(install.exit_code, 0) << install.output;
  EXPECT_TRUE(installed("proxyd"));

  // postinst: the system user and group, and their directories.
  const CommandResult user = sh("getent passwd proxyd | cut -d: -f6,7");
  EXPECT_EQ(user.output, "/var/lib/proxyd:/usr/sbin/nologin\n");
  EXPECT_EQ(sh("getent group proxyd >/dev/null").exit_code, 0);
  EXPECT_LT(std::stoi(sh("id -u proxyd").output), 1000) << "a system user";
  for (const char* dir : {"/var/lib/proxyd", "/var/log/proxyd"}) {
    EXPECT_EQ(sh(std::string("stat -c '%U:%G %a' ") + dir).output, "proxyd:proxyd 750\n") << dir;
  }
  // Nothing enabled (and there is no systemd here to start anything).
  EXPECT_FALSE(fs::exists("/etc/systemd/system/multi-user.target.wants/proxyd.service"));

  // The packaged config is valid, read as the user the unit runs proxyd as.
  const CommandResult check =
      sh("runuser -u proxyd -- /usr/sbin/proxyd --check -c /etc/proxyd/proxyd.yaml 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "/etc/proxyd/proxyd.yaml: ok\n");
  EXPECT_EQ(sh("/usr/bin/proxyctl help >/dev/null").exit_code, 0);
  EXPECT_EQ(sh("man -w proxyd proxyctl").output,
            "/usr/share/man/man8/proxyd.8.gz\n/usr/share/man/man8/proxyctl.8.gz\n");

  // An upgrade (the same version again: postinst configure with the old version) keeps an edited
  // conffile, and the user, group and directories as they were.
  ASSERT_EQ(sh("echo '# edited by the admin' >> /etc/proxyd/proxyd.yaml").exit_code, 0);
  const CommandResult again = sh("dpkg -i " + deb + " 2>&1", 120s);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_TRUE(read_file("/etc/proxyd/proxyd.yaml").ends_with("# edited by the admin\n"));
  EXPECT_EQ(sh("stat -c '%U:%G %a' /var/lib/proxyd").output, "proxyd:proxyd 750\n");

  // Purge: the files, the conffiles, the state and the logs go; the user stays (policy 9.2.2).
  const CommandResult purged = sh("dpkg -P proxyd 2>&1", 120s);
  ASSERT_EQ(purged.exit_code, 0) << purged.output;
  EXPECT_FALSE(installed("proxyd"));
  for (const char* path : {"/usr/sbin/proxyd", "/usr/bin/proxyctl", "/etc/proxyd",
                           "/etc/logrotate.d/proxyd", "/lib/systemd/system/proxyd.service",
                           "/var/lib/proxyd", "/var/log/proxyd",
                           "/etc/systemd/system/proxyd.service"}) {
    EXPECT_FALSE(fs::exists(fs::symlink_status(path))) << path;
  }
  EXPECT_EQ(sh("getent passwd proxyd >/dev/null").exit_code, 0);
}

}  // namespace
}  // namespace proxyd::test
