// The DiscArbiter client library: exclusive access to optical recorders,
// arbitrated by the discarbiterd service, with IMAPI2's semantics.
//
// @code
//   discarbiter::Client client({.client_name = "MyBurner"});
//   auto lock = client.acquire("sim0", {.wait = std::chrono::seconds(30)});
//   auto reply = client.execute("sim0", discarbiter::ScsiCommand::inquiry());
//   // lock's destructor releases the drive (equal numbers of acquire and release)
// @endcode
//
// A Client is one session: its locks die with it. Calls block until the
// service answers or their deadline passes; a Client is not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "discarbiter/proto/errors.hpp"
#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/incoming.hpp"
#include "discarbiter/proto/messages.hpp"

namespace discarbiter {

/// A failure reported by the service (or by the library for transport
/// failures): the HRESULT, its symbolic name and the service's message.
class ServiceError : public std::system_error {
 public:
  explicit ServiceError(const Error& error);
  errc code_value() const noexcept { return error_.code; }
  std::uint32_t hresult() const noexcept { return discarbiter::hresult(error_.code); }
  std::string name() const { return error_name(error_.code); }
  const std::string& detail() const noexcept { return error_.message; }

 private:
  Error error_;
};

struct ConnectOptions {
  std::string endpoint;     // empty: DISCARBITER_ENDPOINT, else the platform default
  std::string client_name;  // 1-63 of [0-9A-Za-z .,:;_-]
  std::chrono::milliseconds timeout{5000};  // connect + hello, and each plain request
};

struct AcquireOptions {
  std::chrono::milliseconds wait{0};  // 0: fail at once if another client holds it
  bool force = false;                 // lock even if a file system is mounted
};

struct ScsiCommand {
  proto::Bytes cdb;
  proto::Direction direction = proto::Direction::none;
  std::uint32_t data_in_len = 0;
  proto::Bytes data_out;
  std::optional<std::uint32_t> timeout_s;  // nullopt: the service's default for the opcode

  static ScsiCommand inquiry(std::uint8_t allocation = 36);
  static ScsiCommand eject();
};

struct ScsiReply {
  errc code = errc::ok;  // S_OK or S_IMAPI_COMMAND_HAS_SENSE_DATA
  std::uint8_t scsi_status = 0;
  proto::Bytes sense;
  proto::Bytes data;
};

class Client;

/// RAII for one acquire: released on destruction unless release() was called.
class ExclusiveAccess {
 public:
  ExclusiveAccess(ExclusiveAccess&& other) noexcept;
  ExclusiveAccess& operator=(ExclusiveAccess&&) = delete;
  ~ExclusiveAccess();
  /// The lock count after this acquire.
  std::uint32_t lock_count() const noexcept { return lock_count_; }
  /// Releases now; returns the remaining count. Throws ServiceError.
  std::uint32_t release();

 private:
  friend class Client;
  ExclusiveAccess(Client& client, std::string drive, std::uint32_t count)
      : client_(&client), drive_(std::move(drive)), lock_count_(count) {}
  Client* client_;
  std::string drive_;
  std::uint32_t lock_count_;
};

class Connection;

class Client {
 public:
  /// Connects and says hello. Throws ServiceError (DA_E_SERVICE_UNAVAILABLE
  /// when nothing listens on the endpoint).
  explicit Client(ConnectOptions options);
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  /// DISCARBITER_ENDPOINT when set, else the platform default.
  static std::string default_endpoint();

  const proto::HelloReply& server() const noexcept { return server_; }
  const std::string& endpoint() const noexcept { return endpoint_; }

  std::vector<proto::DriveSummary> drives();
  /// The status document (docs/protocol.md "The status document").
  proto::StatusDocument status();

  std::uint32_t acquire_exclusive_access(const std::string& drive, AcquireOptions options = {});
  std::uint32_t release_exclusive_access(const std::string& drive);
  std::optional<proto::OwnerInfo> exclusive_access_owner(const std::string& drive);
  /// Administrators only: ends another client's lock on `drive` (it is told,
  /// and its next request there fails with E_IMAPI_RECORDER_LOCKED). Returns
  /// the owner whose lock was broken.
  proto::OwnerInfo break_exclusive_access(const std::string& drive);
  /// Only the owner may send commands. A CHECK CONDITION is not an error:
  /// the reply's code is S_IMAPI_COMMAND_HAS_SENSE_DATA and sense is set.
  ScsiReply execute(const std::string& drive, const ScsiCommand& command);

  [[nodiscard]] ExclusiveAccess acquire(const std::string& drive, AcquireOptions options = {});

  /// Asks for unsolicited events; next_event() returns them (a
  /// proto::UnknownEvent for one this library does not know).
  void subscribe();
  std::optional<proto::Event> next_event(std::chrono::milliseconds timeout);

 private:
  proto::Reply call(proto::RequestBody body, std::chrono::milliseconds timeout);
  /// call(), its body read as `Reply` (DA_E_BAD_FRAME if it is not one) and
  /// its payload moved to `payload` if given.
  template <typename Reply>
  Reply call_for(proto::RequestBody body, std::chrono::milliseconds timeout,
                 proto::Bytes* payload = nullptr);
  std::optional<proto::Frame> read_frame(std::chrono::steady_clock::time_point deadline);

  std::unique_ptr<Connection> connection_;
  std::string endpoint_;
  std::chrono::milliseconds timeout_;
  std::uint64_t next_id_ = 1;
  proto::FrameDecoder decoder_;
  std::deque<proto::Event> events_;
  proto::HelloReply server_;
};

}  // namespace discarbiter
