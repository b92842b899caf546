// The C ABI of discarbiter.h over the C++ Client: every function catches
// everything (no exception crosses into C), turns a ServiceError into its
// HRESULT and keeps its message per thread for da_get_last_error_message.
#include "discarbiter/discarbiter.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "discarbiter/client.hpp"
#include "discarbiter/proto/sense.hpp"

struct da_client {
  discarbiter::Client client;
};

namespace discarbiter {
namespace {

// N.B. discarbiter.h's DA_* constants are C casts (-Wold-style-cast here):
// this file names the same HRESULTs by errc.

constexpr std::size_t kMinCdb = 6;
constexpr std::size_t kMaxCdb = 16;

/// As GetLastError: the message of this thread's last failure.
thread_local std::string last_error_message;

DA_HRESULT to_hresult(errc code) noexcept {
  return static_cast<DA_HRESULT>(hresult(code));
}

[[noreturn]] void refuse(errc code, std::string message) {
  throw ServiceError(Error{code, std::move(message)});
}

/// Runs one C function's body: its result, or the HRESULT of what it threw,
/// with the message kept for da_get_last_error_message ("" after a success).
template <typename Body>
DA_HRESULT guarded(Body&& body) noexcept {
  errc code = errc::fail;
  try {
    const errc result = body();
    last_error_message.clear();
    return to_hresult(result);
  } catch (const ServiceError& e) {
    code = e.code_value();
    try {
      last_error_message = e.detail();
    } catch (...) {
      last_error_message.clear();
    }
  } catch (const std::bad_alloc&) {
    code = errc::out_of_memory;
    last_error_message.clear();
  } catch (const std::exception& e) {
    try {
      last_error_message = e.what();
    } catch (...) {
      last_error_message.clear();
    }
  } catch (...) {
    last_error_message.clear();
  }
  return to_hresult(code);
}

void require(bool ok, std::string_view what) {
  if (!ok)
    refuse(errc::invalid_arg, std::string(what));
}

Client& client_of(da_client* client) {
  require(client != nullptr, "client is NULL");
  return client->client;
}

std::string drive_of(const char* drive) {
  require(drive != nullptr, "drive is NULL");
  return drive;
}

/// Text into a caller's buffer, NUL-terminated, or DA_E_INSUFFICIENT_BUFFER.
errc copy_text(std::string_view text, char* buffer, std::size_t size, std::size_t* needed) {
  require(buffer != nullptr || size == 0, "buffer is NULL but size is not 0");
  if (needed)
    *needed = text.size() + 1;
  if (text.size() + 1 > size) {
    refuse(errc::insufficient_buffer,
           fmt::format("the text needs {} bytes with its NUL; the buffer holds {}", text.size() + 1,
                       size));
  }
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  return errc::ok;
}

/// Text into a struct's fixed field, cut at a UTF-8 character boundary when
/// it does not fit; the rest of the field is zeroed.
template <std::size_t N>
void copy_field(char (&field)[N], std::string_view text) noexcept {
  std::size_t n = std::min(text.size(), N - 1);
  // N.B. never leave half a character: back up over continuation bytes.
  while (n > 0 && n < text.size() && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80)
    --n;
  std::memcpy(field, text.data(), n);
  std::memset(field + n, 0, N - n);
}

std::span<const std::uint8_t> cdb_of(const std::uint8_t* cdb, std::size_t cdb_size) {
  require(cdb != nullptr, "cdb is NULL");
  if (cdb_size < kMinCdb || cdb_size > kMaxCdb) {
    refuse(errc::invalid_arg,
           fmt::format("cdb_size {} is outside {}..{}", cdb_size, kMinCdb, kMaxCdb));
  }
  return {cdb, cdb_size};
}

struct SenseBuffer {
  std::uint8_t* data;
  std::size_t size;
};

SenseBuffer sense_of(std::uint8_t* sense, std::size_t sense_size) {
  require(sense != nullptr || sense_size == 0, "sense is NULL but sense_size is not 0");
  return {sense, sense_size};
}

std::optional<std::uint32_t> timeout_of(std::uint32_t timeout_s) {
  return timeout_s == 0 ? std::nullopt : std::optional<std::uint32_t>(timeout_s);
}

/// The command's outcome into the caller's result and sense buffer.
errc report(const CommandResult& r, SenseBuffer sense, da_command_result* result) {
  const std::size_t n = std::min(r.sense.size(), sense.size);
  if (n > 0)
    std::memcpy(sense.data, r.sense.data(), n);
  result->scsi_status = r.scsi_status;
  result->sense_length = static_cast<std::uint32_t>(n);
  result->bytes_transferred = r.bytes_transferred;
  return r.code;
}

da_command_result& result_of(da_command_result* result) {
  require(result != nullptr, "result is NULL");
  *result = da_command_result{};
  return *result;
}

}  // namespace
}  // namespace discarbiter

using namespace discarbiter;

extern "C" {

const char* da_version(void) {
  return DISCARBITER_VERSION;
}

DA_HRESULT da_connect(const da_connect_options* options, da_client** client) {
  if (client)
    *client = nullptr;
  return guarded([&] {
    require(client != nullptr, "client is NULL");
    require(options != nullptr, "options is NULL");
    if (options->struct_size != sizeof(da_connect_options)) {
      refuse(errc::invalid_arg, fmt::format("options->struct_size is {}; this library's "
                                            "da_connect_options has {} bytes",
                                            options->struct_size, sizeof(da_connect_options)));
    }
    require(options->client_name != nullptr, "options->client_name is NULL");
    ConnectOptions o;
    o.endpoint = options->endpoint ? options->endpoint : "";
    o.client_name = options->client_name;
    if (options->timeout_ms != 0)
      o.timeout = std::chrono::milliseconds(options->timeout_ms);
    *client = new da_client{Client(std::move(o))};
    return errc::ok;
  });
}

void da_disconnect(da_client* client) {
  // N.B. ~Client closes the connection and throws nothing.
  delete client;
}

DA_HRESULT da_list_drives(da_client* client, da_drive_info* drives, size_t capacity,
                          size_t* count) {
  return guarded([&] {
    auto& c = client_of(client);
    require(count != nullptr, "count is NULL");
    require(drives != nullptr || capacity == 0, "drives is NULL but capacity is not 0");
    const auto list = c.drives();
    const std::uint32_t service = c.max_transfer();
    *count = list.size();
    for (std::size_t i = 0; i < std::min(capacity, list.size()); ++i) {
      const auto& d = list[i];
      auto& out = drives[i];
      copy_field(out.id, d.id);
      copy_field(out.path, d.path);
      copy_field(out.vendor, d.vendor);
      copy_field(out.product, d.product);
      copy_field(out.revision, d.revision);
      copy_field(out.state, d.state);
      out.max_transfer = d.max_transfer != 0 ? std::min(d.max_transfer, service) : service;
    }
    if (list.size() > capacity) {
      refuse(errc::insufficient_buffer,
             fmt::format("the service has {} drives; the array holds {}", list.size(), capacity));
    }
    return errc::ok;
  });
}

DA_HRESULT da_acquire_exclusive_access(da_client* client, const char* drive, uint32_t wait_ms,
                                       int32_t force, uint32_t* lock_count) {
  return guarded([&] {
    auto& c = client_of(client);
    const auto count = c.acquire_exclusive_access(
        drive_of(drive), AcquireOptions{std::chrono::milliseconds(wait_ms), force != 0});
    if (lock_count)
      *lock_count = count;
    return errc::ok;
  });
}

DA_HRESULT da_release_exclusive_access(da_client* client, const char* drive, uint32_t* lock_count) {
  return guarded([&] {
    auto& c = client_of(client);
    const auto count = c.release_exclusive_access(drive_of(drive));
    if (lock_count)
      *lock_count = count;
    return errc::ok;
  });
}

DA_HRESULT da_exclusive_access_owner(da_client* client, const char* drive, da_owner* owner) {
  return guarded([&] {
    auto& c = client_of(client);
    const auto name = drive_of(drive);
    require(owner != nullptr, "owner is NULL");
    const auto info = c.exclusive_access_owner(name);
    *owner = da_owner{};
    if (info) {
      owner->locked = 1;
      copy_field(owner->client_name, info->client_name);
      owner->session = info->session;
      owner->pid = info->pid;
      owner->lock_count = info->lock_count;
      copy_field(owner->user, info->user);
      copy_field(owner->since, info->since);
      owner->force = info->force ? 1 : 0;
    }
    return errc::ok;
  });
}

DA_HRESULT da_send_command_no_data(da_client* client, const char* drive, const uint8_t* cdb,
                                   size_t cdb_size, uint8_t* sense, size_t sense_size,
                                   uint32_t timeout_s, da_command_result* result) {
  return guarded([&] {
    auto& c = client_of(client);
    auto& out = result_of(result);
    const auto s = sense_of(sense, sense_size);
    return report(
        c.send_command_no_data(drive_of(drive), cdb_of(cdb, cdb_size), timeout_of(timeout_s)), s,
        &out);
  });
}

DA_HRESULT da_send_command_send_data_to_device(da_client* client, const char* drive,
                                               const uint8_t* cdb, size_t cdb_size, uint8_t* sense,
                                               size_t sense_size, uint32_t timeout_s,
                                               const void* buffer, size_t buffer_size,
                                               da_command_result* result) {
  return guarded([&] {
    auto& c = client_of(client);
    auto& out = result_of(result);
    const auto s = sense_of(sense, sense_size);
    require(buffer != nullptr || buffer_size == 0, "buffer is NULL but buffer_size is not 0");
    const std::span data(static_cast<const std::uint8_t*>(buffer), buffer_size);
    return report(c.send_command_send_data_to_device(drive_of(drive), cdb_of(cdb, cdb_size), data,
                                                     timeout_of(timeout_s)),
                  s, &out);
  });
}

DA_HRESULT da_send_command_get_data_from_device(da_client* client, const char* drive,
                                                const uint8_t* cdb, size_t cdb_size, uint8_t* sense,
                                                size_t sense_size, uint32_t timeout_s, void* buffer,
                                                size_t buffer_size, da_command_result* result) {
  return guarded([&] {
    auto& c = client_of(client);
    auto& out = result_of(result);
    const auto s = sense_of(sense, sense_size);
    require(buffer != nullptr || buffer_size == 0, "buffer is NULL but buffer_size is not 0");
    const std::span data(static_cast<std::uint8_t*>(buffer), buffer_size);
    return report(c.send_command_get_data_from_device(drive_of(drive), cdb_of(cdb, cdb_size), data,
                                                      timeout_of(timeout_s)),
                  s, &out);
  });
}

DA_HRESULT da_get_max_transfer(da_client* client, const char* drive, uint32_t* bytes) {
  return guarded([&] {
    auto& c = client_of(client);
    require(bytes != nullptr, "bytes is NULL");
    *bytes = drive ? c.max_transfer(std::string(drive)) : c.max_transfer();
    return errc::ok;
  });
}

DA_HRESULT da_get_status_json(da_client* client, char* buffer, size_t size, size_t* needed) {
  return guarded([&] { return copy_text(client_of(client).status_json(), buffer, size, needed); });
}

DA_HRESULT da_get_last_error_message(char* buffer, size_t size, size_t* needed) {
  // N.B. reading the message does not replace it, even when the buffer is
  // too small: the caller retries with a larger one.
  if (buffer == nullptr && size > 0)
    return to_hresult(errc::invalid_arg);
  const std::string_view text = last_error_message;
  if (needed)
    *needed = text.size() + 1;
  if (text.size() + 1 > size)
    return to_hresult(errc::insufficient_buffer);
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  return to_hresult(errc::ok);
}

DA_HRESULT da_get_error_name(DA_HRESULT hr, char* buffer, size_t size, size_t* needed) {
  return guarded(
      [&] { return copy_text(error_name(static_cast<std::uint32_t>(hr)), buffer, size, needed); });
}

DA_HRESULT da_explain_sense(const uint8_t* sense, size_t sense_size, char* buffer, size_t size,
                            size_t* needed) {
  return guarded([&] {
    require(sense != nullptr || sense_size == 0, "sense is NULL but sense_size is not 0");
    return copy_text(proto::explain_sense({sense, sense_size}), buffer, size, needed);
  });
}

}  // extern "C"
