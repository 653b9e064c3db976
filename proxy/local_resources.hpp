// out_of_local_resources: whether a socket failed for want of proxyd's own resources. Used by
// the data plane's upstream connects and accepts, and by the health checker.
#pragma once

#include <boost/system/error_code.hpp>

#include <cerrno>

namespace proxyd {

// Whether a socket could not be opened, bound or accepted for want of proxyd's own resources:
// descriptors (EMFILE, ENFILE), memory (ENOMEM, ENOBUFS) or a local port (EADDRNOTAVAIL). That is
// not a server's failure: no retry on another server, no passive-check failure, no failed health
// check (docs/architecture.md, "Out of descriptors").
inline bool out_of_local_resources(const boost::system::error_code& ec) {
  if (ec.category() != boost::system::system_category()) return false;
  switch (ec.value()) {
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ENOBUFS:
    case EADDRNOTAVAIL:
      return true;
    default:
      return false;
  }
}

}  // namespace proxyd
