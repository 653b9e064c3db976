# Writes OUTPUT, a C++ source that defines proxyd::kBuildRevision: the commit SOURCE_DIR is
# checked out at ("1a3b080"; "1a3b080-dirty" when a tracked file differs from it), or "" outside
# a git checkout (a source tarball, a package build without git). The build runs this every time
# (CMakeLists.txt, proxyd_revision); OUTPUT is rewritten only when the revision changed, so only
# it is compiled again and only what links it is linked again.
# Usage: cmake -DSOURCE_DIR=... -DOUTPUT=... -P revision.cmake
cmake_minimum_required(VERSION 3.25)
set(revision "")
find_package(Git QUIET)
if(GIT_FOUND AND EXISTS "${SOURCE_DIR}/.git")
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" rev-parse --short=7 HEAD
                  OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                  RESULT_VARIABLE head_failed)
  if(NOT head_failed)
    set(revision "${head}")
    # No optional locks: a git command run meanwhile must not find the index locked by the build.
    execute_process(COMMAND "${GIT_EXECUTABLE}" --no-optional-locks -C "${SOURCE_DIR}" status
                            --porcelain --untracked-files=no
                    OUTPUT_VARIABLE changes ERROR_QUIET RESULT_VARIABLE status_failed)
    if(NOT status_failed AND NOT changes STREQUAL "")
      string(APPEND revision "-dirty")
    endif()
  endif()
endif()
file(CONFIGURE OUTPUT "${OUTPUT}" CONTENT
"// Written by cmake/revision.cmake at build time: the commit this binary was built from.
#include \"proxy/build_revision.hpp\"

namespace proxyd {
const char* const kBuildRevision = \"@revision@\";
}  // namespace proxyd
" @ONLY)
