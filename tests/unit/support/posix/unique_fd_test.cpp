#include "discarbiter/posix/unique_fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <utility>

#include <gtest/gtest.h>

namespace discarbiter::posix {
namespace {

/// Whether fd is an open descriptor of this process.
bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

/// Both ends of a pipe, each owned once.
std::pair<unique_fd, unique_fd> make_pipe() {
  std::array<int, 2> fds{};
  EXPECT_EQ(::pipe(fds.data()), 0);
  return {unique_fd(fds[0]), unique_fd(fds[1])};
}

TEST(UniqueFd, ClosesItsDescriptorOnceWhenItGoesAway) {
  int raw = -1;
  {
    auto [read_end, write_end] = make_pipe();
    raw = read_end.get();
    ASSERT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFd, AMoveHandsOverOwnership) {
  auto [read_end, write_end] = make_pipe();
  const int raw = read_end.get();
  unique_fd moved(std::move(read_end));
  EXPECT_FALSE(read_end);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  EXPECT_EQ(moved.get(), raw);
  unique_fd assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.get(), raw);
  EXPECT_TRUE(is_open(raw));
  assigned.reset();
  EXPECT_FALSE(assigned);
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFd, ReleaseGivesTheDescriptorAwayWithoutClosingIt) {
  auto [read_end, write_end] = make_pipe();
  const int raw = read_end.release();
  EXPECT_FALSE(read_end);
  EXPECT_TRUE(is_open(raw));
  ::close(raw);
}

}  // namespace
}  // namespace discarbiter::posix
