#include "discarbiter/proto/mmc.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <utility>
#include <vector>

namespace discarbiter::proto::mmc {
namespace {

using Reply = std::vector<std::uint8_t>;

/// `size` zero bytes but for the (offset, value) pairs.
Reply reply_of(std::size_t size,
               std::initializer_list<std::pair<std::size_t, std::uint8_t>> bytes) {
  Reply r(size, 0);
  for (const auto& [at, value] : bytes)
    r.at(at) = value;
  return r;
}

template <std::size_t N>
Reply bytes(const std::array<std::uint8_t, N>& cdb) {
  return Reply(cdb.begin(), cdb.end());
}

TEST(MmcCdb, TestUnitReadyIsSixZeros) {
  EXPECT_EQ(bytes(test_unit_ready()), (Reply{0, 0, 0, 0, 0, 0}));
}

TEST(MmcCdb, GetConfigurationPutsStartAndAllocationBigEndian) {
  EXPECT_EQ(bytes(get_configuration(0x1234, 0xABCD)),
            (Reply{0x46, 0x00, 0xAB, 0xCD, 0, 0, 0, 0x12, 0x34, 0}));
  EXPECT_EQ(bytes(get_configuration(8)), (Reply{0x46, 0, 0, 0, 0, 0, 0, 0, 8, 0}));
}

TEST(MmcCdb, ReadCapacityIsTheOpcodeAlone) {
  EXPECT_EQ(bytes(read_capacity()), (Reply{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(MmcCdb, ReadDiscInformationAsksForStandardInformation) {
  EXPECT_EQ(bytes(read_disc_information()), (Reply{0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0}));
  EXPECT_EQ(bytes(read_disc_information(0x0102)), (Reply{0x51, 0, 0, 0, 0, 0, 0, 1, 2, 0}));
}

TEST(MmcCdb, ReadTrackInformationAddressesByTrackNumber) {
  EXPECT_EQ(bytes(read_track_information(1)), (Reply{0x52, 0x01, 0, 0, 0, 1, 0, 0, 36, 0}));
  EXPECT_EQ(bytes(read_track_information(0x01020304, 48)),
            (Reply{0x52, 0x01, 0x01, 0x02, 0x03, 0x04, 0, 0, 48, 0}));
}

TEST(MmcCdb, Read10AndWrite10PutLbaAndBlocksBigEndian) {
  EXPECT_EQ(bytes(read10(0x12345678, 0x9ABC)),
            (Reply{0x28, 0, 0x12, 0x34, 0x56, 0x78, 0, 0x9A, 0xBC, 0}));
  EXPECT_EQ(bytes(write10(0xFFFFFFFF, 32)), (Reply{0x2A, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 32, 0}));
}

TEST(MmcCdb, SynchronizeCacheCoversTheWholeCache) {
  EXPECT_EQ(bytes(synchronize_cache()), (Reply{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(MmcCdb, CloseTrackSessionPutsFunctionAndNumber) {
  EXPECT_EQ(bytes(close_track_session(CloseFunction::track, 1)),
            (Reply{0x5B, 0, 1, 0, 0, 1, 0, 0, 0, 0}));
  EXPECT_EQ(bytes(close_track_session(CloseFunction::session, 0x0203)),
            (Reply{0x5B, 0, 2, 0, 0x02, 0x03, 0, 0, 0, 0}));
  EXPECT_EQ(bytes(close_track_session(CloseFunction::finalize, 0)),
            (Reply{0x5B, 0, 5, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(MmcProfile, NamesTheCommonProfiles) {
  EXPECT_EQ(profile_name(0x0000), "no current profile");
  EXPECT_EQ(profile_name(0x0008), "CD-ROM");
  EXPECT_EQ(profile_name(0x0009), "CD-R");
  EXPECT_EQ(profile_name(0x000A), "CD-RW");
  EXPECT_EQ(profile_name(0x0010), "DVD-ROM");
  EXPECT_EQ(profile_name(0x0011), "DVD-R");
  EXPECT_EQ(profile_name(0x0013), "DVD-RW (restricted overwrite)");
  EXPECT_EQ(profile_name(0x0014), "DVD-RW (sequential)");
  EXPECT_EQ(profile_name(0x001A), "DVD+RW");
  EXPECT_EQ(profile_name(0x001B), "DVD+R");
  EXPECT_EQ(profile_name(0x002B), "DVD+R DL");
  EXPECT_EQ(profile_name(0x0040), "BD-ROM");
  EXPECT_EQ(profile_name(0x0041), "BD-R (sequential)");
  EXPECT_EQ(profile_name(0x0043), "BD-RE");
  EXPECT_EQ(profile_name(0x0050), "HD DVD-ROM");
  EXPECT_EQ(profile_name(0x1234), "") << "unknown: the caller prints the number";
}

TEST(MmcProfile, OnlyRewritableProfilesAreOverwritable) {
  for (std::uint16_t p : {kProfileCdRw, kProfileDvdRam, kProfileDvdRwRestricted, kProfileDvdPlusRw,
                          kProfileDvdPlusRwDl, kProfileBdRe})
    EXPECT_TRUE(is_overwritable(p)) << profile_name(p);
  for (std::uint16_t p : {kProfileNone, kProfileCdRom, kProfileCdR, kProfileDvdRom,
                          kProfileDvdRSequential, kProfileDvdRwSequential, kProfileDvdPlusR,
                          kProfileDvdPlusRDl, kProfileBdRom, kProfileBdR, kProfileBdRRandom})
    EXPECT_FALSE(is_overwritable(p)) << profile_name(p);
}

TEST(MmcDiscStatus, HasNames) {
  EXPECT_EQ(disc_status_name(DiscStatus::blank), "blank");
  EXPECT_EQ(disc_status_name(DiscStatus::incomplete), "incomplete");
  EXPECT_EQ(disc_status_name(DiscStatus::complete), "complete");
  EXPECT_EQ(disc_status_name(DiscStatus::other), "other");
}

/// A DVD+RW drive's GET CONFIGURATION reply: Profile List (DVD+RW current,
/// DVD+R, CD-ROM), Core, DVD+RW.
Reply dvd_plus_rw_configuration() {
  Reply r{0, 0, 0, 0,  // data length, set below
          0, 0,        // reserved
          0x00, 0x1A,  // current profile: DVD+RW
          // Profile List: code 0000h, version 0 persistent current, 12 bytes
          0x00, 0x00, 0x03, 12,  //
          0x00, 0x1A, 0x01, 0,   // DVD+RW, CurrentP
          0x00, 0x1B, 0x00, 0,   // DVD+R
          0x00, 0x08, 0x00, 0,   // CD-ROM
          // Core: 8 bytes of body
          0x00, 0x01, 0x0B, 8, 0, 0, 0, 2, 1, 0, 0, 0,
          // DVD+RW: 4 bytes of body
          0x00, 0x2A, 0x05, 4, 1, 0, 0, 0};
  const auto length = static_cast<std::uint32_t>(r.size() - 4);
  r[2] = static_cast<std::uint8_t>(length >> 8);
  r[3] = static_cast<std::uint8_t>(length);
  return r;
}

TEST(MmcConfiguration, ParsesCurrentProfileProfilesAndFeatures) {
  const auto config = parse_configuration(dvd_plus_rw_configuration());
  ASSERT_TRUE(config);
  EXPECT_EQ(config->current_profile, kProfileDvdPlusRw);
  EXPECT_EQ(config->profiles, (std::vector<std::uint16_t>{0x001A, 0x001B, 0x0008}));
  EXPECT_EQ(config->features, (std::vector<std::uint16_t>{0x0000, 0x0001, 0x002A}));
}

TEST(MmcConfiguration, AHeaderAloneHasNoFeatures) {
  const auto config = parse_configuration(Reply{0, 0, 0, 4, 0, 0, 0x00, 0x43});
  ASSERT_TRUE(config);
  EXPECT_EQ(config->current_profile, kProfileBdRe);
  EXPECT_TRUE(config->features.empty());
  EXPECT_TRUE(config->profiles.empty());
}

TEST(MmcConfiguration, ShorterThanTheHeaderIsNothing) {
  const Reply full = dvd_plus_rw_configuration();
  for (std::size_t n = 0; n < 8; ++n)
    EXPECT_EQ(parse_configuration(std::span(full).first(n)), std::nullopt) << n;
}

TEST(MmcConfiguration, ADescriptorCutOffCountsItsCodeButNotItsBody) {
  const Reply full = dvd_plus_rw_configuration();
  // Cut after the Profile List's header and its first profile: the data
  // length still claims the whole reply (as when the allocation was small).
  const auto config = parse_configuration(std::span(full).first(8 + 4 + 4 + 2));
  ASSERT_TRUE(config);
  EXPECT_EQ(config->features, (std::vector<std::uint16_t>{0x0000}));
  EXPECT_EQ(config->profiles, (std::vector<std::uint16_t>{0x001A}));
}

TEST(MmcConfiguration, TheDataLengthBoundsTheWalk) {
  Reply r = dvd_plus_rw_configuration();
  r[2] = 0;
  r[3] = 4 + 16;  // the header's remainder and the Profile List only
  const auto config = parse_configuration(r);
  ASSERT_TRUE(config);
  EXPECT_EQ(config->features, (std::vector<std::uint16_t>{0x0000}));
  EXPECT_EQ(config->profiles.size(), 3u);
}

TEST(MmcConfiguration, AnAdditionalLengthPastTheEndStopsTheWalk) {
  Reply r = dvd_plus_rw_configuration();
  r[11] = 0xFF;                      // the Profile List claims 255 bytes
  r[0] = r[1] = r[2] = r[3] = 0xFF;  // and the data length 4 GiB
  const auto config = parse_configuration(r);
  ASSERT_TRUE(config);
  EXPECT_EQ(config->features, (std::vector<std::uint16_t>{0x0000}));
  // Every whole 4-byte slot after the Profile List's header is read as a
  // profile descriptor, none beyond the reply.
  EXPECT_EQ(config->profiles.size(), (r.size() - 12) / 4);
}

TEST(MmcCapacity, ParsesLastLbaAndBlockLength) {
  const auto capacity = parse_capacity(Reply{0x00, 0x23, 0x05, 0x9F, 0x00, 0x00, 0x08, 0x00});
  ASSERT_TRUE(capacity);
  EXPECT_EQ(capacity->last_lba, 0x23059Fu);
  EXPECT_EQ(capacity->block_length, 2048u);
  EXPECT_EQ(capacity->bytes(), (0x23059Full + 1) * 2048);
  EXPECT_EQ(parse_capacity(Reply{0, 0, 0, 0, 0, 0, 8}), std::nullopt);
  EXPECT_EQ((Capacity{0xFFFFFFFF, 2048}.bytes()), 0x100000000ull * 2048) << "no overflow";
}

/// A DVD+RW's disc information: complete disc, complete last session,
/// erasable, 0x0102 sessions, tracks 1 to 0x0304.
Reply disc_information() {
  return reply_of(34, {{1, 32},
                       {2, 0x10 | 0x0C | 0x02},  // erasable, session complete, disc complete
                       {3, 1},
                       {4, 0x02},
                       {5, 0x04},
                       {6, 0x04},
                       {9, 0x01},
                       {10, 0x03},
                       {11, 0x03}});
}

TEST(MmcDiscInformation, ParsesStatusSessionsAndTracks) {
  const auto info = parse_disc_information(disc_information());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->status, DiscStatus::complete);
  EXPECT_EQ(info->last_session_state, 3);
  EXPECT_TRUE(info->erasable);
  EXPECT_EQ(info->first_track, 1);
  EXPECT_EQ(info->sessions, 0x0102);
  EXPECT_EQ(info->last_track_in_last_session, 0x0304);

  const auto empty = parse_disc_information(reply_of(34, {{1, 32}}));
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, DiscStatus::blank);
  EXPECT_FALSE(empty->erasable);
}

TEST(MmcDiscInformation, TooShortIsNothing) {
  const Reply full = disc_information();
  for (std::size_t n = 0; n < 12; ++n)
    EXPECT_EQ(parse_disc_information(std::span(full).first(n)), std::nullopt) << n;
  EXPECT_TRUE(parse_disc_information(std::span(full).first(12)));
  Reply says_short = full;
  says_short[1] = 9;  // its length field covers 11 bytes
  EXPECT_EQ(parse_disc_information(says_short), std::nullopt);
}

/// Track 0x0102 in session 0x0304: starts at 0x10, NWA 0x20 valid, 0x1000
/// blocks free, 0x2000 blocks long.
Reply track_information(bool nwa_valid) {
  return reply_of(36, {{1, 34},
                       {2, 0x02},
                       {3, 0x04},
                       {7, nwa_valid ? 0x01 : 0x00},  // NWA_V
                       {11, 0x10},
                       {15, 0x20},
                       {18, 0x10},
                       {26, 0x20},
                       {32, 0x01},
                       {33, 0x03}});
}

TEST(MmcTrackInformation, ParsesAddressesAndSizes) {
  const auto info = parse_track_information(track_information(true));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->track, 0x0102);
  EXPECT_EQ(info->session, 0x0304);
  EXPECT_EQ(info->start_lba, 0x10u);
  EXPECT_EQ(info->next_writable_address, 0x20u);
  EXPECT_EQ(info->free_blocks, 0x1000u);
  EXPECT_EQ(info->track_size, 0x2000u);
}

TEST(MmcTrackInformation, TheNextWritableAddressNeedsNwaV) {
  const auto info = parse_track_information(track_information(false));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->next_writable_address, std::nullopt);
}

TEST(MmcTrackInformation, TooShortIsNothingAndMsbsAreOptional) {
  const Reply full = track_information(true);
  for (std::size_t n = 0; n < 28; ++n)
    EXPECT_EQ(parse_track_information(std::span(full).first(n)), std::nullopt) << n;
  const auto without_msbs = parse_track_information(std::span(full).first(28));
  ASSERT_TRUE(without_msbs);
  EXPECT_EQ(without_msbs->track, 0x02);
  EXPECT_EQ(without_msbs->session, 0x04);
  EXPECT_EQ(without_msbs->track_size, 0x2000u);
}

// Every prefix and random garbage: each parser answers without reading past
// the span (the asan preset runs this).
TEST(MmcParsers, SurviveEveryPrefixAndGarbage) {
  for (const Reply& full :
       {dvd_plus_rw_configuration(), disc_information(), track_information(true)}) {
    for (std::size_t n = 0; n <= full.size(); ++n) {
      const Reply prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
      (void)parse_configuration(prefix);
      (void)parse_capacity(prefix);
      (void)parse_disc_information(prefix);
      (void)parse_track_information(prefix);
    }
  }
  std::mt19937 random(13);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> size(0, 96);
  for (int i = 0; i < 2000; ++i) {
    Reply garbage(size(random));
    for (auto& b : garbage)
      b = static_cast<std::uint8_t>(byte(random));
    if (const auto config = parse_configuration(garbage)) {
      EXPECT_LE(config->features.size() * 4, garbage.size());
    }
    (void)parse_capacity(garbage);
    (void)parse_disc_information(garbage);
    (void)parse_track_information(garbage);
  }
}

}  // namespace
}  // namespace discarbiter::proto::mmc
