#pragma once

#include <string_view>

namespace discarbiter::core {

inline constexpr std::size_t kMaxClientNameLength = 63;

/// The CD-ROM class driver's rule for an exclusive-access caller name:
/// 1-63 characters from [0-9A-Za-z] and " .,:;_-".
bool is_valid_client_name(std::string_view name) noexcept;

}  // namespace discarbiter::core
