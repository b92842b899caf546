#include "discarbiter/posix/error.hpp"

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

namespace discarbiter::posix {
namespace {

TEST(PosixError, DescribeNamesTheStepTheSystemsWordsAndTheNumber) {
  const std::string expected = std::string("open /dev/sr9: ") + std::strerror(ENOENT) + " (errno " +
                               std::to_string(ENOENT) + ")";
  EXPECT_EQ(describe("open /dev/sr9", ENOENT), expected);
  EXPECT_EQ(describe("open /dev/sr9", make_error(ENOENT)), expected);
}

TEST(PosixError, LastErrorIsErrnoAsASystemErrorCode) {
  errno = EBUSY;
  const std::error_code e = last_error();
  EXPECT_EQ(e.value(), EBUSY);
  EXPECT_EQ(e.category(), std::system_category());
  EXPECT_EQ(e, std::errc::device_or_resource_busy) << "compares with the portable conditions";
}

}  // namespace
}  // namespace discarbiter::posix
