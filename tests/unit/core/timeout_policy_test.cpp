#include "core/timeout_policy.hpp"

#include <gtest/gtest.h>

#include "core/scsi.hpp"

namespace discarbiter::core {
namespace {

using namespace std::chrono_literals;

TEST(TimeoutPolicy, DefaultsFitRealDrives) {
  const TimeoutPolicy p;
  EXPECT_EQ(p.timeout_for(opcode::inquiry), 10s);
  EXPECT_EQ(p.timeout_for(opcode::test_unit_ready), 20s);
  EXPECT_EQ(p.timeout_for(opcode::start_stop_unit), 60s);
  EXPECT_EQ(p.timeout_for(opcode::write10), 200s);
  EXPECT_EQ(p.timeout_for(opcode::blank), 3600s);
  EXPECT_EQ(p.timeout_for(opcode::close_track_session), 3600s);
}

TEST(TimeoutPolicy, RequestedTimeoutWinsButIsClamped) {
  TimeoutPolicy p;
  p.max_timeout = 100s;
  EXPECT_EQ(p.timeout_for(opcode::inquiry, 5), 5s);
  EXPECT_EQ(p.timeout_for(opcode::inquiry, 0), 10s);
  EXPECT_EQ(p.timeout_for(opcode::inquiry, 101), 100s);
  EXPECT_EQ(p.timeout_for(opcode::blank), 100s);
}

}  // namespace
}  // namespace discarbiter::core
