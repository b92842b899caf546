#include "core/client_name.hpp"

#include <gtest/gtest.h>

namespace discarbiter::core {
namespace {

TEST(ClientName, AcceptsTheCdromDriversAlphabet) {
  EXPECT_TRUE(is_valid_client_name("a"));
  EXPECT_TRUE(is_valid_client_name("My Burner 2.0, build:7; x_y-z"));
  EXPECT_TRUE(is_valid_client_name(std::string(63, 'Z')));
}

TEST(ClientName, RejectsEmptyTooLongAndForeignCharacters) {
  EXPECT_FALSE(is_valid_client_name(""));
  EXPECT_FALSE(is_valid_client_name(std::string(64, 'a')));
  for (const char* bad : {"a/b", "a\\b", "tab\t", "new\nline", "quote\"", "star*", "\xc3\xa9"}) {
    EXPECT_FALSE(is_valid_client_name(bad)) << bad;
  }
}

}  // namespace
}  // namespace discarbiter::core
