#include "core/scsi.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace discarbiter::core {

Bytes make_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq) {
  Bytes sense(kSenseBytes, 0);
  sense[0] = 0x70;  // current error, fixed format
  sense[2] = key & 0x0F;
  sense[7] = static_cast<std::uint8_t>(kSenseBytes - 8);  // additional sense length
  sense[12] = asc;
  sense[13] = ascq;
  return sense;
}

namespace {

std::string trimmed_ascii(const Bytes& data, std::size_t from, std::size_t length) {
  std::string s;
  for (std::size_t i = from; i < std::min(data.size(), from + length); ++i) {
    s += (data[i] >= 0x20 && data[i] < 0x7F) ? static_cast<char>(data[i]) : ' ';
  }
  while (!s.empty() && s.back() == ' ')
    s.pop_back();
  return s;
}

}  // namespace

ScsiCommand inquiry_command(std::chrono::seconds timeout) {
  constexpr std::uint8_t kLength = 96;
  return ScsiCommand{{opcode::inquiry, 0, 0, 0, kLength, 0}, Direction::in, {}, kLength, timeout};
}

Result<InquiryData> parse_inquiry(const ScsiResult& result, std::string_view path) {
  if (!result.answered()) {
    return Error{result.transport,
                 fmt::format("INQUIRY on {}: {}", path, result.transport_message)};
  }
  if (!result.good()) {
    return Error{errc::fail, fmt::format("INQUIRY on {} failed (sense {})", path,
                                         proto::describe_sense(result.sense))};
  }
  const Bytes& data = result.data_in;
  if (data.size() < 36) {
    return Error{errc::fail, fmt::format("INQUIRY on {} failed (short answer: {} bytes, want 36)",
                                         path, data.size())};
  }
  if ((data[0] & 0x1F) != kPeripheralTypeMmc) {
    return Error{
        errc::invalid_arg,
        fmt::format("{} is not an optical drive (SCSI peripheral type {})", path, data[0] & 0x1F)};
  }
  return InquiryData{trimmed_ascii(data, 8, 8), trimmed_ascii(data, 16, 16),
                     trimmed_ascii(data, 32, 4)};
}

Bytes cdb_test_unit_ready() {
  return Bytes(6, 0);
}

Bytes cdb_prevent_allow_medium_removal(bool prevent, bool persistent) {
  Bytes cdb(6, 0);
  cdb[0] = opcode::prevent_allow_medium_removal;
  cdb[4] = static_cast<std::uint8_t>((persistent ? 2 : 0) | (prevent ? 1 : 0));
  return cdb;
}

}  // namespace discarbiter::core
