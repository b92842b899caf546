// The mmc.hpp helpers against the real service in process (run_service with
// two simulated drives on a socket of its own): the CDB each sends, the
// reply each parses, and the errors they throw.
#include "discarbiter/mmc.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <future>
#include <numeric>
#include <thread>
#include <vector>

#include "discarbiter/proto/sense.hpp"
#include "host/service_app.hpp"

namespace discarbiter {
namespace {

using namespace std::chrono_literals;
namespace pm = proto::mmc;

/// run_service on its own thread and socket, with 2 simulated drives.
class InProcessService {
 public:
  InProcessService() {
    dir_ = std::filesystem::temp_directory_path() /
           ("discarbiter-mmc-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    config_.endpoint = (dir_ / "s.sock").string();
    config_.simulate = 2;
    config_.discover = false;
    std::promise<host::RequestStop> ready;
    auto started = ready.get_future();
    thread_ = std::thread([this, &ready] {
      host::RunHooks hooks;
      hooks.on_ready = [&ready](host::RequestStop stop) { ready.set_value(std::move(stop)); };
      if (host::run_service(config_, hooks) != 0 && !stop_)
        ready.set_value(nullptr);  // N.B. it did not start: nobody waits forever
    });
    if (started.wait_for(10s) != std::future_status::ready)
      throw std::runtime_error("the service did not start within 10 s");
    stop_ = started.get();
  }
  ~InProcessService() {
    if (stop_)
      stop_("test over");
    thread_.join();
    std::filesystem::remove_all(dir_);
  }
  const std::string& endpoint() const { return config_.endpoint; }

 private:
  std::filesystem::path dir_;
  host::Config config_;
  std::thread thread_;
  host::RequestStop stop_;
};

class MmcHelpers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { service_ = new InProcessService; }
  static void TearDownTestSuite() {
    delete service_;
    service_ = nullptr;
  }
  std::uint64_t commands(const std::string& drive) {
    for (const auto& d : client_.status().drives) {
      if (d.id == drive)
        return d.stats.commands;
    }
    return 0;
  }

  static InProcessService* service_;
  Client client_{ConnectOptions{.endpoint = service_->endpoint(), .client_name = "MmcTest"}};
  ExclusiveAccess lock_ = client_.acquire("sim0");
};
InProcessService* MmcHelpers::service_ = nullptr;

TEST_F(MmcHelpers, CurrentProfileIsTheSimulatedMediums) {
  const auto profile = mmc::current_profile(client_, "sim0");
  EXPECT_TRUE(pm::is_overwritable(profile)) << pm::profile_name(profile);
  const auto configuration = mmc::get_configuration(client_, "sim0");
  EXPECT_EQ(configuration.current_profile, profile);
}

TEST_F(MmcHelpers, ReadCapacityGivesBlocksOf2048Bytes) {
  const auto capacity = mmc::read_capacity(client_, "sim0");
  EXPECT_EQ(capacity.block_length, pm::kBlockSize);
  EXPECT_GT(capacity.bytes(), 0u);
}

TEST_F(MmcHelpers, WhatWrite10WritesRead10ReadsBack) {
  std::vector<std::uint8_t> written(2 * pm::kBlockSize);
  std::iota(written.begin(), written.end(), std::uint8_t{7});
  mmc::write10(client_, "sim0", 3, written);
  std::vector<std::uint8_t> read(written.size());
  mmc::read10(client_, "sim0", 3, read);
  EXPECT_EQ(read, written);
}

TEST_F(MmcHelpers, ALengthNotInWholeBlocksIsRefusedBeforeAnythingIsSent) {
  const auto before = commands("sim0");
  std::vector<std::uint8_t> odd(4096);
  for (const std::size_t size : {std::size_t{0}, std::size_t{1000}, std::size_t{2049}}) {
    try {
      mmc::read10(client_, "sim0", 0, std::span(odd.data(), size));
      ADD_FAILURE() << size << " bytes were accepted";
    } catch (const CommandError&) {
      ADD_FAILURE() << size << ": refused by the drive, not the library";
    } catch (const ServiceError& e) {
      EXPECT_EQ(e.code_value(), errc::invalid_arg) << e.what();
    }
  }
  EXPECT_THROW(mmc::write10(client_, "sim0", 0, std::span<const std::uint8_t>(odd.data(), 1000)),
               ServiceError);
  EXPECT_EQ(commands("sim0"), before) << "nothing reached the drive";
}

TEST_F(MmcHelpers, CheckConditionThrowsCommandErrorNamingTheCommandAndTheSense) {
  const auto last = mmc::read_capacity(client_, "sim0").last_lba;
  std::vector<std::uint8_t> block(pm::kBlockSize);
  try {
    mmc::read10(client_, "sim0", last + 1, block);
    FAIL() << "a READ(10) past the end was accepted";
  } catch (const CommandError& e) {
    EXPECT_EQ(e.code_value(), errc::command_has_sense_data);
    EXPECT_EQ(e.detail(), "READ(10): sense 5/21/00: logical block address out of range");
    EXPECT_EQ(e.result().scsi_status, 2);
    EXPECT_EQ(proto::describe_sense(e.result().sense), "5/21/00");
  }
}

TEST(CommandError, ExplainsTheSenseAfterTheCommand) {
  CommandResult result;
  result.code = errc::command_has_sense_data;
  result.scsi_status = 2;
  result.sense = {0x70, 0, 0x02, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x3A, 0x01};
  const CommandError e("WRITE(10)", result);
  EXPECT_EQ(e.detail(), "WRITE(10): sense 2/3A/01: medium not present - tray closed");
  EXPECT_THAT(e.what(), ::testing::StartsWith("S_IMAPI_COMMAND_HAS_SENSE_DATA: WRITE(10): sense "
                                              "2/3A/01: medium not present - tray closed"));
  EXPECT_EQ(e.hresult(), 0x00AA0200u);
}

TEST(ServiceError, WhatSaysTheExplanationOnce) {
  // The service's message for a bad client name already holds the rule.
  const ServiceError named(Error{errc::recorder_client_name_is_not_valid,
                                 "client name '' is not valid: client names are 1-63 characters "
                                 "of 0-9 A-Z a-z and space . , : ; _ -"});
  EXPECT_STREQ(named.what(),
               "E_IMAPI_RECORDER_CLIENT_NAME_IS_NOT_VALID: client name '' is not valid: client "
               "names are 1-63 characters of 0-9 A-Z a-z and space . , : ; _ -");
  const ServiceError plain(Error{errc::dev_not_exist, "drive 'x'"});
  EXPECT_STREQ(plain.what(),
               "HRESULT_FROM_WIN32(ERROR_DEV_NOT_EXIST): drive 'x': no such drive, "
               "or the drive has been removed");
  const ServiceError bare(Error{errc::connection_lost, ""});
  EXPECT_STREQ(bare.what(), "DA_E_CONNECTION_LOST: the connection to the service was lost");
}

}  // namespace
}  // namespace discarbiter
