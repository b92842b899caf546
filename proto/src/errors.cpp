#include "discarbiter/proto/errors.hpp"

#include <fmt/format.h>
#include <array>

namespace discarbiter {
namespace {

struct Entry {
  errc code;
  std::string_view name;
  std::string_view explanation;
};

constexpr std::array kTable{
    Entry{errc::ok, "S_OK", "success"},
    Entry{errc::command_has_sense_data, "S_IMAPI_COMMAND_HAS_SENSE_DATA",
          "the drive answered with CHECK CONDITION; see the sense data"},
    Entry{errc::fail, "E_FAIL", "unspecified failure"},
    Entry{errc::out_of_memory, "E_OUTOFMEMORY", "out of memory"},
    Entry{errc::invalid_arg, "E_INVALIDARG", "a request argument is invalid"},
    Entry{errc::access_denied, "E_ACCESSDENIED", "access denied"},
    Entry{errc::invalid_handle, "HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE)",
          "the drive handle is not valid"},
    Entry{errc::dev_not_exist, "HRESULT_FROM_WIN32(ERROR_DEV_NOT_EXIST)",
          "no such drive, or the drive has been removed"},
    Entry{errc::not_locked, "HRESULT_FROM_WIN32(ERROR_NOT_LOCKED)",
          "this client holds no lock on the drive"},
    Entry{errc::insufficient_buffer, "HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER)",
          "the caller's buffer is too small for the result"},
    Entry{errc::recorder_command_timeout, "E_IMAPI_RECORDER_COMMAND_TIMEOUT",
          "the drive did not complete the command in time"},
    Entry{errc::recorder_locked, "E_IMAPI_RECORDER_LOCKED",
          "the drive is locked for exclusive access by another client"},
    Entry{errc::recorder_client_name_is_not_valid, "E_IMAPI_RECORDER_CLIENT_NAME_IS_NOT_VALID",
          "client names are 1-63 characters of 0-9 A-Z a-z and space . , : ; _ -"},
    Entry{errc::bad_frame, "DA_E_BAD_FRAME", "the peer sent a malformed frame"},
    Entry{errc::unsupported_protocol, "DA_E_UNSUPPORTED_PROTOCOL",
          "the client and service speak different protocol major versions"},
    Entry{errc::hello_required, "DA_E_HELLO_REQUIRED", "the first request must be hello"},
    Entry{errc::unknown_request, "DA_E_UNKNOWN_REQUEST", "the service does not know this request"},
    Entry{errc::frame_too_large, "DA_E_FRAME_TOO_LARGE", "a frame exceeds the configured limit"},
    Entry{errc::service_unavailable, "DA_E_SERVICE_UNAVAILABLE",
          "the DiscArbiter service is not running or not reachable"},
    Entry{errc::connection_lost, "DA_E_CONNECTION_LOST", "the connection to the service was lost"},
    Entry{errc::limit_reached, "DA_E_LIMIT_REACHED", "a configured service limit was reached"},
    Entry{errc::service_stopping, "DA_E_SERVICE_STOPPING", "the service is stopping"},
};

const Entry* find(std::uint32_t hr) noexcept {
  for (const auto& e : kTable) {
    if (hresult(e.code) == hr) {
      return &e;
    }
  }
  return nullptr;
}

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "discarbiter"; }
  std::string message(int value) const override {
    const auto hr = static_cast<std::uint32_t>(value);
    const Entry* e = find(hr);
    return e ? std::string(e->explanation) : error_name(hr);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

std::string error_name(std::uint32_t hr) {
  const Entry* e = find(hr);
  return e ? std::string(e->name) : fmt::format("HRESULT 0x{:08X}", hr);
}

std::string_view error_explanation(errc e) noexcept {
  const Entry* entry = find(hresult(e));
  return entry ? entry->explanation : std::string_view("unknown error");
}

std::optional<errc> errc_from_hresult(std::uint32_t hr) noexcept {
  const Entry* e = find(hr);
  return e ? std::optional(e->code) : std::nullopt;
}

}  // namespace discarbiter
