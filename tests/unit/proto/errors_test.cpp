#include "discarbiter/proto/errors.hpp"

#include <gtest/gtest.h>

namespace discarbiter {
namespace {

TEST(Errors, ValuesAreTheDesignCardsHresults) {
  EXPECT_EQ(hresult(errc::command_has_sense_data), 0x00AA0200U);
  EXPECT_EQ(hresult(errc::dev_not_exist), 0x80070037U);
  EXPECT_EQ(hresult(errc::not_locked), 0x8007009EU);
  EXPECT_EQ(hresult(errc::recorder_command_timeout), 0xC0AA020DU);
  EXPECT_EQ(hresult(errc::recorder_locked), 0xC0AA0210U);
  EXPECT_EQ(hresult(errc::recorder_client_name_is_not_valid), 0xC0AA0211U);
}

TEST(Errors, NamesRoundTripThroughTheNumber) {
  EXPECT_EQ(error_name(errc::recorder_locked), "E_IMAPI_RECORDER_LOCKED");
  EXPECT_EQ(error_name(errc::not_locked), "HRESULT_FROM_WIN32(ERROR_NOT_LOCKED)");
  EXPECT_EQ(errc_from_hresult(0xC0AA0210U), errc::recorder_locked);
  EXPECT_EQ(errc_from_hresult(0x12345678U), std::nullopt);
  EXPECT_EQ(error_name(0x12345678U), "HRESULT 0x12345678");
}

TEST(Errors, SuccessCodesAreSuccesses) {
  EXPECT_TRUE(succeeded(errc::ok));
  EXPECT_TRUE(succeeded(errc::command_has_sense_data));
  EXPECT_FALSE(succeeded(errc::recorder_locked));
}

TEST(Errors, ErrorCodeCarriesTheCategoryAndExplanation) {
  const std::error_code ec = errc::recorder_locked;
  EXPECT_EQ(ec.category().name(), std::string("discarbiter"));
  EXPECT_NE(ec.message().find("locked"), std::string::npos);
}

}  // namespace
}  // namespace discarbiter
