// Refusing a connection: one error frame, written asynchronously within a
// short deadline, then the connection is closed. A client that does not read
// its refusal (or a pipe that stalls) holds one of a bounded number of slots
// for at most that deadline and delays no one; beyond the bound a connection
// is closed without the frame.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/wire.hpp"
#include "discarbiter/proto/result.hpp"

namespace discarbiter::transport {

/// How long a refused client has to take its error frame.
inline constexpr std::chrono::milliseconds kRefusalDeadline{1000};
/// Refusal frames being written at once.
inline constexpr std::size_t kMaxRefusalsInFlight = 64;

class Refusals {
 public:
  explicit Refusals(std::size_t max_in_flight = kMaxRefusalsInFlight,
                    std::chrono::steady_clock::duration deadline = kRefusalDeadline)
      : max_in_flight_(max_in_flight), deadline_(deadline) {}
  ~Refusals() { stop(); }
  Refusals(const Refusals&) = delete;
  Refusals& operator=(const Refusals&) = delete;

  /// Answers a connection the service will not serve with one error frame
  /// (best effort: the client may be gone already), then closes it; the
  /// caller logs why. On the strand; never waits.
  template <typename Stream>
  void refuse(Stream stream, const Error& why);

  std::size_t in_flight() const { return in_flight_->size(); }
  /// Closes every connection whose refusal is still being written.
  void stop() {
    auto writes = std::exchange(*in_flight_, {});
    for (const auto& write : writes)
      write->close();
  }

 private:
  struct Write {
    virtual ~Write() = default;
    virtual void close() = 0;
  };
  template <typename Stream>
  struct StreamWrite;
  using InFlight = std::set<std::shared_ptr<Write>>;

  std::size_t max_in_flight_;
  std::chrono::steady_clock::duration deadline_;
  // N.B. shared with the handlers, which may run after this object is gone.
  std::shared_ptr<InFlight> in_flight_ = std::make_shared<InFlight>();
};

template <typename Stream>
struct Refusals::StreamWrite final : Write {
  StreamWrite(Stream s, proto::Bytes f)
      : stream(std::move(s)), deadline(stream.get_executor()), frame(std::move(f)) {}
  void close() override {
    boost::system::error_code ignored;
    stream.close(ignored);
    deadline.cancel();
  }
  Stream stream;
  boost::asio::steady_timer deadline;
  proto::Bytes frame;
};

template <typename Stream>
void Refusals::refuse(Stream stream, const Error& why) {
  if (in_flight_->size() >= max_in_flight_) {
    spdlog::debug("{} refusals are being written already; closing without one", in_flight_->size());
    boost::system::error_code ignored;
    stream.close(ignored);
    return;
  }
  auto write = std::make_shared<StreamWrite<Stream>>(
      std::move(stream), proto::encode_frame(proto::make_error_reply(std::nullopt, why)));
  in_flight_->insert(write);
  write->deadline.expires_after(deadline_);
  write->deadline.async_wait([write](boost::system::error_code ec) {
    if (!ec)
      write->close();  // N.B. the write then ends with operation_aborted
  });
  boost::asio::async_write(write->stream, boost::asio::buffer(write->frame),
                           [write, in_flight = in_flight_](boost::system::error_code, std::size_t) {
                             write->close();
                             in_flight->erase(write);
                           });
}

}  // namespace discarbiter::transport
