#include "core/client_name.hpp"

#include <algorithm>

namespace discarbiter::core {

bool is_valid_client_name(std::string_view name) noexcept {
  auto allowed = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           std::string_view(" .,:;_-").find(c) != std::string_view::npos;
  };
  return !name.empty() && name.size() <= kMaxClientNameLength && std::ranges::all_of(name, allowed);
}

}  // namespace discarbiter::core
