// proxyd-demo-backend: the README quick start's blue and green backends. A FakeUpstream on a fixed
// address whose default reply is "<name>\n", so a curl loop through proxyd shows the split.
// Usage: proxyd-demo-backend --name blue --listen 127.0.0.1:9001   (runs until SIGINT/SIGTERM)
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "tests/support/fake_upstream.hpp"

namespace {

int usage() {
  std::fprintf(stderr, "usage: proxyd-demo-backend --name NAME --listen HOST:PORT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name;
  std::string listen;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if ((arg == "--name" || arg == "--listen") && i + 1 < argc) {
      (arg == "--name" ? name : listen) = argv[++i];
    } else if (arg == "-h" || arg == "--help") {
      usage();
      return 0;
    } else {
      return usage();
    }
  }
  auto colon = listen.rfind(':');
  if (name.empty() || colon == std::string::npos || colon == 0) return usage();
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  unsigned long port = std::strtoul(listen.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port == 0 || port > 65535) return usage();

  // Block the stop signals before the server thread starts so it inherits the mask and only
  // sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    proxyd::test::FakeUpstream server(name, host, static_cast<std::uint16_t>(port));
    std::fprintf(stderr, "proxyd-demo-backend: %s listening %s\n", name.c_str(), listen.c_str());
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fprintf(stderr, "proxyd-demo-backend: %s stopping (%s), served %llu requests\n",
                 name.c_str(), sig == SIGINT ? "SIGINT" : "SIGTERM",
                 static_cast<unsigned long long>(server.requests_served()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "proxyd-demo-backend: cannot listen on %s: %s\n", listen.c_str(),
                 e.what());
    return 1;
  }
  return 0;
}
