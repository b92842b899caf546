// Big-endian fields, as every multi-byte field of a CDB, a reply or a mode
// page is (SPC-4 3.5, MMC-6 3.x). Internal (not installed): proto's CDB
// builders and parsers and the simulated drive use it. Callers check that
// the buffer holds [at, at + width).
#pragma once

#include <cstddef>
#include <cstdint>

namespace discarbiter::proto {

template <typename Bytes>
std::uint16_t be16(const Bytes& bytes, std::size_t at) {
  return static_cast<std::uint16_t>(std::uint16_t{bytes[at]} << 8 | bytes[at + 1]);
}

template <typename Bytes>
std::uint32_t be32(const Bytes& bytes, std::size_t at) {
  return std::uint32_t{be16(bytes, at)} << 16 | be16(bytes, at + 2);
}

template <typename Buffer>
void put_be16(Buffer& buffer, std::size_t at, std::uint16_t value) {
  buffer[at] = static_cast<std::uint8_t>(value >> 8);
  buffer[at + 1] = static_cast<std::uint8_t>(value);
}

template <typename Buffer>
void put_be24(Buffer& buffer, std::size_t at, std::uint32_t value) {
  buffer[at] = static_cast<std::uint8_t>(value >> 16);
  put_be16(buffer, at + 1, static_cast<std::uint16_t>(value));
}

template <typename Buffer>
void put_be32(Buffer& buffer, std::size_t at, std::uint32_t value) {
  put_be16(buffer, at, static_cast<std::uint16_t>(value >> 16));
  put_be16(buffer, at + 2, static_cast<std::uint16_t>(value));
}

}  // namespace discarbiter::proto
