// The DiscArbiter client library: exclusive access to optical recorders,
// arbitrated by the discarbiterd service, with IMAPI2's semantics.
//
// @code
//   discarbiter::Client client({.client_name = "MyBurner"});
//   auto lock = client.acquire("sim0", {.wait = std::chrono::seconds(30)});
//   std::array<std::uint8_t, 36> inquiry{};
//   const std::uint8_t cdb[] = {0x12, 0, 0, 0, 36, 0};
//   auto result = client.send_command_get_data_from_device("sim0", cdb, inquiry);
//   // lock's destructor releases the drive (equal numbers of acquire and release)
// @endcode
//
// A Client is one session with the service: its locks die with it. Calls
// block until the service answers or their deadline passes.
//
// Threads: every member function of Client may be called from several
// threads at once (a UI thread asking for status() while another burns):
// the requests share the session's one stream and each caller gets the reply
// with its own id. Moving or destroying a Client must not race with a call
// on it. ExclusiveAccess guards hold the session, not the Client: they stay
// correct when the Client is moved, and do nothing once it is destroyed (its
// locks died with its session).
//
// Errors: every failure is a ServiceError (or CommandError, a ServiceError
// that carries a CHECK CONDITION's sense, thrown by the mmc.hpp helpers);
// no other exception leaves this library.
//
// Public headers of the SDK include only the standard library.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "discarbiter/export.h"
#include "discarbiter/proto/errors.hpp"
#include "discarbiter/proto/messages.hpp"

namespace discarbiter {

/// A failure reported by the service (or by the library for transport
/// failures and arguments it refuses before sending): the HRESULT, its
/// symbolic name and the message naming what failed.
class DISCARBITER_API ServiceError : public std::system_error {
 public:
  explicit ServiceError(const Error& error);
  errc code_value() const noexcept { return error_.code; }
  std::uint32_t hresult() const noexcept { return discarbiter::hresult(error_.code); }
  std::string name() const { return error_name(error_.code); }
  const std::string& detail() const noexcept { return error_.message; }
  /// "NAME: detail: explanation", without the explanation when the detail
  /// already says it.
  const char* what() const noexcept override;

 private:
  Error error_;
  std::string what_;
};

// N.B. every member has an initializer, so `{.client_name = "MyBurner"}`
// builds without -Wmissing-field-initializers (-Wextra) in users' code.
struct ConnectOptions {
  std::string endpoint{};     // empty: DISCARBITER_ENDPOINT, else the platform default
  std::string client_name{};  // 1-63 of [0-9A-Za-z .,:;_-]
  std::chrono::milliseconds timeout{5000};  // connect + hello, and each plain request
};

struct AcquireOptions {
  std::chrono::milliseconds wait{0};  // 0: fail at once if another client holds it
  bool force = false;                 // lock even if a file system is mounted
};

/// What one SCSI command did (IMAPI2's SendCommand… results).
struct CommandResult {
  /// S_OK, or S_IMAPI_COMMAND_HAS_SENSE_DATA when the drive answered CHECK
  /// CONDITION (not an exception: the sense says why).
  errc code = errc::ok;
  std::uint8_t scsi_status = 0;
  proto::Bytes sense;  // empty unless CHECK CONDITION
  /// Data-in: bytes written to the start of the caller's buffer.
  /// Data-out: bytes sent. No data: 0.
  std::uint32_t bytes_transferred = 0;
};

/// One command with its data in library-owned vectors: for the CLI and for
/// callers that prefer values to buffers (send_command_* copy nothing).
struct DISCARBITER_API ScsiCommand {
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

namespace detail {
class Session;  // the connection and its request stream (client.cpp)
}  // namespace detail

/// RAII for one acquire: released on destruction unless release() was
/// called. It refers to the Client's session, so it may outlive a move of
/// the Client; once the Client is destroyed it does nothing (the session's
/// locks died with it). If the release in the destructor fails, the session
/// is closed, so the lock cannot stay behind.
class DISCARBITER_API ExclusiveAccess {
 public:
  ExclusiveAccess(ExclusiveAccess&& other) noexcept;
  ExclusiveAccess& operator=(ExclusiveAccess&&) = delete;
  ~ExclusiveAccess();
  /// The lock count after this acquire.
  std::uint32_t lock_count() const noexcept { return lock_count_; }
  const std::string& drive() const noexcept { return drive_; }
  /// Releases now; returns the remaining count. Throws ServiceError.
  std::uint32_t release();

 private:
  friend class Client;
  ExclusiveAccess(std::weak_ptr<detail::Session> session, std::string drive, std::uint32_t count);
  std::weak_ptr<detail::Session> session_;
  std::string drive_;
  std::uint32_t lock_count_;
};

class DISCARBITER_API Client {
 public:
  /// Connects and says hello. Throws ServiceError (DA_E_SERVICE_UNAVAILABLE
  /// when nothing listens on the endpoint).
  explicit Client(ConnectOptions options);
  /// Closes the session: the service frees its locks.
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  /// DISCARBITER_ENDPOINT when set, else the platform default.
  static std::string default_endpoint();

  const proto::HelloReply& server() const;
  const std::string& endpoint() const;
  /// The largest data transfer the service accepts in one command (its
  /// frame limit, from hello); a drive's own limit may be smaller.
  std::uint32_t max_transfer() const;
  /// A drive's largest transfer (list_drives' max_transfer): the smaller of
  /// the service's and the drive's. ERROR_DEV_NOT_EXIST for an unknown drive.
  std::uint32_t max_transfer(const std::string& drive);

  std::vector<proto::DriveSummary> drives();
  /// The status document (docs/protocol.md "The status document").
  proto::StatusDocument status();
  /// The same document as JSON text (the schema of DESIGN.md).
  std::string status_json();

  std::uint32_t acquire_exclusive_access(const std::string& drive, AcquireOptions options = {});
  std::uint32_t release_exclusive_access(const std::string& drive);
  std::optional<proto::OwnerInfo> exclusive_access_owner(const std::string& drive);
  /// Administrators only: ends another client's lock on `drive` (it is told,
  /// and its next request there fails with E_IMAPI_RECORDER_LOCKED). Returns
  /// the owner whose lock was broken.
  proto::OwnerInfo break_exclusive_access(const std::string& drive);

  /// The owner's SCSI pass-through, named after IMAPI2's
  /// IDiscRecorder2Ex::SendCommand…. Data moves between the caller's buffer
  /// and the socket with no copy in between, but for the first bytes of
  /// data-in that one read brings with the reply's head (under 1 KiB). A
  /// transfer above max_transfer() is refused with E_INVALIDARG before
  /// anything is sent. `timeout_s`:
  /// nullopt for the service's default for the opcode. A CHECK CONDITION is
  /// not an exception: the result's code is S_IMAPI_COMMAND_HAS_SENSE_DATA.
  CommandResult send_command_no_data(const std::string& drive, std::span<const std::uint8_t> cdb,
                                     std::optional<std::uint32_t> timeout_s = std::nullopt);
  CommandResult send_command_send_data_to_device(
      const std::string& drive, std::span<const std::uint8_t> cdb,
      std::span<const std::uint8_t> data, std::optional<std::uint32_t> timeout_s = std::nullopt);
  /// Asks for buffer.size() bytes; the result's bytes_transferred says how
  /// many the drive returned.
  CommandResult send_command_get_data_from_device(
      const std::string& drive, std::span<const std::uint8_t> cdb, std::span<std::uint8_t> buffer,
      std::optional<std::uint32_t> timeout_s = std::nullopt);
  /// The same, with the data in vectors.
  ScsiReply execute(const std::string& drive, const ScsiCommand& command);

  [[nodiscard]] ExclusiveAccess acquire(const std::string& drive, AcquireOptions options = {});

  /// Asks for unsolicited events; next_event() returns them (a
  /// proto::UnknownEvent for one this library does not know). Events are
  /// kept only after subscribe() (but for lock_broken, which the service
  /// sends the broken owner unasked), at most kMaxQueuedEvents of them:
  /// beyond that the oldest are dropped and counted in events_dropped().
  void subscribe();
  std::optional<proto::Event> next_event(std::chrono::milliseconds timeout);
  std::uint64_t events_dropped() const;
  static constexpr std::size_t kMaxQueuedEvents = 4096;

 private:
  std::shared_ptr<detail::Session> session_;
};

}  // namespace discarbiter
