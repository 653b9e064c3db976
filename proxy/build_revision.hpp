// The commit this binary was built from, for `proxyd --version` and bench reports: "1a3b080",
// "1a3b080-dirty" when built from a tree with changes to tracked files, or "" when built outside
// a git checkout. Defined in a source the build writes (cmake/revision.cmake).
#pragma once

namespace proxyd {

extern const char* const kBuildRevision;

}  // namespace proxyd
