// The read side of the client's stream: a frame's parts in as few reads as
// it can, without reading a large payload twice.
//
// A read between frames takes a small bite (kInboxBytes) into the inbox: the
// header, the JSON part and the start of a payload, or several small frames
// (replies, events), come in one read instead of one read per part. A part
// larger than the inbox is read straight into its destination (the caller's
// data-in buffer): only the payload's bytes that came with the head, at most
// kInboxBytes, are copied.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "connection.hpp"

namespace discarbiter {

class StreamInbox {
 public:
  static constexpr std::size_t kInboxBytes = 1024;

  /// True once the stream has bytes to take (at once when some are
  /// buffered); false when `deadline` passes first, nothing read.
  bool wait_for_bytes(Connection& connection, Connection::Deadline deadline) {
    return buffered() > 0 || fill(connection, deadline);
  }

  /// Fills `out` exactly: from the inbox first, then a part smaller than the
  /// inbox through it (what follows comes with it), a larger one read
  /// straight into `out`. False when `deadline` passes first.
  bool read_exact(Connection& connection, std::span<std::uint8_t> out,
                  Connection::Deadline deadline) {
    for (;;) {
      const std::size_t n = std::min(buffered(), out.size());
      if (n > 0)
        std::memcpy(out.data(), bytes_.data() + begin_, n);
      begin_ += n;
      out = out.subspan(n);
      if (out.empty())
        return true;
      if (out.size() >= kInboxBytes)
        return connection.read_exact(out, deadline);
      if (!fill(connection, deadline))
        return false;
    }
  }

  std::size_t buffered() const noexcept { return end_ - begin_; }

 private:
  /// One read into the inbox, which is empty (read_exact takes all of it
  /// before it reads again). False at the deadline.
  bool fill(Connection& connection, Connection::Deadline deadline) {
    begin_ = 0;
    end_ = connection.read_some(bytes_, deadline);
    return end_ > 0;
  }

  std::array<std::uint8_t, kInboxBytes> bytes_{};
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace discarbiter
