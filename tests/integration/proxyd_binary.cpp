// Where the proxyd under test lives: PROXYD_BINARY is a compile definition of this executable only,
// so the support library asks for it through this function ($PROXYD_BINARY overrides it).
#include "tests/support/proxyd_process.hpp"

const char* proxyd::test::proxyd_binary_path() { return PROXYD_BINARY; }
