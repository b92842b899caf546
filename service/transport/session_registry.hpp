// The live sessions of one listener and the connection limits over them
// (max sessions, max sessions per user, the sessions reserved for
// administrators). Shared by the socket and the pipe listener, so both
// platforms enforce the same limits the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "discarbiter/proto/result.hpp"

namespace discarbiter::transport {

/// What a listener needs of a session, whatever its stream type.
class SessionHandle {
 public:
  virtual ~SessionHandle() = default;
  /// Ends the session now; its locks are released and its waits dropped.
  virtual void close(std::string_view reason) = 0;
  virtual const std::string& user() const = 0;
};

class SessionRegistry {
 public:
  /// The last `admin_reserved_sessions` of `max_sessions` only administrators
  /// may take, so that one can always connect to `break` a lock.
  SessionRegistry(std::uint32_t max_sessions, std::uint32_t max_sessions_per_user,
                  std::uint32_t admin_reserved_sessions = 0)
      : max_sessions_(max_sessions),
        max_sessions_per_user_(max_sessions_per_user),
        admin_reserved_sessions_(admin_reserved_sessions) {}

  /// Why a new connection from `user` must be refused, if it must. Every
  /// session counts, whatever it does (subscribed, waiting, holding, idle).
  std::optional<Error> refusal(const std::string& user, bool administrator) const;
  void add(std::shared_ptr<SessionHandle> session);
  /// Called by a session as it closes; unknown sessions are ignored.
  void remove(SessionHandle* session);
  void close_all(std::string_view reason);
  std::size_t size() const { return sessions_.size(); }
  /// Called after each session is removed (the POSIX listener returns the
  /// memory freed to the system from there).
  void on_removed(std::function<void()> callback) { on_removed_ = std::move(callback); }

 private:
  std::uint32_t max_sessions_;
  std::uint32_t max_sessions_per_user_;
  std::uint32_t admin_reserved_sessions_;
  std::map<SessionHandle*, std::shared_ptr<SessionHandle>> sessions_;
  std::map<std::string, std::size_t> per_user_;
  std::function<void()> on_removed_;
};

}  // namespace discarbiter::transport
