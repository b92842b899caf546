// The product's error codes: the HRESULTs of DESIGN.md "Error codes", carried
// on the wire as a number and a symbolic name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "discarbiter/export.h"
namespace discarbiter {

/// Every code the service can put on the wire. The values are HRESULTs, so a
/// Windows program can hand them to FormatMessage or compare them with the
/// IMAPI2 SDK's constants.
enum class errc : std::uint32_t {
  ok = 0x00000000,
  command_has_sense_data = 0x00AA0200,  // S_IMAPI_COMMAND_HAS_SENSE_DATA
  fail = 0x80004005,                    // E_FAIL
  out_of_memory = 0x8007000E,           // E_OUTOFMEMORY
  invalid_arg = 0x80070057,             // E_INVALIDARG
  access_denied = 0x80070005,           // E_ACCESSDENIED
  invalid_handle = 0x80070006,          // HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE)
  dev_not_exist = 0x80070037,           // HRESULT_FROM_WIN32(ERROR_DEV_NOT_EXIST)
  not_locked = 0x8007009E,              // HRESULT_FROM_WIN32(ERROR_NOT_LOCKED)
  insufficient_buffer = 0x8007007A,     // HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER), C ABI
  recorder_command_timeout = 0xC0AA020D,
  recorder_locked = 0xC0AA0210,
  recorder_client_name_is_not_valid = 0xC0AA0211,
  // The product's own protocol errors (docs/protocol.md).
  bad_frame = 0x80AB0001,             // DA_E_BAD_FRAME
  unsupported_protocol = 0x80AB0002,  // DA_E_UNSUPPORTED_PROTOCOL
  hello_required = 0x80AB0003,        // DA_E_HELLO_REQUIRED
  unknown_request = 0x80AB0004,       // DA_E_UNKNOWN_REQUEST
  frame_too_large = 0x80AB0005,       // DA_E_FRAME_TOO_LARGE
  service_unavailable = 0x80AB0006,   // DA_E_SERVICE_UNAVAILABLE (client side)
  connection_lost = 0x80AB0007,       // DA_E_CONNECTION_LOST (client side)
  limit_reached = 0x80AB0008,         // DA_E_LIMIT_REACHED
  service_stopping = 0x80AB0009,      // DA_E_SERVICE_STOPPING
};

DISCARBITER_API const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(static_cast<std::uint32_t>(e)), error_category()};
}

/// The HRESULT as the unsigned number the wire carries.
inline std::uint32_t hresult(errc e) noexcept {
  return static_cast<std::uint32_t>(e);
}

/// True for S_ codes (severity bit clear).
inline bool succeeded(errc e) noexcept {
  return (hresult(e) & 0x80000000U) == 0;
}

/// The symbolic name, e.g. "E_IMAPI_RECORDER_LOCKED"; "HRESULT 0x…" for a
/// number this table does not know.
DISCARBITER_API std::string error_name(std::uint32_t hr);
inline std::string error_name(errc e) {
  return error_name(hresult(e));
}

/// A one-line human explanation of a code.
DISCARBITER_API std::string_view error_explanation(errc e) noexcept;

/// The code for a name or number as read from the wire; nullopt if unknown.
DISCARBITER_API std::optional<errc> errc_from_hresult(std::uint32_t hr) noexcept;

/// An error as it travels: the code the wire carries and a message that names
/// the step or field that failed.
struct Error {
  errc code = errc::fail;
  std::string message;

  friend bool operator==(const Error&, const Error&) = default;
};

}  // namespace discarbiter

template <>
struct std::is_error_code_enum<discarbiter::errc> : std::true_type {};
