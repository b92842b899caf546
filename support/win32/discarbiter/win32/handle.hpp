// Move-only owners of Win32 handles whose invalid value is part of the type
// (after wil's unique_any): nothing is closed by hand on each return path.
#pragma once

#include <windows.h>

#include <cstdint>
#include <utility>

namespace discarbiter::win32 {

template <typename T, auto Close, std::intptr_t Invalid>
class unique_any {
 public:
  unique_any() noexcept = default;
  explicit unique_any(T value) noexcept : value_(value) {}
  unique_any(unique_any&& other) noexcept : value_(other.release()) {}
  unique_any& operator=(unique_any&& other) noexcept {
    if (this != &other)
      reset(other.release());
    return *this;
  }
  unique_any(const unique_any&) = delete;
  unique_any& operator=(const unique_any&) = delete;
  ~unique_any() { reset(); }

  [[nodiscard]] T get() const noexcept { return value_; }
  [[nodiscard]] bool valid() const noexcept { return value_ != invalid(); }
  explicit operator bool() const noexcept { return valid(); }
  [[nodiscard]] T release() noexcept { return std::exchange(value_, invalid()); }
  void reset(T value = invalid()) noexcept {
    if (valid())
      Close(value_);
    value_ = value;
  }

 private:
  static T invalid() noexcept { return reinterpret_cast<T>(Invalid); }
  T value_ = invalid();
};

namespace detail {
inline void close_handle(HANDLE h) noexcept {
  ::CloseHandle(h);
}
inline void local_free(HLOCAL h) noexcept {
  ::LocalFree(h);
}
inline void close_service_handle(SC_HANDLE h) noexcept {
  ::CloseServiceHandle(h);
}
inline void reg_close_key(HKEY h) noexcept {
  ::RegCloseKey(h);
}
}  // namespace detail

/// Events, threads, processes, tokens: invalid is nullptr.
using unique_handle = unique_any<HANDLE, detail::close_handle, 0>;
/// CreateFileW / CreateNamedPipeW: invalid is INVALID_HANDLE_VALUE.
using unique_hfile = unique_any<HANDLE, detail::close_handle, -1>;
/// Memory the system allocated with LocalAlloc (SDDL conversions).
using unique_hlocal = unique_any<HLOCAL, detail::local_free, 0>;
/// The service control manager and its services.
using unique_schandle = unique_any<SC_HANDLE, detail::close_service_handle, 0>;
using unique_hkey = unique_any<HKEY, detail::reg_close_key, 0>;

}  // namespace discarbiter::win32
