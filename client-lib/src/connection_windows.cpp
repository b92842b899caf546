// The client's end of \\.\pipe\DiscArbiter: overlapped reads and writes so
// that every call honours its deadline.
#include <windows.h>

#include <aclapi.h>
#include <sddl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "connection.hpp"
#include "discarbiter/client.hpp"
#include "discarbiter/win32/account.hpp"
#include "discarbiter/win32/error.hpp"
#include "discarbiter/win32/handle.hpp"
#include "discarbiter/win32/wide.hpp"

namespace discarbiter {
namespace {

using win32::describe;

DWORD milliseconds_until(Connection::Deadline deadline) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<DWORD>(std::clamp<std::int64_t>(left.count(), 0, 0x7fffffff));
}

[[noreturn]] void lost(const std::string& what) {
  throw ServiceError(Error{errc::connection_lost, what});
}

bool is_pipe_closed(DWORD error) {
  return error == ERROR_BROKEN_PIPE || error == ERROR_PIPE_NOT_CONNECTED || error == ERROR_NO_DATA;
}

class PipeConnection final : public Connection {
 public:
  explicit PipeConnection(win32::unique_hfile pipe)
      : pipe_(std::move(pipe)),
        read_event_(::CreateEventW(nullptr, TRUE, FALSE, nullptr)),
        write_event_(::CreateEventW(nullptr, TRUE, FALSE, nullptr)) {
    if (!read_event_ || !write_event_)
      lost(describe("CreateEventW", ::GetLastError()));
  }

  void write_all(Buffers buffers, Deadline deadline) override {
    // N.B. one WriteFile per buffer (the frame's head, then the caller's
    // data): a pipe has no gather write, and the caller's one writer at a
    // time keeps the frame whole.
    for (auto bytes : buffers) {
      while (!bytes.empty()) {
        const auto chunk = static_cast<DWORD>(std::min<std::size_t>(bytes.size(), 1U << 30));
        const auto done = transfer("write", write_event_.get(), deadline, [&](OVERLAPPED* ov) {
          return ::WriteFile(pipe_.get(), bytes.data(), chunk, nullptr, ov);
        });
        if (!done)
          lost("write: timed out");
        bytes = bytes.subspan(*done);
      }
    }
  }

  void shutdown() noexcept override {
    // N.B. the pipe handle is closed as soon as no ReadFile/WriteFile uses
    // it (here, or by the last one to finish): only then does the service
    // see the session end and free its locks, which must not wait for the
    // Client's destructor. Cancelled operations end as if their deadline
    // had passed; the flag stops the next one from starting.
    std::lock_guard lock(mutex_);
    closed_ = true;
    if (pipe_)
      ::CancelIoEx(pipe_.get(), nullptr);
    close_if_idle();
  }

  std::size_t read_some(std::span<std::uint8_t> buffer, Deadline deadline) override {
    const auto chunk = static_cast<DWORD>(std::min<std::size_t>(buffer.size(), 1U << 30));
    for (;;) {
      const auto done = transfer("read", read_event_.get(), deadline, [&](OVERLAPPED* ov) {
        return ::ReadFile(pipe_.get(), buffer.data(), chunk, nullptr, ov);
      });
      if (!done)
        return 0;
      if (*done > 0)
        return *done;
    }
  }

 private:
  /// One overlapped ReadFile/WriteFile, waited for until the deadline; at the
  /// deadline it is cancelled (nullopt), unless it completed meanwhile.
  template <typename Start>
  std::optional<std::size_t> transfer(const char* step, HANDLE event, Deadline deadline,
                                      Start start) {
    OVERLAPPED ov{};
    ov.hEvent = event;
    ::ResetEvent(event);
    bool pending = false;
    {
      // N.B. the check and the start under one lock: shutdown() either
      // comes first (nothing starts) or finds the operation in flight and
      // cancels it, never in between.
      std::lock_guard lock(mutex_);
      if (closed_)
        lost("the session was closed");
      ++in_flight_;
      if (!start(&ov)) {
        const DWORD error = ::GetLastError();
        if (error != ERROR_IO_PENDING) {
          --in_flight_;
          close_if_idle();
          fail(step, error);
        }
        pending = true;
      }
    }
    const InFlight done_with_handle{*this};
    if (pending && ::WaitForSingleObject(event, milliseconds_until(deadline)) == WAIT_TIMEOUT) {
      ::CancelIoEx(pipe_.get(), &ov);
    }
    DWORD n = 0;
    // N.B. wait for the operation to finish even when cancelled: the kernel
    // writes into `ov` and the buffer until it does.
    if (!::GetOverlappedResult(pipe_.get(), &ov, &n, TRUE)) {
      const DWORD error = ::GetLastError();
      if (error == ERROR_OPERATION_ABORTED && closed_)
        lost("the session was closed");
      if (error == ERROR_OPERATION_ABORTED)
        return std::nullopt;
      fail(step, error);
    }
    return n;
  }

  [[noreturn]] static void fail(const char* step, DWORD error) {
    if (is_pipe_closed(error))
      lost("the service closed the connection");
    lost(describe(step, error));
  }

  /// Ends one operation's use of the handle (after GetOverlappedResult).
  struct InFlight {
    PipeConnection& c;
    ~InFlight() {
      std::lock_guard lock(c.mutex_);
      --c.in_flight_;
      c.close_if_idle();
    }
  };
  void close_if_idle() {  // with mutex_ held
    if (closed_ && in_flight_ == 0)
      pipe_.reset();
  }

  std::mutex mutex_;  // closed_, in_flight_, and pipe_'s closing
  int in_flight_ = 0;
  win32::unique_hfile pipe_;
  // N.B. one event per direction: a reader and a writer run at once.
  win32::unique_handle read_event_;
  win32::unique_handle write_event_;
  std::atomic<bool> closed_{false};  // written under mutex_
};

using win32::describe_sid;

/// This process's user SID (TOKEN_USER, in its buffer).
std::vector<std::uint8_t> own_user() {
  HANDLE raw = nullptr;
  if (!::OpenProcessToken(::GetCurrentProcess(), TOKEN_QUERY, &raw))
    throw ServiceError(Error{errc::fail, describe("OpenProcessToken", ::GetLastError())});
  const win32::unique_handle token(raw);
  DWORD size = 0;
  ::GetTokenInformation(token.get(), TokenUser, nullptr, 0, &size);
  std::vector<std::uint8_t> buffer(size);
  if (size == 0 || !::GetTokenInformation(token.get(), TokenUser, buffer.data(), size, &size)) {
    throw ServiceError(
        Error{errc::fail, describe("GetTokenInformation(TokenUser)", ::GetLastError())});
  }
  return buffer;
}

/// Refuses a pipe whose owner is neither LocalSystem, the Administrators
/// group (the default owner of what an elevated administrator or SYSTEM
/// creates) nor this process's user: the pipe name is free while the service
/// restarts, and any user could create it then and answer for the service.
/// N.B. the pipe's owner, not the server process's token: a standard user may
/// not open a LocalSystem process's token, while READ_CONTROL on the pipe is
/// granted to every client (the service's DACL); and a user cannot make
/// anyone but itself the owner of what it creates.
void check_server_is_trusted(HANDLE pipe, const std::string& endpoint) {
  ULONG server_pid = 0;
  ::GetNamedPipeServerProcessId(pipe, &server_pid);  // N.B. only to name it; Wine says 0
  PSID owner = nullptr;
  PSECURITY_DESCRIPTOR raw_descriptor = nullptr;
  const DWORD got = ::GetSecurityInfo(pipe, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION, &owner,
                                      nullptr, nullptr, nullptr, &raw_descriptor);
  if (got != ERROR_SUCCESS) {
    throw ServiceError(
        Error{errc::access_denied, fmt::format("cannot tell who serves {} ({}); not talking to it",
                                               endpoint, describe("GetSecurityInfo(owner)", got))});
  }
  const win32::unique_hlocal descriptor(raw_descriptor);
  const auto me = own_user();
  PSID my_sid = reinterpret_cast<const TOKEN_USER*>(me.data())->User.Sid;
  if (owner != nullptr &&
      (::IsWellKnownSid(owner, WinLocalSystemSid) ||
       ::IsWellKnownSid(owner, WinBuiltinAdministratorsSid) || ::EqualSid(owner, my_sid))) {
    return;
  }
  throw ServiceError(
      Error{errc::access_denied,
            fmt::format("{} is served by a pipe that {} created (server pid {}), which is neither "
                        "LocalSystem, the Administrators nor this user ({}); not talking to it: it "
                        "may be impersonating the service",
                        endpoint, owner ? describe_sid(owner) : std::string("no owner"), server_pid,
                        describe_sid(my_sid))});
}

}  // namespace

std::unique_ptr<Connection> connect_to_service(const std::string& endpoint,
                                               Connection::Deadline deadline) {
  const std::wstring name = win32::to_wide(endpoint);
  for (;;) {
    // N.B. SECURITY_IDENTIFICATION: the service may learn who we are, but
    // cannot act as us.
    win32::unique_hfile pipe(::CreateFileW(
        name.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
        FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr));
    if (pipe) {
      check_server_is_trusted(pipe.get(), endpoint);
      return std::make_unique<PipeConnection>(std::move(pipe));
    }
    const DWORD error = ::GetLastError();
    if (error == ERROR_FILE_NOT_FOUND) {
      throw ServiceError(Error{errc::service_unavailable,
                               fmt::format("nothing serves the pipe {}; start the service with "
                                           "`sc start DiscArbiter`",
                                           endpoint)});
    }
    if (error == ERROR_ACCESS_DENIED) {
      throw ServiceError(
          Error{errc::access_denied, describe(fmt::format("open {}", endpoint), error)});
    }
    if (error != ERROR_PIPE_BUSY) {
      throw ServiceError(
          Error{errc::service_unavailable, describe(fmt::format("open {}", endpoint), error)});
    }
    // Every instance is taken for the moment: the service creates the next
    // one as soon as it has accepted a client. Wait for it until the deadline.
    const DWORD wait = milliseconds_until(deadline);
    if (wait == 0) {
      throw ServiceError(
          Error{errc::service_unavailable,
                fmt::format("the pipe {} stayed busy until the deadline", endpoint)});
    }
    // N.B. WaitNamedPipe's own failures (its timeout, the name gone for a
    // moment) only lead to the next attempt, which names the real problem.
    ::WaitNamedPipeW(name.c_str(), std::min<DWORD>(wait, 1000));
  }
}

std::string platform_default_endpoint() {
  return R"(\\.\pipe\DiscArbiter)";
}

}  // namespace discarbiter
