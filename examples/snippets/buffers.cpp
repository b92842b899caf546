#include <cstdint>
#include <iostream>
#include <span>
#include <vector>

#include <discarbiter/client.hpp>
#include <discarbiter/proto/mmc.hpp>
#include <discarbiter/proto/sense.hpp>

namespace mmc = discarbiter::proto::mmc;

// WRITE(10) from one buffer, reused for every chunk: the library sends
// straight from it. The caller holds the drive's lock.
void write_blocks(discarbiter::Client& client, const std::string& drive, std::uint32_t lba,
                  std::span<const std::uint8_t> image) {
  // The largest transfer the service and this drive take, in whole blocks.
  const std::uint32_t chunk = client.max_transfer(drive) / mmc::kBlockSize * mmc::kBlockSize;
  std::vector<std::uint8_t> buffer(chunk);  // once, not per command
  for (std::size_t offset = 0; offset < image.size(); offset += chunk) {
    const auto piece = image.subspan(offset, std::min<std::size_t>(chunk, image.size() - offset));
    std::copy(piece.begin(), piece.end(), buffer.begin());  // e.g. read from a file instead
    const auto blocks = static_cast<std::uint16_t>(piece.size() / mmc::kBlockSize);
    const mmc::Cdb10 cdb = mmc::write10(lba, blocks);
    const auto result =
        client.send_command_send_data_to_device(drive, cdb, std::span(buffer).first(piece.size()));
    if (result.code == discarbiter::errc::command_has_sense_data) {
      // Not an exception: CHECK CONDITION is an answer. "sense 5/21/00: …"
      std::cerr << "WRITE(10) at " << lba << ": " << discarbiter::proto::explain_sense(result.sense)
                << "\n";
      return;
    }
    lba += blocks;
  }
}
