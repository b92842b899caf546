#include "transport/session_registry.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace discarbiter::transport {

std::optional<Error> SessionRegistry::refusal(const std::string& user, bool administrator) const {
  if (sessions_.size() >= max_sessions_) {
    return Error{errc::limit_reached,
                 fmt::format("the service has its maximum of {} sessions", max_sessions_)};
  }
  const std::size_t reserved = std::min(admin_reserved_sessions_, max_sessions_);
  if (!administrator && sessions_.size() >= max_sessions_ - reserved) {
    return Error{errc::limit_reached,
                 fmt::format("the service has {} sessions; the last {} of its {} are reserved "
                             "for administrators",
                             sessions_.size(), reserved, max_sessions_)};
  }
  const auto of_user = per_user_.find(user);
  if (of_user != per_user_.end() && of_user->second >= max_sessions_per_user_) {
    return Error{errc::limit_reached, fmt::format("user '{}' has the maximum of {} sessions", user,
                                                  max_sessions_per_user_)};
  }
  return std::nullopt;
}

void SessionRegistry::add(std::shared_ptr<SessionHandle> session) {
  ++per_user_[session->user()];
  SessionHandle* key = session.get();
  sessions_.emplace(key, std::move(session));
}

void SessionRegistry::remove(SessionHandle* session) {
  const auto it = sessions_.find(session);
  if (it == sessions_.end())
    return;
  const auto of_user = per_user_.find(it->second->user());
  if (of_user != per_user_.end() && --of_user->second == 0)
    per_user_.erase(of_user);
  sessions_.erase(it);
  if (on_removed_)
    on_removed_();
}

void SessionRegistry::close_all(std::string_view reason) {
  // N.B. a copy: each close() removes its session from the map.
  auto sessions = sessions_;
  for (auto& [key, session] : sessions)
    session->close(reason);
}

}  // namespace discarbiter::transport
