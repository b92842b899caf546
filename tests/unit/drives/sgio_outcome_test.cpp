#include "drives/sgio_outcome.hpp"

#include <system_error>

#include <gtest/gtest.h>

namespace discarbiter::drives {
namespace {

using namespace std::chrono_literals;

TEST(SgIoOutcome, GoodStatusCarriesTheDataRead) {
  const auto r = interpret_sg_io({.data_in = {1, 2, 3}}, 10s);
  ASSERT_TRUE(r.good());
  EXPECT_EQ(r.data_in, (proto::Bytes{1, 2, 3}));
  EXPECT_TRUE(r.sense.empty());
}

TEST(SgIoOutcome, CheckConditionIsAnAnswerWithSensePaddedTo18Bytes) {
  SgIoOutcome o{.status = core::kStatusCheckCondition,
                .driver_status = sg::driver_sense,
                .sense = {0x70, 0, 0x02, 0, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0x53, 0x00}};
  const auto r = interpret_sg_io(o, 10s);
  ASSERT_TRUE(r.answered());
  EXPECT_EQ(r.status, core::kStatusCheckCondition);
  ASSERT_EQ(r.sense.size(), 18U);
  EXPECT_EQ(proto::describe_sense(r.sense), "2/53/00");
}

TEST(SgIoOutcome, TimeoutsFromHostOrDriverAreCommandTimeouts) {
  for (const SgIoOutcome& o :
       {SgIoOutcome{.host_status = sg::did_time_out}, SgIoOutcome{.host_status = sg::did_abort},
        SgIoOutcome{.driver_status = sg::driver_timeout},
        SgIoOutcome{.ioctl_error = std::make_error_code(std::errc::timed_out)}}) {
    const auto r = interpret_sg_io(o, 20s);
    EXPECT_EQ(r.transport, errc::recorder_command_timeout) << r.transport_message;
    EXPECT_NE(r.transport_message.find("20 s"), std::string::npos) << r.transport_message;
  }
}

TEST(SgIoOutcome, AVanishedDeviceIsDevNotExist) {
  for (const SgIoOutcome& o :
       {SgIoOutcome{.ioctl_error = std::make_error_code(std::errc::no_such_device)},
        SgIoOutcome{.ioctl_error = std::make_error_code(std::errc::no_such_device_or_address)},
        SgIoOutcome{.host_status = sg::did_no_connect},
        SgIoOutcome{.host_status = sg::did_bad_target}}) {
    EXPECT_EQ(interpret_sg_io(o, 10s).transport, errc::dev_not_exist);
  }
}

TEST(SgIoOutcome, OtherFailuresAreEFailNamingTheNumbers) {
  const auto bus = interpret_sg_io({.host_status = sg::did_reset}, 10s);
  EXPECT_EQ(bus.transport, errc::fail);
  EXPECT_NE(bus.transport_message.find("0x08"), std::string::npos);
  const auto driver = interpret_sg_io({.driver_status = 0x04}, 10s);
  EXPECT_EQ(driver.transport, errc::fail);
  EXPECT_NE(driver.transport_message.find("driver_status 0x04"), std::string::npos);
  EXPECT_EQ(interpret_sg_io({.ioctl_error = std::make_error_code(std::errc::invalid_argument)}, 10s)
                .transport,
            errc::fail);
}

}  // namespace
}  // namespace discarbiter::drives
