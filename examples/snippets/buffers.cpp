#include <algorithm>
#include <cstdint>
#include <iostream>
#include <istream>
#include <span>
#include <vector>

#include <discarbiter/client.hpp>
#include <discarbiter/proto/mmc.hpp>
#include <discarbiter/proto/sense.hpp>

namespace mmc = discarbiter::proto::mmc;

// WRITE(10) of a stream from one buffer, reused for every command: the
// library sends straight from it. The caller holds the drive's lock.
bool write_stream(discarbiter::Client& client, const std::string& drive, std::istream& in) {
  // The most one command may carry (the service's and this drive's limit),
  // in whole blocks. More is refused with E_INVALIDARG before it is sent.
  const std::uint32_t chunk = client.max_transfer(drive) / mmc::kBlockSize * mmc::kBlockSize;
  std::vector<std::uint8_t> buffer(chunk);  // once, not per command
  for (std::uint32_t lba = 0; in;) {
    in.read(reinterpret_cast<char*>(buffer.data()), chunk);
    const auto n = static_cast<std::size_t>(in.gcount());
    const std::size_t padded = (n + mmc::kBlockSize - 1) / mmc::kBlockSize * mmc::kBlockSize;
    std::fill_n(buffer.data() + n, padded - n, std::uint8_t{0});  // the last block's tail
    const auto blocks = static_cast<std::uint16_t>(padded / mmc::kBlockSize);
    if (blocks == 0)
      break;
    const auto result = client.send_command_send_data_to_device(drive, mmc::write10(lba, blocks),
                                                                std::span(buffer).first(padded));
    if (result.code == discarbiter::errc::command_has_sense_data) {
      // CHECK CONDITION is an answer, not an exception: "sense 3/0C/00: write error"
      std::cerr << "WRITE(10) at " << lba << ": " << discarbiter::proto::explain_sense(result.sense)
                << "\n";
      return false;
    }
    lba += blocks;
  }
  return true;
}
