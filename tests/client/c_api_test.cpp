#include "discarbiter/discarbiter.h"

#include <gtest/gtest.h>

#include <array>
#include <string>

#include <nlohmann/json.hpp>

#include "discarbiter/proto/errors.hpp"
#include "fixtures.hpp"

// N.B. the C header's constants are C casts.
#pragma GCC diagnostic ignored "-Wold-style-cast"

namespace discarbiter {
namespace {

using test::ServiceProcess;

static_assert(DA_E_INSUFFICIENT_BUFFER == static_cast<DA_HRESULT>(errc::insufficient_buffer));
static_assert(DA_S_IMAPI_COMMAND_HAS_SENSE_DATA ==
              static_cast<DA_HRESULT>(errc::command_has_sense_data));
static_assert(DA_E_IMAPI_RECORDER_LOCKED == static_cast<DA_HRESULT>(errc::recorder_locked));
static_assert(DA_E_SERVICE_STOPPING == static_cast<DA_HRESULT>(errc::service_stopping));

constexpr std::array<std::uint8_t, 6> kInquiry{0x12, 0, 0, 0, 36, 0};

std::string last_error() {
  std::array<char, 512> text{};
  EXPECT_EQ(da_get_last_error_message(text.data(), text.size(), nullptr), DA_S_OK);
  return text.data();
}

class CApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { service_ = new ServiceProcess(2); }
  static void TearDownTestSuite() {
    delete service_;
    service_ = nullptr;
  }
  void SetUp() override {
    da_connect_options o{sizeof o, service_->endpoint.c_str(), "CApiTest", 0};
    ASSERT_EQ(da_connect(&o, &client_), DA_S_OK) << last_error();
  }
  void TearDown() override { da_disconnect(client_); }

  static ServiceProcess* service_;
  da_client* client_ = nullptr;
};
ServiceProcess* CApi::service_ = nullptr;

TEST_F(CApi, ListAcquireInquireOwnerRelease) {
  std::array<da_drive_info, 1> one{};
  size_t count = 0;
  EXPECT_EQ(da_list_drives(client_, one.data(), one.size(), &count), DA_E_INSUFFICIENT_BUFFER);
  EXPECT_EQ(count, 2u);
  EXPECT_STREQ(one[0].id, "sim0");  // filled up to the capacity
  std::array<da_drive_info, 4> drives{};
  ASSERT_EQ(da_list_drives(client_, drives.data(), drives.size(), &count), DA_S_OK);
  EXPECT_STREQ(drives[1].id, "sim1");
  EXPECT_STREQ(drives[0].state, "free");
  EXPECT_GT(drives[0].max_transfer, 0u);

  uint32_t locks = 0;
  ASSERT_EQ(da_acquire_exclusive_access(client_, "sim0", 0, 0, &locks), DA_S_OK) << last_error();
  EXPECT_EQ(locks, 1u);
  da_owner owner{};
  ASSERT_EQ(da_exclusive_access_owner(client_, "sim0", &owner), DA_S_OK);
  EXPECT_EQ(owner.locked, 1);
  EXPECT_STREQ(owner.client_name, "CApiTest");
  EXPECT_EQ(owner.lock_count, 1u);

  std::array<std::uint8_t, 36> data{};
  std::array<std::uint8_t, 18> sense{};
  da_command_result result{};
  ASSERT_EQ(da_send_command_get_data_from_device(client_, "sim0", kInquiry.data(), kInquiry.size(),
                                                 sense.data(), sense.size(), 0, data.data(),
                                                 data.size(), &result),
            DA_S_OK)
      << last_error();
  EXPECT_EQ(result.bytes_transferred, 36u);
  EXPECT_EQ(result.sense_length, 0u);
  EXPECT_EQ(data[0] & 0x1F, 0x05);  // a CD/DVD device

  ASSERT_EQ(da_release_exclusive_access(client_, "sim0", &locks), DA_S_OK);
  EXPECT_EQ(locks, 0u);
  ASSERT_EQ(da_exclusive_access_owner(client_, "sim0", &owner), DA_S_OK);
  EXPECT_EQ(owner.locked, 0);
}

TEST_F(CApi, ACheckConditionFillsTheCallersSenseBufferUpToItsSize) {
  ASSERT_EQ(da_acquire_exclusive_access(client_, "sim0", 0, 0, nullptr), DA_S_OK) << last_error();
  // READ(10) far beyond the medium: LOGICAL BLOCK ADDRESS OUT OF RANGE.
  const std::array<std::uint8_t, 10> read10{0x28, 0, 0x7F, 0, 0, 0, 0, 0, 1, 0};
  std::array<std::uint8_t, 2048> data{};
  std::array<std::uint8_t, 14> sense{};
  da_command_result result{};
  EXPECT_EQ(da_send_command_get_data_from_device(client_, "sim0", read10.data(), read10.size(),
                                                 sense.data(), sense.size(), 0, data.data(),
                                                 data.size(), &result),
            DA_S_IMAPI_COMMAND_HAS_SENSE_DATA);
  EXPECT_EQ(result.scsi_status, 0x02);
  EXPECT_EQ(result.sense_length, sense.size());
  std::array<char, 128> text{};
  ASSERT_EQ(da_explain_sense(sense.data(), result.sense_length, text.data(), text.size(), nullptr),
            DA_S_OK);
  EXPECT_EQ(std::string(text.data()).rfind("sense 5/21/00", 0), 0u) << text.data();
  EXPECT_EQ(last_error(), "");
}

TEST_F(CApi, BadArgumentsAreRefusedWithAMessageBeforeAnythingIsSent) {
  da_command_result result{};
  std::array<std::uint8_t, 36> data{};
  EXPECT_EQ(da_send_command_get_data_from_device(client_, "sim0", kInquiry.data(), 5, nullptr, 0, 0,
                                                 data.data(), data.size(), &result),
            DA_E_INVALIDARG);
  EXPECT_EQ(last_error(), "cdb_size 5 is outside 6..16");
  EXPECT_EQ(da_send_command_no_data(client_, "sim0", kInquiry.data(), kInquiry.size(), nullptr, 4,
                                    0, &result),
            DA_E_INVALIDARG);
  EXPECT_EQ(last_error(), "sense is NULL but sense_size is not 0");
  EXPECT_EQ(da_send_command_no_data(client_, "sim0", kInquiry.data(), kInquiry.size(), nullptr, 0,
                                    0, nullptr),
            DA_E_INVALIDARG);
  EXPECT_EQ(da_acquire_exclusive_access(nullptr, "sim0", 0, 0, nullptr), DA_E_INVALIDARG);
  EXPECT_EQ(da_acquire_exclusive_access(client_, nullptr, 0, 0, nullptr), DA_E_INVALIDARG);
  EXPECT_EQ(last_error(), "drive is NULL");
  da_connect_options o{3, nullptr, "X", 0};
  da_client* other = reinterpret_cast<da_client*>(&o);
  EXPECT_EQ(da_connect(&o, &other), DA_E_INVALIDARG);
  EXPECT_EQ(other, nullptr);
  // A service error: the HRESULT and its message.
  EXPECT_EQ(da_release_exclusive_access(client_, "sim0", nullptr), DA_E_NOT_LOCKED);
  EXPECT_NE(last_error(), "");
  uint32_t bytes = 0;
  EXPECT_EQ(da_get_max_transfer(client_, nullptr, &bytes), DA_S_OK);
  EXPECT_EQ(last_error(), "");  // a success clears it
  EXPECT_GT(bytes, 0u);
}

TEST_F(CApi, TextGoesIntoTheCallersBufferOrSaysHowMuchItNeeds) {
  size_t needed = 0;
  std::array<char, 4> small{};
  EXPECT_EQ(da_get_status_json(client_, small.data(), small.size(), &needed),
            DA_E_INSUFFICIENT_BUFFER);
  ASSERT_GT(needed, small.size());
  // N.B. the document changes between calls (uptime): a caller retries with
  // what the last one needed.
  std::string text;
  DA_HRESULT hr = DA_E_INSUFFICIENT_BUFFER;
  for (int attempt = 0; attempt < 5 && hr == DA_E_INSUFFICIENT_BUFFER; ++attempt) {
    text.assign(needed, '\0');
    hr = da_get_status_json(client_, text.data(), text.size(), &needed);
  }
  ASSERT_EQ(hr, DA_S_OK) << last_error();
  const auto doc = nlohmann::json::parse(text.c_str());
  EXPECT_EQ(doc.at("drives").size(), 2u);

  std::array<char, 64> name{};
  EXPECT_EQ(da_get_error_name(DA_E_IMAPI_RECORDER_LOCKED, name.data(), name.size(), nullptr),
            DA_S_OK);
  EXPECT_STREQ(name.data(), "E_IMAPI_RECORDER_LOCKED");
  EXPECT_EQ(da_get_error_name(DA_E_IMAPI_RECORDER_LOCKED, name.data(), 5, &needed),
            DA_E_INSUFFICIENT_BUFFER);
  EXPECT_EQ(needed, sizeof "E_IMAPI_RECORDER_LOCKED");
  // The last error's message survives being read into too small a buffer.
  const std::string message = last_error();
  EXPECT_NE(message, "");
  EXPECT_EQ(da_get_last_error_message(name.data(), 2, &needed), DA_E_INSUFFICIENT_BUFFER);
  EXPECT_EQ(last_error(), message);
  EXPECT_STREQ(da_version(), DISCARBITER_VERSION);
}

TEST(CApiConnect, NothingListeningIsServiceUnavailable) {
  da_connect_options o{sizeof o, "/nonexistent/discarbiter.sock", "CApiTest", 1000};
  da_client* client = nullptr;
  EXPECT_EQ(da_connect(&o, &client), DA_E_SERVICE_UNAVAILABLE);
  EXPECT_EQ(client, nullptr);
  EXPECT_NE(last_error().find("/nonexistent/discarbiter.sock"), std::string::npos);
  da_disconnect(nullptr);
}

}  // namespace
}  // namespace discarbiter
