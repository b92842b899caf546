#include <cstdint>
#include <iostream>
#include <vector>

#include <discarbiter/mmc.hpp>

// The MMC helpers: CDBs built and replies parsed for you; CHECK CONDITION
// thrown as CommandError (a ServiceError) with the decoded sense.
bool rewrite_first_block(discarbiter::Client& client, const std::string& drive) {
  namespace mmc = discarbiter::mmc;
  namespace profiles = discarbiter::proto::mmc;
  auto lock = client.acquire(drive);
  const std::uint16_t profile = mmc::current_profile(client, drive);
  if (!profiles::is_overwritable(profile)) {
    std::cerr << "not a rewritable disc: profile " << profile << " ("
              << profiles::profile_name(profile) << ")\n";
    return false;
  }
  const profiles::Capacity capacity = mmc::read_capacity(client, drive);
  const profiles::DiscInformation disc = mmc::read_disc_information(client, drive);
  std::cout << capacity.bytes() << " bytes, " << disc.sessions << " session(s)\n";

  std::vector<std::uint8_t> block(profiles::kBlockSize, 0xA5);
  try {
    mmc::write10(client, drive, 0, block);
    mmc::synchronize_cache(client, drive);
    mmc::read10(client, drive, 0, block);
  } catch (const discarbiter::CommandError& e) {
    // "WRITE(10): sense 3/0C/00: write error"; e.result().sense holds the bytes.
    std::cerr << e.detail() << "\n";
    return false;
  }
  return true;
}
