#include "discarbiter/process.hpp"

#include <gtest/gtest.h>

namespace discarbiter {
namespace {

// The same test runs against each platform's definition: the support target
// the build links chooses the header.
TEST(Process, CurrentProcessIdIsThisProcessAndStable) {
  const std::uint32_t id = current_process_id();
  EXPECT_NE(id, 0U);
  EXPECT_EQ(current_process_id(), id);
}

}  // namespace
}  // namespace discarbiter
